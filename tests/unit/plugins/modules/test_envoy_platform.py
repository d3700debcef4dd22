"""Unit tests for plugins/modules/envoy_platform.py, run on this host as a module."""

import os

import yaml

from ansible_collections.mailmesh.imap.plugins.modules import envoy_platform as module


def test_reports_this_hosts_cpus_and_changes_nothing(run_module):
    result = run_module(module, {"fail_on_problem": False})
    assert result["changed"] is False
    assert result["cpus"] == os.cpu_count()
    assert result["machine"] == os.uname()[4]
    assert isinstance(result["va_bits"], int)


def test_every_returned_key_is_documented(run_module):
    result = run_module(module, {"fail_on_problem": False})
    documented = set(yaml.safe_load(module.RETURN))
    assert documented == {"machine", "arch", "va_bits", "cpus", "problem"}
    assert documented <= set(result)
