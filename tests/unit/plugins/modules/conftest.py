"""Run a module's main() in-process, as Ansible would pass it its arguments; a fake Envoy
admin interface for the modules that ask one (envoy_ready, envoy_platform)."""

import http.server
import json
import threading

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


@pytest.fixture
def run_module(capsys, monkeypatch):
    """run_module(module, args) -> the module's parsed JSON result (exit or fail)."""

    def run(module, args):
        payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps(payload)))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
        with pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run


CERTS = {"certificates": [{"ca_cert": [], "cert_chain": [{"path": "/etc/mailmesh/tls/envoy/fullchain.pem"}]}]}


@pytest.fixture
def admin():
    """A fake Envoy admin interface; set .answers[path] = (status, body) before asking."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            server.requests.append(self.path)
            status, body = server.answers.get(self.path, (404, "not found"))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handler = Handler
    server.answers = {"/ready": (200, "LIVE\n"), "/certs": (200, json.dumps(CERTS))}
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
