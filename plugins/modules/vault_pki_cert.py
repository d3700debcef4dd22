#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_pki_cert
short_description: Keep a host certificate from a Vault/OpenBao PKI role on disk
version_added: 0.1.0
description:
  - Makes sure the host has a private key, a certificate for the wanted names, the CA
    chain and the full chain, issued by a Vault or OpenBao PKI role, and renews them
    when needed.
  - The private key is generated on the host and never leaves it. The module sends a
    certificate signing request (CSR) to C(<engine_mount_point>/sign/<role_name>); Vault
    only ever sees the public key.
  - "The certificate is (re)issued only for a reason, returned in RV(reasons): a file is
    missing (V(missing)) or cannot be parsed (V(unreadable)), O(force=true) (V(forced)),
    the certificate expires within O(renew_before) (V(expiring)), its common name, DNS
    or IP SANs differ from the wanted ones (V(names_changed)), the key does not belong to
    the certificate (V(key_mismatch)), the key has another type or size than
    O(key_type)/O(key_bits) (V(key_type_changed)), the mount's current issuing CA did not
    sign the certificate or is not the first certificate of the chain file
    (V(issuer_changed)), the full chain does not match the certificate and chain
    (V(chain_mismatch)), or Vault lists the certificate as revoked (V(revoked), read
    from the unauthenticated C(<engine_mount_point>/cert/<serial>); a new key is
    generated then, the host is being re-enrolled after a revocation)."
  - "Key reuse: on renewal the existing key is kept when it is readable and has the
    wanted type and size, even when it does not match the certificate (the certificate is
    then reissued for it). A new key is generated when there is none, when it is
    unreadable or of another type/size, or on every issuance with O(rotate_key=true)."
  - "Every file is written atomically: a temporary file created with mode 0600 in the
    target directory is moved into place, then O(owner), O(group) and the mode are set.
    The key file gets O(mode) (default V(0600)); the certificate, chain and full chain get
    O(cert_mode) (default V(0644))."
  - "Vault is contacted for reads only (the issuing CA at C(<engine_mount_point>/cert/ca),
    an unauthenticated path) unless a certificate must be issued; only then does the
    module log in. So a run with nothing to do, and check mode, never creates a token or
    uses up an AppRole secret ID."
  - "An exclusive lock on the key's directory is held from the first read to the last
    write, so this module and the on-host renewal agent that the C(vault_cert) role
    installs (C(mailmesh-cert-renew), a systemd timer that runs the same code with the
    same rules) never interleave their files."
  - "Before it decides anything, the module compares the host's clock with Vault's (the
    C(Date) header of Vault's answer) and fails, writing nothing, when they differ by
    more than O(max_clock_skew): on a host whose clock is wrong a new certificate would
    look expired or not yet valid, and renewing would not help. A certificate on disk
    that is not valid yet is named as a sign of a wrong clock when Vault cannot be
    reached."
  - "The request carries exactly C(csr), C(common_name) and, only when set, C(alt_names),
    C(ip_sans) and C(ttl), so host policies can restrict these parameters with
    C(allowed_parameters). The PKI role should set C(use_csr_common_name=false) and
    C(use_csr_sans=false); the CSR still carries the same names."
author:
  - mailmesh.imap maintainers (!UNKNOWN)
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Reports whether a certificate would be issued and why; writes nothing and does not log in to Vault.
  diff_mode:
    support: full
    description: Shows serial number, names, validity and issuer before and after; never key material.
options:
  url:
    description:
      - URL of the Vault or OpenBao server, for example C(https://vault1:8200).
      - Required unless O(approle_file) gives it.
    type: str
    required: false
  approle_file:
    description:
      - "A JSON file on the host with the host's AppRole credentials and where to use
        them, as the C(client) entry point of the C(vault_server) role writes it:
        C(url), C(role_id), C(secret_id), C(approle_mount), C(mount) (the PKI mount),
        C(pki_role) and, optionally, C(ca_cert) and C(urls)."
      - "C(urls), when present, lists every node of the Vault cluster in the order this
        host tries them (a non-empty list of URLs; C(url) is its first entry, for older
        readers). The module then reads the CA, logs in and signs on the first node that
        can answer: a node that is unreachable, times out, fails the TLS handshake or
        answers with an HTTP 5xx status (sealed, a standby that is not ready, a node in
        trouble) is passed over with a warning, and the module logs in again on the next
        one. A definite answer (400, 401, 403, 404) is final. When no node can answer, the
        failure names every node and its cause. Without C(urls) the module talks to
        C(url) alone."
      - The module reads it on the host, so the secret ID never passes through the
        controller. Implies O(auth_method=approle); O(ca_cert), when set, wins over the
        file's C(ca_cert).
      - Mutually exclusive with the options the file gives (O(url), O(role_id),
        O(secret_id), O(approle_mount_point), O(engine_mount_point), O(role_name)), and
        with O(auth_method) and O(token).
    type: path
  engine_mount_point:
    description:
      - Mount point of the PKI secrets engine that issues the certificate.
    type: str
    default: pki_int
  role_name:
    description:
      - Name of the PKI role to sign with.
      - Required unless O(approle_file) gives it.
    type: str
  common_name:
    description:
      - Common name (CN) of the certificate. Vault usually adds it to the DNS SANs too.
    type: str
    required: true
  alt_names:
    description:
      - DNS subject alternative names. Sent de-duplicated, lower-cased, sorted and
        comma-joined, and only when not empty.
    type: list
    elements: str
    default: []
  ip_sans:
    description:
      - IP subject alternative names. Sent like O(alt_names).
    type: list
    elements: str
    default: []
  ttl:
    description:
      - Requested lifetime, in Vault's duration syntax (for example V(720h)). Sent only
        when set; the role's default applies otherwise. Vault caps it at the role's
        C(max_ttl).
    type: str
  renew_before:
    description:
      - Reissue when the certificate expires within this duration. Seconds, or a number
        with unit V(s), V(m), V(h), V(d) or V(w) (V(30m), V(24h), V(1d12h)).
      - When omitted, the certificate is renewed in the last third of its own lifetime
        (for a 30-day certificate, 10 days before it expires), which suits any TTL.
      - A value at least as long as the certificate's lifetime would reissue on every
        run; the module warns about that.
    type: str
  max_clock_skew:
    description:
      - Fail, writing nothing, when this host's clock and Vault's differ by more than
        this duration (same syntax as O(renew_before)). V(0) turns the check off.
    type: str
    default: 5m
  cert_path:
    description:
      - Where to write the certificate (PEM).
    type: path
    required: true
  key_path:
    description:
      - Where to write the private key (PEM, PKCS#8, unencrypted; mode O(mode), default V(0600)).
    type: path
    required: true
  chain_path:
    description:
      - Where to write the CA chain (issuing CA first) without the self-signed root, which
        clients hold in their CA bundle and TLS does not need; a chain file written with
        the root by an earlier release is rewritten once (reason C(chain_mismatch)). Not
        written when omitted.
    type: path
  fullchain_path:
    description:
      - Where to write the certificate followed by the CA chain (without the root, as
        O(chain_path)) - what a server sends. Not written when omitted.
    type: path
  cert_mode:
    description:
      - Mode of the certificate, chain and full chain files (same syntax as O(mode)).
      - O(mode) applies to the key file only.
    type: raw
    default: '0644'
  key_type:
    description:
      - Type of a newly generated key. V(ec) is ECDSA, V(rsa) is RSA.
      - The PKI role must allow it (C(key_type) of the role).
    type: str
    choices: [ec, rsa]
    default: ec
  key_bits:
    description:
      - Size of a newly generated key. For V(ec) 256 (P-256), 384 or 521; for V(rsa) at
        least 2048.
      - Defaults to 256 for V(ec) and 2048 for V(rsa).
    type: int
  rotate_key:
    description:
      - Generate a new key whenever a certificate is issued, instead of reusing a valid
        existing key. Does not by itself cause an issuance; combine with O(force=true)
        to rotate the key now.
    type: bool
    default: false
  force:
    description:
      - Issue a new certificate even if the current one is fine.
    type: bool
    default: false
  prerequisites:
    description:
      - "What must be on the host before the module keeps the certificate (the
        C(vault_cert) role passes the packages this module needs, the certificate's
        directories and the renewal agent's files and timer), compared first, exactly
        as M(mailmesh.imap.host_state) compares them. Where anything differs, the module
        leaves the certificate alone, does not contact Vault, returns the differences in
        RV(differences) and C(changed=false); the caller puts them right and calls the
        module again. So a host as the role left it takes one module call for both the
        comparison and the certificate."
      - Compared before the C(cryptography) library is needed, so a host without it
        gets the difference, not an error.
    type: dict
    suboptions:
      packages:
        description: Debian packages that must be installed.
        type: list
        elements: str
        default: []
      services:
        description: systemd units that must be enabled and active (a name without a
          suffix is a C(.service)).
        type: list
        elements: str
        default: []
      files:
        description: Paths to compare, as O(mailmesh.imap.host_state#module:files) takes them.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path. Links are not followed.
            type: path
            required: true
          state:
            description: What the path must be.
            type: str
            choices: [file, directory, link, absent]
            default: file
          sha256:
            description: sha256 (hex) of the file's content; not compared when omitted.
            type: str
          target:
            description: A link's target; not compared when omitted.
            type: str
          entries:
            description: The names a directory holds, and nothing else; not compared when omitted.
            type: list
            elements: str
          owner:
            description: Owner's user name; not compared when omitted.
            type: str
          group:
            description: Group name; not compared when omitted.
            type: str
          mode:
            description: Permission bits as an octal string; not compared when omitted.
            type: raw
  units:
    description:
      - "systemd units to enable and start (or restart) once the certificate is in place,
        in this call, as M(mailmesh.imap.host_units) does (one C(systemctl show), then
        at most one call per verb): the C(vault_cert) role starts the renewal agent's
        timer this way on a host it has just prepared, without a module call of its own."
      - Not touched when the module leaves the certificate alone because something
        differs from O(prerequisites), or when keeping the certificate failed.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unit name (a name without a suffix is a C(.service)).
        type: str
        required: true
      enabled:
        description: As O(mailmesh.imap.host_units#module:units[].enabled).
        type: bool
        default: true
      state:
        description: As O(mailmesh.imap.host_units#module:units[].state).
        type: str
        choices: [started, restarted]
  daemon_reload:
    description: Run C(systemctl daemon-reload) before O(units) are looked at (a unit
      file was written); not counted as a change.
    type: bool
    default: false
notes:
  - O(mode) defaults to V(0600) for the key file (not the umask-derived default of other
    file modules).
  - Parameters O(owner) and O(group) apply to all written files.
  - Vault's error is reported with the Vault address and the cause when it is
    unreachable, sealed, fails TLS verification, denies permission, does not know
    O(role_name), or refuses a name for the role.
  - The renewal rules live in the collection's private C(_cert_renewal) module_utils,
    which the on-host renewal agent of the C(vault_cert) role runs too.
requirements:
  - cryptography >= 38.0 (Debian 12's C(python3-cryptography) is enough)
seealso:
  - module: community.hashi_vault.vault_pki_generate_certificate
    description: >-
      Has Vault generate the key and certificate (C(<mount>/issue/<role>)) and returns
      both, so the private key passes through Vault, the network and the task result,
      and it writes no files and always issues. This module generates the key on the
      host, has Vault sign a CSR, writes the files atomically, and renews only for a
      reason.
  - name: Vault PKI sign API
    description: The C(/sign/:name) endpoint this module uses.
    link: https://openbao.org/api-docs/secret/pki/#sign-certificate
"""

EXAMPLES = r"""
- name: Keep the gateway's mTLS certificate (AppRole login, Envoy SDS files)
  mailmesh.imap.vault_pki_cert:
    url: https://vault1:8200
    ca_cert: /etc/ssl/mailmesh/vault-ca.pem
    auth_method: approle
    role_id: "{{ vault_cert_role_id }}"
    secret_id: "{{ vault_cert_secret_id }}"
    engine_mount_point: pki_int
    role_name: gateways
    common_name: "{{ inventory_hostname }}"
    alt_names: "{{ vault_server_client_alt_names }}"
    ip_sans: "{{ vault_server_client_ip_sans }}"
    ttl: 720h
    cert_path: /etc/envoy/tls/cert.pem
    key_path: /etc/envoy/tls/key.pem
    chain_path: /etc/envoy/tls/chain.pem
    fullchain_path: /etc/envoy/tls/fullchain.pem
    owner: root
    group: envoy
    mode: "0640"
  register: __vault_cert_result

- name: Renew a day before expiry, with an RSA key, logging in with a token
  mailmesh.imap.vault_pki_cert:
    url: https://vault1:8200
    token: "{{ vault_token }}"
    role_name: mailstores
    common_name: store1.mail.example.org
    key_type: rsa
    key_bits: 3072
    renew_before: 24h
    cert_path: /etc/dovecot/tls/cert.pem
    key_path: /etc/dovecot/tls/key.pem

- name: Keep the certificate with the host's own AppRole (its file stays on the host)
  mailmesh.imap.vault_pki_cert:
    approle_file: /etc/mailmesh/vault/approle.json
    common_name: "{{ inventory_hostname }}"
    cert_path: /etc/mailmesh/tls/envoy/cert.pem
    key_path: /etc/mailmesh/tls/envoy/key.pem

- name: Rotate key and certificate now
  mailmesh.imap.vault_pki_cert:
    url: https://vault1:8200
    token: "{{ vault_token }}"
    role_name: edge
    common_name: "{{ inventory_hostname }}"
    cert_path: /etc/envoy/tls/cert.pem
    key_path: /etc/envoy/tls/key.pem
    force: true
    rotate_key: true
"""

RETURN = r"""
reasons:
  description:
    - Why the certificate was (or in check mode would be) issued; empty when nothing was.
    - One or more of V(forced), V(missing), V(unreadable), V(key_type_changed),
      V(key_mismatch), V(names_changed), V(expiring), V(issuer_changed),
      V(chain_mismatch), V(revoked).
  returned: always
  type: list
  elements: str
  sample: [expiring]
key_generated:
  description: Whether a new private key was (or would be) generated.
  returned: always
  type: bool
  sample: false
serial_number:
  description:
    - Serial number of the certificate now on disk, hex pairs joined by colons.
    - In check mode, that of the current certificate; absent if there is none.
  returned: when a certificate is on disk
  type: str
  sample: "4a:1f:9c:03:6e:22:b0:17:c5:d8:41:9e:0b:7a:63:f2:88:10:5d:3c"
not_before:
  description: Start of validity, ISO 8601 in UTC.
  returned: when a certificate is on disk
  type: str
  sample: "2026-01-31T12:00:00Z"
not_after:
  description: End of validity, ISO 8601 in UTC.
  returned: when a certificate is on disk
  type: str
  sample: "2026-03-02T12:00:30Z"
common_name:
  description: Common name of the certificate.
  returned: when a certificate is on disk
  type: str
  sample: gw1.mail.example.org
alt_names:
  description: DNS SANs of the certificate (lower-case, sorted; usually includes the CN).
  returned: when a certificate is on disk
  type: list
  elements: str
  sample: [gw1.mail.example.org, imap.example.org]
ip_sans:
  description: IP SANs of the certificate, sorted.
  returned: when a certificate is on disk
  type: list
  elements: str
  sample: [192.0.2.10]
issuer:
  description: Issuer DN of the certificate (RFC 4514).
  returned: when a certificate is on disk
  type: str
  sample: CN=mailmesh intermediate CA
cert_path:
  description: Path of the certificate file.
  returned: always
  type: str
  sample: /etc/envoy/tls/cert.pem
key_path:
  description: Path of the private key file (the key itself is never returned).
  returned: always
  type: str
  sample: /etc/envoy/tls/key.pem
chain_path:
  description: Path of the CA chain file, if managed.
  returned: always
  type: str
  sample: /etc/envoy/tls/chain.pem
fullchain_path:
  description: Path of the full chain file, if managed.
  returned: always
  type: str
  sample: /etc/envoy/tls/fullchain.pem
differences:
  description:
    - What differs from O(prerequisites), one sentence each (as
      M(mailmesh.imap.host_state) returns them); empty when nothing does, or without
      O(prerequisites).
    - When not empty, the certificate was left alone and only O(cert_path),
      O(key_path), O(chain_path) and O(fullchain_path) are returned beside it.
  returned: always
  type: list
  elements: str
  sample: ["package python3-cryptography: not installed", "/etc/mailmesh/tls/envoy: missing"]
units:
  description: What this call did to O(units) (or would, in check mode), as
    M(mailmesh.imap.host_units) returns it; empty lists without O(units).
  returned: when the certificate was kept
  type: dict
  sample: {"enabled": ["mailmesh-cert-renew.timer"], "started": ["mailmesh-cert-renew.timer"], "restarted": []}
"""

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki
from ansible_collections.mailmesh.imap.plugins.module_utils._cert_check import CERT_OPTIONS, keeper_options
from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import differences, mode_problem
from ansible_collections.mailmesh.imap.plugins.module_utils._cert_renewal import (
    APPROLE_FILE_KEYS,
    CertKeeper,
    RenewalError,
    approle_options,
    read_approle_file,
    response_json,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._units import UNIT_OPTIONS, UnitsError, input_problem, keep_units
from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_client import MissingLibraryError

# Kept for the unit tests of this module (the helper lives in _cert_renewal).
_json = response_json


def argument_spec():
    spec = VaultModule.generate_argspec(
        approle_file=dict(type="path"),
        engine_mount_point=dict(type="str", default="pki_int"),
        role_name=dict(type="str"),
        **CERT_OPTIONS,
        units=dict(type="list", elements="dict", default=[], options=UNIT_OPTIONS),
        daemon_reload=dict(type="bool", default=False),
    )
    spec["url"] = dict(spec["url"], required=False)
    return spec


def load_approle_file(module):
    """Fill the connection and login options from approle_file, read on the host."""
    path = module.params["approle_file"]
    if not path:
        return
    try:
        data = read_approle_file(path)
    except RenewalError as exc:
        module.fail_json(msg=str(exc))
    module.no_log_values.add(str(data["secret_id"]))
    options = approle_options(data)
    ca_cert = options.pop("ca_cert", None)
    module.params.update(options)
    if not module.params["ca_cert"] and ca_cert:
        module.params["ca_cert"] = ca_cert


def prerequisite_differences(module):
    """What differs from the prerequisites option (nothing without it)."""
    wanted = module.params["prerequisites"]
    if not wanted:
        return []
    problem = mode_problem(wanted["files"], "prerequisites.files")
    if problem:
        module.fail_json(msg=problem)
    return differences(module, files=wanted["files"], packages=wanted["packages"], services=wanted["services"])


def run(module):
    params = module.params
    keeper = CertKeeper(module.connection, keeper_options(params), check_mode=module.check_mode, warn=module.warn)
    try:
        outcome = keeper.run()
    except RenewalError as exc:
        module.fail_json(msg=str(exc))
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.trace)
    changed = outcome["changed"]
    # SELinux context and file attributes (and a symbolic mode), as any file module.
    key_mode = params["mode"] if params["mode"] is not None else "0600"
    for name, mode in (("key_path", key_mode), ("cert_path", params["cert_mode"]),
                       ("chain_path", params["cert_mode"]), ("fullchain_path", params["cert_mode"])):
        path = params[name]
        if path and os.path.exists(path):
            args = module.load_file_common_arguments(params, path=path)
            args["mode"] = mode
            changed = module.set_fs_attributes_if_different(args, changed)

    result = dict(
        changed=changed,
        reasons=outcome["reasons"],
        key_generated=outcome["key_generated"],
        cert_path=params["cert_path"],
        key_path=params["key_path"],
        chain_path=params["chain_path"],
        fullchain_path=params["fullchain_path"],
        differences=[],
    )
    result.update(outcome["before"] if module.check_mode else outcome["after"])
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = dict(before=outcome["before"], after=outcome["after"])
    # The units (the renewal agent's timer) once the certificate is in place.
    try:
        units = keep_units(module, params["units"], params["daemon_reload"])
    except UnitsError as exc:
        result["units"] = dict((key, value) for key, value in exc.result.items() if key != "changed")
        module.fail_json(msg="The certificate is kept, but %s" % exc, **result)
    result["changed"] = result["changed"] or units.pop("changed")
    result["units"] = units
    module.exit_json(**result)


def main():
    module = VaultModule(
        argument_spec=argument_spec(),
        # hvac only to issue: a re-run with nothing to do reads the CA without it.
        hvac_required=False,
        supports_check_mode=True,
        add_file_common_args=True,
        mutually_exclusive=[("approle_file", option) for option in
                            sorted(APPROLE_FILE_KEYS) + ["auth_method", "token"]],
        required_one_of=[("url", "approle_file"), ("role_name", "approle_file")],
    )
    problem = input_problem(module.params["units"])
    if problem:
        module.fail_json(msg=problem)
    # Before the AppRole file and the library: on a host that lacks them, the caller
    # puts them there (prerequisites) and calls again.
    found = prerequisite_differences(module)
    if found:
        module.exit_json(changed=False, differences=found, **dict(
            (name, module.params[name]) for name in ("cert_path", "key_path", "chain_path", "fullchain_path")))
    load_approle_file(module)
    if pki.CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=pki.CRYPTOGRAPHY_IMPORT_ERROR
        )
    run(module)


if __name__ == "__main__":
    main()
