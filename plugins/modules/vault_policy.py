#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_policy
short_description: Write or delete a Vault ACL policy
version_added: 0.1.0
description:
  - Writes the ACL policy O(name) when its text differs from O(policy), or deletes it.
  - Texts are compared with trailing whitespace stripped (each line and the end).
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the policy text before and after.
options:
  name:
    description: Policy name.
    type: str
    required: true
  policy:
    description:
      - The policy in HCL (or JSON). Required when O(state=present).
      - The P(mailmesh.imap.vault_cert_policy#filter) filter renders a host's certificate policy.
    type: str
  state:
    description: Whether the policy should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: mailmesh.imap.vault_approle_role
  - plugin: mailmesh.imap.vault_cert_policy
    plugin_type: filter
  - name: Vault policies
    description: Policy syntax.
    link: https://openbao.org/docs/concepts/policies/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Let gateway1 issue certificates for its own names only
  mailmesh.imap.vault_policy:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    name: cert-gateway1
    policy: "{{ 'pki_int' | mailmesh.imap.vault_cert_policy('gateways', 'gateway1') }}"
"""

RETURN = r"""
policy:
  description: The policy text after the task (in check mode, as it would be); empty when absent.
  returned: always
  type: str
  sample: |
    path "pki_int/sign/gateways" {
      capabilities = ["create", "update"]
    }
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_approle import (
    ensure_policy,
    normalize_policy,
)


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            name=dict(type="str", required=True),
            policy=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["policy"])],
        supports_check_mode=True,
    )
    name = module.params["name"]
    path = "sys/policies/acl/" + name
    client = module.client()

    if module.params["state"] == "absent":
        try:
            live = api_read(client, path)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "reading policy %s" % name)
        before = live.get("policy") if live else None
        after = None
        changed = before is not None
        if changed and not module.check_mode:
            try:
                api_delete(client, path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "deleting policy %s" % name)
    else:
        after = module.params["policy"]
        try:
            changed, before = ensure_policy(client, name, after, module.check_mode)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "writing policy %s" % name)
        if not changed:
            after = before

    result = dict(changed=changed, policy=after or "")
    if module._diff:
        result["diff"] = dict(
            before=normalize_policy(before) + "\n" if before is not None else "",
            after=normalize_policy(after) + "\n" if after is not None else "",
            before_header="policy %s" % name,
            after_header="policy %s" % name,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
