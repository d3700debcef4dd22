#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_pki_revoke
short_description: Revoke every certificate a PKI mount issued to some hosts
version_added: 0.1.0
description:
  - Finds the certificates of the PKI mount O(mount_point) whose common name is one of
    O(common_names), from the mount's own certificate store (C(LIST <mount>/certs),
    then C(<mount>/cert/<serial>) for each), and revokes those that are neither revoked
    nor expired yet.
  - Then rebuilds the mount's CRL (C(<mount>/crl/rotate)) when it revoked anything, so
    the new CRL lists them at once, also with C(auto_rebuild) (which otherwise rebuilds
    only on its schedule).
  - Vault keeps every certificate it issues unless the PKI role says C(no_store); the
    roles of this collection never set it. C(<mount>/tidy) removes expired ones, which
    keeps the scan short.
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Lists what would be revoked; revokes nothing.
  diff_mode:
    support: none
    description: The result lists the certificates revoked instead.
options:
  mount_point:
    description: The PKI mount that issued the certificates.
    type: str
    default: pki_int
  common_names:
    description:
      - Common names (the hosts' inventory names, as role C(vault_cert) requests them)
        whose certificates are revoked.
    type: list
    elements: str
    required: true
  rotate_crl:
    description: Rebuild the CRL after revoking (only when something was revoked).
    type: bool
    default: true
seealso:
  - module: mailmesh.imap.vault_pki_cert
  - name: The revoke playbook
    description: C(playbooks/revoke_host.yml) revokes, deletes the AppRole and pushes the CRL.
    link: https://openbao.org/api-docs/secret/pki/#revoke-certificate
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Revoke everything issued to a lost device
  mailmesh.imap.vault_pki_revoke:
    url: https://127.0.0.1:8200
    token: "{{ admin_token }}"
    mount_point: pki_int
    common_names: [pi17]
  register: revoked
"""

RETURN = r"""
revoked:
  description: The certificates revoked (in check mode, that would be), oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{serial: "3a:11:...", common_name: pi17, not_after: "2026-12-08T10:00:00Z"}]
already_revoked:
  description: Serials of certificates of these names that were revoked before.
  returned: always
  type: list
  elements: str
expired:
  description: How many certificates of these names had expired (left as they are).
  returned: always
  type: int
scanned:
  description: How many certificates of the mount were read.
  returned: always
  type: int
crl_rotated:
  description: Whether the CRL was rebuilt.
  returned: always
  type: bool
"""

import datetime

from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki
from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import api_read, api_write


def list_serials(client, mount):
    import hvac.exceptions  # pylint: disable=import-outside-toplevel

    try:
        response = client.adapter.list("/v1/%s/certs" % mount)
    except hvac.exceptions.InvalidPath:
        return []
    data = response.get("data", {}) if isinstance(response, dict) else {}
    return list(data.get("keys") or [])


def classify(entries, names, now):
    """(to revoke, already revoked serials, expired count) from (serial, Vault's data,
    parsed certificate or None) triples: a pure decision, unit-tested."""
    to_revoke, already, expired = [], [], 0
    wanted = set(names)
    for serial, data, cert in entries:
        if cert is None:
            continue
        common_name = pki.cert_metadata(cert).get("common_name")
        if common_name not in wanted:
            continue
        if int(data.get("revocation_time") or 0) > 0:
            already.append(serial)
        elif pki.not_after(cert) <= now:
            expired += 1
        else:
            to_revoke.append({"serial": serial, "common_name": common_name,
                              "not_after": pki.utc_iso(pki.not_after(cert))})
    to_revoke.sort(key=lambda item: item["not_after"])
    return to_revoke, sorted(already), expired


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            mount_point=dict(type="str", default="pki_int"),
            common_names=dict(type="list", elements="str", required=True),
            rotate_crl=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    mount = module.params["mount_point"].strip("/")
    names = [name.strip() for name in module.params["common_names"] if name and name.strip()]
    if not names:
        module.fail_json(msg="common_names must name at least one host")
    client = module.client()
    entries = []
    try:
        for serial in list_serials(client, mount):
            data = api_read(client, "%s/cert/%s" % (mount, serial)) or {}
            try:
                cert = pki.load_certificates(str(data.get("certificate") or "").encode())[0]
            except Exception:  # pylint: disable=broad-except
                cert = None  # the CA's own entries and anything unreadable
            entries.append((serial, data, cert))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "listing the certificates of %s" % mount)
    now = datetime.datetime.now(datetime.timezone.utc)
    to_revoke, already, expired = classify(entries, names, now)
    rotated = False
    if to_revoke and not module.check_mode:
        done = []
        for item in to_revoke:
            try:
                api_write(client, "%s/revoke" % mount, {"serial_number": item["serial"]})
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "revoking %s (%s)" % (item["serial"], item["common_name"]), revoked=done)
            done.append(item)
        if module.params["rotate_crl"]:
            try:
                client.adapter.get("/v1/%s/crl/rotate" % mount)
                rotated = True
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "rebuilding the CRL of %s" % mount, revoked=to_revoke)
    module.exit_json(changed=bool(to_revoke), revoked=to_revoke, already_revoked=already,
                     expired=expired, scanned=len(entries), crl_rotated=rotated)


if __name__ == "__main__":
    main()
