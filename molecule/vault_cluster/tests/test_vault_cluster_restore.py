"""Backup and restore of the three-node cluster (playbooks/vault_backup.yml,
vault_restore.yml), after tests/test_vault_cluster.py: a snapshot is taken; a truncated
snapshot, a snapshot of another cluster and wrong unseal material are refused with
nothing changed; every node's raft data is wiped and the snapshot restored: the same
root CA, the policies and the AppRoles are back, the client renews with the AppRole file
it has, and a converge afterwards changes nothing. No secret reaches a playbook's
output. The tests run in file order and build on each other."""

import base64
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
from mesh_checks import host, inventory, play, play_env  # noqa: E402
from test_vault_cluster import (  # noqa: E402
    APPROLE_FILE, CLIENT, CONFIG, INIT_FILE, NODES, PROJECT, SCENARIO_DIR, SERVICE, admin_token, api,
    healthy_voters, init_data, issue_on_client, wait_for)

WORK = os.path.join(os.path.dirname(INIT_FILE), "restore")
STATE = {}

# Runs in a node: a one-node cluster of its own (the node's binary and static seal key,
# loopback, no TLS) saves a snapshot to the path on stdin and stops. Prints the status.
FOREIGN = r"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
dest = sys.stdin.read().strip()
work = tempfile.mkdtemp(prefix="foreign-")
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
p, c = port(), port()
os.mkdir(work + "/raft")
open(work + "/c.hcl", "w").write('storage "raft" {\n path = "%s/raft"\n node_id = "foreign"\n}\n'
    'listener "tcp" {\n address = "127.0.0.1:%d"\n cluster_address = "127.0.0.1:%d"\n tls_disable = true\n}\n'
    'api_addr = "http://127.0.0.1:%d"\ncluster_addr = "https://127.0.0.1:%d"\ndisable_mlock = true\n'
    'seal "static" {\n current_key_id = "mailmesh-1"\n current_key = "file:///etc/openbao/static-seal.key"\n}\n'
    % (work, p, c, p, c))
server = subprocess.Popen(["/usr/local/bin/bao", "server", "-config", work + "/c.hcl"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def call(method, path, token=None, body=None):
    r = urllib.request.Request("http://127.0.0.1:%d/v1/%s" % (p, path), method=method,
                               data=json.dumps(body).encode() if body is not None else None)
    if token:
        r.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(r, timeout=30) as a:
            return a.status, a.read()
    except Exception as exc:
        return getattr(exc, "code", 0), b""
try:
    for _ in range(60):
        if call("GET", "sys/seal-status")[0] == 200:
            break
        time.sleep(0.5)
    token = json.loads(call("POST", "sys/init", body={"recovery_shares": 1, "recovery_threshold": 1})[1])["root_token"]
    for _ in range(60):
        if call("GET", "sys/health")[0] == 200:
            break
        time.sleep(0.5)
    call("POST", "sys/auth/approle", token, {"type": "approle"})
    status, data = call("GET", "sys/storage/raft/snapshot", token)
    with open(dest, "wb") as out:
        out.write(data)
    print(status)
finally:
    server.terminate(); server.wait(timeout=15); shutil.rmtree(work, ignore_errors=True)
"""


def secrets():
    """Every secret a playbook of this file could print, by name."""
    init = init_data()
    found = {"admin secret_id": init["admin"]["secret_id"], "static key": init.get("static_key"),
             "revoked root token": init.get("revoked_root_token"),
             "client secret_id": json.loads(host(CLIENT).file(APPROLE_FILE).content_string)["secret_id"]}
    for index, key in enumerate(init.get("keys", []) + init.get("recovery_keys", [])):
        found["share %d" % index] = key
    return {name: value for name, value in found.items() if value}


def run(playbook, *extra, timeout=600):
    """ansible-playbook playbooks/<playbook> on the molecule inventory: (rc, output); the
    output must hold no secret."""
    done = subprocess.run(["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, "playbooks", playbook), *extra],
                          env=play_env(), capture_output=True, text=True, timeout=timeout, check=False)
    output = done.stdout + done.stderr
    leaked = sorted(name for name, value in secrets().items() if value in output)
    assert not leaked, "%s printed: %s" % (playbook, ", ".join(leaked))
    return done.returncode, output


def config_sums():
    return {node: host(node).run("sha256sum %s", CONFIG).stdout for node in NODES}


def root_ca(node=NODES[0]):
    status, answer = api(node, "GET", "pki/cert/ca")
    assert status == 200, answer.get("errors")
    return answer["data"]["certificate"]


def restore(snapshot, *extra):
    return run("vault_restore.yml", "-e", "mailmesh_vault_restore_snapshot=%s" % snapshot, *extra)


def assert_refused_and_unchanged(rc, output, words, before):
    assert rc != 0, output
    assert words in output, output
    assert "Nothing was changed." in output, output
    assert config_sums() == before
    token = admin_token()
    assert healthy_voters(token) == NODES


def test_a_backup_is_taken():
    os.makedirs(WORK, mode=0o700, exist_ok=True)
    STATE["root_ca"] = root_ca()
    rc, output = run("vault_backup.yml", "-e", "mailmesh_vault_backup_dir=%s" % WORK)
    assert rc == 0, output
    snapshot = re.search(r"(\S+-raft-\d{8}T\d{6}Z\.snap)", output).group(1)
    assert os.stat(snapshot).st_mode & 0o777 == 0o600
    STATE["snapshot"] = snapshot


def test_a_truncated_snapshot_is_refused_before_any_change():
    truncated = os.path.join(WORK, "truncated.snap")
    with open(STATE["snapshot"], "rb") as source, open(truncated, "wb") as target:
        data = source.read()
        target.write(data[:len(data) // 2])
    before = config_sums()
    rc, output = restore(truncated)
    assert_refused_and_unchanged(rc, output, "truncated or damaged", before)


def test_a_snapshot_of_another_cluster_is_refused_before_any_change():
    """A one-node cluster started inside a node with the same static seal key: its
    snapshot unseals, but the init file's admin AppRole is not in it."""
    done = subprocess.run(["docker", "exec", "-i", NODES[0], "python3", "-c", FOREIGN], input="/tmp/foreign.snap",
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "200", done.stdout + done.stderr
    foreign = os.path.join(WORK, "foreign.snap")
    subprocess.run(["docker", "cp", "%s:/tmp/foreign.snap" % NODES[0], foreign], check=True, timeout=60)
    host(NODES[0]).run("rm -f /tmp/foreign.snap")
    before = config_sums()
    rc, output = restore(foreign)
    assert_refused_and_unchanged(rc, output, "a snapshot of another cluster", before)


def test_wrong_unseal_material_is_refused_before_any_change():
    """A copy of the init file whose static seal key is another one."""
    wrong = dict(init_data(), static_key=base64.b64encode(os.urandom(32)).decode())
    copy = os.path.join(WORK, "wrong-init.json")
    with open(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(wrong, handle)
    before = config_sums()
    try:
        rc, output = restore(STATE["snapshot"], "-e", "vault_server_init_file=%s" % copy)
    finally:
        os.unlink(copy)
    assert_refused_and_unchanged(rc, output, "wrong unseal material", before)


def test_every_node_wiped_and_restored_serves_the_old_pki_and_approles():
    for node in NODES:
        host(node).run("systemctl stop %s", SERVICE)
    for node in NODES:
        assert host(node).run("rm -rf /var/lib/openbao/* && systemctl start %s", SERVICE).rc == 0
    for node in NODES:
        wait_for("%s uninitialized" % node, lambda n=node: api(n, "GET", "sys/seal-status")[1].get("initialized") is False,
                 timeout=60)
    rc, output = restore(STATE["snapshot"])
    assert rc == 0, output
    assert "into the rebuilt cluster" in output
    token = admin_token()
    assert healthy_voters(token) == NODES
    assert root_ca() == STATE["root_ca"]
    status, answer = api(NODES[0], "LIST", "sys/policies/acl", token)
    assert status == 200 and "mailmesh-cert-%s" % CLIENT in answer["data"]["keys"], answer
    rc, output = issue_on_client()
    assert rc == 0, output


def test_a_converge_after_the_restore_changes_nothing():
    done = play(SCENARIO_DIR, "converge.yml", env=play_env())
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    leaked = sorted(name for name, value in secrets().items() if value in output)
    assert not leaked, leaked
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M))
    assert sorted(recap) == sorted(NODES + [CLIENT]), output[-3000:]
    assert set(recap.values()) == {"0"}, output[-3000:]
