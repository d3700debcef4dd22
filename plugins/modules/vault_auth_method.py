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
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
    api_write,
)


def _live(module, client, path):
    try:
        methods = api_read(client, "sys/auth") or {}
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading the auth methods")
    entry = methods.get(path + "/")
    if not isinstance(entry, dict):
        return None
    return {"path": path, "method_type": entry.get("type"),
            "description": entry.get("description", "")}


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
    path = params["path"].strip("/")
    client = module.client()
    before = _live(module, client, path)
    result = dict(changed=False)

    if params["state"] == "absent":
        after = {}
        if before is not None:
            result["changed"] = True
            if not module.check_mode:
                try:
                    api_delete(client, "sys/auth/" + path)
                except Exception as exc:  # pylint: disable=broad-except
                    module.fail_vault(exc, "disabling the auth method at %s" % path)
    elif before is None:
        after = {"path": path, "method_type": params["method_type"],
                 "description": params["description"] or ""}
        result["changed"] = True
        if not module.check_mode:
            body = {"type": params["method_type"]}
            if params["description"] is not None:
                body["description"] = params["description"]
            try:
                api_write(client, "sys/auth/" + path, body)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "enabling %s at %s" % (params["method_type"], path))
    else:
        if before["method_type"] != params["method_type"]:
            module.fail_json(
                msg="a %s auth method is already enabled at %s on %s; method_type=%s "
                "would need it disabled first (state=absent)"
                % (before["method_type"], path, module.url, params["method_type"])
            )
        after = dict(before)
        if params["description"] is not None and params["description"] != before["description"]:
            after["description"] = params["description"]
            result["changed"] = True
            if not module.check_mode:
                try:
                    api_write(client, "sys/auth/%s/tune" % path,
                              {"description": params["description"]})
                except Exception as exc:  # pylint: disable=broad-except
                    module.fail_vault(exc, "tuning the auth method at %s" % path)

    result["auth_method"] = after
    if module._diff:
        result["diff"] = dict(before=before or {}, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
