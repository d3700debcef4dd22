"""Unit tests for plugins/module_utils/_vault.py: the lazy hvac import, the standard-library
read (``unauthenticated_get``) against a fake Vault on 127.0.0.1, and how its failures
are phrased."""

import json
import re
import socket
import ssl
import sys
import urllib.error

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultHTTPError, VaultModule

WHAT = "reading the issuing CA of PKI mount 'pki' (pki/cert/ca)"
CA = {"data": {"certificate": "PEM"}}


@pytest.fixture
def make_module(monkeypatch):
    """make_module(hvac_required=False, **params) -> a VaultModule with these params."""

    def make(hvac_required=False, **params):
        payload = {"ANSIBLE_MODULE_ARGS": dict(params, _ansible_remote_tmp="/tmp",
                                               _ansible_keep_remote_files=False)}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps(payload)))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
        return VaultModule(argument_spec=VaultModule.generate_argspec(), hvac_required=hvac_required)

    return make


def read_error(module, path="pki/cert/ca", **client_kwargs):
    """The message vault_error() gives for what unauthenticated_get() raised."""
    with pytest.raises(Exception) as info:
        module.unauthenticated_get(path, **client_kwargs)
    assert not isinstance(info.value, (TypeError, AssertionError)), info.value
    return module.vault_error(info.value, WHAT)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- hvac on first use ----------------------------------------------------------------


@pytest.fixture
def without_hvac(monkeypatch):
    """`import hvac` fails as on a host without it."""
    for name in list(sys.modules):
        if name == "hvac" or name.startswith("hvac."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hvac", None)


def _failure(capsys, call):
    with pytest.raises(SystemExit):
        call()
    return json.loads(capsys.readouterr().out)


def test_missing_hvac_fails_at_once_by_default(without_hvac, make_module, capsys):
    result = _failure(capsys, lambda: make_module(hvac_required=True, url="http://127.0.0.1:1"))
    assert result["failed"] and "Failed to import the required Python library (hvac)" in result["msg"]


def test_missing_hvac_fails_only_when_a_client_is_made(without_hvac, make_module, fake_vault, capsys):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)})
    module = make_module(url=server.url, token="a-long-test-token")
    assert module.unauthenticated_get("pki/cert/ca") == CA
    result = _failure(capsys, module.client)
    assert result["failed"] and "Failed to import the required Python library (hvac)" in result["msg"]


def test_hvac_is_there_when_asked_for(make_module):
    module = make_module(url="http://127.0.0.1:1")
    assert module.hvac().exceptions.InvalidRequest


# ---- what the read sends and gets -----------------------------------------------------


def test_get_sends_no_token_and_the_namespace(make_module, fake_vault):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)})
    module = make_module(url=server.url + "/", token="s3cret", namespace="team1")
    assert module.unauthenticated_get("/pki/cert/ca") == CA
    path, headers, _peer = server.requests[0]
    assert path == "/v1/pki/cert/ca"
    assert headers["X-Vault-Namespace"] == "team1" and headers["X-Vault-Request"] == "true"
    assert "X-Vault-Token" not in headers and "s3cret" not in json.dumps(headers)


def test_get_without_namespace_sends_none(make_module, fake_vault):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)})
    make_module(url=server.url).unauthenticated_get("pki/cert/ca")
    assert "X-Vault-Namespace" not in server.requests[0][1]


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]"])
def test_get_gives_an_empty_dict_for_an_answer_that_is_no_json_object(make_module, fake_vault, body):
    server = fake_vault({"/v1/pki/cert/ca": (200, body)})
    assert make_module(url=server.url).unauthenticated_get("pki/cert/ca") == {}


def test_get_refuses_client_options_it_does_not_know(make_module):
    with pytest.raises(TypeError):
        make_module(url="http://127.0.0.1:1").unauthenticated_get("x", proxies={})


# ---- TLS --------------------------------------------------------------------------------


def test_tls_verified_against_ca_cert(make_module, fake_vault, tls_files):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)}, tls_files)
    assert make_module(url=server.url, ca_cert=tls_files.ca_cert).unauthenticated_get("pki/cert/ca") == CA


def test_tls_verification_failure_is_named(make_module, fake_vault, tls_files):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)}, tls_files)
    msg = read_error(make_module(url=server.url, ca_cert=tls_files.wrong_ca))
    assert msg.startswith("TLS verification of Vault at %s failed while %s: " % (server.url, WHAT)), msg
    assert "certificate verify failed" in msg and "Point ca_cert at the CA" in msg, msg


@pytest.mark.parametrize("code,text", [
    (9, "certificate is not yet valid"),
    (10, "certificate has expired"),
])
def test_tls_failure_outside_the_validity_period_names_the_clock(make_module, code, text):
    """What a host whose clock is days off sees: the clock is named, not the CA."""
    module = make_module(url="https://vault1:8200")
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                          "%s (_ssl.c:992)" % text)
    exc.verify_code, exc.verify_message = code, text
    msg = module.vault_error(urllib.error.URLError(exc), "w")
    assert msg.startswith("TLS verification of Vault at https://vault1:8200 failed while w: "), msg
    assert re.search(r"By this host's clock \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\) the server's "
                     r"certificate is outside its validity period: .*fix its time synchronisation", msg), msg
    assert "Point ca_cert" not in msg
    import requests.exceptions  # pylint: disable=import-outside-toplevel
    msg = module.vault_error(requests.exceptions.SSLError("certificate verify failed: %s" % text), "w")
    assert "this host's clock is wrong" in msg, msg


def test_tls_without_ca_cert_uses_the_system_trust(make_module, fake_vault, tls_files, monkeypatch):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)}, tls_files)
    # OpenSSL's default trust store, as the system's: first without the fake CA, then with.
    monkeypatch.setenv("SSL_CERT_FILE", tls_files.wrong_ca)
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    assert "TLS verification of Vault at" in read_error(make_module(url=server.url))
    monkeypatch.setenv("SSL_CERT_FILE", tls_files.ca_cert)
    assert make_module(url=server.url).unauthenticated_get("pki/cert/ca") == CA


def test_tls_not_verified_with_validate_certs_false(make_module, fake_vault, tls_files):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)}, tls_files)
    module = make_module(url=server.url, ca_cert=tls_files.wrong_ca, validate_certs=False)
    assert module.unauthenticated_get("pki/cert/ca") == CA


def test_tls_client_certificate_is_presented(make_module, fake_vault, tls_files):
    server = fake_vault({"/v1/pki/cert/ca": (200, CA)}, tls_files, client_ca=tls_files.client_ca)
    module = make_module(url=server.url, ca_cert=tls_files.ca_cert)
    cert = (tls_files.client_cert, tls_files.client_key)
    assert module.unauthenticated_get("pki/cert/ca", cert=cert) == CA
    assert server.requests[-1][2] == {"commonName": "h1.example.org"}
    # Without it the listener refuses the handshake; the message names Vault and TLS.
    msg = read_error(module)
    assert "Vault at %s" % server.url in msg and WHAT in msg, msg
    assert "TLS handshake with Vault at" in msg or "is unreachable while" in msg, msg


@pytest.mark.parametrize("option", ["ca_cert", "client"])
def test_unreadable_tls_files_are_named(make_module, tmp_path, option):
    missing = str(tmp_path / "missing.pem")
    if option == "ca_cert":
        msg = read_error(make_module(url="https://127.0.0.1:1", ca_cert=missing))
        expected = "cannot load ca_cert %s for Vault at https://127.0.0.1:1 while %s: " % (missing, WHAT)
    else:
        msg = read_error(make_module(url="https://127.0.0.1:1"), cert=(missing, missing))
        expected = "cannot load the TLS client certificate %s (key %s) for Vault at" % (missing, missing)
    assert msg.startswith(expected), msg


# ---- unreachable ------------------------------------------------------------------------


def test_connection_refused_is_unreachable(make_module):
    url = "https://127.0.0.1:%d" % free_port()
    msg = read_error(make_module(url=url))
    assert msg.startswith("Vault at %s is unreachable while %s: " % (url, WHAT)), msg
    assert "Connection refused" in msg, msg


def test_no_answer_within_the_timeout_is_unreachable(make_module):
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        msg = read_error(make_module(url=url, timeout=1))
    assert msg == "Vault at %s is unreachable while %s: no answer within 1 s (timeout)" % (url, WHAT), msg


def test_unknown_host_is_unreachable(make_module):
    msg = read_error(make_module(url="http://no-such-host.invalid:8200"))
    assert msg.startswith("Vault at http://no-such-host.invalid:8200 is unreachable while %s: " % WHAT), msg


# ---- HTTP error statuses, in the words used for hvac's exceptions -------------------------


@pytest.mark.parametrize("status,body,expected", [
    (503, {"errors": ["Vault is sealed"]},
     "Vault at {url} is sealed (or not ready) while {what}: Vault is sealed (HTTP 503 Service Unavailable)"),
    (404, {"errors": []},
     "Vault at {url} has no such path while {what}: HTTP 404 Not Found"),
    (403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]},
     "permission denied by Vault at {url} while {what}: 1 error occurred: * permission denied "
     "(HTTP 403 Forbidden)"),
    (401, {"errors": ["missing client token"]},
     "Vault at {url} refused the credentials while {what}: missing client token (HTTP 401 Unauthorized)"),
    (400, {"errors": ["no default issuer"]},
     "Vault at {url} rejected the request while {what}: no default issuer (HTTP 400 Bad Request)"),
    (500, b"<html>\n  internal\n</html>",
     "Vault at {url} rejected the request while {what}: <html> internal </html> "
     "(HTTP 500 Internal Server Error)"),
])
def test_http_error_statuses_are_phrased(make_module, fake_vault, status, body, expected):
    server = fake_vault({"/v1/pki/cert/ca": (status, body)})
    msg = read_error(make_module(url=server.url))
    assert msg == expected.format(url=server.url, what=WHAT)


def test_vault_http_error_keeps_status_and_errors():
    exc = VaultHTTPError(503, "Service Unavailable", ["Vault is sealed"])
    assert (exc.status, exc.errors, str(exc)) == (503, ["Vault is sealed"], "HTTP 503 Service Unavailable")


def test_hvac_and_requests_errors_keep_their_words(make_module):
    import hvac.exceptions  # pylint: disable=import-outside-toplevel
    import requests.exceptions  # pylint: disable=import-outside-toplevel

    module = make_module(url="https://vault1:8200")
    where = "Vault at https://vault1:8200"
    assert module.vault_error(hvac.exceptions.VaultDown("x", errors=["Vault is sealed"]), "w") == (
        "%s is sealed (or not ready) while w: Vault is sealed" % where)
    assert module.vault_error(hvac.exceptions.InvalidRequest("x", errors=["bad"]), "w") == (
        "%s rejected the request while w: bad" % where)
    assert module.vault_error(requests.exceptions.ConnectionError("refused"), "w") == (
        "%s is unreachable while w: refused" % where)
    assert module.vault_error(requests.exceptions.SSLError("bad cert"), "w").startswith(
        "TLS verification of %s failed while w: bad cert." % where)
    assert module.vault_error(KeyError("auth"), "w") == "unexpected error talking to %s while w: 'auth'" % where
