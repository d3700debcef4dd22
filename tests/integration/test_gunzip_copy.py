"""mailmesh.imap.gunzip_copy through Ansible (its action plugin and its module) on
localhost: the file arrives unpacked with its mode, only when it is missing; check mode
sends nothing; a damaged or cut copy leaves no file, not even a part of one."""

from __future__ import annotations

import gzip
import os

import pytest


@pytest.fixture()
def packed(tmp_path):
    """(the gzip file, its unpacked bytes): 3 MB, some of it incompressible."""
    data = os.urandom(1 << 20) + b"envoy\n" * ((2 << 20) // 6)
    path = tmp_path / "release.gz"
    with gzip.open(path, "wb") as out:
        out.write(data)
    return path, data


def _names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_the_file_arrives_unpacked_once(tmp_path, packed, run_module):
    src, data = packed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dest = bin_dir / "app-1.0-0123456789ab"
    args = {"src": str(src), "dest": str(dest), "mode": "0755"}

    checked = run_module("gunzip_copy", args, check=True)
    assert checked.changed and not checked.failed, checked
    assert _names(bin_dir) == []

    result = run_module("gunzip_copy", args)
    assert result.changed and not result.failed, result
    assert result["size"] == len(data) and result["dest"] == str(dest)
    assert dest.read_bytes() == data
    assert oct(dest.stat().st_mode & 0o7777) == "0o755"
    assert _names(bin_dir) == [dest.name]

    # There already (the name says the content): nothing is sent or changed, even when
    # the controller's file is another one now.
    src.write_bytes(gzip.compress(b"another release\n"))
    again = run_module("gunzip_copy", args)
    assert not again.changed and not again.failed, again
    assert "size" not in again
    assert dest.read_bytes() == data


@pytest.mark.parametrize("damage", ["cut", "flipped", "not gzip"])
def test_a_damaged_copy_leaves_nothing(tmp_path, packed, run_module, damage):
    src, _data = packed
    raw = src.read_bytes()
    if damage == "cut":
        raw = raw[:len(raw) // 2]
    elif damage == "flipped":
        # A byte of the CRC-32 that closes the file: the data inflates, gzip's check fails.
        raw = raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:]
    else:
        raw = b"#!/bin/sh\necho not compressed\n"
    src.write_bytes(raw)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dest = bin_dir / "app-1.0-0123456789ab"
    result = run_module("gunzip_copy", {"src": str(src), "dest": str(dest), "mode": "0755"})
    assert result.failed and not result.changed, result
    assert result["msg"].startswith("dest: %s was not written: the copy of src is not a whole gzip file (" % dest)
    assert _names(bin_dir) == []


def test_bad_input_names_the_option(tmp_path, packed, run_module):
    src, _data = packed
    missing_dir = tmp_path / "nowhere" / "app"
    result = run_module("gunzip_copy", {"src": str(src), "dest": str(missing_dir)})
    assert result.failed and result["msg"] == "dest: the directory %s does not exist" % missing_dir.parent
    assert not (tmp_path / "nowhere").exists()
    result = run_module("gunzip_copy", {"src": str(tmp_path / "absent.gz"), "dest": str(tmp_path / "app")})
    assert result.failed and result["msg"].startswith("src: "), result
    assert "absent.gz" in result["msg"]
    assert not (tmp_path / "app").exists()
    result = run_module("gunzip_copy", {"dest": str(tmp_path / "app")})
    assert result.failed and result["msg"] == "src is required", result
