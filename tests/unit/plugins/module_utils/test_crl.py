"""Unit tests for plugins/module_utils/_crl.py (the CRL decisions of the renewal agent)
and the pure decision of the module vault_pki_revoke, with real CRLs and certificates."""

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mailmesh.imap.plugins.module_utils import _crl as crl
from ansible_collections.mailmesh.imap.plugins.modules.vault_pki_revoke import classify

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_crl(issuer="mailmesh issuing CA", next_in=3600, serials=()):
    builder = (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer))
               .last_update(NOW - datetime.timedelta(seconds=60))
               .next_update(NOW + datetime.timedelta(seconds=next_in)))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build())
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_cert(cn, days=1):
    return (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name("ca"))
            .public_key(KEY.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .sign(KEY, hashes.SHA256()))


def test_split_and_facts():
    data = b"junk\n" + make_crl("root", serials=[5]) + make_crl("int", serials=[7, 8])
    blocks = crl.split_pem_crls(data)
    assert len(blocks) == 2
    facts = [crl.crl_facts(block) for block in blocks]
    assert [f["issuer"] for f in facts] == ["CN=root", "CN=int"]
    assert [f["revoked"] for f in facts] == [1, 2] and facts[1]["serials"] == ["7", "8"]
    assert facts[0]["next_update"] == NOW + datetime.timedelta(seconds=3600)
    with pytest.raises(crl.CrlError, match="not terminated"):
        crl.split_pem_crls(b"-----BEGIN X509 CRL-----\nabc")
    with pytest.raises(crl.CrlError, match="not a readable CRL"):
        crl.crl_facts(b"-----BEGIN X509 CRL-----\nabc\n-----END X509 CRL-----\n")


@pytest.mark.parametrize("next_in,margin,expected,why", [
    (3600, 600, True, ""),
    (300, 600, False, "within the 600 s margin"),
    (-1, 0, False, "EXPIRED at"),
])
def test_verdict(next_in, margin, expected, why):
    facts = [crl.crl_facts(make_crl(next_in=next_in))]
    check, reason = crl.crl_verdict(facts, NOW, margin, expected=1)
    assert check is expected and why in reason


def test_verdict_needs_a_crl_per_ca():
    assert crl.crl_verdict([], NOW, 0) == (False, "no CRL at hand")
    facts = [crl.crl_facts(make_crl())]
    check, reason = crl.crl_verdict(facts, NOW, 0, expected=2)
    assert not check and "one per CA in the chain" in reason


def test_listener_settings():
    assert crl.nginx_snippet("/t/crl.pem", True).decode().splitlines()[-1] == "ssl_crl /t/crl.pem;"
    open_text = crl.nginx_snippet("/t/crl.pem", False, "the CRL\n expired").decode()
    assert "ssl_crl" not in open_text.replace("# Managed", "") and "Fail-open: no CRL is checked (the CRL expired)" in open_text
    # The device port's own session cache, named after the CRL it was filled under.
    cached = crl.nginx_snippet("/t/crl.pem", True, session_cache="10m", crl_digest="ab" * 32).decode()
    assert cached.splitlines()[-1] == "ssl_session_cache shared:mailmesh_device_%s:10m;" % ("ab" * 8)
    assert "ssl_crl /t/crl.pem;" in cached
    other = crl.nginx_snippet("/t/crl.pem", True, session_cache="10m", crl_digest="cd" * 32).decode()
    assert other.splitlines()[-1] != cached.splitlines()[-1]
    assert crl.nginx_snippet("/t/crl.pem", False, "gone", session_cache="1m").decode().splitlines()[-1] == (
        "ssl_session_cache shared:mailmesh_device_open:1m;")
    assert "ssl_session_cache" not in crl.nginx_snippet("/t/crl.pem", True, crl_digest="ab" * 32).decode()
    with_crl = json.loads(crl.envoy_validation("/t/ca.pem", "/t/crl.pem", "/t", "mailmesh_ca", True))
    context = with_crl["resources"][0]["validation_context"]
    assert context == {"trusted_ca": {"filename": "/t/ca.pem"}, "watched_directory": {"path": "/t"},
                       "crl": {"filename": "/t/crl.pem"}, "only_verify_leaf_cert_crl": False}
    without = json.loads(crl.envoy_validation("/t/ca.pem", "/t/crl.pem", "/t", "mailmesh_ca", False))
    assert "crl" not in without["resources"][0]["validation_context"]


def test_fetch_tries_the_next_node():
    good = make_crl()

    def getter(url):
        if "bad" in url:
            raise OSError("connection refused")
        return good

    data, node, problems = crl.fetch_crls(["https://bad:8200", "https://ok:8200/"], ["pki", "pki_int"], None,
                                          getter=getter)
    assert node == "https://ok:8200" and data == good + good
    assert problems == ["https://bad:8200: connection refused"]
    with pytest.raises(crl.CrlError, match="no Vault node served the CRLs of pki"):
        crl.fetch_crls(["https://bad:8200"], ["pki"], None, getter=getter)


def test_classify_by_common_name():
    lost, lost_old, lost_done, other = make_cert("pi17"), make_cert("pi17", days=-0.5), make_cert("pi17"), make_cert("pi18")
    entries = [("aa", {}, lost), ("bb", {}, lost_old), ("cc", {"revocation_time": 1700000000}, lost_done),
               ("dd", {}, other), ("ee", {}, None)]
    revoke, already, expired = classify(entries, ["pi17"], NOW)
    assert [item["serial"] for item in revoke] == ["aa"] and revoke[0]["common_name"] == "pi17"
    assert already == ["cc"] and expired == 1
