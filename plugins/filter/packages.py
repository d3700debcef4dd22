# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters about Debian packages (documented in the ``<filter>.yml`` sidecar files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError


def _installed(dpkg_query_output):
    """Names that ``dpkg-query --showformat='${Package} ${db:Status-Abbrev}\\n'`` shows
    installed: the second letter of the status is ``i`` (``ii``, or ``hi`` when held).
    plugins/module_utils/_host_state.py applies the same rule (installed_packages)."""
    installed = set()
    for line in str(dpkg_query_output or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and len(fields[1]) >= 2 and fields[1][1] == "i":
            installed.add(fields[0].split(":", 1)[0])
    return installed


def dpkg_missing(packages, dpkg_query_output):
    if isinstance(packages, (str, bytes)) or not hasattr(packages, "__iter__"):
        raise AnsibleFilterError("dpkg_missing: expected a list of package names, got %r" % (packages,))
    installed = _installed(dpkg_query_output)
    missing = []
    for package in packages:
        name = str(package)
        # A version pin (name=1.2*) or an architecture (name:arm64) names the same package.
        if name.split("=", 1)[0].split(":", 1)[0] not in installed and name not in missing:
            missing.append(name)
    return missing


class FilterModule(object):
    """mailmesh.imap package filters."""

    def filters(self):
        return {"dpkg_missing": dpkg_missing}
