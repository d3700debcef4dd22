"""Unit tests for plugins/modules/envoy_ready.py against a fake admin interface on 127.0.0.1
(and one on a Unix socket, as the envoy role runs Envoy's)."""

import http.server
import json
import os
import socketserver
import threading

import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils import _envoy_admin as admin_interface
from ansible_collections.mailmesh.imap.plugins.modules import envoy_ready as module


def _address(server):
    return "127.0.0.1:%d" % server.server_address[1]


def test_ready_and_serving(admin, run_module):
    result = run_module(module, {"admin_address": _address(admin)})
    assert not result.get("failed"), result
    assert result["state"] == "LIVE" and result["certificate_chains"] == 1
    assert result["changed"] is False


def test_not_ready_fails_after_the_timeout(admin, run_module, monkeypatch):
    monkeypatch.setattr(admin_interface, "DELAY", 0.05)
    admin.answers["/ready"] = (503, "PRE_INITIALIZING\n")
    result = run_module(module, {"admin_address": _address(admin), "timeout": 1})
    assert result["failed"]
    assert "/ready answered 503 PRE_INITIALIZING" in result["msg"] and "waited 1 s" in result["msg"]


def test_live_without_certificates_is_named(admin, run_module, monkeypatch):
    monkeypatch.setattr(admin_interface, "DELAY", 0.05)
    admin.answers["/certs"] = (200, json.dumps({"certificates": [{"cert_chain": []}]}))
    result = run_module(module, {"admin_address": _address(admin), "timeout": 1})
    assert result["failed"] and "serves no certificate" in result["msg"], result
    result = run_module(module, {"admin_address": _address(admin), "require_certificates": False})
    assert not result.get("failed") and result["certificate_chains"] == 0


def test_ready_later_is_waited_for(admin):
    """Answers change while it waits: the first /ready is 503, then LIVE."""
    ticks = iter(range(100))
    admin.answers["/ready"] = (503, "PRE_INITIALIZING")

    def sleep(_seconds):
        admin.answers["/ready"] = (200, "LIVE")

    result, problem = admin_interface.wait(_address(admin), 10, True, clock=lambda: next(ticks), sleep=sleep)
    assert problem is None and result == {"state": "LIVE", "certificate_chains": 1}


def test_nothing_listening(run_module, monkeypatch):
    monkeypatch.setattr(admin_interface, "DELAY", 0.05)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # the port is free again: nothing answers there
    result = run_module(module, {"admin_address": "127.0.0.1:%d" % port, "timeout": 1})
    assert result["failed"] and "does not answer" in result["msg"], result


def test_bad_address_names_the_option(run_module):
    result = run_module(module, {"admin_address": "localhost"})
    assert result["failed"] and "admin_address must be the path of a Unix socket or host:port" in result["msg"]


def test_documented_options_and_return_values():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == {"admin_address", "timeout", "require_certificates"}
    # observe: the doc fragment shared with envoy_platform.
    assert doc["extends_documentation_fragment"] == ["mailmesh.imap.host_observe"]
    assert yaml.safe_load(module.EXAMPLES)
    assert set(yaml.safe_load(module.RETURN)) == {"state", "certificate_chains", "observed"}


def test_ready_on_a_unix_socket(admin, run_module, tmp_path):
    """The role's case: the admin interface is a Unix socket path."""

    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    path = str(tmp_path / "admin.sock")
    server = UnixServer(path, admin.handler)
    server.answers = admin.answers
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_module(module, {"admin_address": path})
        assert not result.get("failed"), result
        assert result["state"] == "LIVE" and result["certificate_chains"] == 1
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)
    result = run_module(module, {"admin_address": path, "timeout": 1})
    assert result["failed"] and "does not answer" in result["msg"] and path in result["msg"]


def test_observe_looks_after_the_wait(admin, run_module, tmp_path):
    """With observe, the answer carries what is on the host, as envoy_platform's observe
    gives it (the envoy role's comparison after its tasks, in this call)."""
    config = tmp_path / "envoy.yaml"
    config.write_text("admin: {}\n")
    result = run_module(module, {"admin_address": _address(admin), "observe": {
        "files": [{"path": str(config), "sha256": True}, {"path": str(tmp_path / "missing")}]}})
    assert not result.get("failed"), result
    files = result["observed"]["files"]
    assert files[str(config)]["kind"] == "file" and len(files[str(config)]["sha256"]) == 64
    assert files[str(tmp_path / "missing")] == {"kind": None}
    assert run_module(module, {"admin_address": _address(admin)}).get("observed") is None


def test_observe_is_not_looked_at_when_envoy_is_not_ready(admin, run_module, monkeypatch, tmp_path):
    monkeypatch.setattr(admin_interface, "DELAY", 0.05)
    admin.answers["/ready"] = (503, "PRE_INITIALIZING\n")
    result = run_module(module, {"admin_address": _address(admin), "timeout": 1,
                                 "observe": {"files": [{"path": str(tmp_path)}]}})
    assert result["failed"] and "observed" not in result
