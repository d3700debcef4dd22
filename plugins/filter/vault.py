# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters that render Vault policies (documented in the ``<filter>.yml`` sidecar files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.module_utils._names import join_names

# Mount and role names become policy paths, where '*' and '+' are wildcards.
_PATH_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")
_TTL = re.compile(r"^[0-9]+[a-z]*([0-9]+[a-z]+)*$")


def _check_path_part(what, value):
    value = str(value).strip("/")
    if not _PATH_PART.match(value):
        raise AnsibleFilterError(
            "vault_cert_policy: %s %r may only contain letters, digits, '_', '.', '-' "
            "(and '/' between segments)" % (what, value)
        )
    return value


def _check_value(what, value):
    """A value that goes between double quotes in HCL and into allowed_parameters."""
    value = str(value)
    if not value:
        raise AnsibleFilterError("vault_cert_policy: %s must not be empty" % what)
    for char, why in (('"', "a double quote"), ("\\", "a backslash"),
                      ("*", "'*' (a glob in allowed_parameters, it would allow other names)"),
                      ("${", "'${' (HCL interpolation)")):
        if char in value:
            raise AnsibleFilterError("vault_cert_policy: %s %r contains %s" % (what, value, why))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise AnsibleFilterError(
            "vault_cert_policy: %s %r contains a newline or control character" % (what, value)
        )
    return value


def _names(what, names):
    if names is None:
        return ""
    if isinstance(names, str):
        raise AnsibleFilterError("vault_cert_policy: %s must be a list, got the string %r"
                                 % (what, names))
    for name in names:
        if not str(name).strip():
            continue  # join_names drops blanks
        _check_value(what, name)
        if "," in str(name):
            raise AnsibleFilterError("vault_cert_policy: %s entry %r contains a comma" % (what, name))
    return join_names(names)


def _quoted(values):
    return "[%s]" % ", ".join('"%s"' % v for v in values)


def vault_cert_policy(mount, role, common_name, alt_names=None, ip_sans=None, ttl_values=None):
    """HCL policy letting a host sign CSRs at ``<mount>/sign/<role>`` for its own names only.

    Matches what ``vault_pki_cert`` sends: ``csr``, ``common_name``, ``alt_names`` and
    ``ip_sans`` joined by ``_names.join_names`` (only when not empty), ``ttl``.
    """
    mount = _check_path_part("mount", mount)
    role = _check_path_part("role", role)
    common_name = _check_value("common_name", common_name)
    alt = _names("alt_names", alt_names)
    ips = _names("ip_sans", ip_sans)
    if isinstance(ttl_values, str):
        ttl_values = [ttl_values]
    ttls = []
    for ttl in ttl_values or []:
        ttl = str(ttl)
        if not _TTL.match(ttl):
            raise AnsibleFilterError(
                "vault_cert_policy: ttl_values entry %r is not a duration such as 720h" % ttl
            )
        ttls.append(ttl)

    params = [
        '    "csr" = []',
        '    "common_name" = %s' % _quoted([common_name]),
    ]
    if alt:
        params.append('    "alt_names" = %s' % _quoted([alt]))
    if ips:
        params.append('    "ip_sans" = %s' % _quoted([ips]))
    params.append('    "ttl" = %s' % _quoted(ttls))
    lines = [
        "# Certificates for %s only (mailmesh.imap.vault_cert_policy)" % common_name,
        'path "%s/sign/%s" {' % (mount, role),
        '  capabilities = ["create", "update"]',
        "  allowed_parameters = {",
    ] + params + [
        "  }",
        "}",
        "",
        'path "%s/cert/ca_chain" {' % mount,
        '  capabilities = ["read"]',
        "}",
        "",
        'path "%s/ca/pem" {' % mount,
        '  capabilities = ["read"]',
        "}",
        "",
    ]
    return "\n".join(lines)


class FilterModule(object):
    """mailmesh.imap Vault filters."""

    def filters(self):
        return {"vault_cert_policy": vault_cert_policy}
