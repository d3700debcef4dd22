"""Helpers for the packaging tests (the tarball, its docs, the Execution Environment).

Private to tests/unit/packaging, which needs the checkout and does not ship. pytest runs
with ``--import-mode=importlib``, so test modules import this file through the collection
finder that tests/conftest.py installs:

    from ansible_collections.mailmesh.imap.tests.unit.packaging._support import REPO
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
COLLECTION = "mailmesh.imap"
# Collections every ansible-core has: nothing to declare for them.
CORE_COLLECTIONS = {"ansible.builtin", "ansible.legacy"}


def tool(name: str) -> str:
    """A command of the venv that runs the tests (ansible-galaxy, ansible-builder...)."""
    beside = pathlib.Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError("%s is not installed next to %s nor on PATH; run `make venv`" % (name, sys.executable))
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ANSIBLE_* setting the Makefile exports, plus `extra`:
    a run as a user of the installed collection would make it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PY_COLORS"))}
    # The venv's commands first: tools such as antsibull-docs call `ansible` by name.
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(extra)
    return env


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command, capture its output as text; a failure is for the caller to judge."""
    kwargs.setdefault("timeout", 300)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def galaxy_version() -> str:
    return yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]


def galaxy_dependencies() -> set[str]:
    return set(yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8")).get("dependencies") or {})


# --- Markdown links ------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _without_code(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def markdown_links(text: str) -> list[str]:
    """The link targets of a Markdown text, outside code blocks and code spans."""
    prose = _without_code(text)
    return _INLINE_LINK.findall(prose) + _REFERENCE_LINK.findall(prose)


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub-style renderers give the headings of a Markdown text."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else "%s-%d" % (slug, count))
    return anchors


def broken_links(documents: Mapping[str, str], exists) -> list[str]:
    """Relative links of `documents` ({path: text}, POSIX paths relative to a root) whose
    target does not exist (``exists(path)``, path relative to the same root, '' for the
    root itself) or whose #anchor is not a heading of the target Markdown file."""
    problems = []
    for path, text in sorted(documents.items()):
        base = posix_dirname(path)
        for target in markdown_links(text):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:...
                continue
            file_part, _, anchor = target.partition("#")
            resolved = posix_normpath(base, file_part) if file_part else path
            if resolved is None or not exists(resolved):
                problems.append("%s: link to %s: no such file in it" % (path, target))
                continue
            if anchor and resolved.endswith(".md"):
                if resolved not in documents:
                    problems.append("%s: link to %s: cannot check the anchor" % (path, target))
                elif anchor not in markdown_anchors(documents[resolved]):
                    problems.append("%s: link to %s: no heading with that anchor" % (path, target))
    return problems


def posix_dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def posix_normpath(base: str, relative: str) -> str | None:
    """base/relative with '.' and '..' resolved; None when it leaves the root."""
    parts: list[str] = [p for p in base.split("/") if p]
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


# --- Ansible content -----------------------------------------------------------------

FQCN = re.compile(r"^([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_.]*)$")
# Where Jinja names a plugin: a filter, a test, a lookup.
_JINJA_FQCN = re.compile(
    r"(?:\|\s*|\bis\s+(?:not\s+)?|\b(?:lookup|query|q)\(\s*['\"])"
    r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)"
)
_TASK_LISTS = ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers")


def walk_tasks(items: Any) -> Iterator[dict]:
    """Every task of a list of plays or tasks, blocks opened."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        yield item
        for key in _TASK_LISTS:
            yield from walk_tasks(item.get(key))


def _strings(node: Any) -> Iterator[str]:
    """Every string value of a YAML document."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def fqcn_references(document: Any, text: str | None = None) -> set[str]:
    """FQCNs a YAML document (or a template's text) names: the keys of tasks (modules,
    action plugins) and of module_defaults (groups too), plugins named in Jinja
    (filters, tests, lookups), and roles (plays' roles, include_role, import_role)."""
    found: set[str] = set(_JINJA_FQCN.findall(text or ""))
    for string in _strings(document):
        found.update(_JINJA_FQCN.findall(string))
    for task in walk_tasks(document if isinstance(document, list) else []):
        keys = list(task)
        defaults = task.get("module_defaults")
        if isinstance(defaults, dict):
            keys += [key[len("group/"):] if key.startswith("group/") else key for key in defaults]
        found.update(key for key in keys if isinstance(key, str) and FQCN.match(key))
        for role in task.get("roles") or []:
            name = role.get("role", role.get("name")) if isinstance(role, dict) else role
            if isinstance(name, str) and FQCN.match(name):
                found.add(name)
        for key, value in task.items():
            if key.endswith(("include_role", "import_role")) and isinstance(value, dict):
                if isinstance(value.get("name"), str) and FQCN.match(value["name"]):
                    found.add(value["name"])
    return found


# --- Python imports --------------------------------------------------------------------

_OWN_PREFIX = "ansible_collections.mailmesh.imap."


def _imports(path: pathlib.Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            # `from ansible_collections.mailmesh.imap.plugins.module_utils import _pki`
            for alias in node.names:
                yield "%s.%s" % (node.module, alias.name)


def third_party_imports(root: pathlib.Path, files: Iterable[pathlib.Path]) -> dict[str, set[str]]:
    """{top-level import name: {files}} of what `files` import, following this
    collection's own modules (module_utils, plugin_utils) transitively. Left out: the
    standard library, ansible-core (``ansible``), ``__future__``. Another collection's
    import appears under its ``ansible_collections.<ns>.<name>`` prefix."""
    found: dict[str, set[str]] = {}
    todo = list(files)
    done: set[pathlib.Path] = set()
    while todo:
        path = todo.pop()
        if path in done:
            continue
        done.add(path)
        for name in _imports(path):
            if name.startswith(_OWN_PREFIX):
                own = root.joinpath(*name[len(_OWN_PREFIX):].split("."))
                if own.with_suffix(".py").is_file():
                    todo.append(own.with_suffix(".py"))
                continue
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("__future__", "ansible"):
                continue
            if top == "ansible_collections":
                top = ".".join(name.split(".")[:3])
                if top + "." == _OWN_PREFIX:
                    continue
            found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found
