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
    assert documented == {"machine", "arch", "va_bits", "cpus", "time_sync", "container", "problem"}
    assert documented <= set(result)


def test_time_sync_clients_by_their_programs():
    present = {"/usr/sbin/chronyd", "/lib/systemd/systemd-timesyncd"}
    assert module.time_sync_clients(present.__contains__) == ["chrony", "systemd-timesyncd"]
    assert module.time_sync_clients({"/usr/sbin/ntpd"}.__contains__) == ["ntpsec"]
    assert module.time_sync_clients(set().__contains__) == []


def test_container_by_systemds_marker_or_dockers():
    assert module.in_container({"/run/systemd/container"}.__contains__)
    assert module.in_container({"/.dockerenv"}.__contains__)
    assert not module.in_container(set().__contains__)
