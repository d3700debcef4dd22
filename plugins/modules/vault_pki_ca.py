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

import base64
import re

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_read,
    api_write,
    duration_seconds,
)

try:
    import hvac.exceptions
except ImportError:  # VaultModule fails with missing_required_lib
    pass


def pem_serial_number(pem):
    """Serial number of the first certificate in ``pem`` as ``aa:bb:..`` (Vault's format)."""
    match = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem or "", re.S)
    if not match:
        return None
    der = base64.b64decode("".join(match.group(1).split()))

    def header(pos):
        tag = der[pos]
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
        return tag, pos, length

    _tag, pos, _length = header(0)  # Certificate
    _tag, pos, _length = header(pos)  # TBSCertificate
    tag, start, length = header(pos)
    if tag == 0xA0:  # [0] version
        tag, start, length = header(start + length)
    value = int.from_bytes(der[start:start + length], "big")
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return ":".join("%02x" % byte for byte in raw)


def _read_ca(module, client, mount):
    try:
        response = client.adapter.get("/v1/%s/ca/pem" % mount)
    except hvac.exceptions.InvalidPath:
        module.fail_json(
            msg="no PKI secrets engine is mounted at %s on %s (mount it with "
            "mailmesh.imap.vault_secrets_engine first)" % (mount, module.url)
        )
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading the CA of %s" % mount)
    text = response.text if hasattr(response, "text") else ""
    return text.strip() or None


def _read_urls(module, client, mount):
    try:
        data = api_read(client, "%s/config/urls" % mount) or {}
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading %s/config/urls" % mount)
    return {
        "issuing_certificates": list(data.get("issuing_certificates") or []),
        "crl_distribution_points": list(data.get("crl_distribution_points") or []),
    }


def _create_ca(module, client, params, mount):
    key = {"key_type": params["key_type"], "key_bits": params["key_bits"]}
    if params["ca_type"] == "root":
        body = dict(key, common_name=params["common_name"])
        if params["ttl"]:
            body["ttl"] = params["ttl"]
        try:
            data = api_write(client, "%s/root/generate/internal" % mount, body)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "generating the root CA in %s" % mount)
        return data["certificate"]

    issuer = params["issuer_mount_point"].strip("/")
    try:
        csr = api_write(client, "%s/intermediate/generate/internal" % mount,
                        dict(key, common_name=params["common_name"]))["csr"]
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "generating the intermediate key and CSR in %s" % mount)
    body = {"csr": csr, "common_name": params["common_name"], "format": "pem"}
    if params["ttl"]:
        body["ttl"] = params["ttl"]
    try:
        signed = api_write(client, "%s/root/sign-intermediate" % issuer, body)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "signing the intermediate of %s with %s" % (mount, issuer))
    bundle = signed["certificate"].strip()
    if signed.get("issuing_ca") and signed["issuing_ca"].strip() not in bundle:
        bundle += "\n" + signed["issuing_ca"].strip()
    try:
        api_write(client, "%s/intermediate/set-signed" % mount, {"certificate": bundle + "\n"})
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "importing the signed intermediate into %s" % mount)
    return signed["certificate"].strip()


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            mount_point=dict(type="str", required=True),
            ca_type=dict(type="str", choices=["root", "intermediate"], default="root"),
            common_name=dict(type="str"),
            issuer_mount_point=dict(type="str"),
            ttl=dict(type="str"),
            key_type=dict(type="str", choices=["ec", "rsa", "ed25519"], default="ec"),
            key_bits=dict(type="int", default=256),
            issuing_certificates=dict(type="list", elements="str"),
            crl_distribution_points=dict(type="list", elements="str"),
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

    client = module.client()
    certificate = _read_ca(module, client, mount)
    urls_before = _read_urls(module, client, mount)
    before = dict(urls_before, serial_number=pem_serial_number(certificate))
    changed = False

    if certificate is None:
        if not params["common_name"]:
            module.fail_json(msg="%s has no CA yet; common_name is required to create one" % mount)
        changed = True
        if not module.check_mode:
            certificate = _create_ca(module, client, params, mount)

    urls_after = dict(urls_before)
    for key in ("issuing_certificates", "crl_distribution_points"):
        if params[key] is not None:
            urls_after[key] = list(params[key])
    if urls_after != urls_before:
        changed = True
        if not module.check_mode:
            try:
                api_write(client, "%s/config/urls" % mount, urls_after)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "writing %s/config/urls" % mount)

    serial = pem_serial_number(certificate)
    result = dict(changed=changed, certificate=certificate, serial_number=serial, **urls_after)
    if module._diff:
        result["diff"] = dict(before=before, after=dict(urls_after, serial_number=serial))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
