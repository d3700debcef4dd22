"""What a user of vault_server sees: OpenBao runs hardened, is initialized and
unsealed, serves a certificate from its own PKI, and each client host's AppRole can
sign certificates for that host's own names only."""

import json
import os
import subprocess

import pytest
import testinfra
import unit_checks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE = "openbao"
CA_FILE = "/etc/mailmesh/vault/ca.pem"
APPROLE_FILE = "/etc/mailmesh/vault/approle.json"
VAULT_URL = "https://vault1:8200"
VAULT_CONTAINER = "vault1"
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
    os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."), "inventory"
)
INIT_FILE = os.path.join(
    os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."), ".build", "molecule", "vault_server", "vault1-init.json"
)


def _host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def vault1():
    return _host("vault1")


@pytest.fixture(scope="module")
def gw1():
    return _host("gw1")


@pytest.fixture(scope="module")
def store1():
    return _host("store1")


def _journal(host):
    return host.run("journalctl -u %s --no-pager -n 80", SERVICE).stdout


def test_service_active_and_enabled(vault1):
    service = vault1.service(SERVICE)
    assert service.is_running, "%s is not running:\n%s" % (SERVICE, _journal(vault1))
    assert service.is_enabled


def test_unit_is_hardened(vault1):
    props = vault1.check_output(
        "systemctl show %s -p User -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "
        "-p CapabilityBoundingSet -p Restart -p LimitNOFILE", SERVICE
    )
    assert "User=openbao" in props
    assert "ProtectSystem=strict" in props
    assert "NoNewPrivileges=yes" in props
    assert "PrivateTmp=yes" in props
    assert "CapabilityBoundingSet=cap_ipc_lock" in props
    assert "Restart=always" in props


def test_initialized_and_unsealed(vault1):
    cmd = vault1.run(
        "env BAO_ADDR=https://127.0.0.1:8200 BAO_CACERT=%s bao status -format=json", CA_FILE
    )
    assert cmd.rc == 0, "bao status failed (rc %d): %s\n%s" % (cmd.rc, cmd.stderr, _journal(vault1))
    status = json.loads(cmd.stdout)
    assert status["initialized"] is True
    assert status["sealed"] is False
    assert status["storage_type"] == "raft"


def test_listener_certificate_is_issued_by_the_pki(vault1):
    issuer = vault1.check_output(
        "openssl s_client -connect 127.0.0.1:8200 -servername vault1 -CAfile %s </dev/null 2>/dev/null"
        " | openssl x509 -noout -issuer", CA_FILE
    )
    assert "mailmesh issuing CA" in issuer
    verify = vault1.run(
        "openssl verify -CAfile %s -untrusted /etc/mailmesh/tls/vault/chain.pem /etc/mailmesh/tls/vault/cert.pem",
        CA_FILE,
    )
    assert verify.rc == 0, verify.stdout + verify.stderr
    # The listener serves the pair vault_cert keeps, through the links.
    assert vault1.file("/etc/openbao/tls/listener.pem").linked_to == "/etc/mailmesh/tls/vault/fullchain.pem"
    assert vault1.file("/etc/openbao/tls/listener-key.pem").linked_to == "/etc/mailmesh/tls/vault/key.pem"


def test_the_vault_host_renews_its_listener_certificate_itself(vault1):
    """Its own AppRole file (the loopback URL its certificate names), and the renewal
    timer with the listener's entry, which reloads the server after a renewal."""
    approle = vault1.file(APPROLE_FILE)
    assert approle.mode == 0o600 and approle.user == "root"
    data = json.loads(approle.content_string)
    assert data["url"] == "https://127.0.0.1:8200" and data["role_name"] == "vault1"
    assert data["pki_role"] == "vault_servers"
    timer = vault1.service("mailmesh-cert-renew.timer")
    assert timer.is_enabled and timer.is_running
    entry = json.loads(vault1.file("/etc/mailmesh/cert-renew.d/vault.json").content_string)
    assert entry["reload_units"] == ["openbao.service"] and entry["group"] == "openbao"
    assert entry["ip_sans"] == ["127.0.0.1"] and entry["common_name"] == "vault1"
    # A run now renews nothing (the certificate is fresh) and succeeds: its policy allows
    # exactly the names it asks for.
    run = vault1.run("systemctl start mailmesh-cert-renew.service")
    assert run.rc == 0, vault1.run("journalctl -u mailmesh-cert-renew --no-pager -n 20").stdout
    forced = vault1.run("python3 -I /usr/local/lib/mailmesh/cert-renew/mailmesh-cert-renew.py --force")
    assert forced.rc == 0 and "vault: renewed (forced)" in forced.stdout, forced.stdout + forced.stderr
    assert "reloaded openbao.service" in forced.stdout


@pytest.mark.parametrize("name", ["gw1", "store1"])
def test_clients_verify_vault_with_ca_file(name):
    host = _host(name)
    cmd = host.run("curl -sS --fail --cacert %s %s/v1/sys/health", CA_FILE, VAULT_URL)
    assert cmd.rc == 0, cmd.stderr
    assert json.loads(cmd.stdout)["sealed"] is False


@pytest.mark.parametrize("name", ["gw1", "store1"])
def test_approle_file_is_private(name):
    host = _host(name)
    approle = host.file(APPROLE_FILE)
    assert approle.exists
    assert approle.user == "root"
    assert approle.group == "root"
    assert approle.mode == 0o600
    data = json.loads(approle.content_string)
    assert data["url"] == VAULT_URL
    assert data["role_name"] == name
    assert data["role_id"] and data["secret_id"]
    ca = host.file(CA_FILE)
    assert ca.mode == 0o644
    assert ca.content_string.count("BEGIN CERTIFICATE") == 2


def test_private_keys_are_not_world_readable(vault1):
    for path in ("/etc/mailmesh/tls/vault/key.pem", "/etc/openbao/tls/bootstrap-key.pem"):
        key = vault1.file(path)
        assert key.user == "root"
        assert key.group == "openbao"
        assert key.mode & 0o007 == 0, "%s is world-accessible" % path
    # The bootstrap CA's key was deleted right after it signed the bootstrap certificate.
    assert not vault1.run("ls /etc/openbao/tls/ | grep -i ca-key").stdout.strip()


def test_controller_init_file_is_private():
    assert os.stat(INIT_FILE).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(INIT_FILE)).st_mode & 0o777 == 0o700


def _csr(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _api(host, method, path, token=None, body=None):
    """Call the Vault API from `host` with curl; returns (status, parsed body)."""
    args = ["curl", "-sS", "--cacert", CA_FILE, "-X", method, "-w", "\n%{http_code}"]
    if token:
        args += ["-H", "X-Vault-Token: " + token]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    args.append(VAULT_URL + "/v1/" + path)
    cmd = host.run(" ".join(["%s"] * len(args)), *args)
    assert cmd.rc == 0, cmd.stderr
    text, _, code = cmd.stdout.rpartition("\n")
    return int(code), (json.loads(text) if text.strip() else {})


@pytest.fixture(scope="module")
def gw1_token(gw1):
    creds = json.loads(gw1.file(APPROLE_FILE).content_string)
    status, body = _api(
        gw1, "POST", "auth/%s/login" % creds["approle_mount"],
        body={"role_id": creds["role_id"], "secret_id": creds["secret_id"]},
    )
    assert status == 200, body
    return creds, body["auth"]["client_token"]


def test_gw1_approle_signs_its_own_name(gw1, gw1_token):
    creds, token = gw1_token
    status, body = _api(
        gw1, "POST", "%s/sign/%s" % (creds["mount"], creds["pki_role"]), token,
        {"csr": _csr("gw1"), "common_name": "gw1", "alt_names": "imap.gw1.test"},
    )
    assert status == 200, body
    cert = x509.load_pem_x509_certificate(body["data"]["certificate"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw1"
    assert set(sans.get_values_for_type(x509.DNSName)) == {"gw1", "imap.gw1.test"}


@pytest.mark.parametrize("role", ["gateways", "mailstores"])
def test_gw1_approle_is_refused_store1s_name(gw1, gw1_token, role):
    creds, token = gw1_token
    status, body = _api(
        gw1, "POST", "%s/sign/%s" % (creds["mount"], role), token,
        {"csr": _csr("store1"), "common_name": "store1"},
    )
    assert status == 403, body


# Runs on the Vault host: one unseal share from stdin to the local listener; prints
# whether the server is still sealed. The share never appears on a command line.
UNSEAL = r"""
import json, ssl, sys, urllib.request
key = sys.stdin.readline().strip()
context = ssl.create_default_context(cafile=sys.argv[1])
request = urllib.request.Request("https://127.0.0.1:8200/v1/sys/unseal", method="PUT",
                                 data=json.dumps({"key": key}).encode())
print(json.load(urllib.request.urlopen(request, context=context, timeout=30))["sealed"])
"""


def _seal_status(host):
    cmd = host.run("env BAO_ADDR=https://127.0.0.1:8200 BAO_CACERT=%s bao status -format=json", CA_FILE)
    assert cmd.stdout.strip(), cmd.stderr
    return json.loads(cmd.stdout)


def test_the_server_comes_back_after_kills_sealed_and_the_init_file_unseals_it(vault1):
    """Restart=always and no start limit: killed six times and ended cleanly once, the
    server comes back every time, under its system call filter, with the count in the
    textfile. With the Shamir seal it comes back sealed (what is left to do: unseal it
    with the init file's shares, docs/operations.md); it is unsealed here the same way."""
    unit_checks.check_comes_back(vault1, SERVICE, lambda: _journal(vault1))
    unit_checks.check_syscall_filter(vault1, SERVICE)
    status = _seal_status(vault1)
    assert status["initialized"] is True and status["sealed"] is True, status
    with open(INIT_FILE, encoding="utf-8") as handle:
        init = json.load(handle)
    sealed = None
    for key in init["keys"][:init["secret_threshold"]]:
        done = subprocess.run(["docker", "exec", "-i", VAULT_CONTAINER, "python3", "-c", UNSEAL, CA_FILE],
                              input=key + "\n", capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        sealed = done.stdout.strip()
    assert sealed == "False", sealed
    for _attempt in range(60):  # the lone raft node leads again
        status = _seal_status(vault1)
        if status["sealed"] is False and status.get("is_self"):
            break
        unit_checks.time.sleep(1)
    assert status["sealed"] is False and status.get("is_self"), status
