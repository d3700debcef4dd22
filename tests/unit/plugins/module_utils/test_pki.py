"""Unit tests for plugins/module_utils/_pki.py with real certificates (no crypto mocks)."""

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn="test root", key=None, issuer=None):
    """A self-signed root, or with issuer=(key, cert) an intermediate it signs."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signing_key, issuer_name = (key, _name(cn)) if issuer is None else (issuer[0], issuer[1].subject)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=365))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca, cn="host1.example.org", dns=(), ips=(), key=None, days=30, start=None,
              vault_style=True):
    """A leaf signed by ca=(key, cert). vault_style adds the CN to the DNS SANs as Vault does."""
    ca_key, ca_cert = ca
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = start or NOW - datetime.timedelta(days=1)
    names = list(dns) + ([cn] if vault_style else [])
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def ca():
    return make_ca()


# ---- durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [
        (None, None), ("", None), (0, 0), (90, 90), ("90", 90), ("30m", 1800), ("24h", 86400),
        ("2d", 172800), ("1w", 604800), ("1d12h", 129600), ("1h 30m", 5400), ("10S", 10),
    ],
)
def test_parse_duration(value, seconds):
    assert pki.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["abc", "24x", "h", "-5", "1.5h", "24h junk", True, -1])
def test_parse_duration_rejects(value):
    with pytest.raises(pki.DurationError):
        pki.parse_duration(value)


def test_utc_iso_naive_and_aware():
    assert pki.utc_iso(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    cet = datetime.timezone(datetime.timedelta(hours=1))
    assert pki.utc_iso(datetime.datetime(2026, 1, 2, 4, 4, 5, tzinfo=cet)) == "2026-01-02T03:04:05Z"


# ---- parsing and names -----------------------------------------------------------


def test_load_certificates_chain_and_garbage(ca):
    _key, leaf = make_leaf(ca)
    pem = pki.certificate_pem(leaf) + b"junk between\n" + pki.certificate_pem(ca[1])
    certs = pki.load_certificates(pem)
    assert certs == [leaf, ca[1]]
    assert pki.load_certificates(pem.decode()) == [leaf, ca[1]]
    with pytest.raises(ValueError):
        pki.load_certificates(b"not a certificate")
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError):
        pki.load_certificates(broken)


def test_cert_names_and_metadata(ca):
    _key, leaf = make_leaf(ca, cn="host1.example.org", dns=["B.example.org", "a.example.org"],
                           ips=["192.0.2.1", "2001:db8::1"])
    names = pki.cert_names(leaf)
    assert names == {
        "common_name": "host1.example.org",
        "alt_names": ["a.example.org", "b.example.org", "host1.example.org"],
        "ip_sans": ["192.0.2.1", "2001:db8::1"],
    }
    meta = pki.cert_metadata(leaf)
    assert meta["not_after"] == pki.utc_iso(NOW + datetime.timedelta(days=29))
    assert meta["not_before"] == "2026-02-28T12:00:00Z"
    assert meta["issuer"] == "CN=test root"
    assert int(meta["serial_number"].replace(":", ""), 16) == leaf.serial_number
    assert all(len(part) == 2 for part in meta["serial_number"].split(":"))


def test_cert_without_sans(ca):
    _key, leaf = make_leaf(ca, vault_style=False)
    assert pki.cert_names(leaf)["alt_names"] == []
    assert pki.cert_names(leaf)["ip_sans"] == []


def test_names_differ(ca):
    _key, leaf = make_leaf(ca, cn="host1.example.org", dns=["imap.example.org"], ips=["192.0.2.1"])
    assert not pki.names_differ(leaf, "host1.example.org", ["imap.example.org"], ["192.0.2.1"])
    # order, case, duplicates and the CN listed again do not matter
    assert not pki.names_differ(
        leaf, "HOST1.example.org", ["IMAP.example.org", "host1.example.org", "imap.example.org"],
        ["192.0.2.1", "192.0.2.1"],
    )
    assert pki.names_differ(leaf, "host2.example.org", ["imap.example.org"], ["192.0.2.1"])
    assert pki.names_differ(leaf, "host1.example.org", [], ["192.0.2.1"])
    assert pki.names_differ(leaf, "host1.example.org", ["imap.example.org"], [])
    assert pki.names_differ(leaf, "host1.example.org", ["imap.example.org", "x.example.org"], ["192.0.2.1"])


def test_names_differ_role_excluding_cn_from_sans(ca):
    _key, leaf = make_leaf(ca, cn="host1.example.org", vault_style=False)
    assert not pki.names_differ(leaf, "host1.example.org")


def test_names_differ_ipv6_canonical(ca):
    _key, leaf = make_leaf(ca, ips=["2001:db8::1"])
    assert not pki.names_differ(leaf, "host1.example.org", [], ["2001:DB8:0:0::1"])


# ---- keys ------------------------------------------------------------------------


def test_key_matches_cert(ca):
    key, leaf = make_leaf(ca)
    other = ec.generate_private_key(ec.SECP256R1())
    assert pki.key_matches_cert(key, leaf)
    assert not pki.key_matches_cert(other, leaf)


def test_generate_and_fit():
    key = pki.generate_private_key("ec", None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert pki.key_fits(key, "ec", None) and pki.key_fits(key, "ec", 256)
    assert not pki.key_fits(key, "ec", 384)
    assert not pki.key_fits(key, "rsa", None)
    p384 = pki.generate_private_key("ec", 384)
    assert p384.curve.name == "secp384r1"
    rsa_key = pki.generate_private_key("rsa", None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    assert pki.key_fits(rsa_key, "rsa", 2048) and not pki.key_fits(rsa_key, "rsa", 3072)


@pytest.mark.parametrize("key_type, bits", [("ec", 512), ("ec", 2048), ("rsa", 1024), ("dsa", None)])
def test_bad_key_spec(key_type, bits):
    with pytest.raises(ValueError):
        pki.check_key_spec(key_type, bits)
    with pytest.raises(ValueError):
        pki.generate_private_key(key_type, bits)


def test_private_key_pem_roundtrip():
    key = pki.generate_private_key("ec", None)
    pem = pki.private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = pki.load_private_key(pem)
    assert loaded.private_numbers() == key.private_numbers()
    with pytest.raises((ValueError, TypeError)):
        pki.load_private_key(b"garbage")


# ---- CSR and request parameters --------------------------------------------------


def test_build_csr_carries_names():
    key = pki.generate_private_key("ec", None)
    pem = pki.build_csr(key, "host1.example.org", ["b.example.org", "A.example.org"], ["192.0.2.7"])
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "host1.example.org"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example.org", "b.example.org", "host1.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]
    assert csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "PRIVATE" not in pem


def test_sign_request_params_exact_keys():
    assert pki.sign_request_params("CSR", "h.example.org") == {"csr": "CSR", "common_name": "h.example.org"}
    assert pki.sign_request_params("CSR", "h.example.org", [], [], None) == {
        "csr": "CSR", "common_name": "h.example.org"
    }
    assert pki.sign_request_params(
        "CSR", "h.example.org", ["b.example.org", "A.example.org", "b.example.org"],
        ["192.0.2.2", "192.0.2.1"], "72h",
    ) == {
        "csr": "CSR",
        "common_name": "h.example.org",
        "alt_names": "a.example.org,b.example.org",
        "ip_sans": "192.0.2.1,192.0.2.2",
        "ttl": "72h",
    }


# ---- issuer ----------------------------------------------------------------------


def test_issued_by(ca):
    _key, leaf = make_leaf(ca)
    assert pki.issued_by(leaf, ca[1])
    # same subject name, different key: a new root in the mount
    same_name = make_ca(cn="test root")
    assert not pki.issued_by(leaf, same_name[1])
    assert not pki.issued_by(leaf, make_ca(cn="other root")[1])


def test_issued_by_rsa_ca():
    rsa_ca = make_ca(cn="rsa root", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _key, leaf = make_leaf(rsa_ca)
    assert pki.issued_by(leaf, rsa_ca[1])
    assert not pki.issued_by(leaf, make_ca(cn="rsa root", key=rsa.generate_private_key(65537, 2048))[1])


# ---- renewal reasons -------------------------------------------------------------


def reasons(cert, key, **kwargs):
    kwargs.setdefault("now", NOW)
    return pki.renewal_reasons(cert, key, kwargs.pop("common_name", "host1.example.org"), **kwargs)


def test_fresh_certificate_needs_nothing(ca):
    key, leaf = make_leaf(ca, dns=["imap.example.org"], ips=["192.0.2.1"])
    assert reasons(leaf, key, alt_names=["imap.example.org"], ip_sans=["192.0.2.1"],
                   ca_cert=ca[1], chain=[ca[1]], fullchain=[leaf, ca[1]]) == []


def test_missing_and_unreadable(ca):
    key, leaf = make_leaf(ca)
    assert reasons(pki.MISSING, pki.MISSING) == ["missing"]
    assert reasons(leaf, pki.MISSING) == ["missing"]
    assert reasons(pki.UNREADABLE, key) == ["unreadable"]
    assert reasons(leaf, pki.UNREADABLE) == ["unreadable"]
    assert reasons(leaf, key, chain=pki.MISSING) == ["missing"]
    assert reasons(leaf, key, fullchain=pki.UNREADABLE) == ["unreadable"]
    assert reasons(pki.MISSING, pki.UNREADABLE) == ["missing", "unreadable"]


def test_forced(ca):
    key, leaf = make_leaf(ca)
    assert reasons(leaf, key, force=True) == ["forced"]


def test_names_changed(ca):
    key, leaf = make_leaf(ca)
    assert reasons(leaf, key, alt_names=["new.example.org"]) == ["names_changed"]
    assert reasons(leaf, key, common_name="other.example.org") == ["names_changed"]
    assert reasons(leaf, key, ip_sans=["192.0.2.9"]) == ["names_changed"]


def test_key_mismatch_and_type_change(ca):
    _key, leaf = make_leaf(ca)
    other = ec.generate_private_key(ec.SECP256R1())
    assert reasons(leaf, other) == ["key_mismatch"]
    key, leaf = make_leaf(ca)
    assert reasons(leaf, key, key_type="ec", key_bits=384) == ["key_type_changed"]
    assert reasons(leaf, key, key_type="rsa") == ["key_type_changed"]


def test_expiring_default_third_of_lifetime(ca):
    # 30-day certificate: renewed in its last 10 days
    key, leaf = make_leaf(ca, days=30, start=NOW - datetime.timedelta(days=19))
    assert reasons(leaf, key) == []
    key, leaf = make_leaf(ca, days=30, start=NOW - datetime.timedelta(days=20))
    assert reasons(leaf, key) == ["expiring"]
    key, leaf = make_leaf(ca, days=30, start=NOW - datetime.timedelta(days=40))  # expired
    assert reasons(leaf, key) == ["expiring"]


def test_expiring_renew_before(ca):
    key, leaf = make_leaf(ca, days=30, start=NOW - datetime.timedelta(days=28))  # 2 days left
    assert reasons(leaf, key, renew_before=86400) == []
    assert reasons(leaf, key, renew_before=2 * 86400) == ["expiring"]
    assert reasons(leaf, key, renew_before=0) == []
    # naive "now" is taken as UTC
    assert reasons(leaf, key, renew_before=3 * 86400, now=NOW.replace(tzinfo=None)) == ["expiring"]


def test_issuer_changed(ca):
    key, leaf = make_leaf(ca)
    new_root = make_ca(cn="test root")
    assert reasons(leaf, key, ca_cert=ca[1]) == []
    assert reasons(leaf, key, ca_cert=new_root[1]) == ["issuer_changed"]
    # the certificate is fine but the chain file still holds an older CA certificate
    assert reasons(leaf, key, ca_cert=ca[1], chain=[new_root[1]]) == ["issuer_changed"]
    # no CA in the mount (None): not checked
    assert reasons(leaf, key, ca_cert=None) == []


def test_chain_mismatch(ca):
    key, leaf = make_leaf(ca)
    _key, other_leaf = make_leaf(ca, key=key)
    assert reasons(leaf, key, ca_cert=ca[1], fullchain=[other_leaf, ca[1]]) == ["chain_mismatch"]
    assert reasons(leaf, key, ca_cert=ca[1], chain=[ca[1]], fullchain=[leaf]) == ["chain_mismatch"]
    assert reasons(leaf, key, ca_cert=ca[1], fullchain=[leaf]) == []


def test_reasons_are_ordered_and_known(ca):
    _key, leaf = make_leaf(ca, days=30, start=NOW - datetime.timedelta(days=29))
    other = ec.generate_private_key(ec.SECP256R1())
    got = reasons(leaf, other, force=True, alt_names=["x.example.org"], ca_cert=make_ca()[1])
    assert got == ["forced", "key_mismatch", "names_changed", "expiring", "issuer_changed"]
    assert set(got) <= set(pki.REASONS)


def test_without_roots_keeps_what_a_server_sends(ca):
    intermediate = make_ca("test intermediate", issuer=ca)
    assert pki.without_roots([intermediate[1], ca[1]]) == [intermediate[1]]
    assert pki.without_roots([intermediate[1]]) == [intermediate[1]]
    # a certificate issued by the root itself: the chain is the root, never empty
    assert pki.without_roots([ca[1]]) == [ca[1]]
    assert pki.without_roots([]) == []


def test_a_chain_that_still_holds_the_root_is_rewritten_once(ca):
    """Chain files written by earlier releases held Vault's ca_chain whole (intermediate
    and root): the next run renews once, and the new files leave the root out."""
    intermediate = make_ca("test intermediate", issuer=ca)
    key, leaf = make_leaf(intermediate)
    assert reasons(leaf, key, ca_cert=intermediate[1], chain=[intermediate[1]],
                   fullchain=[leaf, intermediate[1]]) == []
    assert reasons(leaf, key, ca_cert=intermediate[1], chain=[intermediate[1], ca[1]],
                   fullchain=[leaf, intermediate[1], ca[1]]) == ["chain_mismatch"]
    assert reasons(leaf, key, ca_cert=intermediate[1], fullchain=[leaf, intermediate[1], ca[1]]) == ["chain_mismatch"]
