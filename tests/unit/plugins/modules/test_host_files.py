"""Unit tests for plugins/modules/host_files.py: directories and files written once, left
alone when they are as given, replaced whole, check mode, diff, and input refused before
anything changes."""

import grp
import os
import pwd
import stat

from ansible_collections.mailmesh.imap.plugins.modules import host_files as module

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _mode(path):
    return "%04o" % stat.S_IMODE(os.lstat(path).st_mode)


def _entries(root):
    return [
        {"path": str(root / "agent"), "state": "directory", "owner": ME, "group": MY_GROUP, "mode": "0750"},
        {"path": str(root / "agent" / "lib" / "pkg"), "state": "directory", "mode": "0755"},
        {"path": str(root / "agent" / "agent.py"), "text": "print('renew')\n", "owner": ME, "group": MY_GROUP,
         "mode": "0640"},
        {"path": str(root / "agent" / "lib" / "pkg" / "__init__.py"), "text": ""},
    ]


def test_a_first_call_writes_everything_and_a_second_changes_nothing(run_module, tmp_path):
    result = run_module(module, {"files": _entries(tmp_path)})
    assert result["changed"] is True
    assert result["paths"] == [entry["path"] for entry in _entries(tmp_path)]
    assert _mode(tmp_path / "agent") == "0750"
    assert _mode(tmp_path / "agent" / "lib" / "pkg") == "0755"
    assert (tmp_path / "agent" / "agent.py").read_text() == "print('renew')\n"
    assert _mode(tmp_path / "agent" / "agent.py") == "0640"
    # Without a mode: 0644 for a new file, whatever the umask.
    assert (tmp_path / "agent" / "lib" / "pkg" / "__init__.py").read_bytes() == b""
    assert _mode(tmp_path / "agent" / "lib" / "pkg" / "__init__.py") == "0644"
    assert not [name for name in os.listdir(tmp_path / "agent") if name.startswith(".")]

    again = run_module(module, {"files": _entries(tmp_path)})
    assert again["changed"] is False
    assert again["paths"] == []


def test_new_content_replaces_the_file_whole_and_keeps_what_is_not_given(run_module, tmp_path):
    target = tmp_path / "unit.service"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    before = os.lstat(target).st_ino
    result = run_module(module, {"files": [{"path": str(target), "text": "new\n"}]})
    assert result["changed"] is True and result["paths"] == [str(target)]
    assert target.read_text() == "new\n"
    # A new inode (renamed into place), the old mode and owner (none given).
    assert os.lstat(target).st_ino != before
    assert _mode(target) == "0600"
    assert os.lstat(target).st_uid == os.getuid()


def test_a_mode_alone_is_a_change(run_module, tmp_path):
    target = tmp_path / "config.json"
    target.write_text("{}\n")
    os.chmod(target, 0o600)
    inode = os.lstat(target).st_ino
    result = run_module(module, {"files": [{"path": str(target), "text": "{}\n", "mode": "0644"}]})
    assert result["changed"] is True and result["paths"] == [str(target)]
    assert _mode(target) == "0644"
    assert os.lstat(target).st_ino == inode


def test_check_mode_reports_and_changes_nothing(run_module, tmp_path):
    existing = tmp_path / "kept.txt"
    existing.write_text("old\n")
    entries = [{"path": str(tmp_path / "new"), "state": "directory"},
               {"path": str(tmp_path / "new" / "file.txt"), "text": "x\n"},
               {"path": str(existing), "text": "new\n"}]
    result = run_module(module, {"files": entries, "_ansible_check_mode": True})
    assert result["changed"] is True
    assert result["paths"] == [entry["path"] for entry in entries]
    assert not (tmp_path / "new").exists()
    assert existing.read_text() == "old\n"


def test_diff_shows_each_file_before_and_after(run_module, tmp_path):
    existing = tmp_path / "timer"
    existing.write_text("OnCalendar=daily\n")
    result = run_module(module, {"files": [{"path": str(tmp_path / "d"), "state": "directory"},
                                           {"path": str(existing), "text": "OnCalendar=hourly\n"}],
                                 "_ansible_diff": True})
    assert result["diff"] == [
        {"before_header": str(tmp_path / "d"), "after_header": str(tmp_path / "d"),
         "before": "(absent)\n", "after": "(directory)\n"},
        {"before_header": str(existing), "after_header": str(existing),
         "before": "OnCalendar=daily\n", "after": "OnCalendar=hourly\n"},
    ]


def test_a_link_where_a_file_belongs_is_replaced_not_followed(run_module, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched\n")
    link = tmp_path / "agent.py"
    os.symlink(str(elsewhere), str(link))
    result = run_module(module, {"files": [{"path": str(link), "text": "print('renew')\n"}]})
    assert result["changed"] is True
    assert not os.path.islink(link)
    assert link.read_text() == "print('renew')\n"
    assert elsewhere.read_text() == "untouched\n"


def test_wrong_input_is_refused_before_anything_changes(run_module, tmp_path):
    entries = [{"path": str(tmp_path / "first"), "state": "directory"},
               {"path": str(tmp_path / "no-text")},
               {"path": str(tmp_path / "dir-with-text"), "state": "directory", "text": "x"},
               {"path": "relative/file", "text": "x"},
               {"path": str(tmp_path / "checked"), "text": "x", "validate": "true"},
               {"path": str(tmp_path / "d"), "state": "directory", "validate": "test -d %s"}]
    result = run_module(module, {"files": entries})
    assert result["failed"] is True
    assert result["problems"] == [
        "files[1] (%s): text is required for a file" % (tmp_path / "no-text"),
        "files[2] (%s): a directory takes no text" % (tmp_path / "dir-with-text"),
        "files[3] (relative/file): path must be absolute",
        "files[4] (%s): validate must contain %%s (the file to check)" % (tmp_path / "checked"),
        "files[5] (%s): a directory takes no validate command" % (tmp_path / "d"),
    ]
    assert not (tmp_path / "first").exists()


def test_a_path_of_the_wrong_kind_fails_and_names_it(run_module, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "plain").write_text("x\n")
    result = run_module(module, {"files": [{"path": str(tmp_path / "conf"), "text": "x\n"}]})
    assert result["failed"] is True and result["msg"] == "%s: is a directory, not a file" % (tmp_path / "conf")
    result = run_module(module, {"files": [{"path": str(tmp_path / "plain"), "state": "directory"}]})
    assert result["failed"] is True
    assert result["msg"] == "%s: exists and is not a directory; remove it first" % (tmp_path / "plain")


def test_validate_checks_the_new_content_under_the_paths_extension(run_module, tmp_path):
    """The command sees the temporary file with the path's extension; its success puts the
    file in place, and an unchanged file is not checked again."""
    log = tmp_path / "checked.log"
    target = tmp_path / "envoy.yaml"
    command = "sh -c 'grep -q good \"$1\" && echo \"$1\" >> %s' check %%s" % log
    result = run_module(module, {"files": [{"path": str(target), "text": "good\n", "validate": command}]})
    assert result["changed"] is True and target.read_text() == "good\n"
    checked = log.read_text().split()
    assert len(checked) == 1 and checked[0] != str(target) and checked[0].endswith(".yaml")
    assert os.path.dirname(checked[0]) == str(tmp_path)
    again = run_module(module, {"files": [{"path": str(target), "text": "good\n", "validate": command}]})
    assert again["changed"] is False and len(log.read_text().split()) == 1


def test_a_refused_file_keeps_the_old_one_and_the_entries_before_it(run_module, tmp_path):
    first = tmp_path / "sds.yaml"
    target = tmp_path / "envoy.yaml"
    target.write_text("old\n")
    command = "sh -c 'echo \"unknown field in $1\" >&2; exit 3' check %s"
    result = run_module(module, {"files": [{"path": str(first), "text": "cert\n"},
                                           {"path": str(target), "text": "bad\n", "validate": command},
                                           {"path": str(tmp_path / "after"), "text": "x\n"}]})
    assert result["failed"] is True and result["rc"] == 3
    assert "unknown field in" in result["stderr"]
    assert result["msg"].startswith("%s: the validate command refused the new content (rc 3); the old file stays: "
                                    "unknown field in " % target)
    assert result["paths"] == [str(first)]
    assert first.read_text() == "cert\n" and target.read_text() == "old\n"
    assert not (tmp_path / "after").exists()
    assert sorted(os.listdir(tmp_path)) == ["envoy.yaml", "sds.yaml"]


def test_links_are_pointed_replacing_a_file_or_another_link(run_module, tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "fullchain.pem").write_text("chain\n")
    cert, key = tmp_path / "vault.crt", tmp_path / "vault.key"
    cert.write_text("bootstrap\n")  # a file of an earlier release, replaced by the link
    os.symlink("elsewhere.key", str(key))  # another link, re-pointed
    entries = [{"path": str(cert), "state": "link", "src": str(tmp_path / "pki" / "fullchain.pem")},
               {"path": str(key), "state": "link", "src": "pki/key.pem"}]  # dangling, as given
    result = run_module(module, {"files": entries, "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["changed"] is True and result["paths"] == [str(cert), str(key)]
    assert [(item["before"], item["after"]) for item in result["diff"]] == [
        ("(a file)\n", "(link to %s)\n" % (tmp_path / "pki" / "fullchain.pem")),
        ("(link to elsewhere.key)\n", "(link to pki/key.pem)\n")]
    assert not os.path.islink(cert) and os.readlink(key) == "elsewhere.key"

    result = run_module(module, {"files": entries})
    assert result["changed"] is True
    assert os.readlink(cert) == str(tmp_path / "pki" / "fullchain.pem") and cert.read_text() == "chain\n"
    assert os.readlink(key) == "pki/key.pem"
    assert sorted(os.listdir(tmp_path)) == ["pki", "vault.crt", "vault.key"]  # no temporary left
    assert run_module(module, {"files": entries})["changed"] is False

    (tmp_path / "dir").mkdir()
    result = run_module(module, {"files": [{"path": str(tmp_path / "dir"), "state": "link", "src": "x"}]})
    assert result["failed"] is True and result["msg"] == "%s: is a directory, not a link; remove it first" % (
        tmp_path / "dir")


def test_a_link_takes_src_and_nothing_of_a_file(run_module, tmp_path):
    entries = [{"path": str(tmp_path / "a"), "state": "link"},
               {"path": str(tmp_path / "b"), "state": "link", "src": "x", "mode": "0644"},
               {"path": str(tmp_path / "c"), "text": "x", "src": "y"}]
    result = run_module(module, {"files": entries})
    assert result["failed"] is True
    assert result["problems"] == [
        "files[0] (%s): src is required for a link" % (tmp_path / "a"),
        "files[1] (%s): a link takes no text, owner, group, mode or validate" % (tmp_path / "b"),
        "files[2] (%s): only a link takes src" % (tmp_path / "c"),
    ]
