"""What the whole mesh gives its users, with the lab's inventory shape and the real
playbooks: mail apps on both edge devices (amd64 and arm64) and ordinary TLS clients
read and write mail, each user on their own store; a gateway can fail; Vault can stop
(services keep serving, a rotation fails clearly and changes nothing); every
certificate can be rotated while 20 sessions stay open and new ones keep logging in."""

import imaplib
import json
import os
import re
import socket
import ssl
import subprocess
import time

import mesh_checks
import pytest
from mesh_checks import EDGE_CLIENT
from mesh_checks import envoy_served_serial as _envoy_served_serial
from mesh_checks import host as _host
from mesh_checks import ip as _ip
from mesh_checks import journal as _journal

VAULT = "e2e-vault1"
VAULT_UNIT = "openbao"  # roles/vault_server/vars/main.yml, flavor openbao
STORES = ("e2e-store1", "e2e-store2")
GATEWAYS = ("e2e-gw1", "e2e-gw2")
EDGES = ("e2e-edge1", "e2e-pi1")
ENVOY_HOSTS = STORES + GATEWAYS + EDGES
ALL_HOSTS = (VAULT,) + ENVOY_HOSTS
# The lab's users (inventories/lab/group_vars/all.yml) and their stores (host_vars/).
USERS = {"alice@example.test": "alice-secret", "bob@example.test": "bob-secret"}
HOME_STORE = {"alice@example.test": "e2e-store1", "bob@example.test": "e2e-store2"}
VMAIL = "/var/vmail"
TLS_DIR = "/etc/mailmesh/tls"
VAULT_CA = "/etc/mailmesh/vault/ca.pem"
IMAPS_PORT = 993

SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOKS = os.path.normpath(os.path.join(SCENARIO_DIR, "..", "..", "playbooks"))


# Runs on an edge device for the rotation: holds sessions open and opens new ones on
# request, one line per command on stdin, one answer line on stdout.
#   argv: user password [user password ...]  -> LOGIN + SELECT each, then "READY <n>"
#   check            -> NOOP + FETCH on every held session: "CHECKED <ok> <errors>"
#   new <user> <pw>  -> a new session: LOGIN, SELECT, FETCH, LOGOUT: "NEW OK" or "NEW FAIL ..."
#   quit             -> LOGOUT every held session: "BYE"
EDGE_HOLDER = r"""
import imaplib, sys

def fetch_one(m):
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) > 0, (typ, data)
    typ, data = m.fetch(data[0], "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and data and data[0], (typ, data)

pairs = sys.argv[1:]
held = []
for user, password in zip(pairs[::2], pairs[1::2]):
    m = imaplib.IMAP4("127.0.0.1", 143, timeout=120)
    m.login(user, password)
    assert m.select("INBOX")[0] == "OK"
    held.append(m)
print("READY %d" % len(held), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "check":
        ok, errors = 0, []
        for number, m in enumerate(held):
            try:
                assert m.noop()[0] == "OK"
                typ, data = m.fetch("1", "(UID RFC822.SIZE)")
                assert typ == "OK" and data and data[0], (typ, data)
                ok += 1
            except Exception as exc:
                errors.append("session %d: %r" % (number, exc))
        print("CHECKED %d %s" % (ok, " | ".join(errors)), flush=True)
    elif words[0] == "new":
        try:
            m = imaplib.IMAP4("127.0.0.1", 143, timeout=60)
            m.login(words[1], words[2])
            fetch_one(m)
            m.logout()
            print("NEW OK", flush=True)
        except Exception as exc:
            print("NEW FAIL %r" % (exc,), flush=True)
    elif words[0] == "quit":
        break
for m in held:
    try:
        m.logout()
    except Exception:
        pass
print("BYE", flush=True)
"""


@pytest.fixture(scope="module")
def hosts():
    return {name: _host(name) for name in ALL_HOSTS}


@pytest.fixture(scope="module")
def ca_file(hosts, tmp_path_factory):
    """The Vault CA every host trusts, copied out for this process's TLS clients."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(hosts[GATEWAYS[0]].file(VAULT_CA).content_string)
    return str(path)


def _maildir(user):
    local, domain = user.split("@")
    return "%s/%s/%s/Maildir" % (VMAIL, domain, local)


def _subject(label):
    return "e2e-%s-%d" % (label, time.time_ns())


def _on_store(store, subject, attempts=20):
    """The files under /var/vmail on this store that hold the subject."""
    return mesh_checks.on_store(store, subject, VMAIL, attempts)


def _edge_session(edge, user, subject):
    """One app session on the edge device: APPEND + FETCH through its Envoy."""
    done = subprocess.run(
        ["docker", "exec", "-i", edge, "python3", "-c", EDGE_CLIENT, user, USERS[user], subject],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0 and "FETCHED " + subject in done.stdout, (
        "session of %s on %s failed:\n%s\n%s" % (user, edge, done.stdout, done.stderr[-3000:])
    )


def _lands_on_its_store(hosts, user, subject):
    files = _on_store(hosts[HOME_STORE[user]], subject)
    assert files, "%s's message is not on %s" % (user, HOME_STORE[user])
    assert all(path.startswith(_maildir(user) + "/") for path in files), files
    for store in STORES:
        if store != HOME_STORE[user]:
            assert not _on_store(hosts[store], subject, attempts=1), (
                "%s's message is also on %s" % (user, store)
            )


class _TLSClient(imaplib.IMAP4_SSL):
    """IMAPS to an address, with the certificate checked against a host name."""

    def __init__(self, address, server_hostname, context, port=IMAPS_PORT, timeout=60):
        self._server_hostname = server_hostname
        super().__init__(address, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_hostname)


def _tls_context(ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def _direct_login(gateway, user, ca_file):
    """A direct client on the gateway's 993: LOGIN + SELECT, the session stays open."""
    client = _TLSClient(_ip(gateway), gateway, _tls_context(ca_file))
    client.login(user, USERS[user])
    typ, data = client.select("INBOX")
    assert typ == "OK", (typ, data)
    return client


def _fetch_first(client):
    typ, data = client.select("INBOX")
    assert typ == "OK" and int(data[0]) > 0, (typ, data)
    typ, data = client.fetch(data[0], "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and data and data[0], (typ, data)
    return data


def _direct_session(gateway, user, ca_file):
    """A whole direct session: LOGIN, SELECT, FETCH, LOGOUT."""
    client = _direct_login(gateway, user, ca_file)
    try:
        _fetch_first(client)
    finally:
        client.logout()


def _peer_serial(address, server_hostname, ca_file, port=IMAPS_PORT):
    """Serial of the certificate a new, verifying TLS client is served."""
    with socket.create_connection((address, port), timeout=30) as raw:
        with _tls_context(ca_file).wrap_socket(raw, server_hostname=server_hostname) as sock:
            return int(sock.getpeercert()["serialNumber"], 16)


def _file_serial(host, service):
    cmd = host.run("openssl x509 -noout -serial -in %s/%s/cert.pem", TLS_DIR, service)
    assert cmd.rc == 0, cmd.stderr
    return int(cmd.stdout.strip().split("=", 1)[1], 16)


def _pid(host, unit):
    return host.run("systemctl show -p MainPID --value %s", unit).stdout.strip()


def _play_env():
    # host_vars/e2e-vault1.yml finds the Vault init file through
    # MOLECULE_PROJECT_DIRECTORY (molecule sets it).
    return mesh_checks.play_env(MOLECULE_PROJECT_DIRECTORY=os.path.dirname(os.path.dirname(SCENARIO_DIR)))


def _play_command(playbook, *extra):
    """ansible-playbook on the molecule inventory (playbook: relative to this scenario)."""
    return ["ansible-playbook", "-i", mesh_checks.inventory(), os.path.join(SCENARIO_DIR, playbook), *extra]


def _play(playbook, *extra, timeout=1800, env=None):
    return mesh_checks.play(SCENARIO_DIR, playbook, *extra, timeout=timeout, env=env or _play_env())


RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.MULTILINE,
)


def _recap(output):
    """{host: {'ok': n, 'changed': n, 'unreachable': n, 'failed': n}} from PLAY RECAP."""
    recap = output.rsplit("PLAY RECAP", 1)[-1]
    keys = ("ok", "changed", "unreachable", "failed")
    return {
        match.group("host"): {key: int(match.group(key)) for key in keys}
        for match in RECAP.finditer(recap)
    }


ROTATE = "../../playbooks/rotate_certs.yml"
VAULT_PLAYBOOK = "../../playbooks/vault.yml"


# --- the mesh is up --------------------------------------------------------------------


@pytest.mark.parametrize("name,units", [
    (VAULT, (VAULT_UNIT,)),
    ("e2e-store1", ("dovecot", "envoy")),
    ("e2e-store2", ("dovecot", "envoy")),
    ("e2e-gw1", ("envoy", "nginx")),
    ("e2e-gw2", ("envoy", "nginx")),
    ("e2e-edge1", ("envoy",)),
    ("e2e-pi1", ("envoy",)),
])
def test_every_host_runs_its_services(hosts, name, units):
    for unit in units:
        service = hosts[name].service(unit)
        assert service.is_running, _journal(hosts[name], unit)
        assert service.is_enabled, unit


def test_the_stores_run_both_dovecot_generations(hosts):
    assert hosts["e2e-store1"].run("dovecot --version").stdout.startswith("2.3.")
    assert hosts["e2e-store2"].run("dovecot --version").stdout.startswith("2.4.")


def test_the_pi_is_arm64(hosts):
    assert hosts["e2e-pi1"].run("uname -m").stdout.strip() == "aarch64"
    assert hosts["e2e-edge1"].run("uname -m").stdout.strip() == "x86_64"


def _reclaim_line(target):
    """What the start-up page reclaimer said about the Envoy running now."""
    pid = target.run("systemctl show -p MainPID --value envoy").stdout.strip()
    lines = [line for line in target.run("journalctl -u envoy --no-pager -o cat").stdout.splitlines()
             if line.startswith("envoy pid %s: " % pid)]
    assert lines, "no reclaimer line for envoy pid %s:\n%s" % (pid, _journal(target, "envoy"))
    return lines[-1]


def test_edge_envoy_gives_back_its_startup_pages(hosts):
    """envoy_reclaim_startup_pages (default on edge devices): the amd64 device's Envoy
    loses most of its file-backed pages once ready; under qemu-user, which has no
    process_madvise, the reclaimer says so and Envoy runs as before."""
    line = _reclaim_line(hosts["e2e-edge1"])
    found = re.search(r"file-backed (\d+) -> (\d+) MiB", line)
    assert found, line
    before, after = int(found.group(1)), int(found.group(2))
    assert before >= 16 and after < before / 2, line
    line = _reclaim_line(hosts["e2e-pi1"])
    assert "not reclaimed: no process_madvise here" in line, line
    assert hosts["e2e-pi1"].service("envoy").is_running


# --- IMAP from the edge devices and from a direct client -----------------------------


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("user", sorted(USERS))
def test_app_on_each_edge_device_reaches_the_users_own_store(hosts, edge, user):
    subject = _subject("%s-%s" % (edge, user.split("@")[0]))
    _edge_session(edge, user, subject)
    _lands_on_its_store(hosts, user, subject)


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("user", sorted(USERS))
def test_direct_tls_client_on_a_gateway(hosts, ca_file, gateway, user):
    """LOGIN, SELECT, FETCH on 993, the certificate verified against the Vault CA and the
    gateway's name (connected by address)."""
    client = _direct_login(gateway, user, ca_file)
    try:
        subject = _subject("direct-%s" % gateway)
        message = ("From: laptop@example.test\r\nTo: %s\r\nSubject: %s\r\n\r\ndirect\r\n"
                   % (user, subject)).encode()
        assert client.append("INBOX", None, None, message)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        typ, data = client.search(None, "SUBJECT", subject)
        assert typ == "OK" and data[0], data
        typ, data = client.fetch(data[0].split()[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and subject.encode() in data[0][1], data
    finally:
        client.logout()
    _lands_on_its_store(hosts, user, subject)


def test_direct_tls_client_refuses_a_certificate_for_another_name(ca_file):
    """The control for the test above: the name is really checked."""
    with pytest.raises(ssl.SSLCertVerificationError):
        _peer_serial(_ip("e2e-gw1"), "e2e-gw2", ca_file)


# --- a gateway fails -----------------------------------------------------------------


def _wait_health(edge, gateway, healthy, timeout=90):
    mesh_checks.wait_health(edge, gateway, healthy, timeout)


def _logins_via(gateway_host):
    """How many LOGINs this gateway's NGINX has proxied (any user)."""
    return mesh_checks.logins_via(gateway_host, USERS)


def test_failover_when_a_gateway_stops_and_returns(hosts):
    edge_name = "e2e-edge1"
    edge, gw1, gw2 = hosts[edge_name], hosts["e2e-gw1"], hosts["e2e-gw2"]
    _wait_health(edge, "e2e-gw1", True)
    assert gw1.run("systemctl stop nginx").rc == 0
    try:
        _wait_health(edge, "e2e-gw1", False)
        before = _logins_via(gw2)
        for number, user in enumerate(sorted(USERS) * 2):
            subject = _subject("failover%d" % number)
            _edge_session(edge_name, user, subject)
            _lands_on_its_store(hosts, user, subject)
        assert _logins_via(gw2) - before >= 4, "sessions did not go through e2e-gw2"
    finally:
        assert gw1.run("systemctl start nginx").rc == 0
    _wait_health(edge, "e2e-gw1", True)
    before = _logins_via(gw1)
    for number, user in enumerate(sorted(USERS) * 2):  # round robin over two gateways
        subject = _subject("back%d" % number)
        _edge_session(edge_name, user, subject)
        _lands_on_its_store(hosts, user, subject)
    assert _logins_via(gw1) > before, "no session went through e2e-gw1 after it returned"


# --- Vault stops -----------------------------------------------------------------------

# What a failed rotation must leave as it was: every certificate and key file of the
# mesh, and every Envoy process.
WATCHED_FILES = {
    "e2e-store1": ("dovecot", "envoy"),
    "e2e-store2": ("dovecot", "envoy"),
    "e2e-gw1": ("envoy", "nginx"),
    "e2e-gw2": ("envoy", "nginx"),
    "e2e-edge1": ("envoy",),
    "e2e-pi1": ("envoy",),
}


def _state(hosts):
    files = {}
    for name, services in WATCHED_FILES.items():
        for service in services:
            for part in ("cert", "key", "chain", "fullchain"):
                path = "%s/%s/%s.pem" % (TLS_DIR, service, part)
                files[name, path] = hosts[name].file(path).sha256sum
    pids = {name: _pid(hosts[name], "envoy") for name in ENVOY_HOSTS}
    return files, pids


def _seal_status(vault):
    cmd = vault.run(
        "python3 -c %s",
        "import json, ssl, urllib.request; print(urllib.request.urlopen("
        "'https://127.0.0.1:8200/v1/sys/seal-status', timeout=10, context="
        "ssl.create_default_context(cafile='%s')).read().decode())" % VAULT_CA,
    )
    return json.loads(cmd.stdout) if cmd.rc == 0 else None


def _changed_tasks(output):
    """The names of the tasks that reported changed, in order."""
    changed, task = [], None
    for line in output.splitlines():
        match = re.match(r"^TASK \[(.+)\] \**$", line)
        if match:
            task = match.group(1)
        elif line.startswith("changed: ") and task not in changed:
            changed.append(task)
    return changed


def _assert_refused_and_unchanged(hosts, play, before, failing_hosts):
    """The play failed on Vault being unreachable, on exactly these hosts (the playbook
    stops when every host of a play has failed), and changed nothing anywhere."""
    output = play.stdout + play.stderr
    assert play.returncode != 0, output[-4000:]
    for host in failing_hosts:
        assert re.search(r"fatal: \[%s\]: FAILED! =>\s+changed: false\s+msg: .?Vault at "
                         r"https://%s:8200 is unreachable while" % (host, VAULT), output), output[-4000:]
    recap = _recap(play.stdout)
    assert set(recap) == set(failing_hosts), output[-3000:]
    assert all(counts["changed"] == 0 and counts["failed"] == 1 for counts in recap.values()), recap
    assert _changed_tasks(play.stdout) == []
    assert _state(hosts) == before


def test_vault_down_services_serve_rotation_fails_and_changes_nothing(hosts, ca_file):
    vault = hosts[VAULT]
    assert _seal_status(vault)["sealed"] is False
    before = _state(hosts)
    assert vault.run("systemctl stop %s", VAULT_UNIT).rc == 0
    try:
        assert not vault.service(VAULT_UNIT).is_running
        # Services keep serving with the certificates they have.
        for edge, user in zip(EDGES, sorted(USERS)):
            subject = _subject("novault-%s" % edge)
            _edge_session(edge, user, subject)
            _lands_on_its_store(hosts, user, subject)
        for gateway, user in zip(GATEWAYS, sorted(USERS)):
            _direct_session(gateway, user, ca_file)

        # The whole rotation: the mail stores' play is the first to ask Vault; it fails
        # on every store, and the playbook stops there.
        _assert_refused_and_unchanged(hosts, _play(ROTATE), before, STORES)
        # A gateway's rotation (its Envoy first, then NGINX) fails the same way.
        _assert_refused_and_unchanged(hosts, _play(ROTATE, "--limit", "e2e-gw1"), before, ("e2e-gw1",))
        for edge, user in zip(EDGES, sorted(USERS)):
            _edge_session(edge, user, _subject("still-novault-%s" % edge))
    finally:
        started = vault.run("systemctl start %s", VAULT_UNIT)
        # A started server is sealed: the Vault tier unseals it (also when the test
        # failed, for the tests after this one).
        unsealed = _play(VAULT_PLAYBOOK)
    assert started.rc == 0, started.stderr
    assert unsealed.returncode == 0, unsealed.stdout[-6000:] + unsealed.stderr[-2000:]
    assert _changed_tasks(unsealed.stdout) == ["mailmesh.imap.vault_server : Initialize and unseal"]
    assert _seal_status(vault)["sealed"] is False

    # A later play gets certificates from it again.
    store = hosts["e2e-store2"]
    address = _ip("e2e-store2")
    served = _peer_serial(address, "e2e-store2", ca_file)
    play = _play(ROTATE, "--limit", "e2e-store2")
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    assert _file_serial(store, "dovecot") != served
    _wait_for(lambda: _peer_serial(address, "e2e-store2", ca_file) == _file_serial(store, "dovecot"),
              "Dovecot on e2e-store2 serves its new certificate")


def _wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail("timed out waiting until " + what)


# --- rotation of every certificate under load -------------------------------------------

HELD_EDGE = "e2e-edge1"
HELD_PER_GATEWAY = 5   # direct sessions held open on each gateway's 993
HELD_ON_EDGE = 10      # app sessions held open through the edge's Envoy
NEW_SESSIONS_MAX = 1500   # the loop during the rotation: at most this many new sessions,
NEW_SESSIONS_SECONDS = 1800  # for at most this long (the play normally ends first)
NEW_SESSION_PAUSE = 0.5   # seconds between two (NGINX limits the LOGIN rate per user)


def _served(hosts, ca_file):
    """Serial served to a new client by every TLS server of the mesh."""
    served = {("envoy", name): _envoy_served_serial(hosts[name]) for name in ENVOY_HOSTS}
    for name in GATEWAYS:
        served["nginx", name] = _peer_serial(_ip(name), name, ca_file)
    for name in STORES:
        served["dovecot", name] = _peer_serial(_ip(name), name, ca_file)
    return served


def _on_disk(hosts):
    disk = {("envoy", name): _file_serial(hosts[name], "envoy") for name in ENVOY_HOSTS}
    for name in GATEWAYS:
        disk["nginx", name] = _file_serial(hosts[name], "nginx")
    for name in STORES:
        disk["dovecot", name] = _file_serial(hosts[name], "dovecot")
    return disk


class _EdgeHolder:
    """The app on the edge device holding sessions (EDGE_HOLDER), driven line by line."""

    def __init__(self, edge, users):
        argv = []
        for user in users:
            argv += [user, USERS[user]]
        self.process = subprocess.Popen(
            ["docker", "exec", "-i", edge, "python3", "-u", "-c", EDGE_HOLDER, *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.count = len(users)

    def first_line(self):
        return self.process.stdout.readline().strip()

    def ask(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self):
        try:
            if self.process.poll() is None:
                self.process.communicate("quit\n", timeout=120)
        except (subprocess.TimeoutExpired, BrokenPipeError, ValueError):
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)


def _check_direct(held):
    errors = []
    for label, client in held:
        try:
            assert client.noop()[0] == "OK"
            typ, data = client.fetch("1", "(UID RFC822.SIZE)")
            assert typ == "OK" and data and data[0], (typ, data)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append("%s: %r" % (label, exc))
    return errors


def test_forced_rotation_of_every_certificate_under_load(hosts, ca_file, tmp_path):
    users = sorted(USERS)
    # Every user has mail to FETCH.
    for user in users:
        _edge_session(HELD_EDGE, user, _subject("load-seed"))
    served_before = _served(hosts, ca_file)
    assert served_before == _on_disk(hosts), (served_before, _on_disk(hosts))
    pids_before = {name: _pid(hosts[name], "envoy") for name in ENVOY_HOSTS}

    # 20 sessions, logged in and SELECTed: 10 through the edge's Envoy, 5 direct on
    # each gateway.
    holder = _EdgeHolder(HELD_EDGE, [users[number % 2] for number in range(HELD_ON_EDGE)])
    held = []
    play = None
    try:
        ready = holder.first_line()
        assert ready == "READY %d" % HELD_ON_EDGE, ready + holder.process.stderr.read()
        for gateway in GATEWAYS:
            for number in range(HELD_PER_GATEWAY):
                user = users[number % 2]
                label = "%s #%d %s" % (gateway, number, user)
                held.append((label, _direct_login(gateway, user, ca_file)))
        assert len(held) + holder.count == 20
        assert holder.ask("check") == "CHECKED %d" % HELD_ON_EDGE
        assert _check_direct(held) == []

        # The rotation, and new sessions all along until it ends.
        play_log = tmp_path / "rotate_certs.log"
        with open(play_log, "w", encoding="utf-8") as log:
            play = subprocess.Popen(_play_command(ROTATE), env=_play_env(), stdout=log,
                                    stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        attempts, failures = 0, []
        kinds = [("edge", None)] + [("direct", gateway) for gateway in GATEWAYS]
        while (play.poll() is None and attempts < NEW_SESSIONS_MAX
               and time.monotonic() - started < NEW_SESSIONS_SECONDS):
            kind, gateway = kinds[attempts % len(kinds)]
            user = users[(attempts // len(kinds)) % 2]
            attempts += 1
            try:
                if kind == "edge":
                    answer = holder.ask("new %s %s" % (user, USERS[user]))
                    assert answer == "NEW OK", answer
                else:
                    _direct_session(gateway, user, ca_file)
            except Exception as exc:  # pylint: disable=broad-except
                failures.append("%.0fs %s via %s as %s: %r" % (
                    time.monotonic() - started, kind, gateway or HELD_EDGE, user, exc))
            time.sleep(NEW_SESSION_PAUSE)
        play.wait(timeout=NEW_SESSIONS_SECONDS)
        play_seconds = time.monotonic() - started
        output = play_log.read_text(encoding="utf-8")
        assert play.returncode == 0, output[-8000:]
        assert not failures, "%d of %d new sessions failed during the rotation:\n%s" % (
            len(failures), attempts, "\n".join(failures))
        assert attempts >= 20, "only %d new sessions during the rotation" % attempts
        recap = _recap(output)
        assert set(recap) == set(ENVOY_HOSTS), recap

        # Every held session still works.
        assert holder.ask("check") == "CHECKED %d" % HELD_ON_EDGE
        assert _check_direct(held) == []
    finally:
        if play is not None and play.poll() is None:
            play.kill()
            play.wait(timeout=60)
        for _label, client in held:
            try:
                client.logout()
            except Exception:  # pylint: disable=broad-except
                pass
        holder.close()

    # Every server now serves a new certificate, the one on its disk; Envoy did not restart.
    deadline = time.monotonic() + 60
    served = _served(hosts, ca_file)
    while time.monotonic() < deadline and served != _on_disk(hosts):
        time.sleep(1)
        served = _served(hosts, ca_file)
    assert served == _on_disk(hosts)
    unchanged = sorted("%s on %s" % key for key, serial in served.items() if serial == served_before[key])
    assert not unchanged, "still the old certificate: %s" % unchanged
    for name in ENVOY_HOSTS:
        assert _pid(hosts[name], "envoy") == pids_before[name], "Envoy restarted on %s" % name
    print("rotation: rotate_certs.yml ran %.0fs; %d new sessions meanwhile (edge, direct gw1, "
          "direct gw2 in turn), none failed; 20 held sessions kept; new serials: %s"
          % (play_seconds, attempts, {"%s %s" % key: "%x" % serial for key, serial in served.items()}))


# --- a rotation of one tier alone ----------------------------------------------------------


def test_rotation_of_the_gateways_alone(hosts, ca_file):
    """rotate_certs.yml --limit gateways, as an operator runs it after a gateway incident."""
    before = {name: _peer_serial(_ip(name), name, ca_file) for name in GATEWAYS}
    play = _play(ROTATE, "--limit", "gateways")
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    for name in GATEWAYS:
        on_disk = _file_serial(hosts[name], "nginx")
        assert on_disk != before[name], name
        address = _ip(name)
        _wait_for(lambda a=address, n=name, s=on_disk: _peer_serial(a, n, ca_file) == s,
                  "NGINX on %s serves its new certificate" % name)


# --- still converged -------------------------------------------------------------------


def test_site_with_mitogen_as_make_lab_runs_it_changes_nothing():
    """`make lab` applies site.yml with Mitogen's strategy (mitogen_linear, from
    ANSIBLE_STRATEGY_PLUGINS, which the Makefile sets): it reaches every host through
    Mitogen's own transport, and on the converged mesh it changes nothing."""
    env = dict(_play_env(), ANSIBLE_STRATEGY="mitogen_linear")
    plugins = env.get("ANSIBLE_STRATEGY_PLUGINS", "")
    assert os.path.isfile(os.path.join(plugins, "mitogen_linear.py")), (
        "ANSIBLE_STRATEGY_PLUGINS=%r has no mitogen_linear.py: run the tests through make" % plugins)
    # What runs a task's command on each host: Mitogen's long-lived interpreter names
    # itself python3(mitogen:...); stock Ansible's is a plain python3 per task.
    parents = subprocess.run(
        ["ansible", "all", "-i", mesh_checks.inventory(), "-m", "ansible.builtin.shell",
         "-a", "tr '\\0' ' ' < /proc/$PPID/cmdline"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert parents.returncode == 0, parents.stdout[-3000:] + parents.stderr[-2000:]
    by_host = dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(.*)$", parents.stdout, re.MULTILINE))
    assert set(by_host) == set(ALL_HOSTS), parents.stdout
    assert all("(mitogen:" in line for line in by_host.values()), by_host

    play = _play("converge.yml", env=env)
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    recap = _recap(play.stdout)
    assert set(recap) == set(ALL_HOSTS), recap
    assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), recap
    assert _changed_tasks(play.stdout) == []


def test_site_in_check_mode_reports_no_change():
    """After the failover, the Vault outage and the rotations, a check-mode run of
    site.yml finds nothing to change on any host (molecule's idempotence step ran
    before all of them)."""
    play = _play("converge.yml", "--check")
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    recap = _recap(play.stdout)
    assert set(recap) == set(ALL_HOSTS), recap
    assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), recap
    assert _changed_tasks(play.stdout) == []
