# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Pure certificate helpers for ``vault_pki_cert``: parsing, names, keys, renewal.

Everything here works on bytes and ``cryptography`` objects and never touches files or
the network, so unit tests call it directly with real certificates. It runs on
Debian 12's ``python3-cryptography`` (38.0) as well as current releases: nothing newer
than 38.0's API is required (``not_valid_after_utc`` is used only when present).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import re
import traceback
from typing import Any, Dict, List, Optional, Sequence, Union

from ansible_collections.mailmesh.imap.plugins.module_utils._names import (
    join_names,
    normalize_names,
)

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()  # type: Optional[str]
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

__all__ = [
    "CRYPTOGRAPHY_IMPORT_ERROR",
    "MISSING",
    "UNREADABLE",
    "REASONS",
    "DurationError",
    "parse_duration",
    "utc_iso",
    "load_certificates",
    "load_private_key",
    "not_before",
    "not_after",
    "serial_hex",
    "cert_names",
    "cert_metadata",
    "key_matches_cert",
    "key_fits",
    "effective_key_bits",
    "check_key_spec",
    "generate_private_key",
    "private_key_pem",
    "certificate_pem",
    "build_csr",
    "issued_by",
    "without_roots",
    "sign_request_params",
    "names_differ",
    "renewal_reasons",
]

# Sentinels for a file's state when it could not be parsed into an object.
MISSING = "missing"
UNREADABLE = "unreadable"

# Every reason renewal_reasons() can return, in the order it reports them.
REASONS = (
    "forced",
    "missing",
    "unreadable",
    "key_type_changed",
    "key_mismatch",
    "names_changed",
    "expiring",
    "issuer_changed",
    "chain_mismatch",
    "revoked",
)

DEFAULT_KEY_BITS = {"ec": 256, "rsa": 2048}
EC_CURVES = {256: "SECP256R1", 384: "SECP384R1", 521: "SECP521R1"}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class DurationError(ValueError):
    """A duration option could not be understood."""


def parse_duration(value):
    # type: (Union[int, str, None]) -> Optional[int]
    """Seconds in a duration: an int, digits (seconds) or units like ``1d12h``, ``30m``.

    Units: s, m, h, d, w. ``None`` and ``''`` give ``None``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DurationError("not a duration: %r" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise DurationError("a duration cannot be negative: %r" % (value,))
        return value
    text = str(value).strip().lower()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    pos = 0
    total = 0
    for match in _DURATION_RE.finditer(text):
        if text[pos:match.start()].strip():
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise DurationError(
            "not a duration: %r (use seconds or units s, m, h, d, w, e.g. 24h or 1d12h)"
            % (value,)
        )
    return total


def _utc(value):
    # type: (datetime.datetime) -> datetime.datetime
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def utc_iso(value):
    # type: (datetime.datetime) -> str
    """ISO 8601 in UTC with a ``Z``: ``2026-01-31T12:00:00Z``."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_before(cert):
    # type: (x509.Certificate) -> datetime.datetime
    value = getattr(cert, "not_valid_before_utc", None)  # cryptography >= 42
    return value if value is not None else _utc(cert.not_valid_before)


def not_after(cert):
    # type: (x509.Certificate) -> datetime.datetime
    value = getattr(cert, "not_valid_after_utc", None)  # cryptography >= 42
    return value if value is not None else _utc(cert.not_valid_after)


def load_certificates(data):
    # type: (Union[bytes, str]) -> List[x509.Certificate]
    """All PEM certificates in ``data``, in order. Raises ValueError if there are none
    or one does not parse."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    blocks = _PEM_CERT_RE.findall(data)
    if not blocks:
        raise ValueError("no PEM certificate found")
    return [x509.load_pem_x509_certificate(block) for block in blocks]


def without_roots(certs):
    # type: (List[x509.Certificate]) -> List[x509.Certificate]
    """The CA certificates a server sends after its own: ``certs`` without the
    self-signed ones (the root, which clients hold already and TLS does not need). When
    only self-signed ones are left (a certificate issued by the root itself) they stay,
    so the chain file is never empty."""
    kept = [cert for cert in certs if cert.issuer != cert.subject]
    return kept or list(certs)


def load_private_key(data):
    # type: (bytes) -> Any
    """An unencrypted PEM private key; raises ValueError/TypeError if it is not one."""
    return serialization.load_pem_private_key(data, password=None)


def serial_hex(cert):
    # type: (x509.Certificate) -> str
    """The serial number as Vault prints it: lowercase hex pairs joined by colons."""
    text = "%x" % cert.serial_number
    if len(text) % 2:
        text = "0" + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def cert_names(cert):
    # type: (x509.Certificate) -> Dict[str, Any]
    """``common_name`` (or None), ``alt_names`` (DNS SANs) and ``ip_sans`` of a cert."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(cns[0].value) if cns else None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns, ips = [], []  # type: List[str], List[str]
    else:
        dns = [str(name) for name in san.get_values_for_type(x509.DNSName)]
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return {
        "common_name": common_name,
        "alt_names": normalize_names(dns),
        "ip_sans": _normalize_ips(ips),
    }


def cert_metadata(cert):
    # type: (x509.Certificate) -> Dict[str, Any]
    """What the module returns and diffs about a certificate: never key material."""
    meta = cert_names(cert)
    meta.update(
        serial_number=serial_hex(cert),
        not_before=utc_iso(not_before(cert)),
        not_after=utc_iso(not_after(cert)),
        issuer=cert.issuer.rfc4514_string(),
    )
    return meta


def _normalize_ips(ips):
    # type: (Optional[Sequence[str]]) -> List[str]
    """IP addresses in canonical text form, unique and sorted (invalid ones kept as text)."""
    cleaned = set()
    for ip in ips or []:
        text = str(ip).strip()
        if not text:
            continue
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            text = text.lower()
        cleaned.add(text)
    return sorted(cleaned)


def _public_der(public_key):
    # type: (Any) -> bytes
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_cert(key, cert):
    # type: (Any, x509.Certificate) -> bool
    """True if ``key`` (a private key) belongs to ``cert``'s public key."""
    return _public_der(key.public_key()) == _public_der(cert.public_key())


def effective_key_bits(key_type, key_bits):
    # type: (str, Optional[int]) -> int
    return key_bits or DEFAULT_KEY_BITS[key_type]


def key_fits(key, key_type, key_bits):
    # type: (Any, str, Optional[int]) -> bool
    """True if a private key has the wanted type and size (key_bits None = default)."""
    bits = effective_key_bits(key_type, key_bits)
    if key_type == "ec":
        return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == bits
    if key_type == "rsa":
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits
    return False


def check_key_spec(key_type, key_bits):
    # type: (str, Optional[int]) -> int
    """The effective key size, or ValueError naming the option if it cannot be used."""
    if key_type not in DEFAULT_KEY_BITS:
        raise ValueError("key_type=%r is not supported (use ec or rsa)" % (key_type,))
    bits = effective_key_bits(key_type, key_bits)
    if key_type == "ec" and bits not in EC_CURVES:
        raise ValueError("key_bits=%d is not supported for key_type=ec (use 256, 384 or 521)" % bits)
    if key_type == "rsa" and bits < 2048:
        raise ValueError("key_bits=%d is too small for key_type=rsa (minimum 2048)" % bits)
    return bits


def generate_private_key(key_type, key_bits):
    # type: (str, Optional[int]) -> Any
    """A new private key: ECDSA (P-256/P-384/P-521) or RSA (>= 2048 bits)."""
    bits = check_key_spec(key_type, key_bits)
    if key_type == "ec":
        return ec.generate_private_key(getattr(ec, EC_CURVES[bits])())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key):
    # type: (Any) -> bytes
    """PKCS#8 PEM, unencrypted (the file's mode protects it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert):
    # type: (x509.Certificate) -> bytes
    return cert.public_bytes(serialization.Encoding.PEM)


def build_csr(key, common_name, alt_names=None, ip_sans=None):
    # type: (Any, str, Optional[Sequence[str]], Optional[Sequence[str]]) -> str
    """A PEM CSR carrying the CN and the SANs (the PKI role ignores them, but the CSR
    then says what it asks for)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
    )
    dns = normalize_names(list(alt_names or []) + [common_name])
    sans = [x509.DNSName(name) for name in dns if not _is_ip(name)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _normalize_ips(ip_sans)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _is_ip(text):
    # type: (str) -> bool
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def issued_by(cert, ca_cert):
    # type: (x509.Certificate, x509.Certificate) -> bool
    """True if ``ca_cert`` names and signed ``cert`` (signature checked with its key)."""
    if cert.issuer != ca_cert.subject:
        return False
    public_key = ca_cert.public_key()
    hash_alg = cert.signature_hash_algorithm
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=padding.PSS.AUTO)
            else:
                pad = padding.PKCS1v15()
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, pad, hash_alg)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def sign_request_params(csr, common_name, alt_names=None, ip_sans=None, ttl=None):
    # type: (str, str, Optional[Sequence[str]], Optional[Sequence[str]], Optional[str]) -> Dict[str, str]
    """The body for ``<mount>/sign/<role>``: exactly csr and common_name, plus alt_names,
    ip_sans and ttl only when set. Host policies deny any other parameter."""
    params = {"csr": csr, "common_name": str(common_name)}
    joined = join_names(alt_names)
    if joined:
        params["alt_names"] = joined
    joined = join_names(ip_sans)
    if joined:
        params["ip_sans"] = joined
    if ttl:
        params["ttl"] = str(ttl)
    return params


def names_differ(cert, common_name, alt_names=None, ip_sans=None):
    # type: (x509.Certificate, str, Optional[Sequence[str]], Optional[Sequence[str]]) -> bool
    """True if the cert's CN, DNS SANs or IP SANs differ from the wanted ones.

    Vault adds the CN to the DNS SANs unless the role excludes it, so the CN is ignored
    on both sides of the DNS SAN comparison.
    """
    have = cert_names(cert)
    wanted_cn = str(common_name).strip().lower()
    if (have["common_name"] or "").lower() != wanted_cn:
        return True
    have_dns = set(have["alt_names"]) - {wanted_cn}
    wanted_dns = set(normalize_names(alt_names)) - {wanted_cn}
    if have_dns != wanted_dns:
        return True
    return set(have["ip_sans"]) != set(_normalize_ips(ip_sans))


def renewal_reasons(
    cert,  # type: Union[x509.Certificate, str]
    key,  # type: Any
    common_name,  # type: str
    alt_names=None,  # type: Optional[Sequence[str]]
    ip_sans=None,  # type: Optional[Sequence[str]]
    now=None,  # type: Optional[datetime.datetime]
    renew_before=None,  # type: Optional[int]
    ca_cert=None,  # type: Optional[x509.Certificate]
    chain=None,  # type: Union[List[x509.Certificate], str, None]
    fullchain=None,  # type: Union[List[x509.Certificate], str, None]
    key_type="ec",  # type: str
    key_bits=None,  # type: Optional[int]
    force=False,  # type: bool
):
    # type: (...) -> List[str]
    """Why the certificate must be (re)issued; an empty list means it is fine.

    ``cert`` and ``key`` are parsed objects or ``MISSING`` / ``UNREADABLE``; ``chain``
    and ``fullchain`` are lists of certificates, ``MISSING`` / ``UNREADABLE``, or None
    when the module does not manage that file. ``renew_before`` is in seconds; None
    means a third of the certificate's own lifetime. ``ca_cert`` is the mount's current
    issuing CA (None: not checked).
    """
    reasons = set()
    if force:
        reasons.add("forced")
    files = [cert, key] + [f for f in (chain, fullchain) if f is not None]
    for state in (MISSING, UNREADABLE):
        if any(isinstance(f, str) and f == state for f in files):
            reasons.add(state)

    key_ok = not isinstance(key, str)
    if key_ok and not key_fits(key, key_type, key_bits):
        reasons.add("key_type_changed")

    if not isinstance(cert, str):
        if key_ok and not key_matches_cert(key, cert):
            reasons.add("key_mismatch")
        if names_differ(cert, common_name, alt_names, ip_sans):
            reasons.add("names_changed")
        now = _utc(now or datetime.datetime.now(datetime.timezone.utc))
        start, end = not_before(cert), not_after(cert)
        if renew_before is None:
            margin = (end - start) / 3
        else:
            margin = datetime.timedelta(seconds=renew_before)
        if end - now <= margin:
            reasons.add("expiring")
        if ca_cert is not None:
            if not issued_by(cert, ca_cert):
                reasons.add("issuer_changed")
            elif isinstance(chain, list) and chain and chain[0] != ca_cert:
                reasons.add("issuer_changed")
        if isinstance(fullchain, list):
            if fullchain[0] != cert:
                reasons.add("chain_mismatch")
            elif isinstance(chain, list) and fullchain[1:] != chain:
                reasons.add("chain_mismatch")
        # A chain written before the root was left out: rewritten once, without it.
        for certs in (chain, (fullchain[1:] if isinstance(fullchain, list) else None)):
            if isinstance(certs, list) and without_roots(certs) != certs:
                reasons.add("chain_mismatch")
    return [reason for reason in REASONS if reason in reasons]
