"""Unit tests for the failover of plugins/module_utils/_vault_client.py over the nodes of
a Vault cluster (``urls``): which failures move on to the next node and which are final,
the sentence that names every node when none could answer, and the renewal
(``_cert_renewal.CertKeeper``) going from node to node against fake Vaults on 127.0.0.1.
The real cluster is tested in tests/integration/test_vault_cluster_failover.py."""

import http.client
import socket
import ssl
import urllib.error

import hvac.exceptions
import pytest
import requests.exceptions

from ansible_collections.mailmesh.imap.plugins.module_utils import _cert_renewal as renewal
from ansible_collections.mailmesh.imap.plugins.module_utils import _vault_client as vc

A, B, C = "https://vault1:8200", "https://vault2:8200", "https://vault3:8200"
WHAT = "reading the issuing CA of PKI mount 'pki' (pki/cert/ca)"
CA = {"data": {"certificate": "PEM"}}
SEALED = (503, {"errors": ["Vault is sealed"]})


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- which failures move on --------------------------------------------------------------


def _hvac(cls):
    return cls("x", errors=["x"], method="get", url="https://vault1:8200/v1/x")


@pytest.mark.parametrize("exc", [
    vc.VaultHTTPError(503, "Service Unavailable", ["Vault is sealed"]),
    vc.VaultHTTPError(500, "Internal Server Error", ["local node not active but active cluster node not found"]),
    vc.VaultHTTPError(501, "Not Implemented", ["Vault is not initialized"]),
    vc.VaultHTTPError(502, "Bad Gateway", []),
    vc.VaultHTTPError(504, "Gateway Timeout", []),
    _hvac(hvac.exceptions.VaultDown),
    _hvac(hvac.exceptions.InternalServerError),
    _hvac(hvac.exceptions.BadGateway),
    _hvac(hvac.exceptions.VaultNotInitialized),
    requests.exceptions.ConnectionError("refused"),
    requests.exceptions.SSLError("handshake failure"),
    requests.exceptions.ConnectTimeout("connect timeout"),
    requests.exceptions.ReadTimeout("read timeout"),
    requests.exceptions.ChunkedEncodingError("broken off"),
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
    urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
    urllib.error.URLError(ssl.SSLError(1, "wrong version number")),
    urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
    socket.timeout("timed out"),
    TimeoutError("timed out"),
    ConnectionResetError(104, "Connection reset by peer"),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    http.client.BadStatusLine("garbage"),
], ids=lambda exc: "%s-%s" % (type(exc).__name__, getattr(exc, "status", "")))
def test_a_node_that_cannot_answer_is_passed_over(exc):
    assert vc.node_unavailable(exc)


@pytest.mark.parametrize("exc", [
    vc.VaultHTTPError(400, "Bad Request", ["no default issuer"]),
    vc.VaultHTTPError(401, "Unauthorized", ["missing client token"]),
    vc.VaultHTTPError(403, "Forbidden", ["permission denied"]),
    vc.VaultHTTPError(404, "Not Found", []),
    vc.VaultHTTPError(429, "Too Many Requests", []),
    _hvac(hvac.exceptions.InvalidRequest),
    _hvac(hvac.exceptions.Unauthorized),
    _hvac(hvac.exceptions.Forbidden),
    _hvac(hvac.exceptions.InvalidPath),
    _hvac(hvac.exceptions.RateLimitExceeded),
    _hvac(hvac.exceptions.UnexpectedError),
    requests.exceptions.InvalidURL("no host"),
    vc.AuthError("auth_method=approle needs role_id and secret_id"),
    vc.MissingLibraryError("hvac", "trace"),
    vc._TLSFileError("ca_cert /missing.pem", FileNotFoundError(2, "No such file")),  # pylint: disable=protected-access
    vc.NodesFailed([(A, ConnectionRefusedError())]),
    KeyError("auth"),
    ValueError("bad JSON"),
], ids=lambda exc: "%s-%s" % (type(exc).__name__, getattr(exc, "status", "")))
def test_a_definite_answer_or_a_local_problem_is_final(exc):
    assert not vc.node_unavailable(exc)


# ---- the failover loop -----------------------------------------------------------------


class Script:
    """An operation that answers, per node URL, with the next item of its list: an
    exception to raise or a value to return; it records the node of every call."""

    def __init__(self, connection, answers):
        self.connection = connection
        self.answers = {url: list(items) for url, items in answers.items()}
        self.calls = []

    def __call__(self):
        url = self.connection.url
        self.calls.append(url)
        answer = self.answers[url].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def connection(urls=(A, B, C), **params):
    return vc.VaultConnection(dict(dict(url=urls[0], urls=list(urls), timeout=5), **params))


def test_the_nodes_come_from_urls_else_url_without_repeats():
    assert vc.VaultConnection({"url": A + "/"}).urls == [A]
    assert vc.VaultConnection({"url": A, "urls": None}).urls == [A]
    assert vc.VaultConnection({"url": A, "urls": [B + "/", A, B]}).urls == [B, A]
    assert vc.VaultConnection({"url": A, "urls": [B, A]}).url == B


def test_a_node_down_moves_on_drops_the_client_and_stays_on_the_node_that_answered():
    conn = connection()
    # A login on vault1.
    conn._client = object()  # pylint: disable=protected-access
    warnings = []
    op = Script(conn, {A: [ConnectionRefusedError(111, "Connection refused")],
                       B: [vc.VaultHTTPError(503, "Service Unavailable", ["Vault is sealed"])],
                       C: ["answer", "again"]})
    assert conn.failover(op, WHAT, warnings.append) == "answer"
    assert op.calls == [A, B, C] and conn.url == C
    assert conn._client is None  # pylint: disable=protected-access
    assert warnings == [
        "Vault at %s is unreachable while %s: [Errno 111] Connection refused; trying Vault at %s" % (A, WHAT, B),
        "Vault at %s is sealed (or not ready) while %s: Vault is sealed (HTTP 503 Service Unavailable); "
        "trying Vault at %s" % (B, WHAT, C),
    ]
    # The next operation starts on the node that answered.
    assert conn.failover(op) == "again" and op.calls[-1] == C


@pytest.mark.parametrize("definite", [
    vc.VaultHTTPError(403, "Forbidden", ["permission denied"]),
    _hvac(hvac.exceptions.Unauthorized),
    _hvac(hvac.exceptions.InvalidRequest),
    _hvac(hvac.exceptions.InvalidPath),
])
def test_a_definite_answer_is_not_retried_on_another_node(definite):
    conn = connection()
    warnings = []
    op = Script(conn, {A: [TimeoutError("timed out")], B: [definite], C: ["never asked"]})
    with pytest.raises(type(definite)) as info:
        conn.failover(op, WHAT, warnings.append)
    assert info.value is definite and op.calls == [A, B] and conn.url == B
    # The node passed over is still told: the failure names vault2 alone.
    assert warnings == ["Vault at %s is unreachable while %s: no answer within 5 s (timeout); "
                        "trying Vault at %s" % (A, WHAT, B)]


def test_every_node_down_names_every_node_and_its_cause_in_one_sentence():
    conn = connection(timeout=5)
    conn.election_retries = 0  # one pass (the retry after an election: the test below)
    conn.next_node()  # the last operation ended on vault2: the round starts there
    op = Script(conn, {A: [urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))],
                       B: [vc.VaultHTTPError(503, "Service Unavailable", ["Vault is sealed"])],
                       C: [socket.timeout("timed out")]})
    warnings = []
    with pytest.raises(vc.NodesFailed) as info:
        conn.failover(op, WHAT, warnings.append)
    assert op.calls == [B, C, A] and warnings == []  # the one sentence says it all
    assert [url for url, _exc in info.value.failures] == [B, C, A]
    message = conn.vault_error(info.value, WHAT)
    assert message == (
        "none of the 3 Vault nodes could answer while %s: "
        "Vault at %s is sealed (or not ready): Vault is sealed (HTTP 503 Service Unavailable); "
        "Vault at %s is unreachable: no answer within 5 s (timeout); "
        "Vault at %s is unreachable: [Errno 111] Connection refused" % (WHAT, B, C, A)), message
    assert "\n" not in message


def test_every_node_failed_while_one_answered_waits_for_an_election_and_tries_again():
    conn = connection(timeout=5)
    slept = []
    conn._sleep = slept.append  # pylint: disable=protected-access
    no_leader = vc.VaultHTTPError(500, "Internal Server Error", ["local node not active but active cluster node not found"])
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    op = Script(conn, {A: [refused, refused], B: [no_leader, "signed"], C: [no_leader]})
    assert conn.failover(op, WHAT) == "signed"
    assert op.calls == [A, B, C, A, B] and slept == [conn.election_wait]


def test_an_election_is_waited_for_once_only_and_never_when_no_node_answered():
    conn = connection(timeout=5)
    slept = []
    conn._sleep = slept.append  # pylint: disable=protected-access
    no_leader = vc.VaultHTTPError(500, "Internal Server Error", ["no leader"])
    op = Script(conn, {A: [no_leader] * 2, B: [no_leader] * 2, C: [no_leader] * 2})
    with pytest.raises(vc.NodesFailed):
        conn.failover(op, WHAT)
    assert len(op.calls) == 6 and slept == [conn.election_wait]
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    conn, slept = connection(timeout=5), []
    conn._sleep = slept.append  # pylint: disable=protected-access
    op = Script(conn, {A: [refused], B: [refused], C: [refused]})
    with pytest.raises(vc.NodesFailed):
        conn.failover(op, WHAT)
    assert len(op.calls) == 3 and slept == []


def test_one_node_raises_the_failure_as_it_is_with_the_words_it_always_had():
    conn = vc.VaultConnection({"url": A, "timeout": 5})
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    op = Script(conn, {A: [refused]})
    with pytest.raises(urllib.error.URLError) as info:
        conn.failover(op, WHAT)
    assert info.value is refused and op.calls == [A]
    assert conn.vault_error(info.value, WHAT) == (
        "Vault at %s is unreachable while %s: [Errno 111] Connection refused" % (A, WHAT))


def test_a_local_problem_is_not_blamed_on_the_node():
    conn = connection(ca_cert="/nonexistent/ca.pem")
    with pytest.raises(vc._TLSFileError):  # pylint: disable=protected-access
        conn.failover(lambda: conn.unauthenticated_get("pki/cert/ca"), WHAT)
    assert conn.url == A


# ---- against fake Vaults on loopback ------------------------------------------------------


def test_the_read_goes_past_a_closed_port_and_a_sealed_node(fake_vault):
    sealed = fake_vault({"/v1/pki/cert/ca": SEALED})
    serving = fake_vault({"/v1/pki/cert/ca": (200, CA)})
    closed = "http://127.0.0.1:%d" % free_port()
    conn = connection((closed, sealed.url, serving.url))
    assert conn.failover(lambda: conn.unauthenticated_get("pki/cert/ca"), WHAT) == CA
    assert conn.url == serving.url and conn.server_time is not None
    assert len(sealed.requests) == 1 and len(serving.requests) == 1


def test_a_forbidden_answer_stops_the_round(fake_vault):
    forbidding = fake_vault({"/v1/pki/cert/ca": (403, {"errors": ["permission denied"]})})
    serving = fake_vault({"/v1/pki/cert/ca": (200, CA)})
    conn = connection((forbidding.url, serving.url))
    with pytest.raises(vc.VaultHTTPError) as info:
        conn.failover(lambda: conn.unauthenticated_get("pki/cert/ca"), WHAT)
    assert conn.vault_error(info.value, WHAT) == (
        "permission denied by Vault at %s while %s: permission denied (HTTP 403 Forbidden)"
        % (forbidding.url, WHAT))
    assert serving.requests == []


def _keeper_options(directory):
    return dict(engine_mount_point="pki_int", role_name="hosts", common_name="h1.example.org",
                alt_names=[], ip_sans=[], ttl=None, renew_before=None, max_clock_skew="0",
                key_type="ec", key_bits=None, rotate_key=False, force=False,
                cert_path=str(directory / "cert.pem"), key_path=str(directory / "key.pem"),
                chain_path=None, fullchain_path=None, owner=None, group=None,
                key_mode=0o600, cert_mode=0o644)


def test_the_renewal_logs_in_again_on_the_node_it_moves_to(fake_vault, tls_files, tmp_path):
    """vault2 reads the CA and logs in, then fails the signing with a 500: the keeper
    moves to vault3, logs in there and signs there; vault1 is down all along."""
    login = (200, {"auth": {"client_token": "fake-token-for-the-test", "policies": ["default"]}})
    signed = (200, {"data": {"certificate": tls_files.host_cert_pem.decode(), "ca_chain": [tls_files.ca_pem]}})
    ca = (200, {"data": {"certificate": tls_files.ca_pem}})
    troubled = fake_vault({"/v1/pki_int/cert/ca": ca, "/v1/auth/approle/login": login,
                           "/v1/pki_int/sign/hosts": (500, {"errors": ["internal error"]})})
    serving = fake_vault({"/v1/pki_int/cert/ca": ca, "/v1/auth/approle/login": login,
                          "/v1/pki_int/sign/hosts": signed})
    down = "http://127.0.0.1:%d" % free_port()
    conn = vc.VaultConnection(dict(url=down, urls=[down, troubled.url, serving.url], auth_method="approle",
                                   approle_mount_point="approle", role_id="role",
                                   secret_id="secret-of-the-test", timeout=5))
    warnings = []
    outcome = renewal.CertKeeper(conn, _keeper_options(tmp_path), warn=warnings.append).run()
    assert outcome["changed"] and outcome["reasons"] == ["missing"]
    assert (tmp_path / "cert.pem").read_bytes() == tls_files.host_cert_pem
    assert [path for path, _headers, _peer in troubled.requests] == [
        "/v1/pki_int/cert/ca", "/v1/auth/approle/login", "/v1/pki_int/sign/hosts"]
    assert [path for path, _headers, _peer in serving.requests] == [
        "/v1/auth/approle/login", "/v1/pki_int/sign/hosts"]
    assert conn.url == serving.url
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("Vault at %s is unreachable while reading the issuing CA" % down)
    assert warnings[0].endswith("; trying Vault at %s" % troubled.url)
    assert warnings[1].startswith("Vault at %s rejected the request while signing a CSR" % troubled.url)
    assert warnings[1].endswith("; trying Vault at %s" % serving.url)
    assert not [w for w in warnings if "secret-of-the-test" in w or "fake-token" in w]


def test_the_renewal_fails_in_one_sentence_when_no_node_answers(fake_vault, tmp_path):
    sealed = fake_vault({"/v1/pki_int/cert/ca": SEALED})
    down = "http://127.0.0.1:%d" % free_port()
    conn = vc.VaultConnection(dict(url=down, urls=[down, sealed.url], auth_method="approle",
                                   approle_mount_point="approle", role_id="role",
                                   secret_id="secret-of-the-test", timeout=5))
    with pytest.raises(renewal.RenewalError) as info:
        renewal.CertKeeper(conn, _keeper_options(tmp_path)).run()
    message = str(info.value)
    assert message.startswith("none of the 2 Vault nodes could answer while reading the issuing CA of PKI "
                              "mount 'pki_int' (pki_int/cert/ca): Vault at %s is unreachable: " % down), message
    assert ("; Vault at %s is sealed (or not ready): Vault is sealed (HTTP 503 Service Unavailable)"
            % sealed.url) in message, message
    assert list(tmp_path.iterdir()) == []


# ---- the AppRole file's urls ---------------------------------------------------------------


APPROLE = ('{"url": "https://vault1:8200", "role_id": "r", "secret_id": "s", "approle_mount": "a", '
           '"mount": "m", "pki_role": "p"%s}')


def test_the_approle_files_urls_become_the_nodes(tmp_path):
    path = tmp_path / "approle.json"
    path.write_text(APPROLE % ', "urls": ["https://vault1:8200", "https://vault2:8200"]')
    path.chmod(0o600)
    options = renewal.approle_options(renewal.read_approle_file(str(path)))
    assert options["urls"] == ["https://vault1:8200", "https://vault2:8200"]
    assert vc.VaultConnection(options).urls == ["https://vault1:8200", "https://vault2:8200"]
    path.write_text(APPROLE % "")
    options = renewal.approle_options(renewal.read_approle_file(str(path)))
    assert "urls" not in options and vc.VaultConnection(options).urls == ["https://vault1:8200"]


@pytest.mark.parametrize("urls,problem", [
    ('"https://vault1:8200"', "it is a JSON string"),
    ("null", "it is null"),
    ('{"a": 1}', "it is a JSON object"),
    ("[]", "it is empty"),
    ('["https://vault1:8200", 8200]', "item 2 is a JSON number"),
    ('["https://vault1:8200", null]', "item 2 is null"),
    ('[["https://vault1:8200"]]', "item 1 is a JSON array"),
    ('["https://vault1:8200", "  "]', "item 2 is an empty string"),
])
def test_a_wrong_shape_of_urls_is_refused_naming_the_file_and_the_key(tmp_path, urls, problem):
    path = tmp_path / "approle.json"
    path.write_text(APPROLE % (', "urls": %s' % urls))
    path.chmod(0o600)
    with pytest.raises(renewal.RenewalError) as info:
        renewal.read_approle_file(str(path))
    assert str(info.value) == (
        "approle_file %s: urls must be a non-empty list of the Vault nodes' URLs (strings), but %s"
        % (path, problem))
