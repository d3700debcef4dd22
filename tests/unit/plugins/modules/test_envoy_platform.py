"""Unit tests for plugins/modules/envoy_platform.py, run on this host as a module."""

import hashlib
import os

import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils import _host_state
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
    assert documented == {"machine", "arch", "va_bits", "cpus", "time_sync", "container", "problem", "envoy",
                          "observed"}
    # envoy: only with admin_address; observed: only with observe.
    assert documented - {"envoy", "observed"} == set(result) - {"changed", "invocation"}


def test_observe_looks_at_what_host_state_compares_in_the_same_call(run_module, tmp_path):
    """What it saw, compared as the host_state_differences filter compares it on the
    controller (module_utils/_host_state.compare), gives host_state's differences; a link
    is followed to the file beside it where asked."""
    (tmp_path / "envoy-1.0").write_text("binary\n")
    os.chmod(tmp_path / "envoy-1.0", 0o755)
    os.symlink("envoy-1.0", tmp_path / "envoy")
    (tmp_path / "envoy.yaml").write_text("admin: {}\n")
    os.chmod(tmp_path / "envoy.yaml", 0o600)
    result = run_module(module, {"fail_on_problem": False, "observe": {
        "files": [{"path": str(tmp_path / "envoy"), "follow": True},
                  {"path": str(tmp_path / "envoy.yaml"), "sha256": True}],
        "users": ["root", "no-such-user-here"]}})
    assert result["changed"] is False
    observed = result["observed"]
    assert set(observed) == {"files", "packages", "groups", "users", "services", "problems"}
    assert observed["problems"] == []
    assert observed["files"][str(tmp_path / "envoy")]["target"] == "envoy-1.0"
    assert observed["files"][str(tmp_path / "envoy-1.0")]["mode"] == "0755"
    assert observed["users"]["no-such-user-here"] is None
    expected = [{"path": str(tmp_path / "envoy"), "state": "link", "target": "envoy-1.0"},
                {"path": str(tmp_path / "envoy-1.0"), "mode": "0755"},
                {"path": str(tmp_path / "envoy.yaml"), "mode": "0640",
                 "sha256": hashlib.sha256(b"admin: {}\n").hexdigest()}]
    assert _host_state.compare(observed, files=expected, users=[{"name": "root", "home": "/root"}]) == \
        ["%s: mode is 0600, not 0640" % (tmp_path / "envoy.yaml")]


def test_time_sync_clients_by_their_programs():
    present = {"/usr/sbin/chronyd", "/lib/systemd/systemd-timesyncd"}
    assert module.time_sync_clients(present.__contains__) == ["chrony", "systemd-timesyncd"]
    assert module.time_sync_clients({"/usr/sbin/ntpd"}.__contains__) == ["ntpsec"]
    assert module.time_sync_clients(set().__contains__) == []


def test_container_by_systemds_marker_or_dockers():
    assert module.in_container({"/run/systemd/container"}.__contains__)
    assert module.in_container({"/.dockerenv"}.__contains__)
    assert not module.in_container(set().__contains__)


def _address(server):
    return "127.0.0.1:%d" % server.server_address[1]


def test_asks_the_running_envoy_once_when_given_its_admin_address(admin, run_module):
    result = run_module(module, {"fail_on_problem": False, "admin_address": _address(admin)})
    assert result["envoy"] == {"state": "LIVE", "certificate_chains": 1, "problem": ""}
    assert admin.requests == ["/ready", "/certs"]


def test_an_envoy_not_ready_is_reported_not_waited_for_nor_failed(admin, run_module):
    admin.answers["/ready"] = (503, "PRE_INITIALIZING\n")
    result = run_module(module, {"fail_on_problem": False, "admin_address": _address(admin)})
    assert not result.get("failed"), result
    assert result["envoy"]["state"] == "PRE_INITIALIZING" and result["envoy"]["certificate_chains"] == 0
    assert result["envoy"]["problem"].endswith("/ready answered 503 PRE_INITIALIZING; asked once")
    assert admin.requests == ["/ready"]


def test_no_envoy_at_the_address_is_a_problem_not_a_failure(run_module, tmp_path):
    result = run_module(module, {"fail_on_problem": False, "admin_address": str(tmp_path / "admin.sock")})
    assert not result.get("failed"), result
    assert result["envoy"]["state"] == "" and "does not answer" in result["envoy"]["problem"]
