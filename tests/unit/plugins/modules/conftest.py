"""Run a module's main() in-process, as Ansible would pass it its arguments, or in a
fresh Python to see what it imports; a fake Envoy admin interface for the modules that
ask one (envoy_ready, envoy_platform)."""

import http.server
import importlib
import json
import os
import pathlib
import subprocess
import sys
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


# Runs a module's main() in a fresh Python (as AnsiballZ would, with the collection on the
# path) and reports, after the module's JSON, which of the watched modules it imported.
FRESH_CHILD = r"""
import importlib, importlib.util, json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.module_utils import basic
basic._ANSIBLE_ARGS = sys.argv[3].encode()
basic._ANSIBLE_PROFILE = "legacy"
watched = json.loads(sys.argv[4])
# Every watched module can be imported here, so its absence below is the module's doing.
missing = [name for name in watched if importlib.util.find_spec(name) is None]
assert not missing, "not importable here: %s" % missing
module = importlib.import_module("ansible_collections.mailmesh.imap.plugins.modules." + sys.argv[2])
try:
    module.main()
except SystemExit:
    pass
sys.stderr.write("LOADED=" + json.dumps(sorted(name for name in watched if name in sys.modules)))
"""


@pytest.fixture
def run_in_fresh_python():
    """run_in_fresh_python(name, args, watched, check_mode=False, path_prefix=None) ->
    (the module's result, the watched module names it imported). No VAULT_*/BAO_*
    variable reaches the child; path_prefix goes first on its PATH (fake tools)."""

    def run(name, args, watched, check_mode=False, path_prefix=None):
        payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False,
                                               _ansible_check_mode=check_mode)}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        if path_prefix:
            env["PATH"] = "%s:%s" % (path_prefix, env.get("PATH", "/usr/bin:/bin"))
        # <collections>/ansible_collections/mailmesh/imap/plugins/modules/<name>.py, as
        # the tests import it (tests/conftest.py's collection finder).
        module = importlib.import_module("ansible_collections.mailmesh.imap.plugins.modules." + name)
        collections = pathlib.Path(module.__file__).parents[5]
        proc = subprocess.run([sys.executable, "-c", FRESH_CHILD, str(collections), name, json.dumps(payload),
                               json.dumps(list(watched))],
                              capture_output=True, text=True, timeout=120, env=env, check=False)
        assert "LOADED=" in proc.stderr, proc.stdout + proc.stderr
        return json.loads(proc.stdout), json.loads(proc.stderr.rsplit("LOADED=", 1)[1])

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
