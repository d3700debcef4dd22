"""Integration tests for mailmesh.imap.vault_pki_cert against a real OpenBao server.

Each test gets its own PKI mount (root CA + role) on the session's dev server, so tests
that rotate the CA do not disturb the others.
"""

import datetime
import json
import os
import socket
import stat
import sys
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.mailmesh.imap.tests.integration._support import Pki, api, approle, sign_policy

CN = "h1.example.org"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pki(bao):
    return Pki(bao)


class Files:
    def __init__(self, directory):
        self.dir = directory
        self.cert = str(directory / "cert.pem")
        self.key = str(directory / "key.pem")
        self.chain = str(directory / "chain.pem")
        self.fullchain = str(directory / "fullchain.pem")
        self.all = [self.cert, self.key, self.chain, self.fullchain]

    def read(self, path):
        with open(path, "rb") as handle:
            return handle.read()

    def cert_obj(self):
        return x509.load_pem_x509_certificate(self.read(self.cert))

    def key_obj(self):
        return serialization.load_pem_private_key(self.read(self.key), password=None)

    def public_der(self):
        return self.key_obj().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def files(tmp_path):
    return Files(tmp_path)


def module_args(pki, files, connection=None, **extra):
    args = dict(connection if connection is not None else pki.bao.connection())
    args.update(
        engine_mount_point=pki.mount, role_name=pki.role, common_name=CN,
        cert_path=files.cert, key_path=files.key, chain_path=files.chain,
        fullchain_path=files.fullchain,
    )
    args.update(extra)
    return args


def assert_no_secrets(result, files=None, extra=()):
    out = result["_stdout"]
    assert "PRIVATE KEY" not in out
    assert "mailmesh-test-root" not in out
    for secret in extra:
        assert secret not in out
    if files is not None and os.path.exists(files.key):
        body = files.read(files.key).decode().splitlines()[1]
        assert body not in out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def sans(cert):
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName)), sorted(str(i) for i in ext.get_values_for_type(x509.IPAddress))


def verify(cert, ca):
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


# ---- create, repeat, check mode -----------------------------------------------------


def test_create_repeat_check(pki, files, run_module):
    args = module_args(pki, files, alt_names=["imap.example.org", "IMAP.example.org"], ip_sans=["192.0.2.10"])

    result = run_module("vault_pki_cert", args, check=True)
    assert result.changed and not result.failed, result
    assert result["reasons"] == ["missing"]
    assert not any(os.path.exists(p) for p in files.all)
    assert os.listdir(str(files.dir)) == []

    result = run_module("vault_pki_cert", args)
    assert result.changed and not result.failed, result
    assert result["reasons"] == ["missing"] and result["key_generated"]
    assert_no_secrets(result, files)
    assert not result.get("warnings"), result.get("warnings")  # e.g. no_log heuristics
    assert mode(files.key) == 0o600
    assert mode(files.cert) == mode(files.chain) == mode(files.fullchain) == 0o644
    cert = files.cert_obj()
    verify(cert, pki.ca())
    assert sans(cert) == (["h1.example.org", "imap.example.org"], ["192.0.2.10"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CN
    assert files.public_der() == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert isinstance(files.key_obj(), ec.EllipticCurvePrivateKey)
    assert files.read(files.chain) == pki.ca_pem.strip().encode() + b"\n"
    assert files.read(files.fullchain) == files.read(files.cert) + files.read(files.chain)
    assert result["serial_number"].replace(":", "") == "%040x" % cert.serial_number or \
        int(result["serial_number"].replace(":", ""), 16) == cert.serial_number
    assert result["common_name"] == CN
    assert result["alt_names"] == ["h1.example.org", "imap.example.org"]
    assert result["ip_sans"] == ["192.0.2.10"]
    assert result["not_after"].endswith("Z")
    assert result["cert_path"] == files.cert
    assert [f for f in os.listdir(str(files.dir)) if f.startswith(".")] == []  # no temp files left

    before = {p: files.read(p) for p in files.all}
    result = run_module("vault_pki_cert", args)
    assert not result.changed and not result.failed, result
    assert result["reasons"] == [] and not result["key_generated"]
    assert {p: files.read(p) for p in files.all} == before

    result = run_module("vault_pki_cert", args, check=True)
    assert not result.changed and result["reasons"] == []


def python_without_hvac(directory):
    """A Python for the module in which `import hvac` and `import requests` fail."""
    blocked = directory / "blocked"
    for name in ("hvac", "requests"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text('raise ImportError("%s is blocked by the test")\n' % name)
    wrapper = directory / "python"
    wrapper.write_text('#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' % (blocked, sys.executable))
    wrapper.chmod(0o755)
    return str(wrapper)


def test_rerun_needs_neither_hvac_nor_requests(pki, files, tmp_path, run_module):
    args = module_args(pki, files)
    assert run_module("vault_pki_cert", args).changed
    before = {p: files.read(p) for p in files.all}
    python = python_without_hvac(tmp_path / "py")
    # Nothing to issue: the issuing CA is read with the standard library only.
    result = run_module("vault_pki_cert", args, interpreter=python)
    assert not result.failed and not result.changed and result["reasons"] == [], result
    result = run_module("vault_pki_cert", dict(args, force=True), interpreter=python, check=True)
    assert not result.failed and result.changed and result["reasons"] == ["forced"], result
    # Issuing needs hvac: a clear failure, and nothing written.
    result = run_module("vault_pki_cert", dict(args, force=True), interpreter=python)
    assert result.failed and "Failed to import the required Python library (hvac)" in result["msg"], result
    assert {p: files.read(p) for p in files.all} == before


def test_modes_owner_and_attribute_drift(pki, files, run_module):
    args = module_args(pki, files, mode="0640", cert_mode="0664")
    assert run_module("vault_pki_cert", args).changed
    assert mode(files.key) == 0o640 and mode(files.cert) == 0o664
    os.chmod(files.key, 0o644)
    result = run_module("vault_pki_cert", args, check=True)
    assert result.changed and result["reasons"] == []
    assert mode(files.key) == 0o644
    result = run_module("vault_pki_cert", args)
    assert result.changed and result["reasons"] == []
    assert mode(files.key) == 0o640


# ---- reasons to reissue ----------------------------------------------------------------


def test_names_changed_reuses_key(pki, files, run_module):
    assert run_module("vault_pki_cert", module_args(pki, files)).changed
    key_before = files.public_der()
    serial_before = files.cert_obj().serial_number
    result = run_module("vault_pki_cert", module_args(pki, files, alt_names=["mail.example.org"]))
    assert result.changed and result["reasons"] == ["names_changed"], result
    assert not result["key_generated"]
    assert files.public_der() == key_before
    assert files.cert_obj().serial_number != serial_before
    assert sans(files.cert_obj())[0] == ["h1.example.org", "mail.example.org"]


def test_expiring(pki, files, run_module):
    # default renew_before (a third of the lifetime): a 1h certificate is not renewed at once
    args = module_args(pki, files, ttl="1h")
    assert run_module("vault_pki_cert", args).changed
    assert not run_module("vault_pki_cert", args).changed
    serial = files.cert_obj().serial_number
    result = run_module("vault_pki_cert", module_args(pki, files, ttl="1h", renew_before="90m"))
    assert result.changed and result["reasons"] == ["expiring"], result
    assert files.cert_obj().serial_number != serial
    assert any("reissued on every run" in w for w in result.get("warnings", [])), result
    result = run_module("vault_pki_cert", module_args(pki, files, ttl="1h", renew_before="30m"))
    assert not result.changed, result


def test_key_mismatch(pki, files, run_module):
    assert run_module("vault_pki_cert", module_args(pki, files)).changed
    other = ec.generate_private_key(ec.SECP256R1())
    with open(files.key, "wb") as handle:
        handle.write(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    result = run_module("vault_pki_cert", module_args(pki, files))
    assert result.changed and result["reasons"] == ["key_mismatch"], result
    assert not result["key_generated"]  # the valid key on disk is kept and certified
    assert files.cert_obj().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == files.public_der()
    assert_no_secrets(result, files)


def test_unreadable_key_is_replaced(pki, files, run_module):
    assert run_module("vault_pki_cert", module_args(pki, files)).changed
    with open(files.key, "wb") as handle:
        handle.write(b"garbage\n")
    result = run_module("vault_pki_cert", module_args(pki, files))
    assert result.changed and result["reasons"] == ["unreadable"] and result["key_generated"], result
    assert isinstance(files.key_obj(), ec.EllipticCurvePrivateKey)


def test_issuer_changed(pki, files, run_module):
    assert run_module("vault_pki_cert", module_args(pki, files)).changed
    new_ca = pki.new_root("mailmesh test root", name="root-2")  # same name, new key
    result = run_module("vault_pki_cert", module_args(pki, files), check=True)
    assert result.changed and result["reasons"] == ["issuer_changed"], result
    result = run_module("vault_pki_cert", module_args(pki, files))
    assert result.changed and result["reasons"] == ["issuer_changed"], result
    verify(files.cert_obj(), x509.load_pem_x509_certificate(new_ca.encode()))
    assert files.read(files.chain).strip() == new_ca.strip().encode()
    assert not run_module("vault_pki_cert", module_args(pki, files)).changed


def test_force_and_rotate_key(pki, files, run_module):
    assert run_module("vault_pki_cert", module_args(pki, files)).changed
    key, serial = files.public_der(), files.cert_obj().serial_number
    result = run_module("vault_pki_cert", module_args(pki, files, force=True))
    assert result.changed and result["reasons"] == ["forced"] and not result["key_generated"]
    assert files.public_der() == key and files.cert_obj().serial_number != serial
    result = run_module("vault_pki_cert", module_args(pki, files, force=True, rotate_key=True))
    assert result.changed and result["key_generated"]
    assert files.public_der() != key
    # rotate_key alone does not reissue
    assert not run_module("vault_pki_cert", module_args(pki, files, rotate_key=True)).changed


def test_rsa_key_type_change(pki, files, run_module):
    api(pki.client, "post", "%s/roles/%s" % (pki.mount, pki.role), key_type="any",
        allowed_domains=["example.org"], allow_subdomains=True, allow_bare_domains=True, use_csr_common_name=False,
        use_csr_sans=False)
    result = run_module("vault_pki_cert", module_args(pki, files))
    assert result.changed, result.get("msg")
    result = run_module("vault_pki_cert", module_args(pki, files, key_type="rsa"))
    assert result.changed and result["reasons"] == ["key_type_changed"] and result["key_generated"], result
    assert files.key_obj().key_size == 2048
    assert not run_module("vault_pki_cert", module_args(pki, files, key_type="rsa")).changed


def test_diff_shows_metadata_not_keys(pki, files, run_module):
    first = run_module("vault_pki_cert", module_args(pki, files), diff=True)
    assert first.changed and first["diff"]["before"] == {}
    result = run_module("vault_pki_cert", module_args(pki, files, alt_names=["x.example.org"]), diff=True)
    assert result.changed
    diff = result["diff"]
    assert diff["before"]["serial_number"] == first["serial_number"]
    assert diff["after"]["serial_number"] == result["serial_number"] != first["serial_number"]
    assert diff["after"]["alt_names"] == ["h1.example.org", "x.example.org"]
    assert first["serial_number"] in result["_stdout"] and result["serial_number"] in result["_stdout"]
    assert_no_secrets(result, files)
    check = run_module("vault_pki_cert", module_args(pki, files, alt_names=["y.example.org"]),
                       check=True, diff=True)
    assert check.changed and check["diff"]["after"]["alt_names"] == ["h1.example.org", "y.example.org"]
    assert sans(files.cert_obj())[0] == ["h1.example.org", "x.example.org"]


# ---- auth methods ---------------------------------------------------------------------


def test_approle_policy_restricts_names(pki, files, tmp_path, run_module):
    path, role_id, secret_id = approle(pki, CN)
    connection = dict(url=pki.bao.url, ca_cert=pki.bao.ca_cert, auth_method="approle",
                      role_id=role_id, secret_id=secret_id, approle_mount_point=path)

    result = run_module("vault_pki_cert", module_args(pki, files, connection))
    assert result.changed and not result.failed, result
    assert_no_secrets(result, files, extra=[secret_id])

    other = Files(tmp_path / "other")
    os.mkdir(str(other.dir))
    result = run_module("vault_pki_cert", module_args(pki, other, connection, common_name="h2.example.org"))
    assert result.failed, result
    assert "permission denied" in result["msg"] and pki.bao.url in result["msg"], result["msg"]
    assert "h2.example.org" in result["msg"]
    assert not os.path.exists(other.cert) and not os.path.exists(other.key)
    assert_no_secrets(result, extra=[secret_id])

    # alt_names is not an allowed parameter either
    result = run_module("vault_pki_cert", module_args(pki, files, connection, alt_names=["x.example.org"]))
    assert result.failed and "permission denied" in result["msg"], result


def test_approle_file_read_on_the_host(pki, files, tmp_path, run_module):
    """The file vault_server's client entry point writes: the module takes everything
    from it, and the secret ID shows up nowhere in the result."""
    path, role_id, secret_id = approle(pki, CN)
    approle_file = tmp_path / "approle.json"
    approle_file.write_text(json.dumps({
        "url": pki.bao.url, "ca_cert": pki.bao.ca_cert, "approle_mount": path, "role_name": "h1",
        "role_id": role_id, "secret_id": secret_id, "mount": pki.mount, "pki_role": pki.role}))
    os.chmod(str(approle_file), 0o600)
    args = dict(approle_file=str(approle_file), common_name=CN, cert_path=files.cert,
                key_path=files.key, chain_path=files.chain, fullchain_path=files.fullchain)

    result = run_module("vault_pki_cert", args)
    assert result.changed and not result.failed, result
    assert result["reasons"] == ["missing"]
    assert_no_secrets(result, files, extra=[secret_id])
    verify(x509.load_pem_x509_certificate(files.read(files.cert)), pki.ca())
    again = run_module("vault_pki_cert", args)
    assert not again.changed and not again.failed, again

    result = run_module("vault_pki_cert", dict(args, role_name=pki.role))
    assert result.failed and "mutually exclusive" in result["msg"], result


def _client_ca_and_cert(directory):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "client.pem", directory / "client-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(str(key_path), 0o600)
    return ca.public_bytes(serialization.Encoding.PEM).decode(), str(cert_path), str(key_path)


def test_cert_auth(pki, files, tmp_path, run_module):
    client = pki.client
    path = "cert_" + uuid.uuid4().hex[:6]
    policy = "cert-" + path
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    ca_pem, cert_path, key_path = _client_ca_and_cert(client_dir)
    client.sys.enable_auth_method("cert", path=path)
    client.sys.create_or_update_policy(policy, sign_policy(pki, CN))
    api(client, "post", "auth/%s/certs/hosts" % path, certificate=ca_pem, token_policies=[policy],
        token_ttl="5m")
    connection = dict(url=pki.bao.url, ca_cert=pki.bao.ca_cert, auth_method="cert",
                      cert_auth_public_key=cert_path, cert_auth_private_key=key_path,
                      cert_auth_mount_point=path, cert_auth_role="hosts")
    result = run_module("vault_pki_cert", module_args(pki, files, connection))
    assert result.changed and not result.failed, result
    verify(files.cert_obj(), pki.ca())
    assert_no_secrets(result, files)
    assert not run_module("vault_pki_cert", module_args(pki, files, connection)).changed


# ---- errors ------------------------------------------------------------------------------


def test_unreachable(pki, files, run_module):
    url = "https://127.0.0.1:%d" % free_port()
    result = run_module("vault_pki_cert", module_args(pki, files, pki.bao.connection(url=url)))
    assert result.failed
    assert "unreachable" in result["msg"] and url in result["msg"], result["msg"]
    assert not os.path.exists(files.key)


def test_sealed(bao_fresh, pki, files, run_module):
    client = bao_fresh.client()
    client.sys.initialize(secret_shares=1, secret_threshold=1)  # left sealed
    result = run_module("vault_pki_cert", module_args(pki, files, dict(url=bao_fresh.url, token="x")))
    assert result.failed
    assert "sealed" in result["msg"] and bao_fresh.url in result["msg"], result["msg"]
    assert not os.path.exists(files.key)


def test_tls_verification_failure(pki, files, tmp_path, run_module):
    ca_pem, _cert, _key = _client_ca_and_cert(tmp_path)
    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_text(ca_pem)
    result = run_module("vault_pki_cert", module_args(pki, files, pki.bao.connection(ca_cert=str(wrong))))
    assert result.failed
    assert "TLS verification" in result["msg"] and pki.bao.url in result["msg"], result["msg"]


def test_permission_denied(pki, files, run_module):
    token = api(pki.client, "post", "auth/token/create", policies=["default"], ttl="5m")["auth"]["client_token"]
    result = run_module("vault_pki_cert", module_args(pki, files, pki.bao.connection(token=token)))
    assert result.failed
    assert "permission denied" in result["msg"] and pki.bao.url in result["msg"], result["msg"]
    assert "%s/sign/%s" % (pki.mount, pki.role) in result["msg"]
    assert_no_secrets(result, extra=[token])
    assert not os.path.exists(files.key)


def test_unknown_role(pki, files, run_module):
    result = run_module("vault_pki_cert", module_args(pki, files, role_name="nosuchrole"))
    assert result.failed
    assert "PKI role 'nosuchrole' does not exist in mount '%s'" % pki.mount in result["msg"], result["msg"]
    assert pki.bao.url in result["msg"]
    assert not os.path.exists(files.key)


def test_forbidden_name(pki, files, run_module):
    result = run_module("vault_pki_cert", module_args(pki, files, common_name="evil.example.com"))
    assert result.failed
    msg = result["msg"]
    assert "PKI role '%s'" % pki.role in msg and "forbids" in msg and "evil.example.com" in msg, msg
    assert pki.bao.url in msg
    result = run_module("vault_pki_cert", module_args(pki, files, alt_names=["x.example.net"]))
    assert result.failed and "x.example.net" in result["msg"] and "forbids" in result["msg"], result["msg"]


def test_bad_options_fail_before_any_change(pki, files, run_module):
    result = run_module("vault_pki_cert", module_args(pki, files, renew_before="soon"))
    assert result.failed and "renew_before" in result["msg"], result
    result = run_module("vault_pki_cert", module_args(pki, files, key_bits=1024, key_type="rsa"))
    assert result.failed and "key_bits=1024" in result["msg"], result
    assert not os.path.exists(files.key)
    result = run_module("vault_pki_cert", module_args(pki, files, chain_path=str(files.dir / "nodir" / "c.pem")))
    assert result.failed and "chain_path: directory" in result["msg"], result
    assert not os.path.exists(files.key)
