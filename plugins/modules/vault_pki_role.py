#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_pki_role
short_description: Manage a role of a Vault PKI secrets engine
version_added: 0.1.0
description:
  - Creates, updates or deletes the role O(name) in the PKI mount O(mount_point).
  - Reads the live role and compares only the options you set (durations in seconds,
    lists without regard to order); writes only when something differs.
  - Vault replaces a whole role on every write, so an update sends the live role with
    your changes applied; options you do not set keep their current values.
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
    description: The PKI mount, for example C(pki_int).
    type: str
    required: true
  name:
    description: Role name, for example C(gateways).
    type: str
    required: true
  allowed_domains:
    description: Domains the role may issue for.
    type: list
    elements: str
  allow_bare_domains:
    description: Allow the domains in O(allowed_domains) themselves.
    type: bool
  allow_subdomains:
    description: Allow subdomains of O(allowed_domains).
    type: bool
  allow_glob_domains:
    description: Allow globs in O(allowed_domains).
    type: bool
  allow_localhost:
    description: Allow C(localhost) as a name.
    type: bool
  allow_ip_sans:
    description: Allow IP subject alternative names.
    type: bool
  allow_any_name:
    description: Allow any name (the AppRole policy then restricts names).
    type: bool
  enforce_hostnames:
    description: Only allow valid host names.
    type: bool
  server_flag:
    description: Issue certificates usable as TLS servers.
    type: bool
  client_flag:
    description: Issue certificates usable as TLS clients.
    type: bool
  key_type:
    description: Allowed key type of signed CSRs (C(any) accepts every type).
    type: str
    choices: [any, ec, rsa, ed25519]
  key_bits:
    description: Key size required of signed CSRs (C(0) for the type's default).
    type: int
  ttl:
    description: Default validity of issued certificates, as seconds or a duration (C(720h)).
    type: str
  max_ttl:
    description: Maximum validity of issued certificates, as seconds or a duration.
    type: str
  use_csr_common_name:
    description: Take the common name from the CSR (mailmesh sets this to false).
    type: bool
  use_csr_sans:
    description: Take the SANs from the CSR (mailmesh sets this to false).
    type: bool
  require_cn:
    description: Require a common name.
    type: bool
  no_store:
    description: Do not store issued certificates in Vault.
    type: bool
  extra:
    description:
      - Any other role parameter, by its Vault name (C(ou), C(organization),
        C(ext_key_usage)...). Values are compared like the options above.
    type: dict
    default: {}
  state:
    description: Whether the role should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: mailmesh.imap.vault_pki_ca
  - module: mailmesh.imap.vault_pki_cert
  - name: OpenBao PKI roles
    description: Every role parameter.
    link: https://openbao.org/api-docs/secret/pki/#createupdate-role
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Role for gateway certificates (names decided by the request, limited by policy)
  mailmesh.imap.vault_pki_role:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    mount_point: pki_int
    name: gateways
    allow_any_name: true
    enforce_hostnames: true
    allow_ip_sans: true
    server_flag: true
    client_flag: true
    key_type: ec
    key_bits: 256
    ttl: 720h
    max_ttl: 2160h
    use_csr_common_name: false
    use_csr_sans: false
    extra:
      ou: [mailmesh]
"""

RETURN = r"""
role:
  description: The options you set, as the role has them after the task (durations in seconds).
  returned: when O(state=present)
  type: dict
  sample:
    allow_any_name: true
    ttl: 2592000
    key_type: ec
changed_keys:
  description: The options that differed (and were or would be written).
  returned: always
  type: list
  elements: str
  sample: [ttl]
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_pki_role import (
    ROLE_OPTIONS,
    ensure_pki_role,
    wanted_role,
)


def main():
    argspec = dict(ROLE_OPTIONS)
    argspec.update(
        mount_point=dict(type="str", required=True),
        name=dict(type="str", required=True),
        extra=dict(type="dict", default={}),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = VaultModule(argument_spec=VaultModule.generate_argspec(**argspec),
                         supports_check_mode=True)
    params = module.params
    mount = params["mount_point"].strip("/")
    path = "%s/roles/%s" % (mount, params["name"])
    try:
        wanted = wanted_role(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    changed, changed_keys, before, after = ensure_pki_role(module, module.client(), path, wanted, params["state"])
    if params["state"] == "absent":
        result = dict(changed=changed, changed_keys=[])
        if module._diff:
            result["diff"] = dict(before={"name": params["name"]} if before else {}, after={})
        module.exit_json(**result)

    result = dict(changed=changed, changed_keys=changed_keys, role=after)
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
