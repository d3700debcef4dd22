"""Unit tests for plugins/modules/host_state.py and the comparisons it runs
(plugins/module_utils/_host_state.py): every kind of difference, on real files."""

import base64
import hashlib
import os

import pytest
import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils import _host_state as compare
from ansible_collections.mailmesh.imap.plugins.modules import host_state as module


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "conf").mkdir(mode=0o750)
    os.chmod(tmp_path / "conf", 0o750)
    config = tmp_path / "conf" / "app.yaml"
    config.write_text("listen: 143\n")
    os.chmod(config, 0o640)
    os.symlink("app-1.0", tmp_path / "app")
    return tmp_path


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class _Host:
    """dpkg-query and systemctl show as a module would run them."""

    def __init__(self, dpkg="", units=""):
        self.outputs = {"dpkg-query": (1 if not dpkg else 0, dpkg, ""), "systemctl": (0, units, "")}

    def run_command(self, argv, handle_exceptions=True):
        return self.outputs[argv[0]]

    def fail_json(self, **kw):
        raise AssertionError(kw)


def account_differences(groups, users):
    return compare.differences(_Host(), groups=groups, users=users)


def file_differences(entry):
    return compare.differences(_Host(), files=[entry])


def spec(path, **kw):
    return dict({"state": "file", "sha256": None, "target": None, "owner": None, "group": None, "mode": None},
                path=str(path), **kw)


def test_a_host_as_expected_has_no_differences(tree):
    me = compare._name(compare.pwd.getpwuid, os.getuid())
    assert file_differences(spec(tree / "conf", state="directory", owner=me, mode="0750")) == []
    assert file_differences(spec(tree / "conf" / "app.yaml", sha256=sha256("listen: 143\n"),
                                 owner=me, mode="0640")) == []
    assert file_differences(spec(tree / "app", state="link", target="app-1.0")) == []


def test_each_difference_is_named(tree):
    config = tree / "conf" / "app.yaml"
    assert file_differences(spec(config, sha256=sha256("listen: 993\n"))) == ["%s: content differs" % config]
    assert file_differences(spec(config, mode="0600")) == ["%s: mode is 0640, not 0600" % config]
    assert file_differences(spec(config, owner="nobody-at-all"))[0].startswith("%s: owner is " % config)
    assert file_differences(spec(config, group="no-such-group"))[0].startswith("%s: group is " % config)
    assert file_differences(spec(tree / "gone")) == ["%s/gone: missing" % tree]
    assert file_differences(spec(tree / "conf")) == ["%s/conf: not a file" % tree]
    assert file_differences(spec(tree / "app", state="link", target="app-2.0")) == [
        "%s/app: points at app-1.0, not app-2.0" % tree]
    # A link is not followed: a link where a file belongs is a difference.
    assert file_differences(spec(tree / "app")) == ["%s/app: not a file" % tree]


def test_a_directory_holds_its_entries_and_nothing_else(tree):
    conf = tree / "conf"
    assert file_differences(spec(conf, state="directory", entries=["app.yaml"])) == []
    (conf / "old.yaml").write_text("stale\n")
    assert file_differences(spec(conf, state="directory", entries=["app.yaml", "tls.yaml"])) == [
        "%s: holds old.yaml, which it should not" % conf, "%s: lacks tls.yaml" % conf]
    # Omitted: the directory's content is not compared.
    assert file_differences(spec(conf, state="directory")) == []


def test_absent_means_nothing_there_not_even_a_dangling_link(tree):
    assert file_differences(spec(tree / "gone", state="absent")) == []
    assert file_differences(spec(tree / "conf", state="absent")) == [
        "%s/conf: present, and should not be" % tree]
    os.symlink("nowhere", tree / "dangling")
    assert file_differences(spec(tree / "dangling", state="absent")) == [
        "%s/dangling: present, and should not be" % tree]


def test_octal_modes_as_strings_or_as_yaml_numbers():
    assert compare._mode("0640") == 0o640
    assert compare._mode("640") == 0o640
    assert compare._mode(0o640) == 0o640


def test_accounts(monkeypatch):
    root = compare.pwd.getpwnam("root")
    group = compare._name(compare.grp.getgrgid, root.pw_gid)
    assert account_differences([group], [{"name": "root", "group": group, "shell": root.pw_shell,
                                         "home": root.pw_dir}]) == []
    assert account_differences(["no-such-group"], [{"name": "no-such-user"}]) == [
        "group no-such-group: missing", "user no-such-user: missing"]
    assert account_differences([], [{"name": "root", "shell": "/usr/sbin/nologin"}]) == [
        "user root: shell is %s, not /usr/sbin/nologin" % root.pw_shell]


def test_user_ids():
    root = compare.pwd.getpwnam("root")
    # uid 0 and gid 0 are values, not "omitted".
    assert account_differences([], [{"name": "root", "uid": root.pw_uid, "gid": root.pw_gid}]) == []
    assert account_differences([], [{"name": "root", "uid": root.pw_uid + 5000, "gid": None}]) == [
        "user root: uid is %s, not %s" % (root.pw_uid, root.pw_uid + 5000)]
    assert account_differences([], [{"name": "root", "gid": root.pw_gid + 5000}]) == [
        "user root: gid is %s, not %s" % (root.pw_gid, root.pw_gid + 5000)]


def test_installed_packages_as_dpkg_query_shows_them():
    output = "iproute2 ii \nca-certificates hi \nold rc \nlibc6:amd64 ii \nhalf iU \n"
    assert compare.installed_packages(output) == {"iproute2", "ca-certificates", "libc6"}


def test_units_from_systemctl_show():
    output = ("Id=envoy.service\nLoadState=loaded\nUnitFileState=enabled\nActiveState=active\n\n"
              "Id=q.service\nLoadState=not-found\nUnitFileState=\nActiveState=inactive\n")
    units = compare.parse_units(output)
    assert [u["Id"] for u in units] == ["envoy.service", "q.service"]
    assert units[1]["LoadState"] == "not-found"


def test_services_compare_enabled_and_active():
    class Fake:
        def __init__(self, out):
            self.out = out
            self.argv = None

        def run_command(self, argv, handle_exceptions=True):
            self.argv = argv
            return 0, self.out, ""

        def fail_json(self, **kw):
            raise AssertionError(kw)

    fake = Fake("Id=envoy.service\nLoadState=loaded\nUnitFileState=disabled\nActiveState=failed\n\n"
                "Id=q.service\nLoadState=not-found\nUnitFileState=\nActiveState=inactive\n")
    assert compare.differences(fake, services=["envoy", "q.service"]) == [
        "envoy.service: not enabled (disabled)", "envoy.service: not active (failed)",
        "q.service: not loaded (not-found)"]
    assert fake.argv[-2:] == ["envoy.service", "q.service"]


def test_the_module_reports_and_changes_nothing(tree, run_module):
    config = tree / "conf" / "app.yaml"
    before = config.stat()
    files = [{"path": str(config), "mode": "0600"}, {"path": str(tree / "gone")}]
    result = run_module(module, {"files": files})
    assert result["changed"] is False
    assert result["differences"] == ["%s: mode is 0640, not 0600" % config, "%s/gone: missing" % tree]
    assert config.stat() == before


def test_bad_input_names_the_option(tree, run_module):
    result = run_module(module, {"files": [{"path": str(tree), "mode": "rw-r"}]})
    assert result["failed"] and "files: mode of" in result["msg"]


def test_read_returns_each_file_in_base64_and_null_for_a_missing_one(tree, run_module):
    config = tree / "conf" / "app.yaml"
    result = run_module(module, {"read": [str(config), str(tree / "gone")]})
    assert result["changed"] is False and result["differences"] == []
    assert base64.b64decode(result["contents"][str(config)]) == b"listen: 143\n"
    assert result["contents"][str(tree / "gone")] is None
    assert run_module(module, {})["contents"] == {}


def test_read_refuses_a_directory_and_a_large_file(tree, run_module, monkeypatch):
    result = run_module(module, {"read": [str(tree / "conf")]})
    assert result["failed"] and result["msg"] == "read: %s/conf is not a regular file" % tree
    monkeypatch.setattr(compare, "_READ_LIMIT", 4)
    result = run_module(module, {"read": [str(tree / "conf" / "app.yaml")]})
    assert result["failed"] and "is larger than 4 bytes" in result["msg"]


def test_a_link_without_a_target_is_compared_by_kind(tree):
    assert file_differences(spec(tree / "app", state="link")) == []
    assert file_differences(spec(tree / "conf" / "app.yaml", state="link")) == [
        "%s/conf/app.yaml: not a link" % tree]


def test_documented_options_and_return_values():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == {"files", "packages", "groups", "users", "services", "read"}
    assert set(doc["options"]["files"]["suboptions"]) == {"path", "state", "sha256", "target", "entries", "owner",
                                                          "group", "mode"}
    assert set(doc["options"]["users"]["suboptions"]) == {"name", "group", "shell", "home", "uid", "gid"}
    assert yaml.safe_load(module.EXAMPLES)
    assert set(yaml.safe_load(module.RETURN)) == {"differences", "contents"}


def test_observe_then_compare_finds_what_the_comparison_on_the_host_finds(tree):
    """The two halves: what observe() returns goes through JSON (a module's result) and
    compare() gives the same differences, in the same order, as differences()."""
    import json
    me = compare._name(compare.pwd.getpwuid, os.getuid())
    (tree / "conf" / "old.yaml").write_text("stale\n")
    files = [spec(tree / "conf", state="directory", owner=me, mode="0755", entries=["app.yaml"]),
             spec(tree / "conf" / "app.yaml", sha256=sha256("listen: 993\n"), group="no-such-group", mode="0640"),
             spec(tree / "app", state="link", target="app-2.0"),
             spec(tree / "gone"), spec(tree / "gone", state="absent"), spec(tree / "conf", state="absent")]
    host = _Host("iproute2 ii \nold rc \n",
                 "Id=envoy.service\nLoadState=loaded\nUnitFileState=disabled\nActiveState=active\n")
    users = [{"name": "root", "shell": "/usr/sbin/nologin"}, {"name": "no-such-user"}]
    expected = dict(files=files, packages=["iproute2", "old"], groups=["no-such-group"], users=users,
                    services=["envoy"])
    on_host = compare.differences(host, **expected)
    assert len(on_host) == 12, on_host
    seen = json.loads(json.dumps(compare.observe(
        host, files=[{"path": f["path"], "sha256": bool(f["sha256"]), "entries": "entries" in f} for f in files],
        packages=["iproute2", "old"], groups=["no-such-group"], users=["root", "no-such-user"], services=["envoy"])))
    assert compare.compare(seen, **expected) == on_host


def test_what_observe_did_not_look_at_is_a_difference(tree):
    seen = compare.observe(_Host(), files=[{"path": str(tree / "conf" / "app.yaml")}])
    assert compare.compare(seen, files=[spec(tree / "conf" / "app.yaml", sha256=sha256("listen: 143\n")),
                                        spec(tree / "conf", state="directory", entries=["app.yaml"])],
                           users=[{"name": "root"}], services=["envoy"]) == [
        "%s/conf/app.yaml: content differs" % tree, "%s/conf: not looked at" % tree,
        "user root: not looked at", "envoy.service: not looked at"]


def test_observe_follows_a_link_to_its_target_beside_it(tree):
    (tree / "app-1.0").write_text("binary\n")
    os.chmod(tree / "app-1.0", 0o755)
    seen = compare.observe(_Host(), files=[{"path": str(tree / "app"), "follow": True}])
    assert seen["files"][str(tree / "app")]["target"] == "app-1.0"
    assert compare.compare(seen, files=[spec(tree / "app", state="link", target="app-1.0"),
                                        spec(tree / "app-1.0", mode="0755")]) == []
    # The link points elsewhere: the file the role expects was not looked at.
    assert compare.compare(seen, files=[spec(tree / "app", state="link", target="app-2.0"),
                                        spec(tree / "app-2.0", mode="0755")]) == [
        "%s/app: points at app-1.0, not app-2.0" % tree, "%s/app-2.0: not looked at" % tree]


class _NoSystemd(_Host):
    """A host whose systemctl fails (no systemd as init) and without dpkg-query."""

    def run_command(self, argv, handle_exceptions=True):
        assert handle_exceptions is False
        if argv[0] == "dpkg-query":
            raise OSError(2, "No such file or directory")
        return 1, "", "System has not been booted with systemd as init system (PID 1). Can't operate."


def test_observe_reports_a_command_that_failed_instead_of_failing():
    seen = compare.observe(_NoSystemd(), packages=["iproute2"], services=["envoy"])
    assert seen["packages"] is None and seen["services"] is None
    assert seen["problems"] == [
        "dpkg-query: [Errno 2] No such file or directory",
        "systemctl show failed (rc 1): System has not been booted with systemd as init system (PID 1). Can't operate."]
    assert compare.compare(seen, packages=["iproute2"], services=["envoy"]) == [
        "package iproute2: not looked at", "envoy.service: not looked at",
        "not looked at: dpkg-query: [Errno 2] No such file or directory",
        "not looked at: systemctl show failed (rc 1): System has not been booted with systemd as init system (PID 1). "
        "Can't operate."]


def test_a_command_that_fails_on_the_host_fails_the_comparison_there():
    """differences() is compare(observe()) with strict: host_state and vault_pki_cert
    fail with observe()'s message instead of reporting "not looked at"."""
    class Failed(Exception):
        pass

    class Module(_NoSystemd):
        def fail_json(self, msg, **_kw):
            raise Failed(msg)

    with pytest.raises(Failed, match=r"^dpkg-query: \[Errno 2\] No such file or directory$"):
        compare.differences(Module(), packages=["iproute2"], services=["envoy"])
    with pytest.raises(Failed, match=r"^systemctl show failed \(rc 1\): System has not been booted"):
        compare.differences(Module(), services=["envoy"])
