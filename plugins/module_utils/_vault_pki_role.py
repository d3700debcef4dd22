# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""A role of a PKI mount, as ``vault_pki_role`` and ``vault_pki`` keep it: read the live
role, compare only the options set (durations in seconds, lists without regard to
order), write only when something differs. Vault replaces a whole role on every write,
so an update sends the live role with the changes applied."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
    api_write,
    diff_keys,
    duration_seconds,
    normalize_like,
    normalize_list,
)

__all__ = ["ROLE_OPTIONS", "wanted_role", "ensure_pki_role"]

ROLE_OPTIONS = dict(
    allowed_domains=dict(type="list", elements="str"),
    allow_bare_domains=dict(type="bool"),
    allow_subdomains=dict(type="bool"),
    allow_glob_domains=dict(type="bool"),
    allow_localhost=dict(type="bool"),
    allow_ip_sans=dict(type="bool"),
    allow_any_name=dict(type="bool"),
    enforce_hostnames=dict(type="bool"),
    server_flag=dict(type="bool"),
    client_flag=dict(type="bool"),
    key_type=dict(type="str", choices=["any", "ec", "rsa", "ed25519"]),
    key_bits=dict(type="int"),
    ttl=dict(type="str"),
    max_ttl=dict(type="str"),
    use_csr_common_name=dict(type="bool"),
    use_csr_sans=dict(type="bool"),
    require_cn=dict(type="bool"),
    no_store=dict(type="bool"),
)
DURATIONS = ("ttl", "max_ttl")
# Returned by a role read, refused (ignored with a warning) by a role write.
READ_ONLY = frozenset(["allow_token_displayname"])


def wanted_role(params):
    """The role's wanted values in Vault's shape: ``extra`` and the options set. Raises
    ValueError naming the option of a wrong duration."""
    wanted = dict(params.get("extra") or {})
    for key in ROLE_OPTIONS:
        if params.get(key) is not None:
            wanted[key] = params[key]
    for key in DURATIONS:
        if key in wanted:
            try:
                wanted[key] = duration_seconds(wanted[key])
            except ValueError as exc:
                raise ValueError("%s: %s" % (key, exc))
    return wanted


def _shown(wanted, live):
    """The wanted keys as the live role has them (normalised), for diff and return."""
    shown = {}
    for key, value in wanted.items():
        current = live.get(key)
        shown[key] = normalize_list(current) if isinstance(current, list) else current
    return shown


def ensure_pki_role(module, client, path, wanted, state="present", mounted=True):
    """Make the role at ``path`` (``<mount>/roles/<name>``) present with ``wanted``, or
    absent. ``mounted=False``: the mount does not exist yet (check mode), nothing is read.
    Returns ``(changed, changed_keys, before, after)``; ``after`` is None when absent."""
    live = None
    if mounted:
        try:
            live = api_read(client, path)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "reading PKI role %s" % path)

    if state == "absent":
        changed = live is not None
        if changed and not module.check_mode:
            try:
                api_delete(client, path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "deleting PKI role %s" % path)
        return changed, [], live, None

    if live is None:
        changed_keys = sorted(wanted)
        before = {}
        body = dict(wanted)
        after = {key: (normalize_list(value) if isinstance(value, list) else value)
                 for key, value in wanted.items()}
    else:
        changed_keys = diff_keys(wanted, live)
        before = _shown(wanted, live)
        body = {key: value for key, value in live.items() if key not in READ_ONLY}
        body.update(wanted)
        after = dict(before)
        for key in changed_keys:
            after[key] = normalize_like(wanted[key], live.get(key))

    changed = live is None or bool(changed_keys)
    if changed and not module.check_mode:
        try:
            written = api_write(client, path, body)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "writing PKI role %s" % path)
        if written is None:
            try:
                written = api_read(client, path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "reading PKI role %s" % path)
        if written:
            after = _shown(wanted, written)
    return changed, changed_keys, before, after
