#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_pki_ca
short_description: Create the root or intermediate CA of a Vault PKI mount
version_added: 0.1.0
description:
  - Generates a root CA (O(ca_type=root)) inside a PKI secrets engine, or an
    intermediate CA (O(ca_type=intermediate)) whose key is generated in O(mount_point)
    and whose certificate is signed by the root CA in O(issuer_mount_point).
  - The CA key never leaves Vault.
  - When the mount already has a CA certificate, no new CA is created (a CA is never
    replaced by this module); only the URLs are brought in line.
  - Sets the issuing-certificate and CRL URLs of the mount (C(<mount>/config/urls))
    when O(issuing_certificates) or O(crl_distribution_points) are given and differ.
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the CA serial number and the URLs before and after (no key material).
options:
  mount_point:
    description: The PKI mount that holds (or will hold) the CA, for example C(pki_int).
    type: str
    required: true
  ca_type:
    description: C(root) for a self-signed CA, C(intermediate) for one signed by O(issuer_mount_point).
    type: str
    choices: [root, intermediate]
    default: root
  common_name:
    description: Common name of the CA certificate. Required unless the CA already exists.
    type: str
  issuer_mount_point:
    description:
      - The PKI mount whose CA signs the intermediate (C(<issuer_mount_point>/root/sign-intermediate)).
      - Required when O(ca_type=intermediate).
    type: str
  ttl:
    description:
      - Validity of the CA certificate, as seconds or a duration such as C(87600h).
      - Vault caps it at the issuing mount's C(max_lease_ttl); tune that with
        M(mailmesh.imap.vault_secrets_engine) first.
    type: str
  key_type:
    description: Type of the CA key.
    type: str
    choices: [ec, rsa, ed25519]
    default: ec
  key_bits:
    description: Key size (C(256)/C(384)/C(521) for ec, C(2048)+ for rsa, C(0) for ed25519).
    type: int
    default: 256
  issuing_certificates:
    description:
      - URLs where the CA certificate can be fetched (AIA), for example
        C(https://vault1:8200/v1/pki_int/ca). Left alone when omitted.
    type: list
    elements: str
  crl_distribution_points:
    description: CRL URLs written into issued certificates. Left alone when omitted.
    type: list
    elements: str
seealso:
  - module: mailmesh.imap.vault_secrets_engine
  - module: mailmesh.imap.vault_pki_role
  - module: mailmesh.imap.vault_pki_cert
  - name: OpenBao PKI API
    description: Root generation, intermediate signing, URL configuration.
    link: https://openbao.org/api-docs/secret/pki/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Root CA
  mailmesh.imap.vault_pki_ca:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    mount_point: pki
    ca_type: root
    common_name: mailmesh root CA
    ttl: 87600h

- name: Intermediate CA signed by the root
  mailmesh.imap.vault_pki_ca:
    url: https://vault1:8200
    token: "{{ vault_server_root_token }}"
    mount_point: pki_int
    ca_type: intermediate
    issuer_mount_point: pki
    common_name: mailmesh issuing CA
    ttl: 43800h
    issuing_certificates: [https://vault1:8200/v1/pki_int/ca]
    crl_distribution_points: [https://vault1:8200/v1/pki_int/crl]
"""

RETURN = r"""
certificate:
  description: The CA certificate (PEM, public); null in check mode when it would be created.
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"
serial_number:
  description: Serial number of the CA certificate, colon-separated hex as Vault writes it.
  returned: always
  type: str
  sample: "66:85:e0:ab:93:a1:1f:b9:80:a6:b2:97:fa:e5:13:aa:77:2a:4e:10"
issuing_certificates:
  description: The mount's issuing-certificate URLs after the task.
  returned: always
  type: list
  elements: str
  sample: [https://vault1:8200/v1/pki_int/ca]
crl_distribution_points:
  description: The mount's CRL URLs after the task.
  returned: always
  type: list
  elements: str
  sample: [https://vault1:8200/v1/pki_int/crl]
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import duration_seconds
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_pki_ca import (
    CA_OPTIONS,
    ensure_ca,
)


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            mount_point=dict(type="str", required=True),
            ca_type=dict(type="str", choices=["root", "intermediate"], default="root"),
            issuer_mount_point=dict(type="str"),
            **CA_OPTIONS
        ),
        required_if=[("ca_type", "intermediate", ["issuer_mount_point"])],
        supports_check_mode=True,
    )
    params = module.params
    mount = params["mount_point"].strip("/")
    if params["ttl"] is not None:
        try:
            duration_seconds(params["ttl"])
        except ValueError as exc:
            module.fail_json(msg="ttl: %s" % exc)

    issuer = (params["issuer_mount_point"] or "").strip("/") or None
    changed, before, after = ensure_ca(module, module.client(), params, mount, params["ca_type"], issuer)
    result = dict(changed=changed, **after)
    if module._diff:
        result["diff"] = dict(before=before, after={key: value for key, value in after.items() if key != "certificate"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
