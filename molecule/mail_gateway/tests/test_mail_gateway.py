"""What a user of the mail path sees: an IMAP gateway on 993 (TLS from the Vault PKI) and
143 (STARTTLS required before LOGIN) that sends each user to their mail store (Dovecot
2.3 on Debian 12, 2.4 on Debian 13), where the mail really lands and the client's own
address is logged; whose config never goes live unless NGINX accepted it, whose stores
refuse a plaintext password before any change, and whose certificate renewal reloads
NGINX without dropping an open session."""

import email.message
import email.utils
import imaplib
import json
import os
import re
import socket
import ssl
import time

import mesh_checks
import pytest
import testinfra
import unit_checks
from cryptography import x509

SERVICE = "nginx"
GATEWAY = "mg-gw1"
STORES = ("mg-store12", "mg-store13")
CA_FILE = "/etc/mailmesh/vault/ca.pem"
CERT_FILE = "/etc/mailmesh/tls/nginx/cert.pem"
LIVE_FILES = ("/etc/nginx/nginx.conf", "/etc/nginx/mailmesh/mail.conf", "/etc/nginx/mailmesh/auth_http.conf")
STAGED_MAIL_CONF = "/var/lib/mailmesh/nginx_mail/staging/mailmesh/mail.conf"
AUTH_URL = "http://127.0.0.1:9143/auth"
PROXY_PORT = "10143"
# the explicit map in molecule.yml: one user per store
HOME_STORE = {"alice@example.test": "mg-store12", "bob@example.test": "mg-store13"}
VMAIL_DIR = "/var/vmail"
USERS = {
    "alice@example.test": "alice-secret",
    "bob@example.test": "bob-secret",
    "user01@example.test": "user-secret",
}
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
    os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."), "inventory"
)
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def gw1():
    return _host(GATEWAY)


@pytest.fixture(scope="module")
def stores():
    return {name: _host(name) for name in STORES}


@pytest.fixture(scope="module")
def gw_ip(gw1):
    return gw1.interface("eth0").addresses[0]


@pytest.fixture(scope="module")
def tls_context(gw1, tmp_path_factory):
    """Verifies the gateway against the Vault CA bundle copied out of the gateway."""
    ca_path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_path.write_text(gw1.file(CA_FILE).content_string, encoding="utf-8")
    context = ssl.create_default_context(cafile=str(ca_path))
    context.check_hostname = True
    return context


def _imaps(address, context, timeout=15):
    """IMAP4_SSL to the container's IP, checking the certificate for the name mg-gw1."""

    class _Client(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):
            sock = socket.create_connection((self.host, self.port), timeout)
            return self.ssl_context.wrap_socket(sock, server_hostname=GATEWAY)

    return _Client(address, 993, ssl_context=context, timeout=timeout)


def _close(client):
    """Close a client that logout() has not closed already."""
    if client.state != "LOGOUT":
        client.shutdown()


def _serial(client):
    der = client.sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _journal(host):
    return host.run("journalctl -u %s --no-pager -n 60", SERVICE).stdout


def _auth(gw1, user, attempt=1, client_ip="192.0.2.10"):
    """Ask auth_http the way NGINX does; returns the response headers (lower-cased names)."""
    cmd = gw1.run(
        "curl -sS -o /dev/null -D - -H %s -H 'Auth-Pass: x' -H 'Auth-Method: plain' "
        "-H 'Auth-Protocol: imap' -H %s -H %s %s",
        "Auth-User: " + user, "Auth-Login-Attempt: %d" % attempt, "Client-IP: " + client_ip, AUTH_URL,
    )
    assert cmd.rc == 0, cmd.stderr
    headers = {}
    for line in cmd.stdout.splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


def _store_ip(host):
    return host.interface("eth0").addresses[0]


def _gateway_play(*extra):
    """Run the gateway play (the role alone) against the scenario's inventory."""
    return _play("gateway.yml", *extra)


def _play(playbook, *extra):
    """Run one of the scenario's playbooks against the scenario's inventory."""
    return mesh_checks.play(SCENARIO_DIR, playbook, *extra, timeout=600)


def _live_state(gw1):
    digests = {path: gw1.file(path).sha256sum for path in LIVE_FILES}
    return digests, gw1.file("/run/nginx.pid").content_string.strip()


def _starttls(address, context, timeout=15):
    """IMAP on 143, upgraded with STARTTLS, checking the certificate for the name mg-gw1."""
    client = imaplib.IMAP4(address, 143, timeout=timeout)
    try:
        client.sock.settimeout(timeout)
        typ, _data = client.starttls(ssl_context=_named(context))
        assert typ == "OK"
    except BaseException:
        _close(client)
        raise
    return client


CONNECT = {"993": _imaps, "143+starttls": _starttls}


def _maildir(user):
    local, domain = user.split("@", 1)
    return "%s/%s/%s/Maildir" % (VMAIL_DIR, domain, local)


def _message(user, label):
    """A message with a subject and Message-ID no other test (or run) uses."""
    token = "mg-%s-%d" % (label, time.time_ns())
    message = email.message.EmailMessage()
    message["From"], message["To"] = "carol@example.test", user
    message["Subject"] = "mail_gateway %s" % token
    message["Message-ID"] = "<%s@mail-gateway.test>" % token
    message["Date"] = email.utils.formatdate()
    message.set_content("through the gateway: %s\n" % token)
    return token, message.as_bytes()


def _files_with(host, token, user):
    """Files under the user's Maildir on that host that contain token (grep on the host)."""
    found = host.run("grep -rlF -- %s %s", token, _maildir(user))
    assert found.rc in (0, 1, 2), found.stderr  # 1: no match, 2: no Maildir yet
    return found.stdout.split()


def _wait_for_files(host, token, user, attempts=20):
    files = []
    for _attempt in range(attempts):
        files = _files_with(host, token, user)
        if files:
            break
        time.sleep(0.25)
    return files


# --- the service -----------------------------------------------------------------


def test_service_active_and_enabled(gw1):
    service = gw1.service(SERVICE)
    assert service.is_running, "%s is not running:\n%s" % (SERVICE, _journal(gw1))
    assert service.is_enabled


def test_mail_module_from_the_distribution(gw1):
    assert gw1.package("libnginx-mod-mail").is_installed
    assert gw1.package("nginx").version.startswith("1.22")


def test_live_tree_is_the_validated_staging_tree(gw1):
    for path in LIVE_FILES:
        staged = path.replace("/etc/nginx/", "/var/lib/mailmesh/nginx_mail/staging/")
        assert gw1.file(path).sha256sum == gw1.file(staged).sha256sum, path
    assert gw1.run("nginx -t -q").rc == 0


def test_auth_http_listens_on_loopback_only(gw1):
    listening = gw1.check_output("ss -Htln")
    assert "127.0.0.1:9143" in listening
    assert "0.0.0.0:9143" not in listening and "*:9143" not in listening


# --- TLS and STARTTLS --------------------------------------------------------------


def test_imaps_verifies_against_the_vault_ca(gw_ip, tls_context):
    client = _imaps(gw_ip, tls_context)
    try:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert "IMAP4REV1" in client.capabilities
        assert "ID" not in client.capabilities
        assert "AUTH=PLAIN" in client.capabilities
    finally:
        _close(client)


def test_old_tls_versions_are_refused(gw_ip):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.minimum_version = ssl.TLSVersion.TLSv1
    with socket.create_connection((gw_ip, 993), 10) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname=GATEWAY)


def test_imap_143_requires_starttls_before_login(gw_ip, tls_context):
    client = imaplib.IMAP4(gw_ip, 143, timeout=15)
    try:
        assert "STARTTLS" in client.capabilities
        assert "LOGINDISABLED" in client.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            client._simple_command("LOGIN", "alice@example.test", "alice-secret")  # pylint: disable=protected-access
    finally:
        _close(client)

    client = imaplib.IMAP4(gw_ip, 143, timeout=15)
    try:
        client.sock.settimeout(15)
        typ, _data = client.starttls(ssl_context=_named(tls_context))
        assert typ == "OK"
        assert "LOGINDISABLED" not in client.capabilities
        typ, _data = client.login("user01@example.test", USERS["user01@example.test"])
        assert typ == "OK"
        client.logout()
    finally:
        _close(client)


def _named(context):
    """imaplib's starttls wraps with server_hostname=self.host (an IP here): check the name instead."""

    class _Context(ssl.SSLContext):
        def wrap_socket(self, sock, *args, **kwargs):  # pylint: disable=arguments-differ
            kwargs["server_hostname"] = GATEWAY
            return context.wrap_socket(sock, *args, **kwargs)

    return _Context(ssl.PROTOCOL_TLS_CLIENT)


# --- auth_http -------------------------------------------------------------------


def test_mapped_users_go_to_their_store(gw1, stores):
    for user, store in (("alice@example.test", "mg-store12"), ("bob@example.test", "mg-store13")):
        headers = _auth(gw1, user)
        assert headers["auth-status"] == "OK", headers
        assert headers["auth-server"] == _store_ip(stores[store]), headers
        assert headers["auth-port"] == PROXY_PORT, headers
        assert "auth-pass" not in headers, "auth_http must not replace the client's password"
        assert "auth-wait" not in headers, headers
    # the explicit map ignores case
    assert _auth(gw1, "ALICE@Example.test")["x-mailmesh-store"] == "mg-store12"


def test_unmapped_users_spread_stably_over_the_stores(gw1, stores):
    addresses = {_store_ip(host): name for name, host in stores.items()}
    users = ["someone%02d@example.test" % i for i in range(24)]
    first = {user: _auth(gw1, user, client_ip="192.0.2.%d" % (20 + i)) for i, user in enumerate(users)}
    for headers in first.values():
        assert headers["auth-status"] == "OK", headers
        assert headers["auth-server"] in addresses, headers
    assert {headers["auth-server"] for headers in first.values()} == set(addresses), "all users on one store"
    again = {user: _auth(gw1, user, client_ip="192.0.2.99") for user in users}
    assert {u: h["auth-server"] for u, h in again.items()} == {u: h["auth-server"] for u, h in first.items()}


def test_unknown_store_is_a_clean_no_with_a_wait(gw1):
    headers = _auth(gw1, "dave@example.test")
    assert headers["auth-status"] == "Mailbox temporarily unavailable", headers
    assert "auth-server" not in headers
    assert headers["auth-wait"] == "2"
    # the last allowed attempt: no wait, so NGINX closes the session
    assert "auth-wait" not in _auth(gw1, "dave@example.test", attempt=5)


def test_floods_are_throttled(gw1):
    cmd = gw1.run(
        "for i in $(seq 60); do curl -s -o /dev/null -D - -H 'Auth-User: flood@example.test' "
        "-H 'Auth-Login-Attempt: 1' -H 'Client-IP: 198.51.100.7' %s & done; wait", AUTH_URL
    )
    statuses = [line.split(":", 1)[1].strip() for line in cmd.stdout.splitlines()
                if line.lower().startswith("auth-status:")]
    assert len(statuses) == 60, cmd.stdout
    assert "Too many login attempts, try again later" in statuses
    assert "OK" in statuses


def _storm(gw1, client_ip, fingerprint):
    """60 logins at once, each its own user, from one address (devices behind one NAT):
    the Auth-Status of each. fingerprint: None (no client certificate, as on 993), a
    string (every login from that one certificate), or "each" (a certificate per login,
    as 60 devices on the device port). NGINX sends Auth-SSL-* itself from the handshake."""
    cert = {None: "", "each": "-H 'Auth-SSL-Verify: SUCCESS' -H \"Auth-SSL-Fingerprint: $(printf %040x $i)\" "}.get(
        fingerprint, "-H 'Auth-SSL-Verify: SUCCESS' -H 'Auth-SSL-Fingerprint: %s' " % fingerprint)
    # One string: testinfra would quote each argument of run() as one word.
    cmd = gw1.run(
        "for i in $(seq 60); do curl -s -o /dev/null -D - -H \"Auth-User: nat$i@example.test\" "
        "-H 'Auth-Login-Attempt: 1' -H 'Client-IP: " + client_ip + "' " + cert + AUTH_URL + " & done; wait")
    statuses = [line.split(":", 1)[1].strip() for line in cmd.stdout.splitlines()
                if line.lower().startswith("auth-status:")]
    assert len(statuses) == 60, cmd.stdout
    return statuses


def test_devices_behind_one_nat_each_have_their_own_login_limit(gw1):
    """The per-client limit is keyed on the certificate NGINX verified (the device port),
    else on the address: 60 devices behind one address, each with its own certificate,
    all get in at once; 60 logins from one address without a certificate, or from one
    certificate, are throttled as before (each login its own user, so the per-login limit
    plays no part)."""
    devices = _storm(gw1, "198.51.100.21", "each")
    assert devices.count("OK") == 60, devices
    plain = _storm(gw1, "198.51.100.22", None)
    assert "Too many login attempts, try again later" in plain and "OK" in plain, plain
    one_device = _storm(gw1, "198.51.100.23", "ab" * 20)
    assert "Too many login attempts, try again later" in one_device and "OK" in one_device, one_device


# --- end to end through the real Dovecot stores ----------------------------------------


def test_login_end_to_end_lands_on_the_routed_store(gw1, gw_ip, tls_context, stores):
    client = _imaps(gw_ip, tls_context)
    try:
        typ, _data = client.login("alice@example.test", USERS["alice@example.test"])
        assert typ == "OK"
        typ, _data = client.select("INBOX")
        assert typ == "OK"
        # the store sees the client's address (PROXY protocol), not the gateway's
        who = stores["mg-store12"].check_output("doveadm who -1")
        assert "alice@example.test" in who, who
        assert gw_ip not in who.split("alice@example.test", 1)[1].splitlines()[0], who
        assert "alice@example.test" not in stores["mg-store13"].check_output("doveadm who -1")
        client.logout()
    finally:
        _close(client)

    # an unmapped user lands on the store auth_http hashed it to, and only there
    routed = _auth(gw1, "user01@example.test")["x-mailmesh-store"]
    other = next(name for name in STORES if name != routed)
    client = _imaps(gw_ip, tls_context)
    try:
        assert client.login("user01@example.test", USERS["user01@example.test"])[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        assert "user01@example.test" in stores[routed].check_output("doveadm who -1")
        assert "user01@example.test" not in stores[other].check_output("doveadm who -1")
        client.logout()
    finally:
        _close(client)


@pytest.mark.parametrize("port", [993, 143])
def test_largest_id_before_login_is_refused_without_dropping_the_session(gw_ip, tls_context, port):
    """RFC 2971's largest ID (30 pairs, 30-octet fields, 1024-octet values, about 32 KB in
    one line) before login: NGINX, which does not implement ID, answers BAD and the
    session goes on to CAPABILITY and LOGIN (with NGINX's default one-page buffer it closed
    the connection). On 143 before STARTTLS too; LITERAL+ is not advertised before login."""
    user = "user01@example.test"
    with socket.create_connection((gw_ip, port), 15) as raw:
        sock = tls_context.wrap_socket(raw, server_hostname=GATEWAY) if port == 993 else raw
        result = mesh_checks.pre_login_id_then_login(sock, user, USERS[user])
    assert result["greeting"][0].startswith("* OK"), result["greeting"]
    assert result["id"][-1].startswith("a1 BAD"), result["id"]
    assert result["capability"][-1].startswith("a2 OK"), result
    capabilities = next(line for line in result["capability"] if line.startswith("* CAPABILITY ")).split()
    assert "IMAP4rev1" in capabilities and "LITERAL+" not in capabilities and "ID" not in capabilities, capabilities
    if port == 993:
        assert result["login"][-1].startswith("a3 OK"), result["login"]
    else:
        assert result["login"][-1].startswith("a3 BAD") or result["login"][-1].startswith("a3 NO"), result["login"]
        assert "closed" not in result["login"][-1], result["login"]


def test_wrong_password_is_refused_by_the_store(gw_ip, tls_context):
    client = _imaps(gw_ip, tls_context)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login("bob@example.test", "not-bob's-password")
    finally:
        _close(client)


def test_unknown_store_login_gets_no(gw_ip, tls_context):
    client = _imaps(gw_ip, tls_context)
    try:
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error, match="Mailbox temporarily unavailable"):
            client.login("dave@example.test", "whatever")
        assert time.monotonic() - started >= 1.5, "no Auth-Wait delay"
    finally:
        _close(client)


@pytest.mark.parametrize("transport", sorted(CONNECT))
@pytest.mark.parametrize("user", sorted(HOME_STORE))
def test_append_through_the_gateway_lands_in_the_users_own_store(user, transport, gw_ip, tls_context, stores):
    home = HOME_STORE[user]
    other = next(name for name in STORES if name != home)
    token, raw = _message(user, "%s-%s" % (user.split("@")[0], transport.replace("+", "-")))
    client = CONNECT[transport](gw_ip, tls_context)
    try:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.login(user, USERS[user])[0] == "OK"
        typ, data = client.append("INBOX", None, None, raw)
        assert typ == "OK", data
        assert client.select("INBOX")[0] == "OK"
        typ, data = client.search(None, "HEADER", "Message-ID", "<%s@mail-gateway.test>" % token)
        assert typ == "OK" and data[0].split(), data
        client.logout()
    finally:
        _close(client)
    files = _wait_for_files(stores[home], token, user)
    assert files, "%s not in %s on %s" % (token, _maildir(user), home)
    assert stores[home].file(files[0]).user == "vmail"
    assert _files_with(stores[other], token, user) == [], "%s also on %s" % (token, other)


@pytest.mark.parametrize("transport", sorted(CONNECT))
@pytest.mark.parametrize("user", sorted(HOME_STORE))
def test_wrong_password_is_refused_for_users_of_both_stores(user, transport, gw_ip, tls_context):
    client = CONNECT[transport](gw_ip, tls_context)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(user, "not-the-password")
    finally:
        _close(client)


def test_the_store_logs_the_clients_address_not_the_gateways(gw_ip, tls_context, stores):
    for user, home in sorted(HOME_STORE.items()):
        host = stores[home]
        since = host.check_output("date +%s")
        time.sleep(1)
        client = _imaps(gw_ip, tls_context)
        try:
            client_ip = client.sock.getsockname()[0]
            assert client_ip != gw_ip
            assert client.login(user, USERS[user])[0] == "OK"
            client.logout()
        finally:
            _close(client)
        logins = []
        for _attempt in range(20):
            journal = host.run("journalctl -u dovecot --no-pager -o cat --since @%s", since).stdout
            # Dovecot 2.3 logs "Login: user=<...>", 2.4 "Logged in: user=<...>"
            logins = [line for line in journal.splitlines()
                      if re.search(r"imap-login: (Login|Logged in): user=<%s>" % re.escape(user), line)]
            if logins:
                break
            time.sleep(0.5)
        assert logins, "no login of %s logged on %s:\n%s" % (user, home, journal[-3000:])
        for line in logins:
            assert re.search(r"\brip=%s(,|\s|$)" % re.escape(client_ip), line), line
            assert not re.search(r"\brip=%s(,|\s|$)" % re.escape(gw_ip), line), line


# --- check mode -------------------------------------------------------------------


def test_check_mode_on_a_converged_gateway_changes_nothing(gw1):
    before = _live_state(gw1)
    run = _gateway_play("--check")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "changed=0" in run.stdout, run.stdout[-3000:]
    assert _live_state(gw1) == before


# --- a bad config never goes live ----------------------------------------------------


def test_broken_variable_leaves_the_live_config_untouched(gw1, gw_ip, tls_context):
    before = _live_state(gw1)
    run = _gateway_play("-e", "nginx_mail_proxy_timeout=forever")
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode != 0, tail
    assert "Validate the staged configuration" in run.stdout, tail
    # the failure (on stderr) names the directive; the yaml callback may wrap lines
    assert '"proxy_timeout" directive invalid value' in " ".join((run.stdout + run.stderr).split()), tail
    # the broken tree was rendered and rejected in staging ...
    assert "proxy_timeout forever;" in gw1.file(STAGED_MAIL_CONF).content_string
    # ... while the live tree and the running master stayed as they were
    assert _live_state(gw1) == before
    assert "proxy_timeout forever" not in gw1.file("/etc/nginx/mailmesh/mail.conf").content_string
    _close(_imaps(gw_ip, tls_context))


def test_plaintext_password_fails_the_store_play_before_any_change(stores, tmp_path):
    files = "sha256sum /etc/dovecot/users /etc/dovecot/dovecot.conf"
    before = {name: host.check_output(files) for name, host in stores.items()}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dovecot_users": [
        {"name": "alice@example.test", "password_hash": "{SHA512-CRYPT}$6$abc$def"},
        {"name": "mallory@example.test", "password_hash": "Hunter2-plaintext"},
    ]}), encoding="utf-8")
    # the converge playbook, limited to the stores (the Vault and gateway plays match nothing)
    run = _play("converge.yml", "--limit", "mailstores", "-e", "@%s" % bad)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-4000:]
    assert "Refuse plaintext passwords in dovecot_users" in output, output[-4000:]
    assert "mallory@example.test" in output and "dovecot_users" in output, output[-4000:]
    assert "Hunter2-plaintext" not in output
    recap = output.split("PLAY RECAP", 1)[1]
    for name in STORES:
        line = next(line for line in recap.splitlines() if line.startswith(name))
        assert "changed=0" in line and "failed=1" in line, line
    assert "mg-gw1" not in recap and "mg-vault1" not in recap, recap
    assert {name: host.check_output(files) for name, host in stores.items()} == before


# --- renewal: reload, never restart ----------------------------------------------------


def test_forced_renewal_reloads_without_dropping_open_sessions(gw1, gw_ip, tls_context):
    _digests, pid_before = _live_state(gw1)
    client = _imaps(gw_ip, tls_context, timeout=30)
    try:
        assert client.login("alice@example.test", USERS["alice@example.test"])[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        old_serial = _serial(client)

        run = _gateway_play("-e", '{"nginx_mail_cert_force": true}')
        assert run.returncode == 0, run.stdout[-4000:]
        assert "RUNNING HANDLER [mailmesh.imap.nginx_mail : Reload NGINX]" in run.stdout

        new_serial = x509.load_pem_x509_certificate(
            gw1.file(CERT_FILE).content_string.encode()).serial_number
        assert new_serial != old_serial
        assert gw1.file("/run/nginx.pid").content_string.strip() == pid_before, "NGINX was restarted"

        # the open session goes on, and still reaches its store
        assert client.noop()[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        token, raw = _message("alice@example.test", "renewal")
        assert client.append("INBOX", None, None, raw)[0] == "OK"
        assert _wait_for_files(_host(HOME_STORE["alice@example.test"]), token, "alice@example.test")

        # new sessions see the new certificate (workers replaced within seconds)
        seen = None
        for _attempt in range(20):
            fresh = _imaps(gw_ip, tls_context)
            seen = _serial(fresh)
            _close(fresh)
            if seen == new_serial:
                break
            time.sleep(0.5)
        assert seen == new_serial

        assert client.noop()[0] == "OK"
        client.logout()
    finally:
        _close(client)
    # the renewal run also restored a valid staging tree
    assert "proxy_timeout forever" not in gw1.file(STAGED_MAIL_CONF).content_string


# --- client certificates for devices (optional verification) ---------------------------


def _self_signed(directory):
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    import datetime  # pylint: disable=import-outside-toplevel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "intruder.pem", directory / "intruder-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_optional_client_certificates(gw1, gw_ip, tls_context, tmp_path):
    # a certificate from the Vault PKI with clientAuth: the gateway's own, sent with its
    # issuing CA (full chain), as a device must: NGINX trusts the root CA bundle
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client-key.pem"
    cert_path.write_text(gw1.file("/etc/mailmesh/tls/nginx/fullchain.pem").content_string, encoding="utf-8")
    key_path.write_text(gw1.file("/etc/mailmesh/tls/nginx/key.pem").content_string, encoding="utf-8")
    key_path.chmod(0o600)
    bad_cert, bad_key = _self_signed(tmp_path)

    run = _gateway_play("-e", "nginx_mail_ssl_verify_client=optional")
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        mail_conf = gw1.file("/etc/nginx/mailmesh/mail.conf").content_string
        assert "ssl_verify_client optional;" in mail_conf
        time.sleep(1)

        # ordinary clients need no certificate
        client = _imaps(gw_ip, tls_context)
        assert client.login("alice@example.test", USERS["alice@example.test"])[0] == "OK"
        client.logout()

        # a device with a certificate from the Vault PKI gets in
        with_cert = ssl.create_default_context(cafile=None)
        with_cert.load_verify_locations(cadata=gw1.file(CA_FILE).content_string)
        with_cert.load_cert_chain(str(cert_path), str(key_path))
        client = _imaps(gw_ip, with_cert)
        assert client.login("bob@example.test", USERS["bob@example.test"])[0] == "OK"
        client.logout()

        # a certificate from anywhere else is refused before the greeting
        intruder = ssl.create_default_context(cafile=None)
        intruder.load_verify_locations(cadata=gw1.file(CA_FILE).content_string)
        intruder.load_cert_chain(str(bad_cert), str(bad_key))
        with pytest.raises((imaplib.IMAP4.error, ssl.SSLError, OSError)):
            _close(_imaps(gw_ip, intruder))
    finally:
        restored = _gateway_play()
        assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-2000:]
    # Back to no client certificates on 993/143; only the device port (its own server
    # block) still requires one.
    verify = re.findall(r"ssl_verify_client \w+;", gw1.file("/etc/nginx/mailmesh/mail.conf").content_string)
    assert verify == ["ssl_verify_client on;"], verify


# --- existing mail across re-runs ----------------------------------------------------


def _mail_digests(host, user):
    """sha256 of every message file (cur/ and new/) in the user's Maildir on that host."""
    listing = host.run(
        "find %s -path '*/cur/*' -type f -o -path '*/new/*' -type f | sort | xargs -r sha256sum",
        _maildir(user),
    )
    assert listing.rc == 0, listing.stderr
    return listing.stdout


def test_existing_mail_survives_a_store_config_change_and_a_rerun(gw_ip, tls_context, stores):
    tokens = {}
    for user, home in HOME_STORE.items():
        token, raw = _message(user, "%s-keep" % user.split("@")[0])
        client = _imaps(gw_ip, tls_context)
        try:
            assert client.login(user, USERS[user])[0] == "OK"
            assert client.append("INBOX", None, None, raw)[0] == "OK"
            client.logout()
        finally:
            _close(client)
        assert _wait_for_files(stores[home], token, user), "%s never reached %s" % (token, home)
        tokens[user] = token
    before = {user: _mail_digests(stores[home], user) for user, home in HOME_STORE.items()}
    assert all(before.values()), before

    # a config change (reload) and then a plain re-run back to the scenario's config
    for extra in (["-e", "dovecot_mail_max_userip_connections=21"], []):
        run = _play("converge.yml", "--limit", "mailstores", *extra)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
        if extra:
            assert "mail_max_userip_connections = 21" in stores["mg-store12"].file(
                "/etc/dovecot/dovecot.conf").content_string
        assert {user: _mail_digests(stores[home], user) for user, home in HOME_STORE.items()} == before

    # and the messages are still readable through the gateway
    for user, token in tokens.items():
        client = _imaps(gw_ip, tls_context)
        try:
            assert client.login(user, USERS[user])[0] == "OK"
            assert client.select("INBOX")[0] == "OK"
            typ, data = client.search(None, "HEADER", "Message-ID", "<%s@mail-gateway.test>" % token)
            assert typ == "OK" and data[0].split(), (user, data)
            client.logout()
        finally:
            _close(client)


# --- hostile clients: each is refused or held alone, and everyone else logs in ----------
# (docs/reliability.md lists them.) Every loop here is bounded in count and in time.


def _login_works(gw_ip, tls_context, user="alice@example.test"):
    """A real user logs in through the gateway and selects INBOX."""
    client = _imaps(gw_ip, tls_context)
    try:
        assert client.login(user, USERS[user])[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    finally:
        _close(client)


def _read_until_closed(sock, limit=15.0):
    """Everything the peer sends until it closes the connection; fails after limit seconds."""
    received = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            # Closed by the peer; with TLS 1.3 the read may try to answer a post-handshake
            # message on the closed socket (EPIPE): closed all the same.
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _tls_greeted(gw_ip, tls_context):
    """A TLS connection to 993 that has read NGINX's greeting."""
    sock = tls_context.wrap_socket(socket.create_connection((gw_ip, 993), 10), server_hostname=GATEWAY)
    sock.settimeout(10)
    greeting = sock.recv(4096)
    assert greeting.startswith(b"* OK"), greeting
    return sock


def test_plain_imap_on_the_tls_port_is_dropped_and_others_log_in(gw1, gw_ip, tls_context):
    pid = gw1.file("/run/nginx.pid").content_string.strip()
    with socket.create_connection((gw_ip, 993), 10) as sock:
        sock.sendall(b"a1 LOGIN alice@example.test alice-secret\r\n")
        received, closed = _read_until_closed(sock)
    assert closed, "a client speaking plain IMAP on 993 was kept open: %r" % received[:200]
    # No IMAP answer in clear: at most a TLS alert record (content type 21).
    assert b"OK" not in received and b"BAD" not in received, received[:200]
    assert received == b"" or received[:1] == b"\x15", received[:200]
    _login_works(gw_ip, tls_context)
    assert gw1.file("/run/nginx.pid").content_string.strip() == pid


@pytest.mark.parametrize("command", [
    pytest.param(b"a1 LOGIN " + b"x" * 65536 + b" y\r\n", id="64k-line"),
    pytest.param(b"a1 " + b"NOOP " * 20000, id="100k-without-end-of-line"),
    # NGINX answers the announcement with "+ OK", then refuses what overflows its buffer.
    pytest.param(b"a1 LOGIN {4294967296}\r\n" + b"x" * 65536, id="4g-literal"),
])
def test_a_huge_command_before_login_is_refused_and_the_connection_closed(command, gw1, gw_ip, tls_context):
    pid = gw1.file("/run/nginx.pid").content_string.strip()
    sock = _tls_greeted(gw_ip, tls_context)
    try:
        try:
            sock.sendall(command)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # NGINX closed while the rest was on its way: the refusal itself
        received, closed = _read_until_closed(sock)
    finally:
        sock.close()
    assert closed, "NGINX kept a connection open after %d bytes of one command: %r" % (len(command), received[:200])
    assert b"a1 OK" not in received, received[:200]
    _login_works(gw_ip, tls_context, "bob@example.test")
    assert gw1.file("/run/nginx.pid").content_string.strip() == pid, "NGINX restarted"


def test_an_unterminated_literal_holds_only_its_own_connection(gw1, gw_ip, tls_context):
    sock = _tls_greeted(gw_ip, tls_context)
    try:
        sock.sendall(b"a1 LOGIN {64}\r\n")
        continuation = sock.recv(4096)
        assert continuation.startswith(b"+"), continuation
        sock.sendall(b"alice@exa")  # 9 of the 64 bytes announced, and nothing more
        # While it waits, other users log in through both ports.
        _login_works(gw_ip, tls_context)
        client = _starttls(gw_ip, tls_context)
        try:
            assert client.login("user01@example.test", USERS["user01@example.test"])[0] == "OK"
            client.logout()
        finally:
            _close(client)
        # The half-sent login got no answer: nothing was authenticated.
        sock.settimeout(1)
        with pytest.raises(socket.timeout):
            sock.recv(4096)
    finally:
        sock.close()
    assert gw1.service(SERVICE).is_running, _journal(gw1)


def test_two_thousand_idle_connections_do_not_lock_others_out(gw1, gw_ip, tls_context):
    """2,000 connections that never start TLS (bounded in count, 60 s to open them):
    NGINX holds them within its worker_connections, and a real user still logs in."""
    pid = gw1.file("/run/nginx.pid").content_string.strip()
    held = []
    deadline = time.monotonic() + 60
    try:
        for _index in range(2000):
            if time.monotonic() > deadline:
                break
            held.append(socket.create_connection((gw_ip, 993), 5))
        assert len(held) == 2000, "only %d connections opened in 60 s" % len(held)
        _login_works(gw_ip, tls_context)  # within the client's 15 s timeout
    finally:
        for sock in held:
            sock.close()
    _login_works(gw_ip, tls_context, "bob@example.test")
    assert gw1.file("/run/nginx.pid").content_string.strip() == pid, "NGINX restarted"
    errors = gw1.run("grep -c 'worker_connections are not enough' /var/log/nginx/error.log").stdout.strip()
    assert errors in ("", "0"), "NGINX ran out of worker connections (%s times)" % errors


# --- restarts and the system call filter ---------------------------------------------


def test_nginx_runs_hardened_under_the_system_call_filter():
    gw = mesh_checks.host(GATEWAY)
    unit_checks.check_syscall_filter(gw, SERVICE)
    seen = unit_checks.props(gw, SERVICE, "NoNewPrivileges", "ProtectSystem", "PrivateTmp", "Restart",
                             "StartLimitIntervalUSec", "FragmentPath", "DropInPaths")
    assert seen["NoNewPrivileges"] == "yes" and seen["ProtectSystem"] == "full" and seen["PrivateTmp"] == "yes", seen
    assert seen["Restart"] == "always" and seen["StartLimitIntervalUSec"] == "0", seen
    # Debian's unit, with the role's drop-in on top.
    assert seen["FragmentPath"].endswith("lib/systemd/system/nginx.service"), seen
    assert "/etc/systemd/system/nginx.service.d/mailmesh.conf" in seen["DropInPaths"], seen


def test_nginx_comes_back_after_kills_and_a_clean_exit(gw_ip, tls_context):
    gw = mesh_checks.host(GATEWAY)
    unit_checks.check_comes_back(gw, SERVICE, lambda: _journal(gw))
    # and it serves: a login through the gateway works again
    client = None
    for _attempt in range(30):
        try:
            client = _imaps(gw_ip, tls_context)
            break
        except OSError:
            time.sleep(1)
    assert client is not None, _journal(gw)
    try:
        assert client.login("alice@example.test", USERS["alice@example.test"])[0] == "OK"
        client.logout()
    finally:
        _close(client)
