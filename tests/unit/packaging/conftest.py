"""The collection tarball, built once per test session, and a copy installed from it."""

from __future__ import annotations

import pathlib
import tarfile

import pytest

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import REPO, clean_env, run, tool


class Tarball:
    """A built tarball: its path and its members (POSIX paths, directories without '/')."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        with tarfile.open(path) as archive:
            members = archive.getmembers()
            self.files = {m.name.rstrip("/") for m in members if not m.isdir()}
            self.dirs = {m.name.rstrip("/") for m in members if m.isdir()}
            self.texts = {
                m.name: archive.extractfile(m).read().decode("utf-8")
                for m in members
                if m.isfile() and m.name.endswith((".md", ".yml", ".yaml", ".j2", ".py", ".txt"))
            }

    def exists(self, path: str) -> bool:
        return path == "" or path in self.files or path in self.dirs


@pytest.fixture(scope="session")
def tarball(tmp_path_factory) -> Tarball:
    """ansible-galaxy collection build of the checkout, into a temporary directory."""
    out = tmp_path_factory.mktemp("dist")
    done = run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
               env=clean_env(), cwd=str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("mailmesh-imap-*.tar.gz")
    return Tarball(path)


@pytest.fixture(scope="session")
def installed(tarball, tmp_path_factory) -> pathlib.Path:
    """A collections directory with only the tarball installed in it (offline)."""
    collections = tmp_path_factory.mktemp("collections")
    done = run([tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections),
                str(tarball.path)], env=clean_env(), cwd=str(collections))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (collections / "ansible_collections" / "mailmesh" / "imap" / "MANIFEST.json").is_file()
    return collections
