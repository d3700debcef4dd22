"""Unit tests for plugins/modules/envoy_platform.py, run on this host as a module."""

import json
import os

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.mailmesh.imap.plugins.modules import envoy_platform as module


def run_module(capsys, monkeypatch, args):
    """Run main() with args as Ansible passes them; return the parsed result."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps(payload)))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    with pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_reports_this_hosts_cpus_and_changes_nothing(capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, {"fail_on_problem": False})
    assert result["changed"] is False
    assert result["cpus"] == os.cpu_count()
    assert result["machine"] == os.uname()[4]
    assert isinstance(result["va_bits"], int)


def test_every_returned_key_is_documented(capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, {"fail_on_problem": False})
    documented = set(yaml.safe_load(module.RETURN))
    assert documented == {"machine", "arch", "va_bits", "cpus", "problem"}
    assert documented <= set(result)
