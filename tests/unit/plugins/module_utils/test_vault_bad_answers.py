"""A Vault that answers garbage, a truncated answer or too slowly (fake Vaults on 127.0.0.1):
the renewal (``_cert_renewal.CertKeeper``, which the vault_pki_cert module and the on-host
agent share) fails in one sentence that names the Vault and what it was doing, writes no
file, and never shows the secret ID or a token. docs/reliability.md lists these cases."""

import pytest

from ansible_collections.mailmesh.imap.plugins.module_utils import _cert_renewal as renewal
from ansible_collections.mailmesh.imap.plugins.module_utils import _vault_client as vc
from ansible_collections.mailmesh.imap.tests.unit.plugins.module_utils.test_vault_failover import (
    _keeper_options as keeper_options,
)

SECRET = "secret-id-of-the-test"
TOKEN = "token-of-the-test"
LOGIN = (200, {"auth": {"client_token": TOKEN, "policies": ["default"]}})


def _renew(server, directory, timeout=5):
    conn = vc.VaultConnection(dict(url=server.url, auth_method="approle", approle_mount_point="approle",
                                   role_id="role", secret_id=SECRET, timeout=timeout))
    with pytest.raises(renewal.RenewalError) as info:
        renewal.CertKeeper(conn, keeper_options(directory)).run()
    message = str(info.value)
    assert SECRET not in message and TOKEN not in message, message
    assert "Traceback" not in message, message
    assert list(directory.iterdir()) == [], "a file was written: %s" % list(directory.iterdir())
    return message


def _routes(tls_files, **override):
    signed = {"data": {"certificate": tls_files.host_cert_pem.decode(), "ca_chain": [tls_files.ca_pem]}}
    routes = {"/v1/pki_int/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}}),
              "/v1/auth/approle/login": LOGIN,
              "/v1/pki_int/sign/hosts": (200, signed)}
    routes.update({"/v1/" + path.replace("__", "/"): answer for path, answer in override.items()})
    return routes


@pytest.mark.parametrize("answer", [
    pytest.param((200, b"<html><body>a proxy's login page</body></html>"), id="html"),
    pytest.param((200, b'{"auth": {"client_token": "tok'), id="truncated-json"),
    pytest.param((200, {"auth": None}), id="no-auth"),
    pytest.param((200, b"\x00\xff\xfe garbage"), id="binary"),
])
def test_a_garbage_login_answer_is_named(fake_vault, tls_files, tmp_path, answer):
    server = fake_vault(_routes(tls_files, auth__approle__login=answer))
    message = _renew(server, tmp_path)
    assert message.startswith("Vault at %s gave no usable answer while logging in with auth_method=approle: "
                              "the login answer " % server.url), message


@pytest.mark.parametrize("answer", [
    pytest.param((200, b"not json at all"), id="not-json"),
    pytest.param((200, b'{"data": {"certificate": "-----BEGIN CERT'), id="truncated-json"),
    pytest.param((200, {"data": {"certificate": "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0G\n"
                                                "-----END CERTIFICATE-----\n"}}), id="truncated-pem"),
    pytest.param((200, {"data": {"certificate": 42}}), id="certificate-not-text"),
    pytest.param((200, {"data": {}}), id="no-certificate"),
])
def test_a_garbage_or_truncated_certificate_answer_is_named(fake_vault, tls_files, tmp_path, answer):
    server = fake_vault(_routes(tls_files, pki_int__sign__hosts=answer))
    message = _renew(server, tmp_path)
    assert message.startswith("Vault at %s returned no " % server.url), message
    assert "certificate while signing a CSR (common_name=h1.example.org)" in message, message


@pytest.mark.parametrize("path", ["auth__approle__login", "pki_int__sign__hosts"])
def test_a_vault_slower_than_the_timeout_is_named(fake_vault, tls_files, tmp_path, path):
    slow = _routes(tls_files)["/v1/" + path.replace("__", "/")] + (3,)
    server = fake_vault(_routes(tls_files, **{path: slow}))
    message = _renew(server, tmp_path, timeout=1)
    assert "Vault at %s" % server.url in message, message
    assert "timeout" in message or "timed out" in message or "no answer within 1 s" in message, message


@pytest.mark.parametrize("content", [
    pytest.param(b"garbage\n", id="garbage"),
    pytest.param(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", id="truncated-pem"),
    pytest.param(b"", id="empty"),
])
def test_a_corrupt_ca_bundle_is_named(fake_vault, tls_files, tmp_path, content):
    """The host's CA bundle (ca_cert, /etc/mailmesh/vault/ca.pem) is corrupt: the file is
    named, before anything is sent to Vault."""
    server = fake_vault(_routes(tls_files), tls_files)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    conn = vc.VaultConnection(dict(url=server.url, ca_cert=str(bundle), auth_method="approle",
                                   approle_mount_point="approle", role_id="role", secret_id=SECRET, timeout=5))
    with pytest.raises(renewal.RenewalError) as info:
        renewal.CertKeeper(conn, keeper_options(out)).run()
    message = str(info.value)
    assert message.startswith("cannot load ca_cert %s for Vault at %s while reading the issuing CA"
                              % (bundle, server.url)), message
    assert SECRET not in message
    assert list(out.iterdir()) == [] and server.requests == []
