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

from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import text_sha256


def host_state_files(files, written=False):
    """The entries of ``files`` whose ``when`` is true (or that have none), without
    ``when``, and with the sha256 of ``text`` in place of ``text`` and without
    ``validate`` (what host_state compares); with ``written``, text and validate stay
    (what host_files writes).

    ``when`` is read first, so an entry that is left out is not looked at further (its
    text, a template or a file lookup, is not rendered).
    """
    result = []
    for number, entry in enumerate(files):
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise AnsibleFilterError("host_state_files: entry %d has no path: %r" % (number, entry))
        if "when" in entry:
            try:
                if not boolean(entry["when"], strict=True):
                    continue
            except TypeError as exc:
                raise AnsibleFilterError("host_state_files: %s: when: %s" % (entry["path"], exc))
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


class FilterModule(object):
    """mailmesh.imap host state filters."""

    def filters(self):
        return {"host_state_files": host_state_files}
