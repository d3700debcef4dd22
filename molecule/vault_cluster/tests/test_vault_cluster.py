"""What an operator of a three-node Vault cluster sees: it forms on the first converge,
a client issues certificates while the leader is down (its AppRole file lists every
node), every node comes back unsealed after a restart with no Ansible run (static
seal), the role works with its scoped admin AppRole and the root token is revoked, the
audit log holds no secret in clear, and an inventory of 2 or 4 nodes is refused before
anything changes.

Every API call runs inside a node (python3 there, the request on stdin): no token or
secret ID on a command line or in the test output."""

import json
import os
import subprocess
import time

import pytest
from mesh_checks import host, play_env

NODES = ["vc-vault1", "vc-vault2", "vc-vault3"]
CLIENT = "vc-client1"
SERVICE = "openbao"
CA_FILE = "/etc/mailmesh/vault/ca.pem"
APPROLE_FILE = "/etc/mailmesh/vault/approle.json"
AGENT = "/usr/local/lib/mailmesh/cert-renew/mailmesh-cert-renew.py"
AUDIT_LOG = "/var/log/openbao/audit.log"
CONFIG = "/etc/openbao/openbao.hcl"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(SCENARIO_DIR)))
INIT_FILE = os.path.join(PROJECT, ".build", "molecule", "vault_cluster", "vc-vault1-init.json")

# Runs in a node: reads {"method", "path", "token", "body"} on stdin, prints
# "<status> <json>" for the node's own listener.
API = r"""
import json, ssl, sys, urllib.request, urllib.error
req = json.load(sys.stdin)
ctx = ssl.create_default_context(cafile="/etc/mailmesh/vault/ca.pem")
data = json.dumps(req["body"]).encode() if req.get("body") is not None else None
r = urllib.request.Request(req.get("url", "https://127.0.0.1:8200") + "/v1/" + req["path"], data=data,
                           method=req["method"])
if req.get("token"):
    r.add_header("X-Vault-Token", req["token"])
try:
    with urllib.request.urlopen(r, context=ctx, timeout=10) as answer:
        status, text = answer.status, answer.read().decode()
except urllib.error.HTTPError as exc:
    status, text = exc.code, exc.read().decode()
except OSError as exc:
    status, text = 0, json.dumps({"errors": [str(exc)]})
print(status, text or "{}")
"""


def api(node, method, path, token=None, body=None):
    """(status, answer) of a call to the node's own listener; status 0: no answer."""
    request = json.dumps({"method": method, "path": path, "token": token, "body": body})
    done = subprocess.run(["docker", "exec", "-i", node, "python3", "-c", API], input=request,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return 0, {"errors": ["python3 in %s exited %d" % (node, done.returncode)]}
    status, _, text = done.stdout.strip().partition(" ")
    return int(status), json.loads(text)


def init_data():
    with open(INIT_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def admin_token(node="vc-vault1"):
    admin = init_data()["admin"]
    status, answer = api(node, "POST", "auth/approle/login",
                         body={"role_id": admin["role_id"], "secret_id": admin["secret_id"]})
    assert status == 200, answer.get("errors")
    return answer["auth"]["client_token"]


def seal_status(node):
    return api(node, "GET", "sys/seal-status")


def leader(token, nodes=NODES):
    """The node that leads, as the answering nodes see it; None while there is none."""
    for node in nodes:
        status, answer = api(node, "GET", "sys/leader", token)
        if status == 200 and answer.get("leader_address"):
            return answer["leader_address"].split("//")[1].split(":")[0]
    return None


def wait_for(what, check, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "%s: not within %d s" % (what, timeout)
        time.sleep(1)


def autopilot(token, node="vc-vault1"):
    status, answer = api(node, "GET", "sys/storage/raft/autopilot/state", token)
    assert status == 200, answer.get("errors")
    return answer["data"]


def healthy_voters(token, node="vc-vault1"):
    state = autopilot(token, node)
    return sorted(name for name, server in state["servers"].items()
                  if server["healthy"] and server["status"] in ("leader", "voter"))


def issue_on_client():
    """One forced renewal of the client's certificate by its agent: (rc, output)."""
    done = subprocess.run(["docker", "exec", CLIENT, "python3", "-I", "-B", AGENT, "--only", "probe", "--force"],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def test_the_cluster_formed_with_three_healthy_voters():
    token = admin_token()
    wait_for("three healthy voters", lambda: healthy_voters(token) == NODES)
    for node in NODES:
        status, answer = seal_status(node)
        assert status == 200 and answer["type"] == "static" and not answer["sealed"], (node, answer)


def test_every_node_has_the_static_key_and_its_own_listener_certificate():
    keys = set()
    for node in NODES:
        key = host(node).file("/etc/openbao/static-seal.key")
        assert key.mode == 0o400 and key.user == SERVICE, node
        keys.add(host(node).run("sha256sum /etc/openbao/static-seal.key").stdout.split()[0])
        served = host(node).run(
            "openssl s_client -connect 127.0.0.1:8200 -servername %s -CAfile %s </dev/null 2>/dev/null"
            " | openssl x509 -noout -ext subjectAltName", node, CA_FILE).stdout
        assert "DNS:%s" % node in served, (node, served)
    assert len(keys) == 1


def test_the_client_approle_file_lists_every_node():
    approle = json.loads(host(CLIENT).file(APPROLE_FILE).content_string)
    assert approle["urls"] == ["https://%s:8200" % node for node in NODES]
    assert approle["url"] == approle["urls"][0]


def test_the_root_token_is_revoked_and_the_admin_approle_is_scoped():
    init = init_data()
    assert "root_token" not in init and init["revoked_root_token"] and init["root_token_revoked"]
    status, _ = api("vc-vault1", "GET", "auth/token/lookup-self", init["revoked_root_token"])
    assert status == 403
    token = admin_token()
    status, answer = api("vc-vault1", "GET", "auth/token/lookup-self", token)
    assert status == 200 and answer["data"]["policies"] == ["default", "mailmesh-admin"], answer.get("data")
    # Outside its scope: another mount, the audit devices, another policy.
    assert api("vc-vault1", "POST", "sys/mounts/kv", token, {"type": "kv"})[0] == 403
    assert api("vc-vault1", "PUT", "sys/policies/acl/mine", token, {"policy": 'path "*" {capabilities=["sudo"]}'})[0] == 403


def test_the_audit_log_records_requests_with_secrets_hashed():
    client_secret = json.loads(host(CLIENT).file(APPROLE_FILE).content_string)["secret_id"]
    init = init_data()
    secrets = {"client secret_id": client_secret, "admin secret_id": init["admin"]["secret_id"],
               "root token": init["revoked_root_token"], "static key": init["static_key"]}
    found_login = False
    for node in NODES:
        log = host(node).file(AUDIT_LOG)
        if not log.exists:
            continue
        assert log.mode == 0o600 and log.user == SERVICE, node
        text = host(node).run("cat %s", AUDIT_LOG).stdout
        found_login = found_login or ("auth/approle/login" in text and "hmac-sha256:" in text)
        leaked = sorted(name for name, value in secrets.items() if value in text)
        assert not leaked, "%s's audit log holds in clear: %s" % (node, ", ".join(leaked))
    assert found_login, "no node's audit log records an AppRole login"
    assert host("vc-vault1").file("/etc/logrotate.d/openbao").contains(AUDIT_LOG)


def test_the_leader_stopped_another_leads_and_the_client_issues_meanwhile():
    token = admin_token()
    old = wait_for("a leader", lambda: leader(token))
    others = [node for node in NODES if node != old]
    host(old).run("systemctl stop %s", SERVICE)
    try:
        started = time.monotonic()
        new = wait_for("a new leader", lambda: (lambda found: found if found and found != old else None)(
            leader(token, others)), timeout=60)
        took = time.monotonic() - started
        assert new in others
        rc, output = issue_on_client()
        assert rc == 0, output
        assert "answered" in output or "renewed" in output, output
    finally:
        host(old).run("systemctl start %s", SERVICE)
    wait_for("the old leader unsealed again", lambda: seal_status(old)[1].get("sealed") is False)
    wait_for("three healthy voters again", lambda: healthy_voters(admin_token(new), new) == NODES)
    print("new leader %s after %.1f s" % (new, took))


def test_every_node_restarted_comes_back_unsealed_without_ansible():
    subprocess.run(["docker", "restart", *NODES], check=True, capture_output=True, timeout=180)
    for node in NODES:
        wait_for("%s unsealed" % node, lambda n=node: seal_status(n)[1].get("sealed") is False, timeout=120)
    token = wait_for("an admin login", lambda: _try_admin_token())
    wait_for("three healthy voters", lambda: healthy_voters(token) == NODES, timeout=120)
    rc, output = issue_on_client()
    assert rc == 0, output


def _try_admin_token():
    try:
        return admin_token()
    except AssertionError:
        return None


@pytest.mark.parametrize("nodes", [2, 4])
def test_an_even_number_of_nodes_is_refused_before_any_change(tmp_path, nodes):
    """vault.yml on an inventory whose vault_servers holds 2 (vc-vault1, vc-vault2) or 4
    nodes (the three and one that does not exist): refused at the first task, nothing
    changed on any node."""
    before = {node: host(node).run("sha256sum %s", CONFIG).stdout for node in NODES}
    extra = tmp_path / "inventory.yml"
    members = NODES[:2] if nodes == 2 else NODES + ["vc-vault4"]
    extra.write_text(json.dumps({"all": {"children": {
        "vault_servers": {"hosts": {name: {"ansible_connection": "community.docker.docker"} for name in members}}}}}))
    env = play_env()
    done = subprocess.run(["ansible-playbook", "-i", str(extra), os.path.join(PROJECT, "playbooks", "vault.yml"),
                           "-e", "vault_server_init_file=%s" % INIT_FILE],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "vault_servers holds %d hosts" % nodes in output, output
    assert "Nothing was changed." in output
    assert "changed=0" in output or "changed:" not in output
    after = {node: host(node).run("sha256sum %s", CONFIG).stdout for node in NODES}
    assert after == before
