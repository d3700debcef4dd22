"""What a user of the dovecot role sees on both mail stores (Dovecot 2.3 on Debian 12,
2.4 on Debian 13), on the stores the gateway tests (test_mail_gateway.py) ran through:
direct IMAPS with a certificate from the Vault PKI, mail in a Maildir, plain IMAP only
on loopback and for the gateways' PROXY connections, a forced certificate renewal that
reloads Dovecot, the renewal agent turned off on one store, and direct IMAPS turned off.
These tests change the stores (renewal, agent, IMAPS off, kills): the file runs after
test_mail_gateway.py (pytest takes the files in name order)."""

import email.message
import imaplib
import json
import os
import socket
import ssl
import subprocess
import time

import mesh_checks
import pytest
import testinfra
import tls_scan
import unit_checks
from cryptography import x509

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
    os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."), "inventory"
)
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORES = {"mg-store12": "2.3", "mg-store13": "2.4"}
GATEWAY, VAULT = "mg-gw1", "mg-vault1"
USER, PASSWORD = "alice@example.test", "alice-secret"
MAILDIR = "/var/vmail/example.test/alice/Maildir"
PROXY_PORT = 10143
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxy_probe.py")


def _host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


def _journal(host):
    return host.run("journalctl -u dovecot --no-pager -n 60").stdout


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    return mesh_checks.vault_ca_file(_host("mg-store12"), tmp_path_factory)


def _imaps(store, ca_file):
    """IMAP4_SSL to the store's address, verifying the certificate for its inventory name."""
    context = ssl.create_default_context(cafile=ca_file)

    class Client(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):
            sock = socket.create_connection((mesh_checks.ip(store), 993), timeout)
            return context.wrap_socket(sock, server_hostname=store)

    return Client(store, 993, timeout=10)


def _probe(container, store, header, password=PASSWORD, count=None):
    subprocess.run(["docker", "cp", PROBE, container + ":/root/proxy_probe.py"], check=True, timeout=30)
    out = subprocess.run(
        ["docker", "exec", container, "python3", "/root/proxy_probe.py", store, str(PROXY_PORT), header, USER, password]
        + ([str(count)] if count else []),
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("store", sorted(STORES))
def test_service_runs_hardened(store):
    host = _host(store)
    assert host.service("dovecot").is_running, _journal(host)
    assert host.service("dovecot").is_enabled
    assert host.check_output("dovecot --version").startswith(STORES[store] + ".")
    props = host.check_output("systemctl show dovecot -p NoNewPrivileges -p ProtectHome -p LimitNOFILE")
    assert "NoNewPrivileges=yes" in props and "ProtectHome=yes" in props and "LimitNOFILE=65536" in props


@pytest.mark.parametrize("store", sorted(STORES))
def test_tls_files(store):
    host = _host(store)
    key = host.file("/etc/mailmesh/tls/dovecot/key.pem")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o640)
    users = host.file("/etc/dovecot/users")
    assert (users.user, users.group, users.mode) == ("root", "dovecot", 0o640)
    assert PASSWORD not in users.content_string


@pytest.mark.parametrize("store", sorted(STORES))
def test_imaps_login_append_lands_in_maildir(store, ca_file):
    subject = "mailmesh test %s %d" % (store, time.time_ns())
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "bob@example.test", USER, subject
    message.set_content("hello from the dovecot scenario\n")
    with _imaps(store, ca_file) as client:
        cert = x509.load_der_x509_certificate(client.sock.getpeercert(binary_form=True))
        assert store in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.login(USER, PASSWORD)
        typ, _ = client.append("INBOX", None, None, message.as_bytes())
        assert typ == "OK"
        client.logout()
    found = _host(store).run("grep -rl -- %s %s", subject, MAILDIR)
    assert found.rc == 0 and found.stdout.strip(), "message not in %s" % MAILDIR
    owner = _host(store).file(found.stdout.split()[0])
    assert owner.user == "vmail"


@pytest.mark.parametrize("store", sorted(STORES))
def test_imaps_wrong_password_refused(store, ca_file):
    with _imaps(store, ca_file) as client:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(USER, "not-the-password")


def _dovecot_figures(host):
    text = mesh_checks.scrape(host, "http://127.0.0.1:9900/metrics")
    value = mesh_checks.prometheus_value
    return {
        "logins": value(text, "dovecot_auth_success_total") or 0,
        "failed logins": value(text, "dovecot_auth_failure_total") or 0,
        "sessions": value(text, "dovecot_imap_session_total") or 0,
        "APPENDs": value(text, "dovecot_imap_command_total", cmd_name="APPEND", tagged_reply_state="OK") or 0,
    }


@pytest.mark.parametrize("store", sorted(STORES))
def test_prometheus_scrapes_dovecots_own_figures(store, ca_file):
    """Dovecot's OpenMetrics listener (loopback, read as an unprivileged user as a scraper
    on the host would) counts a login with an APPEND, the session's end and a wrong
    password, on 2.3 and 2.4 alike (the role writes each version's syntax)."""
    host = _host(store)
    before = _dovecot_figures(host)
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "bob@example.test", USER, "metrics %d" % time.time_ns()
    message.set_content("counted\n")
    with _imaps(store, ca_file) as client:
        client.login(USER, PASSWORD)
        assert client.append("INBOX", None, None, message.as_bytes())[0] == "OK"
        client.logout()
    with _imaps(store, ca_file) as client:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(USER, "not-the-password")
    for _attempt in range(20):  # a session's end reaches Dovecot's stats a moment later
        after = _dovecot_figures(host)
        if all(after[name] > before[name] for name in before):
            break
        time.sleep(0.5)
    for name in before:
        assert after[name] > before[name], (store, name, before, after)


@pytest.mark.parametrize("store", sorted(STORES))
def test_plain_imap_is_loopback_only(store):
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex((mesh_checks.ip(store), 143)) != 0, "143 answers on the network"
    # On loopback (the later Envoy ingress) LOGIN works without TLS.
    script = (
        "import imaplib; c = imaplib.IMAP4('127.0.0.1', 143); "
        "print(c.login(%r, %r)[0]); c.logout()" % (USER, PASSWORD)
    )
    assert _host(store).check_output("python3 -c %s", script) == "OK"


@pytest.mark.parametrize("store", sorted(STORES))
def test_proxy_header_from_gateway_gives_client_address(store):
    client_ip = "203.0.113.%d" % (12 if store == "mg-store12" else 13)
    header = "PROXY TCP4 %s %s 50123 143" % (client_ip, mesh_checks.ip(GATEWAY))
    result = _probe(GATEWAY, store, header)
    assert result["greeting"].startswith("* OK"), result
    assert "LOGINDISABLED" not in result["greeting"], result
    assert result["login"].startswith("a1 OK"), result
    host = _host(store)
    journal = host.run("journalctl -u dovecot --no-pager --since -5min").stdout
    assert "rip=%s" % client_ip in journal, journal[-3000:]


@pytest.mark.parametrize("store", sorted(STORES))
def test_proxy_header_from_other_host_rejected(store):
    header = "PROXY TCP4 203.0.113.99 %s 50123 143" % mesh_checks.ip(GATEWAY)
    result = _probe(VAULT, store, header)
    assert not result["login"].startswith("a1 OK"), result
    assert not result["greeting"].startswith("* OK"), result


@pytest.mark.parametrize("store", sorted(STORES))
def test_failed_logins_wait_and_the_penalty_grows_per_client_address(store):
    """Dovecot's own defence on every path to the store: a refused login waits
    auth_failure_delay (2 s, counted in whole seconds of Dovecot's clock: more than one
    second), and the auth penalty holds the next attempt from the same client address
    (the PROXY header's, the real client behind a gateway) for 4 s more before it is
    even checked. Another client address is not held back and logs in."""
    client_ip = "198.51.100.%d" % (100 + (time.time_ns() // 1000) % 150)
    header = "PROXY TCP4 %s %s 50123 143" % (client_ip, mesh_checks.ip(GATEWAY))
    first, second = _probe(GATEWAY, store, header, password="not-the-password", count=2)
    assert first["login"].startswith("a1 NO") and second["login"].startswith("a1 NO"), (first, second)
    assert first["login_seconds"] >= 1.0, (first, second)
    assert second["login_seconds"] >= 5.0, (first, second)
    other = "PROXY TCP4 203.0.113.%d %s 50123 143" % (12 if store == "mg-store12" else 13, mesh_checks.ip(GATEWAY))
    assert _probe(GATEWAY, store, other)["login"].startswith("a1 OK")
    assert "auth_failure_delay = 2 secs" in _host(store).file("/etc/dovecot/dovecot.conf").content_string


@pytest.mark.parametrize("store", sorted(STORES))
def test_listeners_bind_only_where_named(store):
    """Direct IMAPS on the addresses of dovecot_listen (here "*", every IPv4 address:
    no IPv6 wildcard unless named), plain IMAP on loopback, nothing else on the network."""
    listening = _host(store).check_output("ss -Hltn")
    sockets = {line.split()[3] for line in listening.splitlines()}
    assert "0.0.0.0:993" in sockets and "[::]:993" not in sockets, listening
    assert "127.0.0.1:143" in sockets and "0.0.0.0:143" not in sockets, listening
    assert "0.0.0.0:%d" % PROXY_PORT in sockets, listening
    assert "127.0.0.1:993" not in sockets, listening


@pytest.mark.parametrize("store", sorted(STORES))
def test_direct_dovecot_accepts_the_largest_id_before_login(store, ca_file):
    """The reference for the gateway's test (mail_gateway): RFC 2971's largest ID before
    login is answered by Dovecot itself, and LOGIN follows in the same session."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((mesh_checks.ip(store), 993), 15) as raw:
        with context.wrap_socket(raw, server_hostname=store) as sock:
            result = mesh_checks.pre_login_id_then_login(sock, USER, PASSWORD)
    assert result["id"][-1].startswith("a1 OK"), result["id"]
    assert any(line.startswith("* ID (") for line in result["id"]), result["id"]
    assert result["login"][-1].startswith("a3 OK"), result["login"]


@pytest.mark.parametrize("store", sorted(STORES))
def test_direct_imaps_passes_the_tls_scan(store):
    """A TLS scan of the direct listener (molecule/_shared/tls_scan.py): TLS 1.2 and 1.3
    only, Mozilla's intermediate suites, the intermediate CA but no root in the chain,
    and session resumption under both versions on both generations: with one login
    process, as here (with several, a session resumes only on the process that made it;
    docs/architecture.md, "TLS, port by port")."""
    result = tls_scan.scan(tls_scan.Target(mesh_checks.ip(store), 993, store))
    assert tls_scan.problems(result, resumption={"TLSv1.2": True, "TLSv1.3": True}) == [], result
    assert [subject for subject, _issuer in result["chain"]] == ["CN=%s" % store, "CN=mailmesh issuing CA"]


def _converge(store, *extra):
    """converge.yml limited to one store (the Vault tier's client play and the dovecot
    role; the gateway play matches nothing): (exit code, output)."""
    run = mesh_checks.play(SCENARIO_DIR, "converge.yml", "--limit", store, *extra, timeout=600)
    return run.returncode, run.stdout + run.stderr


def test_forced_renewal_reloads_dovecot(ca_file):
    """A forced renewal on mg-store12 (vault_cert_force): vault_cert issues a new
    certificate and notifies the dovecot role's "Check Dovecot config" topic, which
    reloads Dovecot (never restarts it); 993 then serves the certificate now on disk."""
    host = _host("mg-store12")
    before = x509.load_pem_x509_certificate(host.file("/etc/mailmesh/tls/dovecot/cert.pem").content)
    pid = host.check_output("systemctl show -p MainPID --value dovecot")
    since = host.check_output("date +%s")
    returncode, output = _converge("mg-store12", "-e", "vault_cert_force=true")
    assert returncode == 0, output[-3000:]
    journal = host.run("journalctl -u dovecot --no-pager --since @%s", since).stdout
    assert "Reload" in journal or "SIGHUP" in journal, journal
    assert host.check_output("systemctl show -p MainPID --value dovecot") == pid
    on_disk = x509.load_pem_x509_certificate(host.file("/etc/mailmesh/tls/dovecot/cert.pem").content)
    assert on_disk.serial_number != before.serial_number
    with _imaps("mg-store12", ca_file) as client:
        served = x509.load_der_x509_certificate(client.sock.getpeercert(binary_form=True))
        client.logout()
    assert served.serial_number == on_disk.serial_number


def test_direct_imaps_without_named_addresses_fails_before_any_change(tmp_path):
    """dovecot_imaps on with no address in dovecot_listen, and a failure delay out of
    range: refused in one message naming both variables, nothing changed."""
    host = _host("mg-store13")
    before = host.check_output("sha256sum /etc/dovecot/users /etc/dovecot/dovecot.conf")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dovecot_imaps": True, "dovecot_listen": [], "dovecot_auth_failure_delay": 0}))
    returncode, output = _converge("mg-store13", "-e", "@%s" % bad)
    assert returncode != 0, output
    assert "dovecot_imaps is on but dovecot_listen is empty" in output, output
    assert "dovecot_auth_failure_delay must be a whole number of seconds from 1 to 15 (it is 0)" in output, output
    assert "changed=0" in output, output
    assert host.check_output("sha256sum /etc/dovecot/users /etc/dovecot/dovecot.conf") == before


def test_a_rerun_puts_back_what_drifted_and_then_skips_the_tasks():
    """One comparison per store (host_state) decides whether the account, configure and
    service tasks run at all."""
    host = _host("mg-store12")
    assert host.run("chmod 0644 /etc/dovecot/users && usermod -s /bin/sh vmail").rc == 0

    returncode, output = _converge("mg-store12")
    assert returncode == 0, output[-3000:]
    assert "changed=2 " in output, output[-1500:]
    assert host.file("/etc/dovecot/users").mode == 0o640
    assert host.user("vmail").shell == "/usr/sbin/nologin"
    returncode, output = _converge("mg-store12")
    assert returncode == 0, output[-3000:]
    assert "changed=0 " in output, output[-1500:]
    # Nothing differs: the tasks that would each check one thing are not even listed.
    assert "Write the virtual users" not in output and "Create the vmail user" not in output, output[-3000:]
    assert "Compare the host with Dovecot's files, account and unit" in output


def test_the_renewal_agent_can_be_turned_off_per_host():
    """The role applied to mg-store13 with vault_cert_agent_enabled: false: its timer
    stops, its units and entry go, the certificate stays (kept by the runs); mg-store12
    keeps its agent. Applied again, nothing changes."""
    off, on = _host("mg-store13"), _host("mg-store12")
    returncode, output = _converge("mg-store13", "-e", "vault_cert_agent_enabled=false")
    assert returncode == 0, output[-3000:]
    for path in ("/etc/systemd/system/mailmesh-cert-renew.timer", "/etc/systemd/system/mailmesh-cert-renew.service",
                 "/etc/systemd/system/mailmesh-cert-renew.service.d/dovecot.conf",
                 "/etc/mailmesh/cert-renew.d/dovecot.json"):
        assert not off.file(path).exists, path
    assert off.run("systemctl is-active mailmesh-cert-renew.timer").stdout.strip() in ("inactive", "unknown")
    assert off.file("/etc/mailmesh/tls/dovecot/cert.pem").exists
    timer = on.service("mailmesh-cert-renew.timer")
    assert timer.is_enabled and timer.is_running
    assert on.file("/etc/mailmesh/cert-renew.d/dovecot.json").exists
    returncode, output = _converge("mg-store13", "-e", "vault_cert_agent_enabled=false")
    assert returncode == 0, output[-3000:]
    assert "changed=0 " in output, output[-3000:]


def test_without_direct_imaps_the_certificate_goes_and_dovecot_has_no_tls():
    """dovecot_imaps off on a store that had it: the IMAPS listener closes, Dovecot runs
    without TLS, and its certificate and renewal entry are removed; the gateways' path
    (PROXY listener) and loopback keep working. Applied again, nothing changes."""
    host = _host("mg-store13")
    assert host.file("/etc/mailmesh/tls/dovecot").exists

    def converge():
        return _converge("mg-store13", "-e", "vault_cert_agent_enabled=false", "-e", "dovecot_imaps=false")

    returncode, output = converge()
    assert returncode == 0, output[-3000:]
    assert "Forget the certificate of the direct IMAPS listener" in output, output[-3000:]
    assert not host.file("/etc/mailmesh/tls/dovecot").exists
    assert not host.file("/etc/mailmesh/cert-renew.d/dovecot.json").exists
    assert "ssl = no" in host.check_output("doveconf -n")
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex((mesh_checks.ip("mg-store13"), 993)) != 0, "993 still answers"
    script = (
        "import imaplib; c = imaplib.IMAP4('127.0.0.1', 143); "
        "print(c.login(%r, %r)[0]); c.logout()" % (USER, PASSWORD)
    )
    assert host.check_output("python3 -c %s", script) == "OK"
    header = "PROXY TCP4 203.0.113.13 %s 50123 143" % mesh_checks.ip(GATEWAY)
    result = _probe(GATEWAY, "mg-store13", header)
    assert result["login"].startswith("a1 OK"), result
    returncode, output = converge()
    assert returncode == 0, output[-3000:]
    assert "changed=0 " in output, output[-3000:]


# --- restarts and the system call filter ---------------------------------------------


@pytest.mark.parametrize("store", sorted(STORES))
def test_dovecot_runs_under_the_system_call_filter(store):
    unit_checks.check_syscall_filter(mesh_checks.host(store), "dovecot")
    # the login processes chroot: chroot is allowed on top of @system-service
    filtered = unit_checks.props(mesh_checks.host(store), "dovecot", "SystemCallFilter")["SystemCallFilter"]
    assert "chroot" in filtered.split()


def test_dovecot_comes_back_after_kills_and_a_clean_exit():
    """On the Dovecot 2.4 store only: the unit (Restart=always, no start limit, the
    restart count) is the same template on both; the filter is tried on both above."""
    host = mesh_checks.host("mg-store13")
    unit_checks.check_comes_back(host, "dovecot", lambda: _journal(host))
    # and it serves: LOGIN on loopback works again
    script = (
        "import imaplib, time\n"
        "for attempt in range(30):\n"
        "    try:\n"
        "        c = imaplib.IMAP4('127.0.0.1', 143); break\n"
        "    except OSError:\n"
        "        time.sleep(1)\n"
        "print(c.login(%r, %r)[0]); c.logout()" % (USER, PASSWORD)
    )
    assert host.check_output("python3 -c %s", script) == "OK"
