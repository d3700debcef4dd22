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
    (V(issuer_changed)), or the full chain does not match the certificate and chain
    (V(chain_mismatch))."
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
        C(pki_role) and, optionally, C(ca_cert)."
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
      - Where to write the CA chain (issuing CA first). Not written when omitted.
    type: path
  fullchain_path:
    description:
      - Where to write the certificate followed by the CA chain. Not written when omitted.
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
notes:
  - O(mode) defaults to V(0600) for the key file (not the umask-derived default of other
    file modules).
  - Parameters O(owner) and O(group) apply to all written files.
  - Vault's error is reported with the Vault address and the cause when it is
    unreachable, sealed, fails TLS verification, denies permission, does not know
    O(role_name), or refuses a name for the role.
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
    chain_path: /etc/envoy/tls/ca.pem
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
      V(chain_mismatch).
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
  sample: /etc/envoy/tls/ca.pem
fullchain_path:
  description: Path of the full chain file, if managed.
  returned: always
  type: str
  sample: /etc/envoy/tls/fullchain.pem
"""

import json
import os
import tempfile
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki
from ansible_collections.mailmesh.imap.plugins.module_utils._names import join_names
from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_auth import AUTH_METHODS


# What approle_file gives: the file's key for each option.
APPROLE_FILE_KEYS = dict(url="url", role_id="role_id", secret_id="secret_id",
                         approle_mount_point="approle_mount", engine_mount_point="mount",
                         role_name="pki_role")


def argument_spec():
    spec = VaultModule.generate_argspec(
        approle_file=dict(type="path"),
        engine_mount_point=dict(type="str", default="pki_int"),
        role_name=dict(type="str"),
        common_name=dict(type="str", required=True),
        alt_names=dict(type="list", elements="str", default=[]),
        ip_sans=dict(type="list", elements="str", default=[]),
        ttl=dict(type="str"),
        renew_before=dict(type="str"),
        cert_path=dict(type="path", required=True),
        key_path=dict(type="path", required=True, no_log=False),
        chain_path=dict(type="path"),
        fullchain_path=dict(type="path"),
        cert_mode=dict(type="raw", default="0644"),
        key_type=dict(type="str", default="ec", choices=["ec", "rsa"], no_log=False),
        key_bits=dict(type="int", no_log=False),
        rotate_key=dict(type="bool", default=False, no_log=False),
        force=dict(type="bool", default=False),
    )
    spec["url"] = dict(spec["url"], required=False)
    return spec


def load_approle_file(module):
    """Fill the connection and login options from approle_file, read on the host."""
    path = module.params["approle_file"]
    if not path:
        return
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        module.fail_json(msg="approle_file %s: cannot read it as JSON (%s); the Vault tier "
                             "(the vault_server role's client entry point) writes it" % (path, to_native(exc)))
    if not isinstance(data, dict):
        module.fail_json(msg="approle_file %s: expected a JSON object" % path)
    missing = sorted(key for key in APPROLE_FILE_KEYS.values() if not data.get(key))
    if missing:
        module.fail_json(msg="approle_file %s lacks %s" % (path, ", ".join(missing)))
    module.no_log_values.add(str(data["secret_id"]))
    for option, key in APPROLE_FILE_KEYS.items():
        module.params[option] = str(data[key])
    module.params["auth_method"] = "approle"
    if not module.params["ca_cert"] and data.get("ca_cert"):
        module.params["ca_cert"] = str(data["ca_cert"])


class PkiCert:
    """Read the files, decide, and (unless in check mode) issue and write."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.mount = self.params["engine_mount_point"].strip("/")
        self.role = self.params["role_name"]
        self.changed = False

    # ---- reading ---------------------------------------------------------------

    @staticmethod
    def _read(path, parse):
        """Parsed content, or pki.MISSING / pki.UNREADABLE."""
        if not os.path.exists(path):
            return pki.MISSING
        try:
            with open(path, "rb") as handle:
                return parse(handle.read())
        except Exception:  # pylint: disable=broad-except
            return pki.UNREADABLE

    def read_files(self):
        def one_cert(data):
            certs = pki.load_certificates(data)
            return certs[0]

        state = dict(
            cert=self._read(self.params["cert_path"], one_cert),
            key=self._read(self.params["key_path"], pki.load_private_key),
            chain=None,
            fullchain=None,
        )
        for name in ("chain", "fullchain"):
            path = self.params[name + "_path"]
            if path:
                state[name] = self._read(path, pki.load_certificates)
        return state

    def current_ca(self):
        """The mount's current issuing CA (read unauthenticated), or None if it has none."""
        what = "reading the issuing CA of PKI mount '%s' (%s/cert/ca)" % (self.mount, self.mount)
        try:
            # Same TLS client certificate as the login would use, in case the listener
            # requires one; no token. The standard library only: hvac and requests are
            # imported just when a certificate must be issued.
            method = AUTH_METHODS[self.params["auth_method"]](self.params)
            response = self.module.unauthenticated_get("%s/cert/ca" % self.mount, **method.client_kwargs())
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_vault(exc, what)
        data = _json(response).get("data") or {}
        pem = data.get("certificate") or ""
        if not pem.strip():
            return None
        try:
            return pki.load_certificates(pem)[0]
        except ValueError as exc:
            self.module.fail_json(msg="%s: Vault returned no usable certificate (%s)" % (what, exc))
        return None

    # ---- issuing ---------------------------------------------------------------

    def sign(self, key):
        params = self.params
        csr = pki.build_csr(key, params["common_name"], params["alt_names"], params["ip_sans"])
        body = pki.sign_request_params(
            csr, params["common_name"], params["alt_names"], params["ip_sans"], params["ttl"]
        )
        names = "common_name=%s" % params["common_name"]
        if body.get("alt_names"):
            names += ", alt_names=%s" % body["alt_names"]
        if body.get("ip_sans"):
            names += ", ip_sans=%s" % body["ip_sans"]
        what = "signing a CSR (%s) with PKI role '%s' at %s/sign/%s" % (
            names, self.role, self.mount, self.role
        )
        client = self.module.client()
        invalid_request = self.module.hvac().exceptions.InvalidRequest
        try:
            response = client.adapter.post("/v1/%s/sign/%s" % (self.mount, self.role), json=body)
        except invalid_request as exc:
            self.module.fail_json(msg=self.explain_bad_request(exc, names))
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_vault(exc, what)
        data = _json(response).get("data") or {}
        if not data.get("certificate"):
            self.module.fail_json(msg="Vault at %s returned no certificate while %s" % (self.module.url, what))
        cert = pki.load_certificates(data["certificate"])[0]
        chain_pems = data.get("ca_chain") or ([data["issuing_ca"]] if data.get("issuing_ca") else [])
        chain = []
        for pem in chain_pems:
            chain.extend(pki.load_certificates(pem))
        return cert, chain

    def explain_bad_request(self, exc, names):
        errors = "; ".join(" ".join(str(e).split()) for e in (getattr(exc, "errors", None) or [exc]))
        lowered = errors.lower()
        where = "Vault at %s" % self.module.url
        if "unknown role" in lowered or "no role found" in lowered:
            return (
                "PKI role '%s' does not exist in mount '%s' (%s): %s"
                % (self.role, self.mount, where, errors)
            )
        if "not allowed" in lowered or "not permitted" in lowered:
            return (
                "PKI role '%s' in mount '%s' forbids the requested names (%s) (%s): %s"
                % (self.role, self.mount, names, where, errors)
            )
        return (
            "%s rejected the request to sign a CSR (%s) with PKI role '%s' in mount '%s': %s"
            % (where, names, self.role, self.mount, errors)
        )

    # ---- writing ---------------------------------------------------------------

    def file_args(self, path, mode):
        """File attributes for path; mode None means the key file's mode."""
        args = self.module.load_file_common_arguments(self.params, path=path)
        if mode is None:
            mode = self.params["mode"] if self.params["mode"] is not None else "0600"
        args["mode"] = mode
        return args

    def write(self, path, content, mode=None):
        """Write content atomically (unless identical) and set owner/group/mode."""
        file_args = self.file_args(path, mode)
        try:
            with open(path, "rb") as handle:
                same = handle.read() == content
        except (IOError, OSError):
            same = False
        if not same:
            if os.path.exists(path):
                # atomic_move copies the old file's attributes: fix them first.
                self.module.set_fs_attributes_if_different(file_args, False)
            directory = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(prefix=".ansible_tmp", dir=directory)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                # A new file would get 0666 & ~umask for a moment: keep it private.
                old_umask = os.umask(0o077)
                try:
                    self.module.atomic_move(
                        tmp, os.path.abspath(path), unsafe_writes=self.params["unsafe_writes"]
                    )
                finally:
                    os.umask(old_umask)
            except Exception as exc:  # pylint: disable=broad-except
                if os.path.exists(tmp):
                    os.unlink(tmp)
                self.module.fail_json(
                    msg="could not write %s: %s" % (path, to_native(exc)),
                    exception=traceback.format_exc(),
                )
            self.changed = True
        self.changed = self.module.set_fs_attributes_if_different(file_args, self.changed)

    def fix_attributes(self, path, mode=None):
        if path and os.path.exists(path):
            self.changed = self.module.set_fs_attributes_if_different(
                self.file_args(path, mode), self.changed
            )

    # ---- main ------------------------------------------------------------------

    def run(self):
        params = self.params
        module = self.module
        try:
            renew_before = pki.parse_duration(params["renew_before"])
        except pki.DurationError as exc:
            module.fail_json(msg="renew_before: %s" % exc)
        try:
            pki.check_key_spec(params["key_type"], params["key_bits"])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        cert_mode = params["cert_mode"]
        for name in ("key_path", "cert_path", "chain_path", "fullchain_path"):
            path = params[name]
            if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                module.fail_json(
                    msg="%s: directory %s does not exist" % (name, os.path.dirname(os.path.abspath(path)))
                )

        state = self.read_files()
        ca_cert = self.current_ca()
        reasons = pki.renewal_reasons(
            state["cert"], state["key"], params["common_name"],
            alt_names=params["alt_names"], ip_sans=params["ip_sans"],
            renew_before=renew_before, ca_cert=ca_cert,
            chain=state["chain"], fullchain=state["fullchain"],
            key_type=params["key_type"], key_bits=params["key_bits"], force=params["force"],
        )
        before = _metadata(state["cert"])
        if renew_before is not None and before:
            lifetime = pki.not_after(state["cert"]) - pki.not_before(state["cert"])
            if renew_before >= lifetime.total_seconds():
                module.warn(
                    "renew_before (%ss) is not shorter than the certificate's lifetime (%ss): "
                    "it will be reissued on every run" % (renew_before, int(lifetime.total_seconds()))
                )

        key = state["key"]
        key_generated = bool(reasons) and (
            params["rotate_key"] or isinstance(key, str)
            or not pki.key_fits(key, params["key_type"], params["key_bits"])
        )
        after = before
        if reasons and module.check_mode:
            self.changed = True
            after = {
                "serial_number": "(new)",
                "common_name": params["common_name"],
                "alt_names": join_names(params["alt_names"] + [params["common_name"]]).split(","),
                "ip_sans": [n for n in join_names(params["ip_sans"]).split(",") if n],
                "issuer": ca_cert.subject.rfc4514_string() if ca_cert is not None else None,
            }
        elif reasons:
            if key_generated:
                key = pki.generate_private_key(params["key_type"], params["key_bits"])
            cert, chain = self.sign(key)
            if key_generated:
                self.write(params["key_path"], pki.private_key_pem(key))
            self.write(params["cert_path"], pki.certificate_pem(cert), cert_mode)
            chain_pem = b"".join(pki.certificate_pem(c) for c in chain)
            if params["chain_path"]:
                self.write(params["chain_path"], chain_pem, cert_mode)
            if params["fullchain_path"]:
                self.write(params["fullchain_path"], pki.certificate_pem(cert) + chain_pem, cert_mode)
            after = _metadata(cert)
        # Attributes of files not rewritten (owner/group/mode may still differ).
        self.fix_attributes(params["key_path"])
        for name in ("cert_path", "chain_path", "fullchain_path"):
            self.fix_attributes(params[name], cert_mode)

        result = dict(
            changed=self.changed,
            reasons=reasons,
            key_generated=key_generated,
            cert_path=params["cert_path"],
            key_path=params["key_path"],
            chain_path=params["chain_path"],
            fullchain_path=params["fullchain_path"],
        )
        if module.check_mode:
            result.update(before)
        else:
            result.update(after)
        if module._diff:  # pylint: disable=protected-access
            result["diff"] = dict(before=before, after=after)
        module.exit_json(**result)


def _metadata(cert):
    if isinstance(cert, str):
        return {}
    return pki.cert_metadata(cert)


def _json(response):
    """hvac's JSONAdapter returns a dict for a 200 with JSON, else the Response."""
    if isinstance(response, dict):
        return response
    if hasattr(response, "json"):
        try:
            return response.json() or {}
        except ValueError:
            return {}
    return {}


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
    load_approle_file(module)
    if pki.CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=pki.CRYPTOGRAPHY_IMPORT_ERROR
        )
    PkiCert(module).run()


if __name__ == "__main__":
    main()
