"""Helpers the scenarios' verifiers share (molecule/conftest.py puts this directory on
sys.path): reach a container, read an Envoy admin page, scrape a Prometheus endpoint,
run a playbook against the scenario's inventory, watch an edge device's view of the
gateways."""

import json
import os
import subprocess
import time

import pytest
import testinfra


# Runs on an edge device (python3 from Debian): one app session through the device's
# Envoy on 127.0.0.1:143. argv: user password subject [hold]. LOGIN, SELECT, APPEND a
# message with that subject, find it, FETCH it, LOGOUT; prints "FETCHED <subject>".
# With "hold" it prints READY after the SELECT and waits for a line on stdin before the
# APPEND, so that a session stays open meanwhile.
EDGE_CLIENT = r"""
import imaplib, sys
user, password, subject = sys.argv[1:4]
hold = len(sys.argv) > 4
m = imaplib.IMAP4("127.0.0.1", 143, timeout=120)
m.login(user, password)
assert m.select("INBOX")[0] == "OK"
if hold:
    print("READY", flush=True)
    sys.stdin.readline()
    assert m.noop()[0] == "OK"
message = ("From: app@edge.test\r\nTo: %s\r\nSubject: %s\r\n\r\nfrom the edge app\r\n"
           % (user, subject)).encode()
assert m.append("INBOX", None, None, message)[0] == "OK"
assert m.select("INBOX")[0] == "OK"
typ, data = m.search(None, "SUBJECT", subject)
assert typ == "OK" and data[0], data
typ, data = m.fetch(data[0].split()[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and subject.encode() in data[0][1], data
m.logout()
print("FETCHED " + subject, flush=True)
"""


# Runs on the Vault host: unseal keys on stdin, one per line, PUT to sys/unseal; prints
# only whether it is still sealed.
UNSEAL = r"""
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
status = {"sealed": True}
for key in sys.stdin.read().split():
    request = urllib.request.Request("https://127.0.0.1:8200/v1/sys/unseal", method="PUT",
                                     data=json.dumps({"key": key}).encode(),
                                     headers={"Content-Type": "application/json"})
    status = json.loads(urllib.request.urlopen(request, timeout=10, context=context).read())
print("sealed=%s" % status["sealed"])
"""


def host(name):
    """A testinfra host on the docker backend: one `docker exec` per command, much
    faster than going through Ansible under qemu emulation."""
    return testinfra.get_host("docker://" + name)


def vault_ca_file(target, tmp_path_factory, path="/etc/mailmesh/vault/ca.pem"):
    """The Vault CA every host trusts, copied out of target for the tests' TLS clients."""
    copy = tmp_path_factory.mktemp("ca") / "ca.pem"
    copy.write_text(target.file(path).content_string)
    return str(copy)


def ip(name):
    """The container's address on its Docker network."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()
    assert out, "no address for %s" % name
    return out


def network_of(name):
    """The Docker network the container is on (the scenario's own)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}", name],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()
    assert len(out) == 1, "%s is on %s" % (name, out)
    return out[0]


def journal(target, unit):
    return target.run("journalctl -u %s --no-pager -n 40", unit).stdout


def envoy_reclaim_line(target):
    """What the start-up page reclaimer (envoy_reclaim_startup_pages) said about the
    Envoy running now: its last journal line for Envoy's current PID."""
    pid = target.run("systemctl show -p MainPID --value envoy").stdout.strip()
    lines = [line for line in target.run("journalctl -u envoy --no-pager -o cat").stdout.splitlines()
             if line.startswith("envoy pid %s: " % pid)]
    assert lines, "no reclaimer line for envoy pid %s:\n%s" % (pid, journal(target, "envoy"))
    return lines[-1]


# Envoy's admin interface: a Unix socket only root and Envoy's user may open.
ADMIN_SOCKET = "/run/envoy/admin.sock"

# Runs on a host: HTTP GET over a Unix socket. argv: socket path timeout; prints the
# body, exits 1 (with the status on stderr) on anything but 200.
_UNIX_GET = r"""
import http.client, socket, sys
path, page, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(timeout)
sock.connect(path)
conn = http.client.HTTPConnection("localhost", timeout=timeout)
conn.sock = sock
conn.request(sys.argv[4] if len(sys.argv) > 4 else "GET", page)
response = conn.getresponse()
body = response.read().decode()
if response.status != 200:
    sys.exit("%s %s" % (response.status, body[:200]))
print(body)
"""

# Runs on a host: GET an http:// URL; prints the body. argv: url timeout.
_HTTP_GET = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())
"""


def admin(target, path, timeout=30):
    """GET on the host's Envoy admin interface (its Unix socket: as root, on the host)."""
    cmd = target.run("python3 -c %s %s %s %s", _UNIX_GET, ADMIN_SOCKET, path, str(timeout))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def admin_as(target, user, path, method="GET"):
    """The same request as a local user: the command's result (rc, stdout, stderr)."""
    return target.run("runuser -u %s -- python3 -c %s %s %s 5 %s",
                      user, _UNIX_GET, ADMIN_SOCKET, path, method)


def scrape(target, url, user="nobody", timeout=10):
    """A Prometheus endpoint on the host, read as an unprivileged local user (as a
    scraper on the host would): the text."""
    cmd = target.run("runuser -u %s -- python3 -c %s %s %s", user, _HTTP_GET, url, str(timeout))
    assert cmd.rc == 0, "%s: %s" % (url, cmd.stderr)
    return cmd.stdout


# Runs on a host: the HTTP status of each request. argv: host port method path [method path...]
_HTTP_STATUS = r"""
import http.client, sys
for method, path in zip(sys.argv[3::2], sys.argv[4::2]):
    conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
    conn.request(method, path)
    print(conn.getresponse().status)
    conn.close()
"""


def http_statuses(target, port, requests, user="nobody"):
    """The statuses a local user gets for each (method, path) on 127.0.0.1:port of the
    host, in one process."""
    args = [item for request in requests for item in request]
    cmd = target.run("runuser -u %s -- python3 -c %s 127.0.0.1 %s" + " %s" * len(args),
                     user, _HTTP_STATUS, str(port), *args)
    assert cmd.rc == 0, cmd.stderr
    return [int(line) for line in cmd.stdout.split()]


def prometheus_value(text, name, **labels):
    """The sum of a metric's samples (Prometheus text format) whose labels include
    `labels`; None when there is none."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        series, _sep, value = line.rpartition(" ")
        if all('%s="%s"' % item in series for item in labels.items()):
            total += float(value)
            found = True
    return total if found else None


def envoy_served_serial(target):
    """The serial (as a number: Envoy keeps a leading zero, openssl drops it) of the one
    certificate the host's Envoy serves."""
    certs = json.loads(admin(target, "/certs"))["certificates"]
    serials = {int(c["cert_chain"][0]["serial_number"], 16) for c in certs if c.get("cert_chain")}
    assert len(serials) == 1, certs
    return serials.pop()


def on_store(store, subject, root, attempts=20):
    """The files under root on this store that hold the subject (retried: delivery to
    the Maildir may lag the client's OK by a moment)."""
    for _attempt in range(attempts):
        found = store.run("grep -rlF -- %s %s", subject, root)
        if found.rc == 0 and found.stdout.strip():
            return found.stdout.split()
        time.sleep(0.25)
    return []


def play_env(**extra):
    """The environment for ansible-playbook: molecule's own ansible.cfg, no colour."""
    env = dict(os.environ)
    ephemeral_cfg = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "ansible.cfg")
    if "ANSIBLE_CONFIG" not in env and os.path.isfile(ephemeral_cfg):
        env["ANSIBLE_CONFIG"] = ephemeral_cfg
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    for name, value in extra.items():
        env.setdefault(name, value)
    return env


def inventory():
    return os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
        os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."), "inventory"
    )


def play(scenario_dir, playbook, *extra, timeout=1200, env=None):
    """ansible-playbook on the molecule inventory; playbook is relative to scenario_dir."""
    return subprocess.run(
        ["ansible-playbook", "-i", inventory(), os.path.join(scenario_dir, playbook), *extra],
        env=env or play_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )


def gateway_health(edge):
    """Edge Envoy's view of each gateway: {hostname: healthy?}."""
    clusters = json.loads(admin(edge, "/clusters?format=json"))
    health = {}
    for cluster in clusters["cluster_statuses"]:
        if cluster["name"] != "gateways":
            continue
        for member in cluster.get("host_statuses", []):
            status = member.get("health_status", {})
            healthy = status.get("eds_health_status") == "HEALTHY" and not any(
                status.get(flag) for flag in ("failed_active_health_check", "failed_outlier_check")
            )
            health[member.get("hostname")] = healthy
    return health


def wait_health(edge, gateway, healthy, timeout=60):
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline:
        seen = gateway_health(edge)
        if seen.get(gateway) is healthy:
            return
        time.sleep(1)
    pytest.fail("edge Envoy never saw %s healthy=%s: %s" % (gateway, healthy, seen))


def logins_via(gateway_host, users):
    """How many LOGINs of these users this gateway's NGINX has proxied."""
    log = gateway_host.run("cat /var/log/nginx/error.log").stdout
    return sum(log.count('login: "%s", upstream' % user) for user in users)


def largest_id_command(tag="a1"):
    """An RFC 2971 ID of the largest size a client may send: 30 field-value pairs, each
    field 30 octets and each value 1024 octets, as quoted strings in one line (about
    32 KB)."""
    pairs = " ".join('"%s" "%s"' % (("field%02d" % index).ljust(30, "x"), ("value%02d " % index).ljust(1024, "v"))
                     for index in range(30))
    return ("%s ID (%s)\r\n" % (tag, pairs)).encode("ascii")


def pre_login_id_then_login(sock, user, password):
    """Over a connected IMAP socket (greeting not yet read): the largest ID, then
    CAPABILITY and LOGIN in the same connection. Returns the lines read, by command:
    {"greeting", "id", "capability", "login"}, each the list of lines up to the tagged
    answer ([] and "closed" at the end when the server closed the connection)."""
    reader = sock.makefile("rb")
    result = {"greeting": [reader.readline().decode("ascii", "replace").rstrip()]}
    for name, tag, command in (("id", b"a1", largest_id_command("a1")),
                               ("capability", b"a2", b"a2 CAPABILITY\r\n"),
                               ("login", b"a3", ('a3 LOGIN "%s" "%s"\r\n' % (user, password)).encode())):
        lines = []
        try:
            sock.sendall(command)
            while True:
                line = reader.readline()
                if not line:
                    lines.append("closed")
                    break
                lines.append(line.decode("ascii", "replace").rstrip())
                if line.startswith(tag + b" "):
                    break
        except OSError as exc:
            lines.append("closed: %r" % exc)
        result[name] = lines
        if lines and lines[-1].startswith("closed"):
            break
    return result
