#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_secrets_engine
short_description: Mount, tune or unmount a Vault secrets engine
version_added: 0.1.0
description:
  - Mounts a secrets engine (for example C(pki)) at O(path), tunes its description and
    lease TTLs when they differ from the wanted ones, or unmounts it.
  - Only the options you set are compared; durations are compared in seconds.
  - Fails, changing nothing, when a mount of another type exists at O(path).
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the mount's type, description and TTLs (seconds) before and after.
options:
  path:
    description: Mount path, without leading or trailing slash (C(pki_int)).
    type: str
    required: true
  engine_type:
    description:
      - Secrets engine type (C(pki), C(kv), C(transit)...).
      - Required when O(state=present).
    type: str
  description:
    description: Human-readable description of the mount.
    type: str
  default_lease_ttl:
    description:
      - Default lease TTL, as seconds or a duration string such as C(768h).
    type: str
  max_lease_ttl:
    description:
      - Maximum lease TTL, as seconds or a duration string such as C(87600h).
      - A PKI mount cannot issue a certificate (not even its own CA) for longer than this.
    type: str
  state:
    description: Whether the mount should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: mailmesh.imap.vault_pki_ca
  - module: mailmesh.imap.vault_auth_method
  - name: Vault mounts API
    description: The C(sys/mounts) endpoints.
    link: https://openbao.org/api-docs/system/mounts/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Mount the root PKI engine for ten years
  mailmesh.imap.vault_secrets_engine:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    path: pki
    engine_type: pki
    description: mailmesh root CA
    max_lease_ttl: 87600h

- name: Remove a mount
  mailmesh.imap.vault_secrets_engine:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    path: old_pki
    state: absent
"""

RETURN = r"""
mount:
  description: The mount after the task (in check mode, as it would be); empty when absent.
  returned: always
  type: dict
  sample:
    path: pki_int
    engine_type: pki
    description: mailmesh issuing CA
    default_lease_ttl: 0
    max_lease_ttl: 157680000
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import duration_seconds
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_mounts import (
    SECRETS_ENGINES,
    ensure_mount,
)


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            path=dict(type="str", required=True),
            engine_type=dict(type="str"),
            description=dict(type="str"),
            default_lease_ttl=dict(type="str"),
            max_lease_ttl=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["engine_type"])],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"].strip("/")
    wanted = {}
    if params["description"] is not None:
        wanted["description"] = params["description"]
    for key in ("default_lease_ttl", "max_lease_ttl"):
        if params[key] is not None:
            try:
                wanted[key] = duration_seconds(params[key])
            except ValueError as exc:
                module.fail_json(msg="%s: %s" % (key, exc))

    changed, before, after = ensure_mount(
        module, module.client(), SECRETS_ENGINES, path,
        params["engine_type"], wanted, params["state"],
    )
    result = dict(changed=changed, mount=after)
    if module._diff:
        result["diff"] = dict(before=before or {}, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
