# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Certificate revocation lists for the listeners that check client certificates.

The on-host agent (``mailmesh-cert-renew``) fetches the CRL of every CA in the chain
(the root's and the issuing intermediate's) from Vault's unauthenticated
``<mount>/crl/pem`` endpoints, keeps them in one PEM file beside the listener's
certificate, and writes the listener's CRL setting: an NGINX snippet (``ssl_crl``) or an
Envoy SDS validation context (``crl``). The decisions are pure functions here; the agent
does the I/O.

Fail-open: a CRL that has expired, or expires within the margin, is left out of the
listener's setting (every certificate the CA signed is accepted again, as before the CRL
existed) rather than making the TLS library refuse every client. With a CRL lifetime
longer than the longest certificate lifetime plus the margin, a certificate listed in
the last CRL the host holds has itself expired by then, so failing open re-admits
nothing that was revoked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import ssl
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple

import urllib.error
import urllib.request

try:
    from cryptography import x509
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()  # type: Optional[str]
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

__all__ = [
    "CrlError",
    "split_pem_crls",
    "crl_facts",
    "crl_verdict",
    "nginx_snippet",
    "envoy_validation",
    "fetch_crls",
]

BEGIN = b"-----BEGIN X509 CRL-----"
END = b"-----END X509 CRL-----"
FORMATS = ("nginx", "envoy")


class CrlError(Exception):
    """A CRL that cannot be fetched or read; the message names the source."""


def _utc(value):
    # type: (datetime.datetime) -> datetime.datetime
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value


def split_pem_crls(data):
    # type: (bytes) -> List[bytes]
    """Every ``X509 CRL`` PEM block in data, in order (other text is ignored)."""
    blocks = []
    rest = data
    while True:
        start = rest.find(BEGIN)
        if start < 0:
            return blocks
        end = rest.find(END, start)
        if end < 0:
            raise CrlError("a CRL block is not terminated (%s missing)" % END.decode())
        blocks.append(rest[start:end + len(END)] + b"\n")
        rest = rest[end + len(END):]


def crl_facts(block):
    # type: (bytes) -> Dict[str, Any]
    """Issuer, this and next update, and the count of revoked serials of one PEM CRL."""
    try:
        crl = x509.load_pem_x509_crl(block)
    except ValueError as exc:
        raise CrlError("not a readable CRL (%s)" % exc)
    this_update = getattr(crl, "last_update_utc", None) or _utc(crl.last_update)
    next_update = getattr(crl, "next_update_utc", None) or (
        _utc(crl.next_update) if crl.next_update is not None else None)
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "this_update": this_update,
        "next_update": next_update,
        "revoked": len(list(crl)),
        "serials": sorted("%x" % entry.serial_number for entry in crl),
        "crl": crl,
    }


def crl_verdict(facts, now, margin_seconds, expected=None):
    # type: (Sequence[Dict[str, Any]], datetime.datetime, float, Optional[int]) -> Tuple[bool, str]
    """(check, why): whether a listener may check these CRLs, and the reason if not.

    Every CRL must have a next update further away than the margin; ``expected`` is the
    number of CAs in the chain (a CRL missing for one CA would make the check refuse
    every client of that chain).
    """
    if not facts:
        return False, "no CRL at hand"
    if expected is not None and len(facts) < expected:
        return False, "%d CRL(s) at hand, %d expected (one per CA in the chain)" % (len(facts), expected)
    for fact in facts:
        next_update = fact.get("next_update")
        if next_update is None:
            return False, "the CRL of %s has no next update" % fact["issuer"]
        left = (next_update - now).total_seconds()
        if left <= 0:
            return False, "the CRL of %s EXPIRED at %s" % (fact["issuer"], next_update.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if left <= margin_seconds:
            return False, "the CRL of %s expires at %s, within the %d s margin" % (
                fact["issuer"], next_update.strftime("%Y-%m-%dT%H:%M:%SZ"), int(margin_seconds))
    return True, ""


def nginx_snippet(crl_path, check, why="", session_cache="", crl_digest=""):
    # type: (str, bool, str, str, str) -> bytes
    """The file NGINX includes in the device port's server block.

    With ``session_cache`` (an NGINX size), the listener gets its own TLS session cache
    whose name carries the CRL's digest: a resumed session is not checked against the
    CRL (the certificate was verified at the full handshake), so when the CRL changes
    the reload starts an empty cache and a revoked device cannot resume its way back in.
    """
    head = "# Managed by the mailmesh-cert-renew agent (mailmesh.imap): the CRL check of this listener.\n"
    if check:
        text = head + "ssl_crl %s;\n" % crl_path
    else:
        text = head + ("# Fail-open: no CRL is checked (%s); every certificate the CA signed is accepted.\n"
                       % " ".join(why.split()))
    if session_cache:
        text += ("# Sessions resumed here skip the CRL: the cache is new whenever the CRL changes.\n"
                 "ssl_session_cache shared:mailmesh_device_%s:%s;\n"
                 % ((crl_digest or "none")[:16] if check else "open", session_cache))
    return text.encode("utf-8")


def envoy_validation(ca_path, crl_path, watch_dir, secret_name, check):
    # type: (str, str, str, str, bool) -> bytes
    """The SDS file (JSON) of Envoy's validation context, with the CRL or without it."""
    context = {
        "trusted_ca": {"filename": ca_path},
        "watched_directory": {"path": watch_dir},
    }  # type: Dict[str, Any]
    if check:
        # Both CAs' CRLs are in the file: the whole chain is checked.
        context["crl"] = {"filename": crl_path}
        context["only_verify_leaf_cert_crl"] = False
    secret = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": secret_name,
        "validation_context": context,
    }
    return (json.dumps({"resources": [secret]}, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _get(url, context, timeout):
    # type: (str, ssl.SSLContext, float) -> bytes
    # The same standard-library opener as _vault_client's unauthenticated_get.
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


def fetch_crls(urls, mounts, ca_cert, timeout=10, getter=None):
    # type: (Sequence[str], Sequence[str], Optional[str], float, Any) -> Tuple[bytes, str, List[str]]
    """(PEM of every mount's CRL, the node that answered, problems with the others).

    Vault serves CRLs without a token. The nodes are tried in order; the first that
    answers every mount with a readable CRL wins. CrlError names every node and why
    when none does.
    """
    context = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
    get = getter or (lambda url: _get(url, context, timeout))
    problems = []
    for base in urls:
        base = base.rstrip("/")
        parts = []
        try:
            for mount in mounts:
                url = "%s/v1/%s/crl/pem" % (base, mount.strip("/"))
                data = get(url)
                blocks = split_pem_crls(data)
                if len(blocks) != 1:
                    raise CrlError("%s answered %d CRL blocks, expected 1" % (url, len(blocks)))
                crl_facts(blocks[0])
                parts.append(blocks[0])
        except urllib.error.HTTPError as exc:
            problems.append("%s: HTTP %s" % (base, exc.code))
            continue
        except (OSError, CrlError, ValueError) as exc:  # URLError and SSLError are OSErrors
            problems.append("%s: %s" % (base, getattr(exc, "reason", None) or exc))
            continue
        return b"".join(parts), base, problems
    raise CrlError("no Vault node served the CRLs of %s (%s)" % (", ".join(mounts), "; ".join(problems)))
