"""What the whole mesh gives its users, with the lab's inventory shape and the real
playbooks: mail apps on both edge devices and ordinary TLS clients
read and write mail, each user on their own store; a gateway can fail; every host keeps
its certificates alive by itself, through a Vault outage and a device offline until its
certificate expired, with no Ansible run; Vault can stop (services keep serving, a
rotation fails clearly and changes nothing); every certificate can be rotated while 20
sessions stay open and new ones keep logging in."""

import contextlib
import datetime
import imaplib
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import mesh_checks
import pytest
import tls_scan
from prometheus_client.parser import text_string_to_metric_families
from mesh_checks import EDGE_CLIENT
from mesh_checks import ip as _ip
from mesh_checks import journal as _journal
from e2e_shape import (AGENT_UNIT, ALL_HOSTS, EDGES, ENVOY_HOSTS, GATEWAYS, HOME_STORE, IMAPS_PORT, INIT_FILE,
                       SCENARIO_DIR, STORES, USERS, VAULT, VAULT_CA, VAULT_UNIT, VMAIL)

TLS_DIR = "/etc/mailmesh/tls"
PLAYBOOKS = os.path.normpath(os.path.join(SCENARIO_DIR, "..", "..", "playbooks"))
# The edge device with the shorter certificate life (host_vars/e2e-edge2.yml).
SHORT_LIVED = "e2e-edge2"

# What the renewal agent (roles/vault_cert) keeps.
AGENT_CONFIG_DIR = "/etc/mailmesh/cert-renew.d"
TEXTFILE = "/var/lib/prometheus/node-exporter/mailmesh_cert_renew.prom"
APPROLE_FILE = "/etc/mailmesh/vault/approle.json"
# group_vars/all/renewal.yml: a run every 30 s after the last, plus up to 10 s.
TIMER_PERIOD = 40
# What an OpenBao or Vault token looks like (service and batch tokens, old and new).
TOKEN = re.compile(r"\b(hvs|hvb|s|b)\.[A-Za-z0-9_-]{20,}")
# The soak: this long in all, IMAP from both edge devices throughout, a new session every
# NEW_SESSION_EVERY seconds on each (at most SOAK_MAX_ROUNDS), the serials sampled every
# SAMPLE_EVERY seconds; Vault down from OUTAGE_AT for OUTAGE_SECONDS: longer than two
# timer periods (every agent tries and fails at least twice), shorter than the least
# life a certificate has left between two runs (4 min - 40 s; e2e-edge2's 210 s - 40 s).
# How long is enough: a certificate is renewed 120-160 s after its last renewal (6 min
# life, renewed 4 min before, a tick every 30-40 s). So each one is renewed once before
# OUTAGE_AT (>= 160 s), is due again by 320 s at the latest and, if that falls in the
# outage, is renewed on the first ticks after it (~290-330 s): three serials by 330 s
# wherever its life stood at the start, and every one renewed after the outage by
# ~340 s (one renewed just before the outage falls due 120-160 s later). SOAK_SECONDS
# leaves some 140 s beyond that for slow ticks on a loaded machine.
SOAK_SECONDS = 480
SOAK_MAX_ROUNDS = 1000
NEW_SESSION_EVERY = 1.0
SAMPLE_EVERY = 15
OUTAGE_AT = 180
OUTAGE_SECONDS = 100

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
    ("e2e-edge2", ("envoy",)),
])
def test_every_host_runs_its_services(hosts, name, units):
    for unit in units:
        service = hosts[name].service(unit)
        assert service.is_running, _journal(hosts[name], unit)
        assert service.is_enabled, unit


def test_the_stores_run_both_dovecot_generations(hosts):
    assert hosts["e2e-store1"].run("dovecot --version").stdout.startswith("2.3.")
    assert hosts["e2e-store2"].run("dovecot --version").stdout.startswith("2.4.")


@pytest.mark.parametrize("edge", EDGES)
def test_edge_envoy_gives_back_its_startup_pages(hosts, edge):
    """envoy_reclaim_startup_pages (default on edge devices): the device's Envoy loses
    most of its file-backed pages once ready (under qemu-user, which has no
    process_madvise, the reclaimer says so: molecule/edge_mesh shows that)."""
    line = mesh_checks.envoy_reclaim_line(hosts[edge])
    found = re.search(r"file-backed (\d+) -> (\d+) MiB", line)
    assert found, line
    before, after = int(found.group(1)), int(found.group(2))
    assert before >= 16 and after < before / 2, line


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


# --- the hosts keep their certificates alive; Vault stops ----------------------------

# What a failed rotation must leave as it was: every certificate and key file of the
# mesh, and every Envoy process.
WATCHED_FILES = {
    # The stores' Dovecot has no certificate: no direct IMAPS (dovecot_imaps, off).
    "e2e-store1": ("envoy",),
    "e2e-store2": ("envoy",),
    "e2e-gw1": ("envoy", "nginx"),
    "e2e-gw2": ("envoy", "nginx"),
    "e2e-edge1": ("envoy",),
    "e2e-edge2": ("envoy",),
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


def _unseal_by_hand(vault):
    """What an operator does after a restart with the Shamir seal (`bao operator unseal`,
    threshold times), with the keys of the Vault tier's init file: they go to the Vault
    host over stdin, never on a command line or into the output."""
    started = time.monotonic()
    while _seal_status(vault) is None and time.monotonic() - started < 60:
        time.sleep(1)
    init = json.loads(INIT_FILE.read_text(encoding="utf-8"))
    keys = init["keys"][: init["secret_threshold"]]
    done = subprocess.run(["docker", "exec", "-i", VAULT, "python3", "-c", mesh_checks.UNSEAL, VAULT_CA],
                          input="\n".join(keys) + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "sealed=False" in done.stdout, "unsealing failed (rc %d)" % done.returncode
    assert _seal_status(vault)["sealed"] is False


def _agents_idle(hosts, timeout=180):
    """No renewal run in progress on any host (one that started before Vault stopped may
    still be writing)."""
    deadline = time.monotonic() + timeout
    for name in ALL_HOSTS:
        while hosts[name].run("systemctl is-active %s.service", AGENT_UNIT).stdout.strip() == "activating":
            assert time.monotonic() < deadline, "the renewal agent on %s is still running" % name
            time.sleep(1)


def _run_agents_now(hosts):
    """A timer tick on every host at once (systemctl start waits until the run ended);
    then every certificate is at least renew_before from its expiry."""
    for name in ALL_HOSTS:
        done = hosts[name].run("systemctl start %s.service", AGENT_UNIT)
        assert done.rc == 0, "%s: %s\n%s" % (name, done.stderr, _agent_journal(hosts[name]))


def _agent_journal(host, since=None):
    """What the renewal agent said (only its own lines: journald's are left out)."""
    return host.run("journalctl -u %s.service --since %s --no-pager -o cat -q", AGENT_UNIT,
                    "@%d" % int(since or 0)).stdout


def _file_serials(host):
    """{certificate: serial} for every certificate directory under /etc/mailmesh/tls."""
    cmd = host.run("for d in %s/*/; do printf '%%s ' \"$(basename \"$d\")\"; "
                   "openssl x509 -noout -serial -in \"$d/cert.pem\"; done", TLS_DIR)
    assert cmd.rc == 0, cmd.stderr
    found = {}
    for line in cmd.stdout.splitlines():
        name, serial = line.split()
        found[name] = int(serial.split("=", 1)[1], 16)
    return found


def _cert_files_sha(hosts):
    """sha256 of every certificate, key, chain and full chain file of the mesh."""
    state = {}
    for name in ALL_HOSTS:
        out = hosts[name].run("sha256sum %s/*/*.pem", TLS_DIR).stdout
        for line in out.splitlines():
            digest, path = line.split()
            state[name, path] = digest
    return state


def _envoy_serials(target):
    """Every serial Envoy's /certs lists (during a renewal, briefly two)."""
    certs = json.loads(mesh_checks.admin(target, "/certs"))["certificates"]
    return {int(c["cert_chain"][0]["serial_number"], 16) for c in certs if c.get("cert_chain")}


def _metrics(host):
    """The agent's textfile, parsed as node_exporter's textfile collector reads it:
    {(metric, cert label or None): value}."""
    text = host.run("cat %s", TEXTFILE).stdout
    assert text, "no %s on %s" % (TEXTFILE, host)
    return {(sample.name, sample.labels.get("cert")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


class _EdgeLoop(threading.Thread):
    """On one edge device for the whole soak: both users' sessions held open (NOOP and
    FETCH on them every ten rounds), and a new session (LOGIN, SELECT, FETCH, LOGOUT)
    every second or so. Bounded in rounds and time; every failure kept with its time."""

    def __init__(self, edge, started, seconds, offset):
        super().__init__(daemon=True)
        self.edge, self.started, self.seconds, self.offset = edge, started, seconds, offset
        self.rounds, self.checks, self.failures = 0, 0, []

    def _fail(self, what):
        self.failures.append("%s at %.0fs: %s" % (self.edge, time.monotonic() - self.started, what))

    def run(self):
        time.sleep(self.offset)
        users = sorted(USERS)
        holder = _EdgeHolder(self.edge, users)
        try:
            ready = holder.first_line()
            if ready != "READY %d" % len(users):
                self._fail("holder did not start: %r" % ready)
                return
            while time.monotonic() - self.started < self.seconds and self.rounds < SOAK_MAX_ROUNDS:
                user = users[self.rounds % 2]
                answer = holder.ask("new %s %s" % (user, USERS[user]))
                if answer != "NEW OK":
                    self._fail("new session of %s: %s" % (user, answer))
                if self.rounds % 10 == 0:
                    answer = holder.ask("check")
                    self.checks += 1
                    if answer != "CHECKED %d" % len(users):
                        self._fail("held sessions: %s" % answer)
                self.rounds += 1
                time.sleep(NEW_SESSION_EVERY)
            answer = holder.ask("check")
            if answer != "CHECKED %d" % len(users):
                self._fail("held sessions at the end: %s" % answer)
        finally:
            holder.close()


class _Sampler(threading.Thread):
    """Every SAMPLE_EVERY seconds: the serial of every certificate on disk, the one each
    Envoy's admin /certs lists, and the one a new TLS client is served by NGINX (993) and
    Vault (8200). `seen[key]` maps each serial to when it was first seen."""

    def __init__(self, hosts, ca_file, started, stop):
        super().__init__(daemon=True)
        self.hosts, self.ca_file, self.started, self.stop = hosts, ca_file, started, stop
        self.seen, self.errors = {}, []
        self.vault_down = False

    def _record(self, key, serials):
        now = time.monotonic() - self.started
        for serial in serials:
            self.seen.setdefault(key, {}).setdefault(serial, now)

    def _probe(self, key, read):
        try:
            self._record(key, read())
        except Exception as exc:  # pylint: disable=broad-except
            if not (key[0] == "vault" and self.vault_down):
                self.errors.append("%.0fs %s: %r" % (time.monotonic() - self.started, key, exc))

    def sample(self):
        for name in ALL_HOSTS:
            for cert, serial in _file_serials(self.hosts[name]).items():
                self._record(("file", name, cert), [serial])
        for name in ENVOY_HOSTS:
            self._probe(("envoy", name), lambda n=name: _envoy_serials(self.hosts[n]))
        for name in GATEWAYS:
            self._probe(("nginx", name), lambda n=name: [_peer_serial(_ip(n), n, self.ca_file)])
        self._probe(("vault", VAULT), lambda: [_peer_serial(_ip(VAULT), VAULT, self.ca_file, port=8200)])

    def run(self):
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # pylint: disable=broad-except
                self.errors.append("%.0fs sample: %r" % (time.monotonic() - self.started, exc))
            self.stop.wait(SAMPLE_EVERY)


def _secrets_of_the_run(hosts):
    """Every host's secret ID, the root token, and a line of every private key's body."""
    init = json.loads(INIT_FILE.read_text(encoding="utf-8"))
    secrets = {"root token": init.get("root_token") or init["revoked_root_token"],
               "admin secret ID": init["admin"]["secret_id"]}
    for name in ALL_HOSTS:
        approle = json.loads(hosts[name].run("cat %s", APPROLE_FILE).stdout)
        secrets["secret ID of %s" % name] = approle["secret_id"]
        for key_file in hosts[name].run("ls %s/*/key.pem", TLS_DIR).stdout.split():
            body = hosts[name].run("sed -n 2p %s", key_file).stdout.strip()
            assert len(body) > 20
            secrets["key %s on %s" % (key_file, name)] = body
    return secrets


def _assert_no_secret_in_journals_or_metrics(hosts):
    secrets = _secrets_of_the_run(hosts)
    for name in ALL_HOSTS:
        for what, text in (("journal", hosts[name].run("journalctl --no-pager -o cat -q").stdout),
                           ("metrics", hosts[name].run("cat %s", TEXTFILE).stdout)):
            assert text, (name, what)
            leaked = sorted(label for label, secret in secrets.items() if secret in text)
            # Only the labels, never the secrets themselves, in the message.
            assert not leaked, "%s's %s holds: %s" % (name, what, ", ".join(leaked))
            assert "PRIVATE KEY" not in text, (name, what)
            assert not TOKEN.search(text), "%s's %s holds a token-like word" % (name, what)


def test_the_stores_serve_imap_only_through_the_mesh(hosts):
    """dovecot_imaps is off by default: no IMAPS listener on a store, no TLS in Dovecot,
    no certificate for it (so no renewal ever reloads Dovecot); its users come through
    the gateways and the store's Envoy ingress."""
    for name in STORES:
        with socket.socket() as sock:
            sock.settimeout(5)
            assert sock.connect_ex((_ip(name), IMAPS_PORT)) != 0, "%s answers on %d" % (name, IMAPS_PORT)
        assert not hosts[name].file(TLS_DIR + "/dovecot").exists
        assert "ssl = no" in hosts[name].check_output("doveconf -n")


# Every TLS port of the mesh a client can reach, and whether it resumes sessions, as
# docs/architecture.md ("TLS, port by port") records it (None: not asserted). The Envoy
# egress on the gateways and the edge devices' Envoy are TLS clients: their server side
# is plain IMAP on loopback.
BOTH = {"TLSv1.2": True, "TLSv1.3": True}
TLS_PORTS = {
    "vault listener": dict(hosts=(VAULT,), port=8200, probe=tls_scan.HTTP_PROBE, resumption=BOTH),
    "gateway IMAPS": dict(hosts=GATEWAYS, port=IMAPS_PORT, resumption=BOTH),
    "gateway IMAP STARTTLS": dict(hosts=GATEWAYS, port=143, starttls=True, resumption=BOTH),
    "gateway device port": dict(hosts=GATEWAYS, port=9993, client="e2e-edge1", resumption={"TLSv1.3": True}),
    "store Envoy ingress": dict(hosts=STORES, port=10993, client="e2e-gw1"),
}


def _client_pair(hosts, name, directory):
    """The Envoy certificate and key of one of the mesh's own hosts, for the ports that
    ask for a client certificate (copied to a 0600 file; never printed)."""
    paths = []
    for leaf in ("fullchain.pem", "key.pem"):
        path = directory / ("%s-%s" % (name, leaf))
        path.touch(mode=0o600)
        path.write_text(hosts[name].file("%s/envoy/%s" % (TLS_DIR, leaf)).content_string)
        paths.append(str(path))
    return paths


@contextlib.contextmanager
def _renewals_held(hosts):
    """No host renews a certificate inside the block: every renewal timer stopped, the
    runs already started waited for; the timers start again after it, whatever happened.
    (The certificates here live 6 minutes and renew every 2: a renewal reloads the
    server with a new TLS context, whose new session ticket keys refuse the session of
    a handshake just before it. That is what a renewal does, once in days in a real
    mesh; a scan of the TLS policy must not take it for the policy.)"""
    stopped = []
    try:
        for name in ALL_HOSTS:
            stopped.append(name)
            done = hosts[name].run("systemctl stop %s.timer", AGENT_UNIT)
            assert done.rc == 0, "%s: %s" % (name, done.stderr)
        _agents_idle(hosts)
        yield
    finally:
        for name in stopped:
            done = hosts[name].run("systemctl start %s.timer", AGENT_UNIT)
            assert done.rc == 0, "%s: %s" % (name, done.stderr)


def test_every_tls_port_offers_only_the_intermediate_profile(hosts, tmp_path):
    """A TLS scan of every port of the converged mesh (molecule/_shared/tls_scan.py): no
    TLS 1.0 or 1.1, TLS 1.2 only with Mozilla's intermediate suites (Vault's listener
    offered four CBC suites with SHA-1 before vault_server_tls_cipher_suites), and no
    server sends the root CA in its chain (the chain files leave it out). What each
    port resumes is printed, and checked where the docs state it. The hosts' renewals
    wait while it scans (_renewals_held)."""
    with _renewals_held(hosts):
        seen, found = _scan_every_port(hosts, tmp_path)
    print(json.dumps({key: {"versions": value["versions"], "tls12": value["tls12_cipher_suites"],
                            "chain": [subject for subject, _ in value["chain"]],
                            "resumption": value["resumption"]} for key, value in seen.items()}, indent=1))
    assert not found, found
    for name in GATEWAYS:
        assert not seen["gateway device port %s" % name]["versions"]["TLSv1.2"], "the device port is TLS 1.3 only"


def _scan_every_port(hosts, tmp_path):
    """{"<label> <host>": scan result} of every port of TLS_PORTS, and the problems found."""
    seen, found = {}, []
    for label, spec in TLS_PORTS.items():
        client = _client_pair(hosts, spec["client"], tmp_path) if spec.get("client") else (None, None)
        for name in spec["hosts"]:
            target = tls_scan.Target(_ip(name), spec["port"], name, starttls=spec.get("starttls", False),
                                     client_cert=client[0], client_key=client[1],
                                     probe=spec.get("probe", tls_scan.IMAP_PROBE))
            result = tls_scan.scan(target)
            seen["%s %s" % (label, name)] = result
            found.extend(tls_scan.problems(result, spec.get("resumption")))
            assert result["chain"] and name in result["chain"][0][0], (label, name, result["chain"])
    return seen, found


def test_every_host_keeps_its_certificates_itself(hosts):
    """The renewal timer runs on every host, each certificate is registered with it, and
    edge devices keep their clock in time (in a container only enabled: the container
    has its host's clock)."""
    expected = {VAULT: ["vault"], **{name: sorted(WATCHED_FILES[name]) for name in ENVOY_HOSTS}}
    for name, certs in expected.items():
        timer = hosts[name].service(AGENT_UNIT + ".timer")
        assert timer.is_enabled and timer.is_running, _agent_journal(hosts[name])
        entries = hosts[name].run("ls %s", AGENT_CONFIG_DIR).stdout.split()
        assert entries == ["%s.json" % cert for cert in certs], (name, entries)
        metrics = _metrics(hosts[name])
        for cert in certs:
            assert metrics["mailmesh_cert_not_after_timestamp_seconds", cert] > time.time(), (name, cert)
    for name in EDGES:
        assert hosts[name].package("systemd-timesyncd").is_installed
        assert hosts[name].service("systemd-timesyncd").is_enabled
        condition = hosts[name].run("systemctl show -p ConditionResult --value systemd-timesyncd").stdout.strip()
        assert condition == "no", "systemd-timesyncd should be skipped in a container: %s" % condition


def test_certificates_renew_themselves_without_ansible(hosts, ca_file):
    """For SOAK_SECONDS, with no Ansible run: every certificate of every host (Vault's
    listener included) is renewed by the host's own timer at least twice, on disk and as
    served; IMAP from both edge devices (held sessions that FETCH, a new login every
    second or so) never fails; Vault stops for OUTAGE_SECONDS (longer than a timer
    period): every agent fails with one line naming the certificate and the cause, no
    certificate file changes, sessions go on; unsealed, every host renews on its next
    tick. Journals and metrics hold no secret; no service restarted."""
    vault = hosts[VAULT]
    assert _seal_status(vault)["sealed"] is False
    for edge, user in zip(EDGES, sorted(USERS)):  # every user has mail to FETCH
        _edge_session(edge, user, _subject("soak-seed"))
    pids = {(unit, name): _pid(hosts[name], unit)
            for name, units in (("e2e-store1", ("dovecot", "envoy")), ("e2e-store2", ("dovecot", "envoy")),
                                ("e2e-gw1", ("nginx", "envoy")), ("e2e-gw2", ("nginx", "envoy")),
                                ("e2e-edge1", ("envoy",)), ("e2e-edge2", ("envoy",)))
            for unit in units}

    started = time.monotonic()
    stop = threading.Event()
    sampler = _Sampler(hosts, ca_file, started, stop)
    loops = [_EdgeLoop(edge, started, SOAK_SECONDS, offset) for edge, offset in zip(EDGES, (0, 0.5))]
    sampler.start()
    for loop in loops:
        loop.start()
    vault_up_at = None
    try:
        # Vault stops.
        time.sleep(max(0, OUTAGE_AT - (time.monotonic() - started)))
        outage_epoch = time.time()
        sampler.vault_down = True
        assert vault.run("systemctl stop %s", VAULT_UNIT).rc == 0
        _agents_idle(hosts)
        files_before = _cert_files_sha(hosts)
        time.sleep(max(0, OUTAGE_AT + OUTAGE_SECONDS - (time.monotonic() - started)))
        assert _cert_files_sha(hosts) == files_before, "a certificate file changed while Vault was down"
        for name in ALL_HOSTS:
            said = _agent_journal(hosts[name], since=outage_epoch)
            url = "https://127.0.0.1:8200" if name == VAULT else "https://%s:8200" % VAULT
            for cert in (["vault"] if name == VAULT else WATCHED_FILES[name]):
                line = re.search(r"^%s: renewal of %s/%s/cert.pem FAILED \(Vault at %s is unreachable while .*; "
                                 r"the certificate stays valid until .*; the files are unchanged, the next timer run "
                                 r"tries again$" % (cert, TLS_DIR, cert, re.escape(url)), said, re.MULTILINE)
                assert line, "%s: no failure line for %s while Vault was down:\n%s" % (name, cert, said[-3000:])
        # Vault starts (sealed), and is unsealed as the Shamir seal needs.
        assert vault.run("systemctl start %s", VAULT_UNIT).rc == 0
        _unseal_by_hand(vault)
        vault_up_at = time.monotonic() - started
        sampler.vault_down = False

        for loop in loops:
            loop.join(timeout=SOAK_SECONDS + 300)
    finally:
        stop.set()
        sampler.join(timeout=120)
        if _seal_status(vault) is None or _seal_status(vault).get("sealed"):
            vault.run("systemctl start %s", VAULT_UNIT)
            _unseal_by_hand(vault)
    elapsed = time.monotonic() - started

    failures = [failure for loop in loops for failure in loop.failures]
    assert not failures, "%d IMAP failures during the soak:\n%s" % (len(failures), "\n".join(failures))
    assert all(loop.rounds >= 100 and loop.checks >= 10 for loop in loops), [(l.edge, l.rounds) for l in loops]
    assert not sampler.errors, "\n".join(sampler.errors)
    assert elapsed >= SOAK_SECONDS

    # Every certificate renewed at least twice (three serials), on disk and as served;
    # every one on disk renewed within two timer periods after Vault came back.
    keys = [("file", name, cert) for name in ALL_HOSTS for cert in (["vault"] if name == VAULT else WATCHED_FILES[name])]
    keys += [("envoy", name) for name in ENVOY_HOSTS] + [("nginx", name) for name in GATEWAYS]
    keys += [("vault", VAULT)]
    few = {key: len(sampler.seen.get(key, {})) for key in keys if len(sampler.seen.get(key, {})) < 3}
    assert not few, "renewed less than twice: %s" % few
    late = [key for key in keys if key[0] == "file"
            and not any(vault_up_at < first <= vault_up_at + 2 * TIMER_PERIOD + SAMPLE_EVERY + 30
                        for first in sampler.seen[key].values())]
    assert not late, "not renewed on the first ticks after Vault came back: %s" % late

    # Reloads, never restarts.
    for (unit, name), pid in pids.items():
        assert _pid(hosts[name], unit) == pid, "%s restarted on %s" % (unit, name)
    # Status for monitoring, and no secret anywhere.
    for name in ALL_HOSTS:
        metrics = _metrics(hosts[name])
        for cert in (["vault"] if name == VAULT else WATCHED_FILES[name]):
            assert metrics["mailmesh_cert_renew_success", cert] == 1, (name, cert)
            assert metrics["mailmesh_cert_renewals_total", cert] >= 2, (name, cert)
            assert metrics["mailmesh_cert_failures_total", cert] >= 1, (name, cert)
            assert metrics["mailmesh_cert_last_failure_timestamp_seconds", cert] >= outage_epoch, (name, cert)
    _assert_no_secret_in_journals_or_metrics(hosts)
    print("soak: %.0fs, Vault down from %ds to %.0fs; IMAP %s; serials seen: %s" % (
        elapsed, OUTAGE_AT, vault_up_at,
        ", ".join("%s %d rounds" % (loop.edge, loop.rounds) for loop in loops),
        {" ".join(key[1:]) + " (%s)" % key[0]: len(sampler.seen[key]) for key in keys}))


def test_an_edge_device_offline_until_its_certificate_expired_renews_when_it_returns(hosts):
    """An edge device loses its network until its certificate has expired; back, it
    renews on its next tick by itself (the AppRole login needs no certificate), and its
    app's IMAP works again, with no Ansible run."""
    edge = hosts[SHORT_LIVED]
    expired = _file_serials(edge)["envoy"]
    not_after = _not_after(edge, "envoy")
    network = mesh_checks.network_of(SHORT_LIVED)
    subprocess.run(["docker", "network", "disconnect", network, SHORT_LIVED], check=True, timeout=60)
    offline_epoch = time.time()
    try:
        assert not_after - time.time() < 300, "e2e-edge2's certificate lives longer than host_vars/e2e-edge2.yml says"
        while time.time() < not_after + 5:
            time.sleep(5)
        # The next run after the expiry says so (and changes nothing).
        expired_line = re.compile(r"^envoy: renewal of .* FAILED \(Vault at https://e2e-vault1:8200 is unreachable "
                                  r"while .*; the certificate EXPIRED at .*; the files are unchanged", re.MULTILINE)
        _wait_for(lambda: expired_line.search(_agent_journal(edge, since=offline_epoch)),
                  "the device's agent names its expired certificate", timeout=2 * TIMER_PERIOD + 60)
        assert _file_serials(edge)["envoy"] == expired
    finally:
        subprocess.run(["docker", "network", "connect", network, SHORT_LIVED], check=True, timeout=60)
    back = time.monotonic()
    _wait_for(lambda: _file_serials(edge)["envoy"] != expired, "the device renews its certificate",
              timeout=2 * TIMER_PERIOD + 60)
    renewed_after = time.monotonic() - back
    renewed = _file_serials(edge)["envoy"]
    assert _not_after(edge, "envoy") > time.time() + 60
    _wait_for(lambda: _envoy_serials(edge) == {renewed}, "the device's Envoy serves its new certificate")
    assert re.search(r"^envoy: renewed \(expiring\): serial ", _agent_journal(edge, since=offline_epoch), re.MULTILINE)
    deadline = time.monotonic() + 120
    while True:  # Envoy marks the gateways healthy again within a few health checks
        try:
            _edge_session(SHORT_LIVED, "alice@example.test", _subject("back-online"))
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)
    print("offline: %s's certificate expired offline; back on the network, renewed after %.0fs"
          % (SHORT_LIVED, renewed_after))


def _not_after(host, cert):
    out = host.run("openssl x509 -noout -enddate -in %s/%s/cert.pem", TLS_DIR, cert).stdout.strip()
    return datetime.datetime.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_vault_down_a_rotation_fails_and_changes_nothing(hosts, ca_file):
    """With Vault stopped, services keep serving; a rotation fails on the first hosts
    that ask Vault, with a clear message, and neither it nor the hosts' renewal timers
    change anything."""
    vault = hosts[VAULT]
    assert _seal_status(vault)["sealed"] is False
    _run_agents_now(hosts)  # every certificate as far from expiry as the agents keep it
    assert vault.run("systemctl stop %s", VAULT_UNIT).rc == 0
    try:
        assert not vault.service(VAULT_UNIT).is_running
        _agents_idle(hosts)
        before = _state(hosts)
        subject = _subject("novault")
        _edge_session("e2e-edge1", "alice@example.test", subject)
        _lands_on_its_store(hosts, "alice@example.test", subject)
        for gateway, user in zip(GATEWAYS, sorted(USERS)):
            _direct_session(gateway, user, ca_file)
        # The whole rotation: the mail stores' play is the first to ask Vault; it fails
        # on every store, and the playbook stops there.
        _assert_refused_and_unchanged(hosts, _play(ROTATE), before, STORES)
        # A gateway's rotation (its Envoy first, then NGINX) fails the same way.
        _assert_refused_and_unchanged(hosts, _play(ROTATE, "--limit", "e2e-gw1"), before, ("e2e-gw1",))
        _edge_session("e2e-edge1", "bob@example.test", _subject("still-novault"))
    finally:
        assert vault.run("systemctl start %s", VAULT_UNIT).rc == 0
        _unseal_by_hand(vault)
    # The hosts renew what came due meanwhile on their next tick (here: at once).
    _run_agents_now(hosts)


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
    """Serial served to a new client by every TLS server of the mesh (None for an Envoy
    that lists two: the renewal agent's new certificate is coming in)."""
    served = {}
    for name in ENVOY_HOSTS:
        serials = _envoy_serials(hosts[name])
        served["envoy", name] = serials.pop() if len(serials) == 1 else None
    for name in GATEWAYS:
        served["nginx", name] = _peer_serial(_ip(name), name, ca_file)
    return served


def _on_disk(hosts):
    disk = {("envoy", name): _file_serial(hosts[name], "envoy") for name in ENVOY_HOSTS}
    for name in GATEWAYS:
        disk["nginx", name] = _file_serial(hosts[name], "nginx")
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
    # The hosts' renewal timers keep renewing meanwhile: a server may take a second to
    # serve what is on its disk.
    _wait_for(lambda: _served(hosts, ca_file) == _on_disk(hosts), "every server serves its certificate on disk")
    served_before = _served(hosts, ca_file)
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


def _key_sha(host, service):
    return host.file("%s/%s/key.pem" % (TLS_DIR, service)).sha256sum


def test_rotation_of_the_gateways_alone_with_new_keys(hosts, ca_file):
    """rotate_certs.yml --limit gateways -e mailmesh_rotate_keys=true, as an operator runs
    it after a suspected key leak on a gateway: new keys, and certificates for them."""
    before = {name: _peer_serial(_ip(name), name, ca_file) for name in GATEWAYS}
    keys = {(name, service): _key_sha(hosts[name], service) for name in GATEWAYS for service in ("nginx", "envoy")}
    play = _play(ROTATE, "--limit", "gateways", "-e", "mailmesh_rotate_keys=true")
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    kept = sorted("%s %s" % key for key, digest in keys.items() if _key_sha(hosts[key[0]], key[1]) == digest)
    assert not kept, "the same key after a rotation with new keys: %s" % kept
    for name in GATEWAYS:
        on_disk = _file_serial(hosts[name], "nginx")
        assert on_disk != before[name], name
        address = _ip(name)
        # (The host's renewal timer may have renewed it again meanwhile: what is on disk now.)
        _wait_for(lambda a=address, n=name: _peer_serial(a, n, ca_file) == _file_serial(hosts[n], "nginx"),
                  "NGINX on %s serves its new certificate" % name)


# --- cut off a device, then re-enrol it ----------------------------------------------------
# playbooks/revoke_host.yml on the amd64 device while both devices hold a session; the
# other device (e2e-edge2) and its session are not touched. The tests below re-enrol it, so
# that the mesh is whole again for the tests after them.

REVOKE = "../../playbooks/revoke_host.yml"
REVOKED = "e2e-edge1"
OTHER_EDGE = "e2e-edge2"
STALE = "e2e-gone"  # an identity in Vault of a host that is not in the inventory
DEVICE_PORT = 9993   # nginx_mail_device_port
CRL_FILES = {"nginx": "%s/nginx/crl.pem" % TLS_DIR, "envoy": "%s/envoy/crl.pem" % TLS_DIR}

# Runs on the Vault host with the admin AppRole (role_id and secret_id on stdin, never in
# argv): an AppRole and a certificate policy for a host that is not in the inventory, as
# a host removed from it leaves behind.
MAKE_STALE = r"""
import json, ssl, sys, urllib.request
role_id, secret_id, name = sys.stdin.read().split()
context = ssl.create_default_context(cafile="/etc/mailmesh/vault/ca.pem")
def call(path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    request = urllib.request.Request("https://127.0.0.1:8200/v1/" + path, method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
    answer = urllib.request.urlopen(request, timeout=30, context=context).read()
    return json.loads(answer) if answer.strip() else {}
token = call("auth/approle/login", {"role_id": role_id, "secret_id": secret_id})["auth"]["client_token"]
call("sys/policies/acl/mailmesh-cert-" + name, {"policy": 'path "pki_int/sign/edge_devices" { capabilities = ["update"] }'}, token)
call("auth/approle/role/" + name, {"token_policies": ["mailmesh-cert-" + name]}, token)
print("STALE " + name)
"""


# Runs on a host: every serial of every CRL (root and issuing CA) in the file argv[1].
CRL_SERIALS = r"""
import re, sys
from cryptography import x509
data = open(sys.argv[1], "rb").read()
for block in re.findall(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", data, re.S):
    for entry in x509.load_pem_x509_crl(block):
        print(entry.serial_number)
"""


def _crl_serials(host, service):
    cmd = host.run("python3 -c %s %s", CRL_SERIALS, CRL_FILES[service])
    assert cmd.rc == 0, cmd.stderr
    return {int(line) for line in cmd.stdout.split()}


# Runs on an edge device: TLS 1.3 to a gateway's device port with the device's own
# certificate (the one its Envoy presents), then CAPABILITY. argv: address, the
# gateway's name, port. One full handshake at the start, then one connection per line
# read from stdin that resumes the TLS session. Prints for each whether the server
# resumed the session, and the server's lines or the error (a refused certificate comes
# as a TLS alert after the handshake, on the first read).
DEVICE_RESUME = r"""
import socket, ssl, sys
address, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile="/etc/mailmesh/vault/ca.pem")
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.load_cert_chain("/etc/mailmesh/tls/envoy/fullchain.pem", "/etc/mailmesh/tls/envoy/key.pem")
def talk(session):
    try:
        with socket.create_connection((address, port), timeout=20) as raw:
            with context.wrap_socket(raw, server_hostname=name, session=session) as tls:
                received = tls.recv(4096)
                tls.sendall(b"a1 CAPABILITY\r\n")
                while b"a1 " not in received:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    received += chunk
                return tls.session, tls.session_reused, received.decode(errors="replace")
    except Exception as exc:
        return None, False, "ERROR %r" % (exc,)
session, reused, answer = talk(None)
print("reused=%s %s" % (reused, " ".join(answer.split())), flush=True)
for _line in sys.stdin:
    new, reused, answer = talk(session)
    print("reused=%s %s" % (reused, " ".join(answer.split())), flush=True)
    if new is not None and new.has_ticket:
        session = new
"""


class _DeviceResumer(_EdgeHolder):
    """DEVICE_RESUME on an edge device against one gateway's device port."""

    def __init__(self, edge, gateway):  # pylint: disable=super-init-not-called
        self.process = subprocess.Popen(
            ["docker", "exec", "-i", edge, "python3", "-u", "-c", DEVICE_RESUME, _ip(gateway), gateway,
             str(DEVICE_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )


def _device_handshake(edge, gateway):
    """What the gateway's device port answers the edge device's own certificate."""
    done = subprocess.run(["docker", "exec", edge, "python3", "-c", DEVICE_RESUME, _ip(gateway), gateway,
                           str(DEVICE_PORT)], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def revoked_device(hosts, tmp_path_factory):
    """revoke_host.yml for REVOKED while each device holds a session open; the holders,
    the revoked serial and the play's output for the tests below."""
    for edge in (REVOKED, OTHER_EDGE):
        _edge_session(edge, "alice@example.test", _subject("before-revoke"))
    holders = {edge: _EdgeHolder(edge, ["alice@example.test"]) for edge in (REVOKED, OTHER_EDGE)}
    try:
        for edge, holder in holders.items():
            assert holder.first_line() == "READY 1", edge
        serial = _file_serial(hosts[REVOKED], "envoy")
        key = _key_sha(hosts[REVOKED], "envoy")
        for name in GATEWAYS:
            assert "a1 OK" in _device_handshake(REVOKED, name), name
        # A TLS session of the device that the gateway resumes before the revocation.
        resumer = _DeviceResumer(REVOKED, GATEWAYS[0])
        holders["resumer"] = resumer
        first = resumer.first_line()
        assert first.startswith("reused=False") and "a1 OK" in first, first
        resumed = resumer.ask("again")
        assert resumed.startswith("reused=True") and "a1 OK" in resumed, resumed
        play = _play(REVOKE, "-e", "mailmesh_revoke_hosts=" + REVOKED)
        ended = time.monotonic()
        assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
        yield {"holders": holders, "serial": serial, "key": key, "play": play, "ended": ended,
               "resumer": resumer}
    finally:
        for holder in holders.values():
            holder.close()


def test_revoke_refuses_the_device_at_once(hosts, revoked_device):
    """When revoke_host.yml ends, the revoked device's new connections are refused on
    every gateway's device port (the first try, no wait), by the CRL: NGINX answers
    "* BYE SSL certificate error" and logs "certificate revoked"; its app gets no session."""
    first = _device_handshake(REVOKED, GATEWAYS[0])
    refused_after = time.monotonic() - revoked_device["ended"]
    assert "* BYE SSL certificate error" in first and "a1 OK" not in first, first
    for name in GATEWAYS[1:]:
        answer = _device_handshake(REVOKED, name)
        assert "* BYE SSL certificate error" in answer and "a1 OK" not in answer, (name, answer)
    # Nor can it resume the TLS session it had before (a resumed session skips the CRL):
    # the new CRL came with a new, empty session cache for the device port.
    again = revoked_device["resumer"].ask("again")
    assert again.startswith("reused=False") and "a1 OK" not in again, again
    assert "* BYE SSL certificate error" in again, again
    # Refused for the CRL, nothing else (NGINX says why in its error log, level info).
    device = _ip(REVOKED)
    for name in GATEWAYS:
        log = hosts[name].run("tail -n 200 /var/log/nginx/error.log").stdout
        assert re.search(r"client SSL certificate verify error: \(23:certificate revoked\).*client: %s,"
                         % re.escape(device), log), (name, log[-2000:])
    done = subprocess.run(
        ["docker", "exec", "-i", REVOKED, "python3", "-c", EDGE_CLIENT, "bob@example.test",
         USERS["bob@example.test"], _subject("revoked")],
        capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode != 0 and "FETCHED" not in done.stdout, done.stdout + done.stderr
    serial = revoked_device["serial"]
    for name in GATEWAYS:
        assert serial in _crl_serials(hosts[name], "nginx"), name
        metrics = _metrics(hosts[name])
        assert metrics[("mailmesh_crl_checked", "nginx")] == 1
        assert metrics[("mailmesh_crl_revoked_certificates", "nginx")] >= 1
    # The stores' ingress has it too (Envoy's validation context from the agent's SDS file).
    for name in STORES:
        assert serial in _crl_serials(hosts[name], "envoy"), name
        sds = json.loads(hosts[name].file("%s/envoy/validation.json" % TLS_DIR).content_string)
        assert sds["resources"][0]["validation_context"]["crl"]["filename"] == CRL_FILES["envoy"]
        assert _metrics(hosts[name])[("mailmesh_crl_checked", "envoy")] == 1
    out = " ".join(revoked_device["play"].stdout.split())
    assert re.search(r"%s: [1-9]\d* certificate\(s\) revoked" % REVOKED, out), out[-3000:]
    assert "AppRoles deleted: [%s]" % REVOKED in out and "policies deleted: [mailmesh-cert-%s]" % REVOKED in out
    print("revoke: the first new connection after the play was refused %.1f s after it ended" % refused_after)


def test_revoke_keeps_every_other_session(revoked_device):
    """No restart, and the other device is not touched: its held session goes on, and it
    opens new ones. The revoked device's open session is not cut either (documented in
    docs/operations.md, "A device was lost"): TLS checked its certificate at the
    handshake; it lives until it is closed or idle for nginx_mail_proxy_timeout."""
    holders = revoked_device["holders"]
    assert holders[OTHER_EDGE].ask("check") == "CHECKED 1", "the other device's open session was dropped"
    _edge_session(OTHER_EDGE, "bob@example.test", _subject("other-after-revoke"))
    assert holders[REVOKED].ask("check") == "CHECKED 1", "the revoked device's open session ended"


def test_revoked_device_can_no_longer_log_in_to_vault(hosts, revoked_device):
    """Its AppRole is gone: its agent sees the certificate revoked and fails to log in."""
    since = time.time() - 1
    hosts[REVOKED].run("systemctl start %s.service", AGENT_UNIT)
    journal = _agent_journal(hosts[REVOKED], since)
    assert "envoy: renewal of" in journal and "FAILED" in journal, journal
    assert _file_serial(hosts[REVOKED], "envoy") == revoked_device["serial"]


def test_re_enrolment_gives_the_device_a_new_identity_and_lists_stale_hosts(hosts, revoked_device):
    """The Vault tier again for the device: a new AppRole and secret ID, then a new key and
    certificate (the old one is on the CRL), and IMAP works again. The same
    Vault run lists an AppRole and policy of a host not in the inventory and, asked with
    vault_server_remove_stale_hosts, removes them."""
    init = json.loads(INIT_FILE.read_text())
    made = subprocess.run(["docker", "exec", "-i", VAULT, "python3", "-c", MAKE_STALE],
                          input="%s %s %s" % (init["admin"]["role_id"], init["admin"]["secret_id"], STALE),
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0 and "STALE " + STALE in made.stdout, made.stdout + made.stderr[-2000:]
    play = _play(VAULT_PLAYBOOK, "--limit", "%s,%s" % (VAULT, REVOKED), "-e", "vault_server_remove_stale_hosts=true")
    assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
    out = " ".join(play.stdout.split())
    assert ("Not in the inventory but still in Vault: AppRoles [%s], policies [mailmesh-cert-%s]. Removing them"
            % (STALE, STALE)) in out, out[-4000:]
    assert init["admin"]["secret_id"] not in play.stdout + play.stderr
    # The device's own agent (its timer, here at once) finds its certificate revoked and
    # takes a new one with the new AppRole; an edge.yml run would do the same.
    done = hosts[REVOKED].run("systemctl start %s.service", AGENT_UNIT)
    assert done.rc == 0, _agent_journal(hosts[REVOKED])
    serial = _file_serial(hosts[REVOKED], "envoy")
    assert serial != revoked_device["serial"] and _key_sha(hosts[REVOKED], "envoy") != revoked_device["key"]
    _wait_for(lambda: _envoy_serials(hosts[REVOKED]) == {serial}, "the device's Envoy serves its new certificate")
    for name in GATEWAYS:
        assert "a1 OK" in _device_handshake(REVOKED, name), name
        # While revoked, the device's Envoy marked every gateway unhealthy (its health
        # checks were refused too): its app port answers again once a check passes.
        _wait_health(hosts[REVOKED], name, True, timeout=180)
    _edge_session(REVOKED, "alice@example.test", _subject("re-enrolled"))


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
