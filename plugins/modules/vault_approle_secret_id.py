#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_approle_secret_id
short_description: Keep a valid AppRole secret ID, generating one only when needed
version_added: 0.1.0
description:
  - Looks up O(current_secret_id) for the role O(role_name). When Vault still accepts
    it (known for that role and not expired), returns it unchanged (C(changed=false)).
  - Otherwise (no current secret ID, unknown, expired, or of another role) generates a
    new secret ID (C(changed=true)).
  - "B(Secret in the result:) RV(secret_id) is a secret, so set C(no_log: true) on the task.
    The module never writes it anywhere; storing it on the host is the playbook's job."
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reports C(changed=true) when a new secret ID would be generated, and generates none.
  diff_mode:
    support: none
    description: Nothing to compare; secrets are never shown in a diff.
options:
  mount_point:
    description: Mount path of the AppRole auth method.
    type: str
    default: approle
  role_name:
    description: Name of the AppRole role.
    type: str
    required: true
  current_secret_id:
    description:
      - The secret ID the host holds now, if any. Kept when still valid.
    type: str
  metadata:
    description:
      - Metadata attached to a newly generated secret ID (string values); shown in Vault's
        audit log and token metadata. Not compared for an existing secret ID.
    type: dict
    default: {}
seealso:
  - module: mailmesh.imap.vault_approle_role
  - module: mailmesh.imap.vault_pki_cert
  - name: OpenBao AppRole API
    description: Secret ID generation and lookup.
    link: https://openbao.org/api-docs/auth/approle/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make sure the host has a valid secret ID
  mailmesh.imap.vault_approle_secret_id:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    role_name: "{{ inventory_hostname }}"
    current_secret_id: "{{ __vault_cert_current_secret_id | default(omit) }}"
    metadata:
      host: "{{ inventory_hostname }}"
  register: __vault_cert_secret_id
  no_log: true
"""

RETURN = r"""
role_id:
  description: The role ID of O(role_name) (not secret); null in check mode if the role does not exist.
  returned: always
  type: str
  sample: 5a9e6f4c-63b1-0c8c-e0e2-3a8b0c2e8d11
secret_id:
  description:
    - A valid secret ID, O(current_secret_id) when kept, else the new one.
    - Secret; the task must use C(no_log). Null in check mode when a new one would be generated.
  returned: always
  type: str
  sample: 0c8b1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d
secret_id_accessor:
  description: Accessor of the secret ID (lets an operator look it up or revoke it).
  returned: always
  type: str
  sample: 84896a0c-1347-aa90-a4f6-aca8b7558780
expiration_time:
  description: When the secret ID expires (RFC 3339), or null when it does not expire.
  returned: always
  type: str
  sample: "2026-12-25T13:00:00Z"
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import api_read
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_approle import (
    expiration,
    lookup_secret_id,
    new_secret_id,
    secret_id_valid,
)

MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            mount_point=dict(type="str", default="approle"),
            role_name=dict(type="str", required=True),
            current_secret_id=dict(type="str", no_log=True),
            metadata=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    params = module.params
    role_path = "auth/%s/role/%s" % (params["mount_point"].strip("/"), params["role_name"])
    client = module.client()

    try:
        role_id = (api_read(client, role_path + "/role-id") or {}).get("role_id")
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading the role ID of %s" % role_path)
    if role_id is None and not module.check_mode:
        module.fail_json(msg="AppRole role %s does not exist on %s (create it with "
                         "mailmesh.imap.vault_approle_role first)" % (role_path, module.url))

    current = params["current_secret_id"]
    lookup = None
    if current and role_id is not None:
        try:
            lookup = lookup_secret_id(client, role_path, current)  # None: unknown or malformed
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "looking up current_secret_id for %s" % role_path)
    try:
        valid = secret_id_valid(lookup)
    except ValueError as exc:
        module.fail_json(msg="looking up current_secret_id for %s: %s" % (role_path, exc))

    if valid:
        # The secret is returned on purpose (the task is no_log): stop Ansible from
        # replacing it by the no_log placeholder, but keep it masked in the invocation.
        module.no_log_values.discard(current)
        module_args = dict(params, current_secret_id=MASK)
        module.exit_json(changed=False, role_id=role_id, secret_id=current,
                         secret_id_accessor=lookup.get("secret_id_accessor"),
                         expiration_time=expiration(lookup),
                         invocation={"module_args": module_args})

    if module.check_mode:
        module.exit_json(changed=True, role_id=role_id, secret_id=None,
                         secret_id_accessor=None, expiration_time=None)

    try:
        new = new_secret_id(client, role_path, params["metadata"])
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "generating a secret ID for %s" % role_path)
    expires = None
    try:
        details = lookup_secret_id(client, role_path, new["secret_id"])
        expires = expiration(details or {})
    except Exception:  # pylint: disable=broad-except
        pass  # only informative
    module.exit_json(changed=True, role_id=role_id, secret_id=new["secret_id"],
                     secret_id_accessor=new.get("secret_id_accessor"),
                     expiration_time=expires)


if __name__ == "__main__":
    main()
