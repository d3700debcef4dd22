# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters that turn what a role keeps on a host into what ``mailmesh.imap.host_state``
compares (documented in the ``<filter>.yml`` sidecar files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import compare, looks_at, mode_problem
from ansible_collections.mailmesh.imap.plugins.plugin_utils._host_look import LookError, look_script, parse_look
from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import text_sha256


def _kept(files, name):
    """The entries whose ``when`` is true (or that have none), without reading their other keys."""
    for number, entry in enumerate(files):
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise AnsibleFilterError("%s: entry %d has no path: %r" % (name, number, entry))
        if "when" in entry:
            try:
                if not boolean(entry["when"], strict=True):
                    continue
            except TypeError as exc:
                raise AnsibleFilterError("%s: %s: when: %s" % (name, entry["path"], exc))
        yield entry


def host_state_files(files, written=False):
    """The entries of ``files`` whose ``when`` is true (or that have none), without
    ``when``, and with the sha256 of ``text`` in place of ``text`` and without
    ``validate`` (what host_state compares); with ``written``, text and validate stay
    (what host_files writes).

    ``when`` is read first, so an entry that is left out is not looked at further (its
    text, a template or a file lookup, is not rendered).
    """
    result = []
    for entry in _kept(files, "host_state_files"):
        if "text" in entry and "sha256" in entry:
            raise AnsibleFilterError("host_state_files: %s: text and sha256 both given" % entry["path"])
        kept = {}
        for key, value in entry.items():
            if key == "text" and not written:
                kept["sha256"] = text_sha256(value)
            elif key == "validate" and not written:
                continue
            elif key != "when":
                # entries (a list of names) as a plain list
                kept[key] = list(value) if isinstance(value, (list, tuple)) else value
        result.append(kept)
    return result


def host_state_observe(files):
    """What envoy_platform's observe.files looks at for the same list: each kept entry's
    path, with sha256 where it has a text (or a sha256) and entries where it lists them.
    Only the keys are looked at, not the texts (not rendered)."""
    return [{"path": entry["path"], "sha256": "text" in entry or "sha256" in entry, "entries": "entries" in entry}
            for entry in _kept(files, "host_state_observe")]


def host_state_differences(observed, files=(), packages=(), groups=(), users=(), services=()):
    """The differences mailmesh.imap.host_state would report, from what envoy_platform
    observed (its observed result) and the expected values in host_state's options."""
    if not isinstance(observed, Mapping) or not {"files", "packages", "groups", "users", "services"} <= set(observed):
        raise AnsibleFilterError("host_state_differences: the input is not an observed result of envoy_platform: %r"
                                 % (observed,))
    specs = []
    for number, entry in enumerate(files):
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise AnsibleFilterError("host_state_differences: files entry %d has no path: %r" % (number, entry))
        specs.append(dict(entry, mode=entry.get("mode")))
    problem = mode_problem(specs)
    if problem:
        raise AnsibleFilterError("host_state_differences: %s" % problem)
    for number, user in enumerate(users):
        if not isinstance(user, Mapping) or "name" not in user:
            raise AnsibleFilterError("host_state_differences: users entry %d has no name: %r" % (number, user))
    return compare(observed, files=specs, packages=list(packages), groups=list(groups), users=list(users),
                   services=list(services))


def host_state_script(files, read=()):
    """The POSIX shell script that looks at ``files`` (host_state's files entries) and
    reads ``read`` as host_state does, for ansible.builtin.raw; host_state_look reads
    its output."""
    for number, entry in enumerate(files):
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise AnsibleFilterError("host_state_script: files entry %d has no path: %r" % (number, entry))
    try:
        return look_script(looks_at(files), [str(path) for path in read])
    except ValueError as exc:
        raise AnsibleFilterError("host_state_script: %s" % exc)


def host_state_look(output, files=()):
    """host_state's answer (``differences`` of ``files``, ``contents`` of the paths read)
    from the output of host_state_script's script."""
    try:
        seen = parse_look(output)
    except LookError as exc:
        raise AnsibleFilterError("host_state_look: %s" % exc)
    observed = {"files": seen["files"], "packages": [], "groups": {}, "users": {}, "services": {}}
    return {"differences": host_state_differences(observed, files=files), "contents": seen["contents"]}


class FilterModule(object):
    """mailmesh.imap host state filters."""

    def filters(self):
        return {"host_state_files": host_state_files, "host_state_observe": host_state_observe,
                "host_state_differences": host_state_differences, "host_state_script": host_state_script,
                "host_state_look": host_state_look}
