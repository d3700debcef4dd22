"""molecule/_shared/tls_scan.py, the verifiers' TLS scanner, against TLS servers on
loopback that this test runs: it must find exactly the suites a server accepts (a CBC
suite with SHA-1 among them), the versions, a root CA sent in the chain, and session
resumption; over implicit TLS and IMAP STARTTLS.

Not shipped (the scenarios' helpers are not in the tarball)."""

from __future__ import annotations

import datetime
import importlib.util
import pathlib
import socket
import ssl
import threading
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = pathlib.Path(__file__).resolve().parents[1].parent
_spec = importlib.util.spec_from_file_location("tls_scan", REPO / "molecule" / "_shared" / "tls_scan.py")
tls_scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tls_scan)

NOW = datetime.datetime.now(datetime.timezone.utc)


def _cert(subject, issuer, public_key, signing_key, ca):
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Root -> intermediate -> leaf (ECDSA); files: the leaf's key, the leaf with the
    intermediate, and the leaf with the intermediate and the root."""
    directory = tmp_path_factory.mktemp("pki")
    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("scan root", "scan root", root_key.public_key(), root_key, True)
    intermediate = _cert("scan intermediate", "scan root", int_key.public_key(), root_key, True)
    leaf = _cert("localhost", "scan intermediate", leaf_key.public_key(), int_key, False)

    def pem(*certs):
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)

    (directory / "key.pem").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "fullchain.pem").write_bytes(pem(leaf, intermediate))
    (directory / "with-root.pem").write_bytes(pem(leaf, intermediate, root))
    return directory


class _Server:
    """An IMAP-ish TLS server on loopback: greeting, one answer, close. Serves until
    stopped; every connection is bounded by a timeout."""

    def __init__(self, context, starttls=False):
        self.context, self.starttls = context, starttls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(3)
                try:
                    self._session(conn)
                except (OSError, ssl.SSLError):
                    pass

    def _session(self, conn):
        if self.starttls:
            conn.sendall(b"* OK plain greeting\r\n")
            line = conn.makefile("rb").readline()
            conn.sendall(line.split(b" ")[0] + b" OK Begin TLS\r\n")
        tls = self.context.wrap_socket(conn, server_side=True)
        if not self.starttls:
            tls.sendall(b"* OK greeting\r\n")
        tls.recv(4096)
        tls.sendall(b"a0 OK done\r\n")
        tls.close()

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


def _server_context(pki, chain, ciphers, minimum=ssl.TLSVersion.TLSv1_2):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki / chain), str(pki / "key.pem"))
    context.set_ciphers(ciphers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 on purpose
        context.minimum_version = minimum
    return context


@pytest.mark.parametrize("starttls", [False, True])
def test_scan_finds_the_suites_versions_chain_and_resumption(pki, starttls):
    server = _Server(_server_context(pki, "fullchain.pem", "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA"), starttls)
    try:
        result = tls_scan.scan(tls_scan.Target("127.0.0.1", server.port, "localhost", starttls=starttls))
    finally:
        server.stop()
    assert result["versions"] == {"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True}
    assert result["tls12_cipher_suites"] == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA",
                                             "ECDHE-ECDSA-CHACHA20-POLY1305"]
    assert result["chain"] == [("CN=localhost", "CN=scan intermediate"), ("CN=scan intermediate", "CN=scan root")]
    assert result["resumption"] == {"TLSv1.2": True, "TLSv1.3": True}
    found = tls_scan.problems(result, resumption={"TLSv1.2": True, "TLSv1.3": False})
    assert found == [
        "%s offers TLS 1.2 suites outside Mozilla's intermediate profile: ECDHE-ECDSA-AES128-SHA." % result["target"],
        "%s: session resumption under TLSv1.3 is True, documented as False." % result["target"],
    ]


def test_scan_names_a_root_in_the_chain_and_old_versions(pki):
    context = _server_context(pki, "with-root.pem", "ALL:@SECLEVEL=0", minimum=ssl.TLSVersion.TLSv1)
    server = _Server(context)
    try:
        target = tls_scan.Target("127.0.0.1", server.port, "localhost")
        versions = tls_scan.accepted_versions(target)
        chain = tls_scan.sent_chain(target)
    finally:
        server.stop()
    assert versions == {"TLSv1": True, "TLSv1.1": True, "TLSv1.2": True, "TLSv1.3": True}
    assert chain[-1] == ("CN=scan root", "CN=scan root")
    result = {"target": "t", "versions": versions, "tls12_cipher_suites": [], "chain": chain, "resumption": {}}
    assert tls_scan.problems(result) == ["t accepts TLSv1.", "t accepts TLSv1.1.",
                                         "t sends a root CA in its chain: CN=scan root."]


def test_a_refused_port_is_no_suite_and_no_chain():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    target = tls_scan.Target("127.0.0.1", port, "localhost", timeout=2)
    with pytest.raises(OSError):
        tls_scan.scan(target)
