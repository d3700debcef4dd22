# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""A PKI mount's CA, its URLs and its CRL settings, as ``vault_pki_ca`` and ``vault_pki``
keep them: ``ensure_ca`` creates the CA when the mount has none (never replaces one) and
brings the URLs in line; ``ensure_crl`` brings the CRL settings in line. Both read first,
write only what differs and honour check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_read,
    api_write,
    duration_seconds,
)

__all__ = ["CA_OPTIONS", "CRL_OPTIONS", "ensure_ca", "ensure_crl", "pem_serial_number"]

# The options of a CA (vault_pki_ca's own, and each CA of vault_pki).
CA_OPTIONS = dict(
    common_name=dict(type="str"),
    ttl=dict(type="str"),
    key_type=dict(type="str", choices=["ec", "rsa", "ed25519"], default="ec"),
    key_bits=dict(type="int", default=256),
    issuing_certificates=dict(type="list", elements="str"),
    crl_distribution_points=dict(type="list", elements="str"),
)
# The CRL settings of a mount (<mount>/config/crl), as Vault names them.
CRL_OPTIONS = dict(
    expiry=dict(type="str"),
    auto_rebuild=dict(type="bool"),
    auto_rebuild_grace_period=dict(type="str"),
    disable=dict(type="bool"),
)
CRL_DURATIONS = ("expiry", "auto_rebuild_grace_period")
URL_KEYS = ("issuing_certificates", "crl_distribution_points")


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
    import hvac.exceptions  # pylint: disable=import-outside-toplevel

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
    return {key: list(data.get(key) or []) for key in URL_KEYS}


def _create_ca(module, client, params, mount, ca_type, issuer):
    key = {"key_type": params["key_type"], "key_bits": params["key_bits"]}
    if ca_type == "root":
        body = dict(key, common_name=params["common_name"])
        if params["ttl"]:
            body["ttl"] = params["ttl"]
        try:
            data = api_write(client, "%s/root/generate/internal" % mount, body)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "generating the root CA in %s" % mount)
        return data["certificate"]

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


def ensure_ca(module, client, params, mount, ca_type="root", issuer=None, mounted=True, name="common_name"):
    """The CA of ``mount`` (created when it has none: a root, or an intermediate signed by
    the CA of ``issuer``) and its URLs (the ones ``params`` sets). ``mounted=False``: the
    mount does not exist yet (check mode), so nothing is read. ``name`` is how a missing
    common name is named in the message.

    Returns ``(changed, before, after)``; ``after`` holds ``certificate`` (None in check
    mode when it would be created), ``serial_number`` and the two URL lists."""
    certificate = _read_ca(module, client, mount) if mounted else None
    urls_before = _read_urls(module, client, mount) if mounted else {key: [] for key in URL_KEYS}
    before = dict(urls_before, serial_number=pem_serial_number(certificate))
    changed = False

    if certificate is None:
        if not params["common_name"]:
            module.fail_json(msg="%s has no CA yet; %s is required to create one" % (mount, name))
        changed = True
        if not module.check_mode:
            certificate = _create_ca(module, client, params, mount, ca_type, issuer)

    urls_after = dict(urls_before)
    for key in URL_KEYS:
        if params[key] is not None:
            urls_after[key] = list(params[key])
    if urls_after != urls_before:
        changed = True
        if not module.check_mode:
            try:
                api_write(client, "%s/config/urls" % mount, urls_after)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "writing %s/config/urls" % mount)

    after = dict(urls_after, certificate=certificate, serial_number=pem_serial_number(certificate))
    return changed, before, after


def _same(key, wanted, live):
    if key in CRL_DURATIONS and live not in (None, ""):
        try:
            return duration_seconds(wanted) == duration_seconds(live)
        except ValueError:
            pass
    return wanted == live


def ensure_crl(module, client, mount, wanted, mounted=True):
    """The CRL settings of ``mount`` (the keys of CRL_OPTIONS that ``wanted`` sets, not
    None; durations compared in seconds). Returns the keys that differed (and were, or
    would be, written)."""
    wanted = {key: value for key, value in wanted.items() if value is not None}
    live = {}
    if mounted:
        try:
            live = api_read(client, "%s/config/crl" % mount) or {}
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "reading %s/config/crl" % mount)
    changed_keys = sorted(key for key, value in wanted.items() if not _same(key, value, live.get(key)))
    if changed_keys and not module.check_mode:
        try:
            api_write(client, "%s/config/crl" % mount, wanted)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "writing %s/config/crl" % mount)
    return changed_keys
