"""Fixtures for integration tests: a real OpenBao server and a way to run modules.

Modules run through Ansible itself (``ansible localhost -m mailmesh.imap.<module>``) with
the ``ansible.posix.json`` callback, so argument specs, check mode, diff and no_log
masking are exercised exactly as in a playbook.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import bao_binary, free_port, wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROOT_TOKEN = "mailmesh-test-root"  # a throw-away dev-server token, never a real one


class BaoServer:
    """A running `bao server` process on loopback."""

    def __init__(self, workdir, dev=True, tls=True):
        self.workdir = pathlib.Path(workdir)
        self.port = free_port()
        self.cluster_port = free_port()
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)
        self.ca_cert = str(self.workdir / "vault-ca.pem") if tls else None
        self.root_token = ROOT_TOKEN if dev else None
        self.log = open(self.workdir / "bao.log", "wb")  # pylint: disable=consider-using-with
        if dev:
            argv = [
                bao_binary(), "server", "-dev",
                "-dev-root-token-id=" + ROOT_TOKEN,
                "-dev-listen-address=127.0.0.1:%d" % self.port,
            ]
            if tls:
                argv += ["-dev-tls", "-dev-tls-cert-dir=" + str(self.workdir)]
        else:
            config = self.workdir / "bao.hcl"
            (self.workdir / "data").mkdir(exist_ok=True)
            config.write_text(
                # OpenBao 2.x has no "file" storage; a single-node raft is the
                # smallest persistent backend (it survives a restart, sealed).
                'storage "raft" { path = "%s" node_id = "node1" }\n'
                'listener "tcp" { address = "127.0.0.1:%d" tls_disable = true }\n'
                'api_addr = "%s"\ncluster_addr = "http://127.0.0.1:%d"\n'
                % (self.workdir / "data", self.port, self.url, self.cluster_port)
            )
            argv = [bao_binary(), "server", "-config=" + str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_http(self.url, self.ca_cert or True)
        except BaseException:
            self.stop()  # a failed start must not leave a server behind
            raise

    def client(self, token=None):
        import hvac  # pylint: disable=import-outside-toplevel

        return hvac.Client(url=self.url, token=token or self.root_token or "", verify=self.ca_cert or True)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def connection(self, **extra):
        """Module arguments that reach this server with the root token."""
        args = {"url": self.url, "token": self.root_token}
        if self.ca_cert:
            args["ca_cert"] = self.ca_cert
        args.update(extra)
        return args


@pytest.fixture(scope="session")
def bao():
    """One OpenBao dev server with TLS for the whole session (initialized, unsealed)."""
    workdir = tempfile.mkdtemp(prefix="mailmesh-bao-")
    server = BaoServer(workdir, dev=True, tls=True)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def bao_own(tmp_path):
    """An OpenBao dev server with TLS of the test's own (nothing of the other tests)."""
    workdir = tmp_path / "bao-own"
    workdir.mkdir()
    server = BaoServer(workdir, dev=True, tls=True)
    yield server
    server.stop()


@pytest.fixture
def bao_fresh(tmp_path):
    """A non-dev OpenBao server, not initialized, plain HTTP on loopback."""
    server = BaoServer(tmp_path, dev=False, tls=False)
    yield server
    server.stop()


class ModuleResult(dict):
    @property
    def changed(self):
        return self.get("changed", False)

    @property
    def failed(self):
        return self.get("failed", False)


def _ansible_env():
    env = dict(os.environ)
    venv_site = [p for p in sys.path if p.endswith("site-packages")]
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [str(ROOT / ".build" / "collections")] + venv_site
    )
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    for key in ("VAULT_TOKEN", "VAULT_ADDR", "BAO_TOKEN", "BAO_ADDR"):
        env.pop(key, None)
    return env


def run_module(name, args, check=False, diff=False, interpreter=None):
    """Run `mailmesh.imap.<name>` on localhost through Ansible; return its result.

    The raw stdout is kept on the result as ``_stdout`` so tests can assert that no
    secret reached Ansible's output. ``interpreter`` runs the module with another
    Python than the venv's (ansible_python_interpreter).
    """
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible"),
        "localhost", "-c", "local",
        "-m", "mailmesh.imap." + name,
        "-a", json.dumps(args),
    ]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if interpreter:  # an extra var: the implicit localhost sets ansible_python_interpreter
        argv += ["-e", json.dumps({"ansible_python_interpreter": interpreter})]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_ansible_env(), timeout=300, check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
        host = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        pytest.fail("ansible produced no result for %s:\n%s\n%s" % (name, proc.stdout, proc.stderr))
    result = ModuleResult(host)
    result["_stdout"] = proc.stdout + proc.stderr
    return result


@pytest.fixture(name="run_module")
def run_module_fixture():
    return run_module
