"""Unit tests for the host_state_files filter (plugins/filter/state_files.py): a role's
list of what it keeps on a host, turned into what mailmesh.imap.host_state compares."""

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import state_files as plugin


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_text_becomes_sha256_and_when_decides():
    files = [
        {"path": "/usr/local/bin/envoy-1", "owner": "root", "group": "root", "mode": "0755"},
        {"path": "/usr/local/bin/envoy", "state": "link", "target": "envoy-1"},
        {"path": "/etc/envoy", "state": "directory", "owner": "root", "group": "envoy", "mode": "0750",
         "entries": ("a", "b")},
        {"path": "/etc/envoy/envoy.yaml", "text": "admin: {}\n", "owner": "root", "group": "envoy", "mode": "0640"},
        {"path": "/usr/local/lib/helper.py", "text": "print('ü')\n", "mode": "0644", "when": True},
        {"path": "/usr/local/lib/other.py", "text": "x", "mode": "0644", "when": False},
        {"path": "/usr/local/lib/third.py", "text": "y", "mode": "0644", "when": "yes"},
    ]
    assert plugin.host_state_files(files) == [
        {"path": "/usr/local/bin/envoy-1", "owner": "root", "group": "root", "mode": "0755"},
        {"path": "/usr/local/bin/envoy", "state": "link", "target": "envoy-1"},
        {"path": "/etc/envoy", "state": "directory", "owner": "root", "group": "envoy", "mode": "0750",
         "entries": ["a", "b"]},
        {"path": "/etc/envoy/envoy.yaml", "sha256": _sha256("admin: {}\n"), "owner": "root", "group": "envoy",
         "mode": "0640"},
        {"path": "/usr/local/lib/helper.py", "sha256": _sha256("print('ü')\n"), "mode": "0644"},
        {"path": "/usr/local/lib/third.py", "sha256": _sha256("y"), "mode": "0644"},
    ]


def test_validate_is_dropped_for_the_comparison_and_written_keeps_text_and_validate():
    files = [
        {"path": "/etc/envoy/envoy.yaml", "text": "admin: {}\n", "mode": "0640",
         "validate": "envoy --mode validate --config-path %s"},
        {"path": "/usr/local/lib/other.py", "text": "x", "mode": "0644", "when": False},
    ]
    assert plugin.host_state_files(files) == [
        {"path": "/etc/envoy/envoy.yaml", "sha256": _sha256("admin: {}\n"), "mode": "0640"}]
    assert plugin.host_state_files(files, written=True) == [
        {"path": "/etc/envoy/envoy.yaml", "text": "admin: {}\n", "mode": "0640",
         "validate": "envoy --mode validate --config-path %s"}]


class _Refused(dict):
    """An entry whose keys other than path and when must not be read."""

    def __getitem__(self, key):
        if key not in ("path", "when"):
            raise AssertionError("read %s of an entry that is left out" % key)
        return dict.__getitem__(self, key)

    def items(self):
        raise AssertionError("read an entry that is left out")


def test_an_entry_left_out_is_not_read():
    assert plugin.host_state_files([_Refused(path="/x", when=False, text="never rendered")]) == []


@pytest.mark.parametrize("entry, message", [
    ({"mode": "0644"}, "entry 0 has no path"),
    ({"path": "/x", "text": "a", "sha256": "b"}, "/x: text and sha256 both given"),
    ({"path": "/x", "when": "perhaps"}, "/x: when: "),
])
def test_errors(entry, message):
    with pytest.raises(AnsibleFilterError, match="^host_state_files: " + message):
        plugin.host_state_files([entry])


def test_the_role_way_through_the_templar():
    """As roles/envoy/vars/main.yml calls it: a left-out entry's text is not rendered
    (here it names an undefined variable)."""
    templar_mod = pytest.importorskip("ansible.template")
    trust = pytest.importorskip("ansible._internal._datatag._tags")
    tag = trust.TrustedAsTemplate().tag
    templar = templar_mod.Templar(loader=None, variables={
        "flag": False, "body": "unit\n",
        "kept": [
            {"path": tag("/etc/{{ 'unit' }}"), "text": tag("{{ body }}"), "mode": "0644"},
            {"path": "/etc/off", "text": tag("{{ not_defined_anywhere }}"), "when": tag("{{ flag | bool }}")},
        ],
    })
    assert templar.template(tag("{{ kept | mailmesh.imap.host_state_files }}")) == [
        {"path": "/etc/unit", "sha256": _sha256("unit\n"), "mode": "0644"}]


def test_observe_asks_for_what_the_comparison_needs_and_renders_no_text():
    files = [
        {"path": "/etc/envoy", "state": "directory", "entries": ["a"]},
        # Its text is not read (a template that cannot be rendered yet).
        _Refused({"path": "/etc/envoy/envoy.yaml", "text": "{{ not_yet }}", "mode": "0640"}),
        {"path": "/usr/local/lib/helper.py", "text": "x", "when": False},
        {"path": "/usr/local/bin/envoy-1", "mode": "0755"},
    ]
    assert plugin.host_state_observe(files) == [
        {"path": "/etc/envoy", "sha256": False, "entries": True},
        {"path": "/etc/envoy/envoy.yaml", "sha256": True, "entries": False},
        {"path": "/usr/local/bin/envoy-1", "sha256": False, "entries": False},
    ]
    with pytest.raises(AnsibleFilterError, match="host_state_observe: entry 0 has no path"):
        plugin.host_state_observe([{"text": "x"}])


def test_differences_from_what_was_observed():
    observed = {
        "files": {"/etc/envoy/envoy.yaml": {"kind": "file", "owner": "root", "group": "envoy", "mode": "0644",
                                            "sha256": _sha256("admin: {}\n")}},
        "packages": ["iproute2"], "groups": ["envoy"],
        "users": {"envoy": {"group": "envoy", "shell": "/bin/sh", "home": "/nonexistent", "uid": 998, "gid": 998}},
        "services": {"envoy.service": {"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active"}},
    }
    files = plugin.host_state_files([{"path": "/etc/envoy/envoy.yaml", "text": "admin: {}\n", "owner": "root",
                                      "group": "envoy", "mode": "0640"}])
    assert plugin.host_state_differences(
        observed, files=files, packages=["iproute2", "ca-certificates"], groups=["envoy"],
        users=[{"name": "envoy", "group": "envoy", "shell": "/usr/sbin/nologin"}], services=["envoy"]) == [
        "/etc/envoy/envoy.yaml: mode is 0644, not 0640", "package ca-certificates: not installed",
        "user envoy: shell is /bin/sh, not /usr/sbin/nologin"]
    assert plugin.host_state_differences(observed, files=[{"path": "/etc/envoy", "state": "directory"}],
                                         services=["envoy-quickack"]) == [
        "/etc/envoy: not looked at", "envoy-quickack.service: not looked at"]


@pytest.mark.parametrize("observed,options,message", [
    ({"files": {}}, {}, "not an observed result of envoy_platform"),
    (None, {}, "not an observed result of envoy_platform"),
    ({"files": {}, "packages": [], "groups": [], "users": {}, "services": {}}, {"files": [{"path": "/a", "mode": "rw"}]},
     "mode of /a must be octal"),
    ({"files": {}, "packages": [], "groups": [], "users": {}, "services": {}}, {"users": [{"shell": "/bin/sh"}]},
     "users entry 0 has no name"),
])
def test_differences_refuse_what_they_cannot_compare(observed, options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plugin.host_state_differences(observed, **options)


# host_state_script and host_state_look: host_state's answer from a shell script's look


def test_the_scripts_look_answers_as_host_state(tmp_path):
    import base64
    import subprocess

    (tmp_path / "vault").mkdir(mode=0o700)
    (tmp_path / "vault" / "ca.pem").write_text("CA\n")
    (tmp_path / "vault" / "ca.pem").chmod(0o644)
    kept = [
        {"path": str(tmp_path / "vault"), "state": "directory", "owner": "root", "group": "root", "mode": "0755"},
        {"path": str(tmp_path / "vault" / "ca.pem"), "text": "CA\n", "owner": "root", "group": "root", "mode": "0644"},
        {"path": str(tmp_path / "vault" / "approle.json"), "owner": "root", "group": "root", "mode": "0600"},
    ]
    files = plugin.host_state_files(kept)
    approle = str(tmp_path / "vault" / "approle.json")

    def look():
        script = plugin.host_state_script(files, read=[approle])
        return plugin.host_state_look(subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                                                     check=True).stdout, files=files)

    first = look()
    assert first == {"differences": ["%s: mode is 0700, not 0755" % (tmp_path / "vault"), "%s: missing" % approle],
                     "contents": {approle: None}}
    (tmp_path / "vault").chmod(0o755)
    (tmp_path / "vault" / "approle.json").write_text('{"secret_id": "s"}')
    (tmp_path / "vault" / "approle.json").chmod(0o600)
    (tmp_path / "vault" / "ca.pem").write_text("another CA\n")
    second = look()
    assert second["differences"] == ["%s: content differs" % (tmp_path / "vault" / "ca.pem")]
    assert base64.b64decode(second["contents"][approle]) == b'{"secret_id": "s"}'


def test_the_script_and_its_reading_name_what_is_wrong():
    with pytest.raises(AnsibleFilterError, match="host_state_script: files entry 0 has no path"):
        plugin.host_state_script([{"mode": "0644"}])
    with pytest.raises(AnsibleFilterError, match="host_state_script: /srv: a directory's entries are not looked at"):
        plugin.host_state_script([{"path": "/srv", "state": "directory", "entries": []}])
    with pytest.raises(AnsibleFilterError, match="host_state_look: the look's output is not the script's"):
        plugin.host_state_look("Last login: yesterday\n")
    filters = plugin.FilterModule().filters()
    assert filters["host_state_script"] is plugin.host_state_script
    assert filters["host_state_look"] is plugin.host_state_look
