"""Faults an operator of the mesh will meet, each with what its users see (run after
test_e2e.py, on the same mesh; every test puts the mesh back as it found it, and the
reboot of every host comes last):

- a store down (Dovecot stopped, then its Envoy stopped, then the whole host frozen):
  its users get a prompt refusal with a message, the other store's users are not
  affected, and when it returns its users work again with no Ansible run;
- the network between a gateway and a store cut (packets dropped, no clean close): the
  same, within the same bound, and the gateway keeps serving everyone else;
- a store's mail disk full: APPEND is refused with a message, nothing stored is lost or
  changed, and mail flows again once there is space;
- an edge device's clock days off (before its certificates start, after they end): its
  renewal agent names the clock in the journal, and the device works again once the
  clock is right;
- every host of every tier restarted at once: everything comes back by itself, and with
  the Shamir seal the one thing left to do is to unseal Vault.

What each test checks is written down for operators in docs/operations.md
("Troubleshooting: faults and what users see")."""

import concurrent.futures
import datetime
import hashlib
import imaplib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

import mesh_checks
import pytest
from mesh_checks import ip as _ip
from mesh_checks import journal as _journal
from e2e_shape import (AGENT_UNIT, ALL_HOSTS, GATEWAYS, IMAPS_PORT, INIT_FILE, USERS, VAULT, VAULT_CA, VAULT_UNIT,
                       VMAIL)

# The edge device the clock test and the app sessions run on.
EDGE = "e2e-edge1"
UNITS = {
    VAULT: (VAULT_UNIT,),
    "e2e-store1": ("dovecot", "envoy"),
    "e2e-store2": ("dovecot", "envoy"),
    "e2e-gw1": ("envoy", "nginx"),
    "e2e-gw2": ("envoy", "nginx"),
    "e2e-edge1": ("envoy",),
    "e2e-edge2": ("envoy",),
}
# The store that fails in these tests, its user, and the user of the other store.
BROKEN_STORE = "e2e-store1"
ITS_USER = "alice@example.test"
OTHER_USER = "bob@example.test"

# The bound the docs state for a refusal (docs/operations.md): a user of a store that is
# down, or cut off, gets a NO or a BYE with a message within this many seconds of
# sending LOGIN. It is what the gateway's Envoy egress allows a connection to the store:
# envoy_connect_timeout (2 s) times envoy_connect_attempts (3), plus the TLS handshake
# and NGINX's own round trips.
REFUSAL_SECONDS = 10
# What users of a store that is down are told (the envoy role's default message).
UNAVAILABLE = "* BYE [UNAVAILABLE] Mail store temporarily unavailable, try again later"
# The gateways' Envoy checks each store every 5 s and gives up on it after 2 failed
# checks of at most 2 s each (envoy_egress_health_check_*): it knows within 15 s.
STORE_CHECK_SECONDS = 20
# How long a user waits, at most, once the store is back: the gateways' Envoy connects
# again on the next LOGIN, with no Ansible run.
RECOVERY_SECONDS = 60

# One IMAP login with the server's every line kept: LOGIN, and on OK a SELECT and
# LOGOUT. Prints one JSON line: outcome (OK, NO, BAD, BYE, EOF: closed with no status,
# TIMEOUT, or ERROR <why>), seconds from LOGIN to the outcome, and the server's lines.
# argv: address port server_name ca_file|- user password limit_seconds
PROBE = r"""
import json, socket, ssl, sys, time
address, port, server_name, ca_file, user, password, limit = sys.argv[1:8]
limit = float(limit)
lines, outcome, sent = [], None, None
started = time.monotonic()
try:
    sock = socket.create_connection((address, int(port)), timeout=limit)
    if ca_file != "-":
        sock = ssl.create_default_context(cafile=ca_file).wrap_socket(sock, server_hostname=server_name)
    reader = sock.makefile("rb")

    def line():
        sock.settimeout(max(0.1, limit - (time.monotonic() - started)))
        raw = reader.readline()
        if not raw:
            raise EOFError
        lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        return lines[-1]

    def command(tag, text):
        sock.sendall(("%s %s\r\n" % (tag, text)).encode())
        while True:
            got = line()
            if got.startswith(tag + " "):
                return got.split(" ", 2)[1]

    line()
    sent = time.monotonic()
    outcome = command("a1", 'LOGIN "%s" "%s"' % (user, password))
    if outcome == "OK":
        status = command("a2", "SELECT INBOX")
        if status != "OK":
            outcome = "SELECT " + status
        command("a3", "LOGOUT")
except EOFError:
    outcome = "BYE" if any(text.startswith("* BYE") for text in lines) else "EOF"
except socket.timeout:
    outcome = "TIMEOUT"
except OSError as exc:
    outcome = "ERROR %s" % exc
print(json.dumps({"outcome": outcome, "lines": lines,
                  "seconds": round(time.monotonic() - (sent or started), 2)}))
"""


def _probe_direct(gateway, user, ca_file, limit=30):
    """An ordinary client on the gateway's 993 (TLS verified against the Vault CA)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, _ip(gateway), str(IMAPS_PORT), gateway, ca_file, user, USERS[user],
         str(limit)], capture_output=True, text=True, timeout=limit + 30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _probe_edge(user, limit=30, edge=EDGE):
    """A mail app on the edge device: plain IMAP to its Envoy on 127.0.0.1:143."""
    done = subprocess.run(
        ["docker", "exec", edge, "python3", "-c", PROBE, "127.0.0.1", "143", "-", "-", user, USERS[user],
         str(limit)], capture_output=True, text=True, timeout=limit + 60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _probes(user, ca_file):
    """The user's login through each gateway directly and through the edge device, all
    at once (each a process of its own)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(GATEWAYS) + 1) as pool:
        futures = {("direct", gateway): pool.submit(_probe_direct, gateway, user, ca_file) for gateway in GATEWAYS}
        futures["edge", EDGE] = pool.submit(_probe_edge, user)
        return {where: future.result() for where, future in futures.items()}


def _assert_works(user, ca_file):
    for where, seen in _probes(user, ca_file).items():
        assert seen["outcome"] == "OK", "%s via %s: %s" % (user, where, seen)


def _assert_refused_promptly(user, ca_file, probes=None):
    """Every way in (or those given): the gateway's BYE with the role's message
    (envoy_egress_unavailable_message), within REFUSAL_SECONDS of LOGIN."""
    for where, seen in (probes or _probes(user, ca_file)).items():
        assert seen["outcome"] == "BYE" and seen["lines"][-1] == UNAVAILABLE, "%s via %s: %s" % (user, where, seen)
        assert seen["seconds"] <= REFUSAL_SECONDS, "%s via %s: too slow: %s" % (user, where, seen)


def _wait_works(user, ca_file, timeout=RECOVERY_SECONDS):
    """The user logs in again on every way in, with no Ansible run; returns the seconds."""
    started = time.monotonic()
    seen = {}
    while time.monotonic() - started < timeout:
        seen = _probes(user, ca_file)
        if all(found["outcome"] == "OK" for found in seen.values()):
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail("%s does not work again within %ds: %s" % (user, timeout, seen))


def _nginx_state(gateway_host):
    """The gateway's NGINX main process and systemd's count of its restarts: the same
    before and after a fault means NGINX neither crashed nor was restarted (its workers
    change on every reload, which each certificate renewal does)."""
    return gateway_host.check_output("systemctl show -p MainPID -p NRestarts --value nginx").split()


# --- a store down ----------------------------------------------------------------------


def _store_health(gateway_host, store):
    """The gateway Envoy's view of the store: True (passes its checks) or False."""
    clusters = json.loads(mesh_checks.admin(gateway_host, "/clusters?format=json"))
    for cluster in clusters["cluster_statuses"]:
        if cluster["name"] == "store_" + re.sub(r"[^A-Za-z0-9_]", "_", store):
            (member,) = cluster["host_statuses"]
            status = member.get("health_status", {})
            return status.get("eds_health_status") == "HEALTHY" and not status.get("failed_active_health_check")
    raise AssertionError("no cluster for %s on the gateway's Envoy" % store)


def _wait_store_health(hosts, store, healthy, gateways=GATEWAYS, timeout=STORE_CHECK_SECONDS):
    """Until every one of these gateways sees the store so; returns the seconds taken."""
    started = time.monotonic()
    seen = {}
    while time.monotonic() - started < timeout:
        seen = {name: _store_health(hosts[name], store) for name in gateways}
        if all(value is healthy for value in seen.values()):
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail("the gateways never saw %s healthy=%s within %ds: %s" % (store, healthy, timeout, seen))


def _assert_ends_promptly(user, ca_file):
    """Before the gateways' checks have seen the store fail: whatever the user is told,
    it comes within REFUSAL_SECONDS with a status line, never a hang."""
    for where, seen in _probes(user, ca_file).items():
        assert seen["outcome"] != "TIMEOUT" and seen["seconds"] <= REFUSAL_SECONDS, (
            "%s via %s: %s" % (user, where, seen))
        if seen["outcome"] != "OK":
            assert re.match(r"^(\S+ (NO|BAD)|\* (BYE|BAD)) \S", seen["lines"][-1]), (
                "%s via %s: no message: %s" % (user, where, seen))


def _store_down_then_back(hosts, ca_file, stop, start):
    _assert_works(ITS_USER, ca_file)
    nginx = {name: _nginx_state(hosts[name]) for name in GATEWAYS}
    stop()
    try:
        _assert_ends_promptly(ITS_USER, ca_file)
        _wait_store_health(hosts, BROKEN_STORE, False)
        _assert_refused_promptly(ITS_USER, ca_file)
        _assert_works(OTHER_USER, ca_file)
    finally:
        start()
    _wait_works(ITS_USER, ca_file)
    _assert_works(OTHER_USER, ca_file)
    assert {name: _nginx_state(hosts[name]) for name in GATEWAYS} == nginx, "a gateway's NGINX was restarted"


@pytest.mark.parametrize("unit", ["dovecot", "envoy"])
def test_a_store_service_stopped(hosts, ca_file, unit):
    """Dovecot stopped, then (as another fault) the store's Envoy ingress stopped."""
    store = hosts[BROKEN_STORE]
    _store_down_then_back(hosts, ca_file,
                          lambda: store.check_output("systemctl stop %s", unit),
                          lambda: store.check_output("systemctl start %s", unit))
    assert store.service(unit).is_running, _journal(store, unit)


def _docker(*args):
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_store_host_frozen(hosts, ca_file):
    """`docker pause`: the host answers nothing at all, as a hung VM."""
    _store_down_then_back(hosts, ca_file,
                          lambda: _docker("pause", BROKEN_STORE),
                          lambda: _docker("unpause", BROKEN_STORE))


# --- the network between a gateway and a store cut -------------------------------------

CUT_GATEWAY = "e2e-gw1"
OTHER_GATEWAY = "e2e-gw2"
# A link-layer address no container has: frames to it vanish on the Docker bridge, as
# on a cable that was pulled (no reset, no ICMP: every packet is simply lost).
NOWHERE_MAC = "02:00:00:00:00:01"


def test_network_between_a_gateway_and_a_store_cut(hosts, ca_file):
    """gw1 loses every packet to store1 (the gateway needs only NET_ADMIN, which the
    gateways have for the quick-ACK routes). Through gw1, store1's users are refused
    within REFUSAL_SECONDS, once gw1's checks have seen the store fail (the bound:
    STORE_CHECK_SECONDS); through gw2 they work; store2's users work through both (gw1's
    NGINX workers are not stuck), and NGINX was not restarted. When the link is back, store1's users work through gw1
    again with no Ansible run."""
    gateway = hosts[CUT_GATEWAY]
    store_ip = _ip(BROKEN_STORE)
    _assert_works(ITS_USER, ca_file)
    nginx = _nginx_state(gateway)
    gateway.check_output("ip neigh replace %s lladdr %s nud permanent dev eth0", store_ip, NOWHERE_MAC)
    try:
        took = _wait_store_health(hosts, BROKEN_STORE, False, gateways=(CUT_GATEWAY,))
        print("gw1 saw the cut after %.1f s" % took)
        assert _store_health(hosts[OTHER_GATEWAY], BROKEN_STORE) is True
        _assert_refused_promptly(ITS_USER, ca_file,
                                 {("direct", CUT_GATEWAY): _probe_direct(CUT_GATEWAY, ITS_USER, ca_file)})
        assert _probe_direct(OTHER_GATEWAY, ITS_USER, ca_file)["outcome"] == "OK"
        for name in GATEWAYS:
            seen = _probe_direct(name, OTHER_USER, ca_file)
            assert seen["outcome"] == "OK", (name, seen)
        assert _nginx_state(gateway) == nginx
    finally:
        gateway.check_output("ip neigh del %s dev eth0", store_ip)
    took = _wait_store_health(hosts, BROKEN_STORE, True, gateways=(CUT_GATEWAY,))
    print("gw1 saw the link back after %.1f s" % took)
    _wait_works(ITS_USER, ca_file)
    assert _nginx_state(gateway) == nginx


# --- a store's mail disk full -----------------------------------------------------------


def _home(user):
    local, domain = user.split("@")
    return "%s/%s/%s" % (VMAIL, domain, local)


class _Client(imaplib.IMAP4_SSL):
    """IMAPS to a gateway by address, the certificate checked against its name."""

    def __init__(self, gateway, ca_file):
        self._server_name = gateway
        super().__init__(_ip(gateway), IMAPS_PORT, ssl_context=ssl.create_default_context(cafile=ca_file),
                         timeout=60)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_name)


def _mailbox(user, ca_file):
    """{UID: sha256 of the whole message} of the user's INBOX, read through a gateway."""
    client = _Client(GATEWAYS[0], ca_file)
    try:
        client.login(user, USERS[user])
        assert client.select("INBOX", readonly=True)[0] == "OK"
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK", data
        found = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0]).group(1)
                found[int(uid)] = hashlib.sha256(item[1]).hexdigest()
        return found
    finally:
        client.logout()


def _append(user, ca_file, subject):
    """APPEND one message through a gateway: (status, the server's text)."""
    client = _Client(GATEWAYS[0], ca_file)
    try:
        client.login(user, USERS[user])
        message = ("From: faults@example.test\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n"
                   % (user, subject, "x" * 2000)).encode()
        typ, data = client.append("INBOX", None, None, message)
        return typ, b" ".join(part for part in data if isinstance(part, bytes)).decode("utf-8", "replace")
    finally:
        client.logout()


def test_a_stores_mail_disk_full(hosts, ca_file):
    """The user's home on store1 moves, as it is, to a small file system of its own
    (a tmpfs mounted in Dovecot's mount namespace), which is then filled: APPEND is
    answered NO with Dovecot's message at once, every stored message reads back byte
    for byte, and once space is freed the next APPEND works. The mail then goes back
    to the store's disk, nothing lost."""
    store = hosts[BROKEN_STORE]
    home = _home(ITS_USER)
    for number in range(3):  # mail to keep, whatever the earlier tests left
        assert _append(ITS_USER, ca_file, "faults-kept-%d-%d" % (number, time.time_ns()))[0] == "OK"
    before = _mailbox(ITS_USER, ca_file)
    assert len(before) >= 3
    pid = store.check_output("systemctl show -p MainPID --value dovecot")
    in_dovecot = "nsenter -t %s -m -- sh -ec %s" % (pid, "%s")
    used_kib = int(store.check_output("du -sk %s", home).split()[0])
    size_kib = used_kib + 2048
    staging = "/run/mailmesh-faults-full"
    store.check_output(in_dovecot, "mkdir -p {s} && mount -t tmpfs -o size={k}k full {s} && "
                       "chown --reference={h} {s} && chmod --reference={h} {s} && cp -a {h}/. {s}/ && "
                       "mount --bind {s} {h}".format(s=staging, k=size_kib, h=home))
    try:
        # Fill what is left (dd stops at ENOSPC).
        store.run(in_dovecot, "dd if=/dev/zero of=%s/filler bs=64k 2>/dev/null" % staging)
        assert store.check_output(in_dovecot, "df -k --output=avail %s | tail -1" % staging).strip() == "0"
        since = store.check_output("date +%s")
        started = time.monotonic()
        typ, text = _append(ITS_USER, ca_file, "faults-disk-full-%d" % time.time_ns())
        took = time.monotonic() - started
        # Dovecot 2.3 answers "NO [SERVERBUG] Internal error occurred. Refer to server
        # log ..." and names the cause in the store's journal.
        assert typ == "NO" and text.strip(), (typ, text)
        assert took <= REFUSAL_SECONDS, took
        said = store.check_output("journalctl -u dovecot --since @%s --no-pager -o cat", since)
        assert "No space left on device" in said, said[-2000:]
        print("APPEND on a full disk: %s %s (%.1f s)" % (typ, text, took))
        assert _mailbox(ITS_USER, ca_file) == before
        _assert_works(OTHER_USER, ca_file)

        store.check_output(in_dovecot, "rm -f %s/filler" % staging)
        subject = "faults-disk-freed-%d" % time.time_ns()
        typ, text = _append(ITS_USER, ca_file, subject)
        assert typ == "OK", (typ, text)
        after = _mailbox(ITS_USER, ca_file)
        assert {uid: digest for uid, digest in after.items() if uid in before} == before
        assert len(after) == len(before) + 1
    finally:
        # Back to the store's disk, as the small file system has it now (with what
        # arrived meanwhile): copied beside the home, then put in its place.
        store.check_output(in_dovecot, "rm -f {s}/filler && umount {h} && mkdir {h}.new && "
                           "chown --reference={h} {h}.new && chmod --reference={h} {h}.new && "
                           "cp -a {s}/. {h}.new/ && mv {h} {h}.old && mv {h}.new {h} && rm -rf {h}.old && "
                           "umount {s} && rmdir {s}".format(s=staging, h=home))
    assert _mailbox(ITS_USER, ca_file) == after


# --- an edge device's clock days off --------------------------------------------------

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
FAKETIME_FILE = "/run/mailmesh-faults-faketime"
FAKE_DROPIN = "/run/systemd/system/%s.service.d/faketime.conf" % AGENT_UNIT


def _set_clock_offset(edge, offset):
    """The offset the faked process reads (libfaketime's timestamp file): "-3d", "+3d",
    or "+0" for the right time."""
    edge.check_output("printf '%%s\\n' %s > %s", offset, FAKETIME_FILE)


def _agent_run(host):
    """One run of the renewal agent now; its journal lines of this run alone: read after
    the journal's cursor taken just before (a time bound in whole seconds also took the
    previous run's lines when both fell in the same second; a oneshot that succeeded
    keeps no invocation ID to filter on)."""
    last = host.check_output("journalctl -n 1 --show-cursor -o cat -q")
    cursor = [line[len("-- cursor: "):] for line in last.splitlines() if line.startswith("-- cursor: ")]
    assert cursor, last
    host.run("systemctl start %s.service", AGENT_UNIT)
    return host.run("journalctl -u %s.service --after-cursor=%s --no-pager -o cat -q", AGENT_UNIT, cursor[0]).stdout


@pytest.fixture
def faked_clock(hosts):
    """The edge device's renewal agent on a clock the test sets, through libfaketime (a
    Debian package) preloaded into that unit alone: the host's clock, which every
    container shares, is never touched. Envoy cannot be faked so: under libfaketime
    (0.9.10, Debian 12) it hangs before it opens its admin port, even with no offset.
    The unit is put back as it was afterwards."""
    edge = hosts[EDGE]
    if not edge.file(FAKETIME_LIB).exists:
        edge.check_output("DEBIAN_FRONTEND=noninteractive apt-get install -y -q libfaketime >/dev/null")
    _set_clock_offset(edge, "+0")
    edge.check_output("mkdir -p %s", os.path.dirname(FAKE_DROPIN))
    edge.check_output(
        "printf '%%s\\n' '[Service]' 'Environment=LD_PRELOAD=%s FAKETIME_TIMESTAMP_FILE=%s "
        "FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1' > %s", FAKETIME_LIB, FAKETIME_FILE, FAKE_DROPIN)
    edge.check_output("systemctl daemon-reload")
    try:
        yield edge
    finally:
        edge.run("rm -f %s %s", FAKE_DROPIN, FAKETIME_FILE)
        edge.check_output("systemctl daemon-reload")


@pytest.mark.parametrize("offset,named", [
    ("-3d", "certificate is not yet valid"),
    ("+3d", "certificate has expired"),
])
def test_an_edge_device_with_its_clock_days_off(faked_clock, offset, named):
    """Three days behind (before the certificates start) or ahead (after they end): the
    renewal agent cannot trust Vault's certificate, says in the journal that the clock
    is wrong, with the time it believes, and changes no file. When the clock is right
    again, the next run succeeds, with no restart and no Ansible run."""
    edge = faked_clock
    cert = "/etc/mailmesh/tls/envoy/cert.pem"
    before = edge.file(cert).sha256sum
    _set_clock_offset(edge, offset)
    said = _agent_run(edge)
    assert "FAILED" in said and named in said, said
    believed = re.search(r"By this host's clock \((\S+)\) the server's certificate is outside its validity "
                         r"period: if that certificate is current, this host's clock is wrong; fix its time "
                         r"synchronisation", said)
    assert believed, said
    off = abs(time.time() - datetime.datetime.strptime(believed.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())
    assert 2.9 * 86400 < off < 3.1 * 86400, believed.group(1)
    assert edge.file(cert).sha256sum == before
    _set_clock_offset(edge, "+0")
    said = _agent_run(edge)
    assert "FAILED" not in said and "envoy: " in said, said


# --- every host restarted: last, it leaves Vault to be unsealed by hand -----------------

SEAL_STATUS = r"""
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen("https://127.0.0.1:8200/v1/sys/seal-status", timeout=10,
                             context=context).read().decode())
"""


def _sealed(vault):
    """Vault's seal status (True/False), or None while it does not answer."""
    cmd = vault.run("python3 -c %s %s", SEAL_STATUS, VAULT_CA)
    return json.loads(cmd.stdout)["sealed"] if cmd.rc == 0 else None


def _wait(what, predicate, timeout):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(1)
    pytest.fail("%s: not within %ds" % (what, timeout))


def _units_up(host, units):
    return all(host.run("systemctl is-active %s", unit).stdout.strip() == "active" for unit in units)


def test_every_host_restarted_at_once(hosts, ca_file):
    """Every container of every tier restarted at the same time, as after a power cut.
    With no Ansible run: every service comes back (whatever the order they start in:
    Envoy retries its peers, the gateways' checks find the stores again), and mail works
    on every way in, with the certificates on disk. Vault runs sealed (the Shamir seal
    needs a person): the renewal agents say so in their journal, and that is the one
    thing left to do. Once unsealed (the keys on stdin, as `bao operator unseal` takes
    them), every host renews again."""
    # Every host down, then every host up again, all at once. Docker may give the
    # containers other addresses (real hosts keep theirs): this scenario's stores trust
    # the gateways by network, not by address (group_vars/mailstores/mesh_only.yml), as
    # docs/operations.md advises where addresses change.
    for action in ("stop", "start"):
        running = [subprocess.Popen(["docker", action, name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True) for name in ALL_HOSTS]
        for process in running:
            assert process.wait(timeout=300) == 0, process.stderr.read()
    started = time.monotonic()
    for name in ALL_HOSTS:
        _wait("%s's services up" % name, lambda n=name: _units_up(hosts[n], UNITS[n]), 180)
    print("every service back %.0f s after the restart" % (time.monotonic() - started))
    _wait("Vault answering", lambda: _sealed(hosts[VAULT]) is not None, 120)
    assert _sealed(hosts[VAULT]) is True, "a Shamir-sealed Vault should need its keys after a restart"
    for user in sorted(USERS):
        _wait_works(user, ca_file, timeout=120)
    print("mail works %.0f s after the restart" % (time.monotonic() - started))
    said = _agent_run(hosts[GATEWAYS[0]])
    assert "is sealed" in said and "FAILED" in said, said

    # What is left to do: unseal.
    init = json.loads(INIT_FILE.read_text(encoding="utf-8"))
    keys = init["keys"][: init["secret_threshold"]]
    done = subprocess.run(["docker", "exec", "-i", VAULT, "python3", "-c", mesh_checks.UNSEAL, VAULT_CA],
                          input="\n".join(keys) + "\n", capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "sealed=False" in done.stdout, "unsealing failed (rc %d)" % done.returncode
    for name in ALL_HOSTS:
        said = _agent_run(hosts[name])
        assert "FAILED" not in said, "%s: %s" % (name, said)
    for user in sorted(USERS):
        _assert_works(user, ca_file)
