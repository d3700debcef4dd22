# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for the on-host certificate renewal agent (documented in the ``<filter>.yml``
sidecar files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import hashlib
import os

from ansible.errors import AnsibleFilterError

# The agent program (in the vault_cert role) and the package its imports live in.
AGENT_PROGRAM = "roles/vault_cert/files/mailmesh-cert-renew.py"
PACKAGE = "ansible_collections.mailmesh.imap.plugins.module_utils"
_PACKAGE_PARTS = PACKAGE.split(".")


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise AnsibleFilterError("cert_agent_files: cannot read %s: %s" % (path, exc.strerror))


def _import_statements(source):
    """The import statements of a Python source, each dedented and on one line (a
    parenthesised or continued one joined): what ast then reads, instead of the whole
    file. The filter runs for every host and certificate on every run, and parsing the
    agent's whole code each time cost more than everything else the filter does."""
    lines = source.decode("utf-8", "replace").splitlines()
    statements = []
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        if not line.startswith(("import ", "from ")):
            continue
        # An import holds no string, so a "#" starts a comment.
        parts = [line.split("#", 1)[0].strip()]
        depth = parts[0].count("(") - parts[0].count(")")
        while (depth > 0 or parts[-1].endswith("\\")) and number < len(lines):
            parts[-1] = parts[-1].rstrip("\\")
            parts.append(lines[number].split("#", 1)[0].strip())
            depth += parts[-1].count("(") - parts[-1].count(")")
            number += 1
        statements.append(" ".join(parts))
    return statements


def _imported_module_utils(source, path):
    """The names of the collection's module_utils files that this source imports."""
    nodes = []
    for statement in _import_statements(source):
        try:
            nodes.extend(ast.parse(statement, filename=path).body)
        except SyntaxError:
            # A line of a docstring that starts with "from " or "import ": no import.
            continue
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                names.update(alias.name for alias in node.names)
            elif node.module.startswith(PACKAGE + "."):
                names.add(node.module[len(PACKAGE) + 1:].split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    names.add(alias.name[len(PACKAGE) + 1:].split(".")[0])
    return names


def cert_agent_files(collection_root, install_dir, with_text=False):
    """What the agent needs on a host, under install_dir.

    The program, every module_utils file it imports (followed through their own imports),
    and an empty ``__init__.py`` in each package directory (so that a copy of Ansible's
    own ``ansible_collections`` elsewhere on the host's path cannot shadow them). Each
    entry: path, sha256, owner, group, mode; directories with state: directory. With
    with_text, each file carries its text in place of its sha256 (what
    ``mailmesh.imap.host_files`` writes; ``host_state_files`` turns it back).
    """
    root = str(collection_root)
    install_dir = str(install_dir).rstrip("/")
    if not install_dir.startswith("/"):
        raise AnsibleFilterError("cert_agent_files: install_dir must be absolute, got %r" % install_dir)
    program = os.path.join(root, AGENT_PROGRAM)
    module_utils = os.path.join(root, "plugins", "module_utils")
    sources = {}
    pending = sorted(_imported_module_utils(_read(program), program))
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        path = os.path.join(module_utils, name + ".py")
        sources[name] = path
        pending.extend(sorted(_imported_module_utils(_read(path), path) - set(sources)))

    package_dir = install_dir
    dirs = [install_dir]
    for part in _PACKAGE_PARTS:
        package_dir = "%s/%s" % (package_dir, part)
        dirs.append(package_dir)
    system = dict(owner="root", group="root")
    entries = [dict(system, path=d, state="directory", mode="0755") for d in dirs]
    files = [("%s/%s" % (install_dir, os.path.basename(AGENT_PROGRAM)), program, None)]
    files += [("%s/__init__.py" % d, None, b"") for d in dirs[1:]]
    files += [("%s/%s.py" % (package_dir, name), sources[name], None) for name in sorted(sources)]
    for dest, src, content in files:
        data = content if content is not None else _read(src)
        entry = dict(system, path=dest, mode="0644")
        if with_text:
            try:
                entry["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise AnsibleFilterError("cert_agent_files: %s is not UTF-8 text" % src)
        else:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        entries.append(entry)
    return entries


class FilterModule(object):
    """mailmesh.imap certificate agent filters."""

    def filters(self):
        return {"cert_agent_files": cert_agent_files}
