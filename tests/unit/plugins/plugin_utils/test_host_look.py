"""plugins/plugin_utils/_host_look.py: the shell script's look at files and its reads are
host_state's own (observe_file, read_files), checked on real files with /bin/sh."""

import os
import subprocess

import pytest

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import observe_file, read_files
from ansible_collections.mailmesh.imap.plugins.plugin_utils._host_look import LookError, look_script, parse_look


def _run(script):
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert proc.stderr == ""
    return proc.stdout


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "dir").mkdir(mode=0o750)
    (tmp_path / "file").write_text("secret\n")
    (tmp_path / "file").chmod(0o600)
    (tmp_path / "empty").write_text("")
    if os.geteuid() == 0:
        os.chown(tmp_path / "empty", 54321, 54322)
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "it's a \"name\" with\nnewline $(x)").write_text("odd")
    return tmp_path


def test_the_look_is_host_states_for_every_kind_of_path(tree):
    paths = sorted(str(p) for p in tree.iterdir()) + [str(tree / "missing"), str(tree / "dir" / "missing")]
    for sha256 in (True, False):
        seen = parse_look(_run(look_script([{"path": p, "sha256": sha256} for p in paths])))
        assert seen["contents"] == {}
        assert seen["files"] == {p: observe_file(p, sha256=sha256) for p in paths}
    # an owner and group without a name on the host read as their numbers, as host_state has them
    if os.geteuid() == 0:
        assert seen["files"][str(tree / "empty")]["owner"] == "54321"


def test_the_reads_are_host_states(tree):
    paths = [str(tree / "file"), str(tree / "empty"), str(tree / "link"), str(tree / "missing"),
             str(tree / "it's a \"name\" with\nnewline $(x)")]
    assert parse_look(_run(look_script([], paths)))["contents"] == read_files(paths)


@pytest.mark.parametrize("name", ["dir", "fifo", "big", "dangling-dir"])
def test_a_read_of_no_regular_file_fails_as_host_states(tree, name):
    (tree / "big").write_bytes(b"\0" * ((1 << 20) + 1))
    (tree / "dangling-dir").symlink_to("dir")
    path = str(tree / name)
    with pytest.raises(ValueError):
        read_files([path])
    with pytest.raises(LookError, match="is not a regular file, is larger than 1048576 bytes, or could not be read"):
        parse_look(_run(look_script([], [path])))


def test_a_file_of_exactly_the_limit_is_read(tree):
    (tree / "limit").write_bytes(b"a" * (1 << 20))
    path = str(tree / "limit")
    assert parse_look(_run(look_script([], [path])))["contents"] == read_files([path])


def test_a_directorys_entries_are_not_looked_at():
    with pytest.raises(ValueError, match="/srv: a directory's entries are not looked at by the script"):
        look_script([{"path": "/srv", "entries": ["a"]}])


@pytest.mark.parametrize("output", ["hello", "F !!! -", "F L3Nydg== directory|root", "X L3Nydg== -",
                                    "R L3Nydg== =not base64", "F L3Nydg== directory|root|0|root|0|rwx|"])
def test_output_that_is_not_the_scripts_is_refused(output):
    with pytest.raises(LookError, match="not the script's"):
        parse_look(output)


def test_blank_lines_and_carriage_returns_are_read_through(tree):
    output = _run(look_script([{"path": str(tree / "file"), "sha256": True}], [str(tree / "file")]))
    # a terminal on the connection (raw over SSH with a tty) ends lines with \r\n
    assert parse_look("\r\n" + output.replace("\n", "\r\n")) == parse_look(output)
