# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Policies, AppRole roles and secret IDs: the steps vault_policy, vault_approle_role,
vault_approle_secret_id and vault_host_approles share.

The ``ensure_*`` functions read the live state, compare, and write only what differs
(nothing in check mode); exceptions from hvac propagate to the caller, which names
what it was doing. The comparison helpers are pure functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

import datetime
import json
import re

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_read,
    api_write,
    diff_keys,
)

__all__ = [
    "normalize_policy",
    "parse_expiration",
    "secret_id_valid",
    "expiration",
    "ensure_policy",
    "ensure_role",
    "lookup_secret_id",
    "new_secret_id",
]


def normalize_policy(text):
    """Policy text with trailing whitespace stripped from every line and the end."""
    return "\n".join(line.rstrip() for line in (text or "").splitlines()).strip("\n")


def parse_expiration(value):
    """An aware datetime for Vault's ``expiration_time``; None when it never expires."""
    if not value or str(value).startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$", str(value))
    if not match:
        raise ValueError("unexpected expiration_time %r" % (value,))
    zone = "+00:00" if match.group(2) == "Z" else match.group(2)
    return datetime.datetime.strptime(match.group(1) + zone, "%Y-%m-%dT%H:%M:%S%z")


def secret_id_valid(lookup, now=None):
    """Whether a ``secret-id/lookup`` answer describes a usable secret ID."""
    if not lookup:
        return False
    expires = parse_expiration(lookup.get("expiration_time"))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return expires is None or expires > now


def expiration(data):
    """``expiration_time`` of a lookup answer, or None when the secret ID never expires."""
    value = data.get("expiration_time")
    return None if parse_expiration(value) is None else value


def ensure_policy(client, name, text, check_mode):
    """Write the ACL policy ``name`` when its text differs; (changed, live text or None)."""
    path = "sys/policies/acl/" + name
    live = api_read(client, path)
    before = live.get("policy") if live else None
    changed = before is None or normalize_policy(before) != normalize_policy(text)
    if changed and not check_mode:
        api_write(client, path, {"policy": text}, method="put")
    return changed, before


def ensure_role(client, path, wanted, check_mode, written=None):
    """Create the AppRole role at ``path`` or update the options of ``wanted`` that differ.

    ``wanted`` holds values in Vault's shape (durations in seconds); ``written`` the
    values to write where they differ from how Vault reads them back (CIDRs). Returns
    (live options before or None, sorted changed keys); AppRole updates are partial, so
    only those keys are written.
    """
    live = api_read(client, path)
    compared = live
    if live is not None and written:
        # Vault shows a /32 as the bare address in one binding and as a CIDR in the
        # other: both sides are compared in one shape.
        compared = dict(live)
        for key in written:
            compared[key] = normalize_cidrs(live.get(key))
    changed_keys = sorted(wanted) if live is None else diff_keys(wanted, compared)
    if (live is None or changed_keys) and not check_mode:
        api_write(client, path, {key: (written or {}).get(key, wanted[key]) for key in changed_keys})
    return live, changed_keys


def normalize_cidrs(values, strict=False):
    """CIDRs as Vault stores them: a single address (/32, /128) as the bare address.
    None (a role without a binding) reads as []. With strict, an entry that is not a
    network raises ValueError naming it; else it is kept as it is."""
    if values is None:
        return []
    result = []
    for value in values:
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            if strict:
                raise ValueError("%r is not an IPv4 or IPv6 network (a CIDR such as 192.0.2.0/24 "
                                 "or 2001:db8::/48, or a single address)" % (value,))
            result.append(str(value).strip())
            continue
        if net.prefixlen == net.max_prefixlen:
            result.append(str(net.network_address))
        else:
            result.append(str(net))
    return result


def bound_cidrs(values):
    """(as Vault reads them back, as Vault takes them) for a list of CIDRs or addresses:
    Vault shows a /32 (/128) as the bare address but refuses a bare address in
    secret_id_bound_cidrs. Raises ValueError naming an entry that is not a network."""
    shown = normalize_cidrs(values or [], strict=True)
    return shown, [str(ipaddress.ip_network(value, strict=False)) for value in shown]


def lookup_secret_id(client, role_path, secret_id):
    """Vault's lookup answer for ``secret_id`` of the role, None when unknown or malformed."""
    import hvac.exceptions  # pylint: disable=import-outside-toplevel

    if not secret_id:
        return None
    try:
        return api_write(client, role_path + "/secret-id/lookup", {"secret_id": secret_id})
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath):
        return None


def new_secret_id(client, role_path, metadata):
    """Generate a secret ID; the answer (``secret_id``, ``secret_id_accessor``...)."""
    body = {}
    if metadata:
        body["metadata"] = json.dumps({k: str(v) for k, v in metadata.items()})
    return api_write(client, role_path + "/secret-id", body)
