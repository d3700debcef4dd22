"""tests/harness/pip_mounts.py: the docker run arguments that give the newest controller's
container (tests/harness/controller.sh) this machine's pip configuration, from sample
``pip config debug`` output. Nothing is mounted that pip's settings do not name, and
variables pass by name only.

Not shipped (the harness is not in the tarball)."""

from __future__ import annotations

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1].parent
_spec = importlib.util.spec_from_file_location("pip_mounts", REPO / "tests" / "harness" / "pip_mounts.py")
pip_mounts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pip_mounts)

DEBUG = """\
env_var:
  PIP_CERT='/etc/ssl/certs/ca-certificates.crt'
  PIP_FIND_LINKS='/srv/wheels'
env:
global:
  /etc/xdg/pip/pip.conf, exists: True
    global.constraint: /etc/xdg/pip/constraints.txt
  /etc/pip.conf, exists: False
site:
  /venv/pip.conf, exists: False
user:
  /home/ops/.pip/pip.conf, exists: False
  /home/ops/.config/pip/pip.conf, exists: True
    global.extra-index-url: file:///srv/pypi/simple file:///gone/simple https://index.example.org/simple
    global.proxy: http://proxy.example.org:3128
"""
EXISTING = {
    "/etc/xdg/pip/pip.conf", "/etc/xdg/pip/constraints.txt", "/home/ops/.config/pip/pip.conf",
    "/etc/ssl/certs/ca-certificates.crt", "/srv/wheels", "/srv/pypi",
}


def args(environ):
    return pip_mounts.docker_args(DEBUG, environ, exists=EXISTING.__contains__, realpath=lambda path: path)


def mounts(argv):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-v"]


def variables(argv):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-e"]


def test_config_files_and_the_paths_they_name_are_mounted_read_only():
    environ = {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt", "PIP_FIND_LINKS": "/srv/wheels"}
    assert mounts(args(environ)) == [
        "%s:%s:ro" % (path, path) for path in sorted(EXISTING)
    ]


def test_a_local_index_is_mounted_from_its_root_and_missing_or_remote_ones_are_not():
    found = mounts(args({}))
    assert "/srv/pypi:/srv/pypi:ro" in found
    assert not any(entry.startswith(("/gone", "/srv/pypi/simple", "http")) for entry in found)
    assert "/etc/pip.conf:/etc/pip.conf:ro" not in found  # does not exist


def test_variables_pass_by_name_without_their_values():
    environ = {"PIP_INDEX_URL": "https://user:secret@index.example.org/simple", "https_proxy": "http://p:3128",
               "HOME": "/home/ops", "PIPX_HOME": "/x"}
    argv = args(environ)
    assert variables(argv) == ["PIP_INDEX_URL", "https_proxy"]
    assert not any("secret" in arg for arg in argv)


def test_a_machine_without_pip_configuration_gets_no_arguments():
    assert pip_mounts.docker_args("env_var:\nenv:\nglobal:\n  /etc/pip.conf, exists: False\n", {},
                                  exists=lambda path: False) == []
