#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_approle_role
short_description: Manage a Vault AppRole role and return its role ID
version_added: 0.1.0
description:
  - Creates, updates or deletes the AppRole role O(role_name).
  - Compares only the options you set (durations in seconds, lists without regard to
    order) and writes only those that differ.
  - Returns the role ID, which is an identifier, not a secret.
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows before and after of the options you set.
options:
  mount_point:
    description: Mount path of the AppRole auth method.
    type: str
    default: approle
  role_name:
    description: Name of the role, for example the host's inventory name.
    type: str
    required: true
  token_policies:
    description: Policies attached to tokens issued for this role.
    type: list
    elements: str
  token_ttl:
    description: Default token TTL, as seconds or a duration (C(1h)).
    type: str
  token_max_ttl:
    description: Maximum token TTL, as seconds or a duration.
    type: str
  token_type:
    description: Type of the issued tokens.
    type: str
    choices: [default, service, batch, default-service, default-batch]
  secret_id_ttl:
    description: Validity of secret IDs, as seconds or a duration (C(0) = no expiry).
    type: str
  secret_id_num_uses:
    description: Number of logins a secret ID allows (C(0) = unlimited).
    type: int
  secret_id_bound_cidrs:
    description:
      - CIDRs (or single addresses) from which a secret ID of the role may be used to log
        in; V([]) removes a binding, an unset option leaves the role's as it is.
      - An entry that is not an IPv4 or IPv6 network fails the task before anything is
        written, naming this option.
    type: list
    elements: str
  token_bound_cidrs:
    description:
      - CIDRs (or single addresses) from which tokens issued to the role may be used;
        V([]) removes a binding. Checked as O(secret_id_bound_cidrs).
    type: list
    elements: str
  bind_secret_id:
    description: Require a secret ID to log in.
    type: bool
  state:
    description: Whether the role should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: mailmesh.imap.vault_approle_secret_id
  - module: mailmesh.imap.vault_policy
  - module: mailmesh.imap.vault_auth_method
  - name: OpenBao AppRole API
    description: Role parameters.
    link: https://openbao.org/api-docs/auth/approle/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: One AppRole per host, allowed to issue its own certificate
  mailmesh.imap.vault_approle_role:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    role_name: "{{ inventory_hostname }}"
    token_policies: ["cert-{{ inventory_hostname }}"]
    token_ttl: 10m
    token_max_ttl: 30m
    secret_id_ttl: 0
  register: __vault_cert_approle
"""

RETURN = r"""
role_id:
  description: The role ID (not secret); null in check mode when the role would be created.
  returned: when O(state=present)
  type: str
  sample: 5a9e6f4c-63b1-0c8c-e0e2-3a8b0c2e8d11
role:
  description: The options you set, as the role has them after the task (durations in seconds).
  returned: when O(state=present)
  type: dict
  sample:
    token_policies: [cert-gateway1]
    token_ttl: 600
changed_keys:
  description: The options that differed (and were or would be written).
  returned: always
  type: list
  elements: str
  sample: [token_ttl]
"""


from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_approle import bound_cidrs, normalize_cidrs
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
    api_write,
    diff_keys,
    duration_seconds,
    normalize_like,
    normalize_list,
)

ROLE_OPTIONS = dict(
    token_policies=dict(type="list", elements="str", no_log=False),
    token_ttl=dict(type="str", no_log=False),
    token_max_ttl=dict(type="str", no_log=False),
    token_type=dict(type="str",
                    choices=["default", "service", "batch", "default-service", "default-batch"]),
    secret_id_ttl=dict(type="str", no_log=False),
    secret_id_num_uses=dict(type="int", no_log=False),
    secret_id_bound_cidrs=dict(type="list", elements="str", no_log=False),
    token_bound_cidrs=dict(type="list", elements="str", no_log=False),
    bind_secret_id=dict(type="bool"),
)
DURATIONS = ("token_ttl", "token_max_ttl", "secret_id_ttl")
CIDRS = ("secret_id_bound_cidrs", "token_bound_cidrs")


def _shown(wanted, live):
    shown = {}
    for key in wanted:
        current = live.get(key)
        shown[key] = normalize_list(current) if isinstance(current, list) or (
            current is None and isinstance(wanted[key], list)) else current
    return shown


def main():
    argspec = dict(ROLE_OPTIONS)
    argspec.update(
        mount_point=dict(type="str", default="approle"),
        role_name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = VaultModule(argument_spec=VaultModule.generate_argspec(**argspec),
                         supports_check_mode=True)
    params = module.params
    path = "auth/%s/role/%s" % (params["mount_point"].strip("/"), params["role_name"])

    wanted = {key: params[key] for key in ROLE_OPTIONS if params[key] is not None}
    for key in DURATIONS:
        if key in wanted:
            try:
                wanted[key] = duration_seconds(wanted[key])
            except ValueError as exc:
                module.fail_json(msg="%s: %s" % (key, exc))

    # Compared as Vault reads them back (a /32 as the bare address), written as CIDRs
    # (Vault refuses a bare address in secret_id_bound_cidrs).
    written = {}
    for key in CIDRS:
        if key in wanted:
            try:
                wanted[key], written[key] = bound_cidrs(wanted[key])
            except ValueError as exc:
                module.fail_json(msg="%s: %s; nothing was written." % (key, exc))

    client = module.client()
    try:
        live = api_read(client, path)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading AppRole role %s" % path)
    if live is not None:
        for key in CIDRS:
            live[key] = normalize_cidrs(live.get(key))

    if params["state"] == "absent":
        changed = live is not None
        if changed and not module.check_mode:
            try:
                api_delete(client, path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "deleting AppRole role %s" % path)
        result = dict(changed=changed, changed_keys=[])
        if module._diff:
            result["diff"] = dict(before={"role_name": params["role_name"]} if live else {},
                                  after={})
        module.exit_json(**result)

    if live is None:
        changed_keys = sorted(wanted)
        before = {}
        after = {key: (normalize_list(value) if isinstance(value, list) else value)
                 for key, value in wanted.items()}
    else:
        changed_keys = diff_keys(wanted, live)
        before = _shown(wanted, live)
        after = dict(before)
        for key in changed_keys:
            after[key] = normalize_like(wanted[key], live.get(key))
    changed = live is None or bool(changed_keys)

    if changed and not module.check_mode:
        body = {key: written.get(key, wanted[key]) for key in changed_keys}  # AppRole updates are partial
        try:
            api_write(client, path, body)
            after = _shown(wanted, api_read(client, path) or {})
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "writing AppRole role %s" % path)

    role_id = None
    if live is not None or not module.check_mode:
        try:
            role_id = (api_read(client, path + "/role-id") or {}).get("role_id")
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "reading the role ID of %s" % path)

    result = dict(changed=changed, changed_keys=changed_keys, role=after, role_id=role_id)
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
