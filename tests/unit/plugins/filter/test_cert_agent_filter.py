"""plugins/filter/cert_agent.py: the renewal agent's files are the program and exactly the
module_utils its imports reach, none of which imports Ansible (hosts do not have it)."""

import ast
import hashlib
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import cert_agent
from ansible_collections.mailmesh.imap.plugins.filter.cert_agent import cert_agent_files
from ansible_collections.mailmesh.imap.plugins.filter.state_files import host_state_files

ROOT = pathlib.Path(__file__).resolve().parents[4]
INSTALL = "/usr/local/lib/mailmesh/cert-renew"
PACKAGE = INSTALL + "/ansible_collections/mailmesh/imap/plugins/module_utils"


def test_the_program_and_the_module_utils_it_reaches():
    entries = cert_agent_files(str(ROOT), INSTALL)
    files = {e["path"]: e for e in entries if e.get("state") != "directory"}
    dirs = [e["path"] for e in entries if e.get("state") == "directory"]
    assert dirs[0] == INSTALL and dirs[-1] == PACKAGE and len(dirs) == 6
    module_utils = sorted(p.rsplit("/", 1)[1] for p in files
                          if p.startswith(PACKAGE + "/_") and not p.endswith("/__init__.py"))
    assert module_utils == ["_cert_renewal.py", "_crl.py", "_names.py", "_pki.py", "_vault_auth.py", "_vault_client.py"]
    program = files[INSTALL + "/mailmesh-cert-renew.py"]
    source = ROOT / "roles/vault_cert/files/mailmesh-cert-renew.py"
    assert program["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    inits = [p for p in files if p.endswith("/__init__.py")]
    assert len(inits) == 5 and all(files[p]["sha256"] == hashlib.sha256(b"").hexdigest() for p in inits)
    assert all(e["owner"] == "root" and e["group"] == "root" for e in entries)
    assert {files[p]["mode"] for p in files} == {"0644"}


def test_with_text_gives_each_file_its_text_for_host_files():
    hashed = cert_agent_files(str(ROOT), INSTALL)
    texts = cert_agent_files(str(ROOT), INSTALL, with_text=True)
    # The same entries, in the same order; each file's text in place of its sha256.
    assert [e["path"] for e in texts] == [e["path"] for e in hashed]
    assert [e.get("state") for e in texts] == [e.get("state") for e in hashed]
    for with_text, with_sha in zip(texts, hashed):
        if with_sha.get("state") == "directory":
            assert with_text == with_sha
            continue
        assert "sha256" not in with_text
        assert hashlib.sha256(with_text["text"].encode("utf-8")).hexdigest() == with_sha["sha256"]
        assert {k: v for k, v in with_text.items() if k != "text"} == {
            k: v for k, v in with_sha.items() if k != "sha256"}
    # What host_state compares, made from the list host_files writes, is the same list.
    assert host_state_files(texts) == hashed


def test_nothing_the_agent_runs_imports_ansible():
    for entry in cert_agent_files(str(ROOT), INSTALL, with_text=True):
        if entry.get("state") == "directory" or not entry["text"]:
            continue
        tree = ast.parse(entry["text"])
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            assert not any(n == "ansible" or n.startswith("ansible.") for n in names), (entry["path"], names)


def test_a_relative_install_dir_or_a_missing_file_is_refused(tmp_path):
    with pytest.raises(AnsibleFilterError, match="install_dir must be absolute"):
        cert_agent_files(str(ROOT), "relative/dir")
    with pytest.raises(AnsibleFilterError, match="cannot read .*mailmesh-cert-renew.py"):
        cert_agent_files(str(tmp_path), INSTALL)


def _imports_by_full_parse(source):
    """What a walk of the whole file's syntax tree finds (the filter reads only the
    import statements)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == cert_agent.PACKAGE:
                names.update(alias.name for alias in node.names)
            elif node.module.startswith(cert_agent.PACKAGE + "."):
                names.add(node.module[len(cert_agent.PACKAGE) + 1:].split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name[len(cert_agent.PACKAGE) + 1:].split(".")[0] for alias in node.names
                         if alias.name.startswith(cert_agent.PACKAGE + "."))
    return names


def test_the_import_scan_finds_what_a_full_parse_finds_in_every_file():
    paths = [ROOT / cert_agent.AGENT_PROGRAM] + sorted((ROOT / "plugins" / "module_utils").glob("*.py"))
    assert len(paths) > 10
    for path in paths:
        source = path.read_bytes()
        assert cert_agent._imported_module_utils(source, str(path)) == _imports_by_full_parse(source), path


def test_the_import_scan_reads_every_form_of_import():
    package = cert_agent.PACKAGE
    source = ('''"""A docstring.
from the host (a line that starts like an import)
import this line either
"""
import os
from %(p)s import _a as a  # noqa: E402
from %(p)s._b import (  # noqa: E402 (a comment)
    one,
    two,  # the second
)
try:
    from %(p)s._c import three
except ImportError:
    pass
from %(p)s._d import \\
    four
import %(p)s._e.inner
def f():
    import %(p)s._f
''' % {"p": package}).encode()
    assert cert_agent._imported_module_utils(source, "x.py") == {"_a", "_b", "_c", "_d", "_e", "_f"}
    assert _imports_by_full_parse(source) == {"_a", "_b", "_c", "_d", "_e", "_f"}
