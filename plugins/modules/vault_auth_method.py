#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_auth_method
short_description: Enable, describe or disable a Vault auth method
version_added: 0.1.0
description:
  - Enables an auth method (for example C(approle)) at O(path), updates its description
    when it differs, or disables it.
  - Fails, changing nothing, when an auth method of another type is enabled at O(path).
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the auth method's type and description before and after.
options:
  path:
    description: Mount path of the auth method, without slashes (C(approle)).
    type: str
    required: true
  method_type:
    description:
      - Auth method type (C(approle), C(cert), C(userpass)...).
      - Required when O(state=present).
    type: str
  description:
    description: Human-readable description; left alone when omitted.
    type: str
  state:
    description: Whether the auth method should be enabled.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: mailmesh.imap.vault_approle_role
  - module: mailmesh.imap.vault_secrets_engine
  - name: Vault auth API
    description: The C(sys/auth) endpoints.
    link: https://openbao.org/api-docs/system/auth/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Enable AppRole
  mailmesh.imap.vault_auth_method:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    path: approle
    method_type: approle
    description: one AppRole per mailmesh host
"""

RETURN = r"""
auth_method:
  description: The auth method after the task (in check mode, as it would be); empty when absent.
  returned: always
  type: dict
  sample:
    path: approle
    method_type: approle
    description: one AppRole per mailmesh host
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_mounts import (
    AUTH_METHODS,
    ensure_mount,
)


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            path=dict(type="str", required=True),
            method_type=dict(type="str"),
            description=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["method_type"])],
        supports_check_mode=True,
    )
    params = module.params
    wanted = {}
    if params["description"] is not None:
        wanted["description"] = params["description"]
    changed, before, after = ensure_mount(
        module, module.client(), AUTH_METHODS, params["path"].strip("/"),
        params["method_type"], wanted, params["state"],
    )
    result = dict(changed=changed, auth_method=after)
    if module._diff:
        result["diff"] = dict(before=before or {}, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
