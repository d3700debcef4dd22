"""Unit tests for plugins/module_utils/_cert_renewal.py with a fake Vault connection: the
clock checks, the lock, the atomic writes and the order of the writes. The real
issuance is tested against OpenBao in tests/integration (module and agent)."""

import datetime
import fcntl
import os
import stat
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mailmesh.imap.plugins.module_utils import _cert_renewal as renewal
from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki

CN = "h1.example.org"
NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class FakeCA:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(_name("fake CA")).issuer_name(_name("fake CA"))
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(NOW - datetime.timedelta(days=1))
                     .not_valid_after(NOW + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = pki.certificate_pem(self.cert).decode()

    def sign(self, csr_pem, start, hours=72):
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start - datetime.timedelta(seconds=30))
                .not_valid_after(start + datetime.timedelta(hours=hours))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return pki.certificate_pem(cert).decode()


class FakeConnection:
    """What CertKeeper needs of a VaultConnection; Vault's clock is `vault_now`."""

    url = "https://vault.test:8200"

    def __init__(self, ca, vault_now=NOW, down=False):
        self.ca = ca
        self.vault_now = vault_now
        self.down = down
        self.server_time = None
        self.params = {"auth_method": "approle"}
        self.signed = []

    def auth_method(self):
        class Method:
            @staticmethod
            def client_kwargs():
                return {}
        return Method()

    def unauthenticated_get(self, path):
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        self.server_time = self.vault_now
        return {"data": {"certificate": self.ca.pem}}

    def vault_error(self, exc, what):
        return "Vault at %s is unreachable while %s: %s" % (self.url, what, exc)

    @staticmethod
    def failover(operation, what=None, warn=None):  # one node: no failover
        return operation()

    def client(self):
        connection = self

        class Adapter:
            @staticmethod
            def post(path, json):
                connection.signed.append((path, json))
                return {"data": {"certificate": connection.ca.sign(json["csr"], connection.vault_now),
                                 "ca_chain": [connection.ca.pem]}}

        class Client:
            adapter = Adapter()
        return Client()

    def hvac(self):
        class Exceptions:
            class InvalidRequest(Exception):
                pass

        class Hvac:
            exceptions = Exceptions
        return Hvac


@pytest.fixture(scope="module")
def ca():
    return FakeCA()


def options(directory, **extra):
    result = dict(engine_mount_point="pki_int", role_name="hosts", common_name=CN, alt_names=[], ip_sans=[],
                  ttl=None, renew_before="24h", max_clock_skew="5m", key_type="ec", key_bits=None,
                  rotate_key=False, force=False,
                  cert_path=str(directory / "cert.pem"), key_path=str(directory / "key.pem"),
                  chain_path=str(directory / "chain.pem"), fullchain_path=str(directory / "fullchain.pem"),
                  owner=None, group=None, key_mode=0o640, cert_mode=0o644)
    result.update(extra)
    return result


def keep(connection, directory, now=NOW, **extra):
    return renewal.CertKeeper(connection, options(directory, **extra), now=lambda: now).run()


def test_issues_writes_key_first_and_keeps_it(ca, tmp_path):
    connection = FakeConnection(ca)
    outcome = keep(connection, tmp_path)
    assert outcome["changed"] and outcome["reasons"] == ["missing"] and outcome["key_generated"]
    assert outcome["clock_skew"] == 0
    key_time = os.stat(tmp_path / "key.pem").st_mtime_ns
    assert key_time <= os.stat(tmp_path / "cert.pem").st_mtime_ns
    assert stat.S_IMODE(os.stat(tmp_path / "key.pem").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "cert.pem").st_mode) == 0o644
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".mailmesh-")]
    # Two days later it is due (24 h left of 72 h): a new certificate, the same key.
    key = (tmp_path / "key.pem").read_bytes()
    later = NOW + datetime.timedelta(hours=49)
    connection.vault_now = later
    outcome = keep(connection, tmp_path, now=later)
    assert outcome["reasons"] == ["expiring"] and not outcome["key_generated"]
    assert (tmp_path / "key.pem").read_bytes() == key
    assert outcome["before"]["serial_number"] != outcome["after"]["serial_number"]


def test_a_clock_ahead_of_vaults_is_refused_and_nothing_is_issued(ca, tmp_path):
    """A Pi whose clock is days ahead would see every new certificate as expiring and
    reissue it on every tick: the keeper names the clock instead."""
    connection = FakeConnection(ca)
    keep(connection, tmp_path)
    before = (tmp_path / "cert.pem").read_bytes()
    ahead = NOW + datetime.timedelta(days=3)
    with pytest.raises(renewal.RenewalError) as info:
        keep(connection, tmp_path, now=ahead)
    message = str(info.value)
    assert message.startswith("this host's clock (2026-12-04T12:00:00Z) is 3d ahead of the clock of Vault at "
                              "https://vault.test:8200 (2026-12-01T12:00:00Z)"), message
    assert "expired or expiring" in message
    assert (tmp_path / "cert.pem").read_bytes() == before and len(connection.signed) == 1


def test_a_clock_behind_is_refused_too_and_the_check_can_be_off(ca, tmp_path):
    connection = FakeConnection(ca)
    behind = NOW - datetime.timedelta(hours=2)
    with pytest.raises(renewal.RenewalError, match=r"is 2h behind the clock of Vault .*not yet valid"):
        keep(connection, tmp_path, now=behind)
    assert not (tmp_path / "key.pem").exists()
    outcome = keep(connection, tmp_path, now=behind, max_clock_skew="0")
    assert outcome["reasons"] == ["missing"] and outcome["clock_skew"] == 7200 * -1


def test_vault_unreachable_with_a_certificate_not_yet_valid_names_the_clock(ca, tmp_path):
    connection = FakeConnection(ca)
    keep(connection, tmp_path)
    connection.down = True
    with pytest.raises(renewal.RenewalError) as info:
        keep(connection, tmp_path, now=NOW - datetime.timedelta(days=2))
    message = str(info.value)
    assert message.startswith("Vault at https://vault.test:8200 is unreachable while reading the issuing CA"), message
    assert "not valid before 2026-12-01T11:59:30Z, 1d23h after this host's clock" in message
    assert "the clock is probably wrong" in message
    # With the clock right, only the cause.
    with pytest.raises(renewal.RenewalError) as info:
        keep(connection, tmp_path)
    assert "clock" not in str(info.value)


def test_a_renewal_waits_for_the_lock_and_times_out(ca, tmp_path, monkeypatch):
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(renewal.RenewalError, match="held its lock for more than 0 s"):
            with renewal.directory_lock(str(tmp_path), timeout=0):
                pass
        threading.Timer(0.5, os.close, [fd]).start()
        started = time.monotonic()
        with renewal.directory_lock(str(tmp_path), timeout=10):
            assert time.monotonic() - started >= 0.4
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def test_atomic_write_sets_attributes_before_the_rename(tmp_path):
    path = tmp_path / "key.pem"
    assert renewal.atomic_write(str(path), b"one", 0o640)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not renewal.atomic_write(str(path), b"one", 0o640)
    os.chmod(path, 0o600)
    assert renewal.atomic_write(str(path), b"one", 0o640)  # the mode alone
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    inode = os.stat(path).st_ino
    assert renewal.atomic_write(str(path), b"two", 0o640)
    assert path.read_bytes() == b"two" and os.stat(path).st_ino != inode


def test_unknown_owner_and_bad_options_fail_before_anything(ca, tmp_path):
    connection = FakeConnection(ca)
    with pytest.raises(renewal.RenewalError, match="owner: there is no user 'nobody-here' on this host"):
        keep(connection, tmp_path, owner="nobody-here")
    with pytest.raises(renewal.RenewalError, match="max_clock_skew: not a duration"):
        keep(connection, tmp_path, max_clock_skew="soon")
    with pytest.raises(renewal.RenewalError, match="cert_path: directory .*/nowhere does not exist"):
        keep(connection, tmp_path, cert_path=str(tmp_path / "nowhere" / "cert.pem"))
    assert os.listdir(tmp_path) == [] and connection.signed == []


def test_approle_options_and_file_errors(tmp_path):
    path = tmp_path / "approle.json"
    path.write_text('{"url": "u", "role_id": "r", "secret_id": "s", "approle_mount": "a", '
                    '"mount": "m", "pki_role": "p", "ca_cert": "/ca.pem"}')
    path.chmod(0o600)
    options_from_file = renewal.approle_options(renewal.read_approle_file(str(path)))
    assert options_from_file == {"url": "u", "role_id": "r", "secret_id": "s", "approle_mount_point": "a",
                                 "engine_mount_point": "m", "role_name": "p", "auth_method": "approle",
                                 "ca_cert": "/ca.pem"}
    path.write_text('{"url": "u"}')
    with pytest.raises(renewal.RenewalError, match="lacks approle_mount, mount, pki_role, role_id, secret_id"):
        renewal.read_approle_file(str(path))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_an_approle_file_open_to_others_is_refused(tmp_path, mode):
    """As ssh refuses a private key others can read: the file's secret ID logs in as
    this host. The message names the file, the mode and the fix, not the secret ID."""
    path = tmp_path / "approle.json"
    path.write_text('{"url": "u", "role_id": "r", "secret_id": "very-secret", "approle_mount": "a", '
                    '"mount": "m", "pki_role": "p"}')
    path.chmod(mode)
    with pytest.raises(renewal.RenewalError) as info:
        renewal.read_approle_file(str(path))
    message = str(info.value)
    assert message.startswith("approle_file %s is open to group or others (mode %04o, owner uid %d)"
                              % (path, mode, os.geteuid())), message
    assert "Run the Vault tier for this host" in message and "very-secret" not in message


def test_an_approle_file_of_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "approle.json"
    path.write_text('{"url": "u"}')
    path.chmod(0o600)
    real = os.fstat

    def fstat(fd):
        info = real(fd)
        return os.stat_result((info.st_mode, info.st_ino, info.st_dev, info.st_nlink, 4242) + tuple(info)[5:])

    monkeypatch.setattr(renewal.os, "fstat", fstat)
    with pytest.raises(renewal.RenewalError, match=r"is owned by another user \(mode 0600, owner uid 4242\)"):
        renewal.read_approle_file(str(path))


def test_span_reads_like_a_person_would_write_it():
    assert [renewal.span(s) for s in (0, 59, 61, 3700, 90061, -7200)] == ["0s", "59s", "1m1s", "1h1m", "1d1h", "2h"]


def test_key_pem_is_never_in_the_outcome(ca, tmp_path):
    outcome = keep(FakeConnection(ca), tmp_path)
    text = repr({k: v for k, v in outcome.items() if k != "cert"})
    key = serialization.load_pem_private_key((tmp_path / "key.pem").read_bytes(), password=None)
    assert "PRIVATE" not in text
    assert str(key.private_numbers().private_value) not in text
