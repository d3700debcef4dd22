"""A fake Vault on 127.0.0.1 (plain HTTP or TLS, optionally asking for a client
certificate) and the TLS material for it, for the unit tests of the standard-library
read path (``VaultModule.unauthenticated_get``) and of vault_pki_cert's re-run."""

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(cn, issuer=None, dns=(), ips=(), ca=False, days=30):
    """(key, cert): self-signed when issuer is None, else signed by issuer=(key, cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    signer_key, issuer_name = (key, _name(cn)) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Key identifiers as every real CA writes them: Python 3.13's default TLS
        # context (VERIFY_X509_STRICT) refuses a chain without the authority's.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    sans = [x509.DNSName(name) for name in dns] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


class TLSFiles:
    """PEM files: the fake Vault's CA and server certificate, a CA that did not sign it,
    a client CA and a client certificate from it; and (as PEM bytes) a host certificate
    and key for h1.example.org from the fake Vault's CA, as its PKI mount would issue."""

    def __init__(self, directory):
        self.ca = issue("fake vault CA", ca=True, days=3650)
        server = issue("fake vault", self.ca, dns=["localhost"], ips=["127.0.0.1"])
        wrong = issue("some other CA", ca=True)
        client_ca = issue("client CA", ca=True)
        client = issue("h1.example.org", client_ca)
        self.ca_pem = _pem(self.ca[1]).decode()
        self.ca_cert = self._write(directory, "ca.pem", _pem(self.ca[1]))
        self.server_cert = self._write(directory, "server.pem", _pem(server[1]))
        self.server_key = self._write(directory, "server-key.pem", _pem(server[0]))
        self.wrong_ca = self._write(directory, "wrong-ca.pem", _pem(wrong[1]))
        self.client_ca = self._write(directory, "client-ca.pem", _pem(client_ca[1]))
        self.client_cert = self._write(directory, "client.pem", _pem(client[1]))
        self.client_key = self._write(directory, "client-key.pem", _pem(client[0]))
        host = issue("h1.example.org", self.ca, dns=["h1.example.org"])
        self.host_cert_pem = _pem(host[1])
        self.host_key_pem = _pem(host[0])

    @staticmethod
    def _write(directory, name, data):
        path = directory / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return TLSFiles(tmp_path_factory.mktemp("tls"))


class FakeVault:
    """Answers GET and POST <path> from ``routes`` {path: (status, body)} or, slowly,
    {path: (status, body, seconds to wait first)}; 404 for anything else.

    ``requests`` keeps (path, headers, client certificate subject or None) per request.
    """

    def __init__(self, routes, tls_files=None, client_ca=None):
        self.routes = routes
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer = self.connection.getpeercert() if tls_files else None
                subject = dict(item[0] for item in peer["subject"]) if peer else None
                fake.requests.append((self.path, dict(self.headers), subject))
                status, body, *delay = fake.routes.get(self.path, (404, {"errors": []}))
                if delay:  # a slow Vault: (status, body, seconds)
                    time.sleep(delay[0])
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
            if client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_vault():
    """fake_vault(routes, tls_files=None, client_ca=None) -> a running FakeVault."""
    servers = []

    def start(routes, tls_files=None, client_ca=None):
        server = FakeVault(routes, tls_files, client_ca)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
