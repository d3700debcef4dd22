"""The restore with the Shamir seal (the default), on the single node of this scenario,
after tests/test_vault_server.py: vault_backup.yml takes a snapshot, the node's raft
data is wiped, vault_restore.yml brings back the PKI and the AppRoles (unsealed with
the init file's shares), gw1 logs in with its existing AppRole, and the Vault tier's
converge changes nothing afterwards. No playbook prints a share or a secret ID. (The
static seal on a three-node cluster, and the refusals: molecule/vault_cluster.)"""

import json
import os
import re
import subprocess
import time

from mesh_checks import host, inventory, play, play_env

NODE, CLIENT = "vault1", "gw1"
SERVICE = "openbao"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(SCENARIO_DIR)))
INIT_FILE = os.path.join(PROJECT, ".build", "molecule", "vault_server", "vault1-init.json")
WORK = os.path.join(os.path.dirname(INIT_FILE), "restore")
APPROLE_FILE = "/etc/mailmesh/vault/approle.json"
CA_FILE = "/etc/mailmesh/vault/ca.pem"

# Runs on gw1: an AppRole login with the host's file; prints the HTTP status.
LOGIN = r"""
import json, ssl, urllib.error, urllib.request
a = json.load(open("/etc/mailmesh/vault/approle.json"))
ctx = ssl.create_default_context(cafile=a["ca_cert"])
body = json.dumps({"role_id": a["role_id"], "secret_id": a["secret_id"]}).encode()
request = urllib.request.Request(a["url"] + "/v1/auth/approle/login", data=body, method="POST")
try:
    print(urllib.request.urlopen(request, context=ctx, timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def secrets():
    with open(INIT_FILE, encoding="utf-8") as handle:
        init = json.load(handle)
    found = {"admin secret_id": init["admin"]["secret_id"],
             "client secret_id": json.loads(host(CLIENT).file(APPROLE_FILE).content_string)["secret_id"]}
    for index, key in enumerate(init["keys"]):
        found["unseal share %d" % index] = key
    return found


def run(playbook, *extra):
    done = subprocess.run(["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, "playbooks", playbook), *extra],
                          env=play_env(), capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    leaked = sorted(name for name, value in secrets().items() if value in output)
    assert not leaked, "%s printed: %s" % (playbook, ", ".join(leaked))
    return done.returncode, output


def seal_status():
    out = host(NODE).run("curl -sS --cacert %s https://127.0.0.1:8200/v1/sys/seal-status", CA_FILE).stdout
    return json.loads(out) if out.strip().startswith("{") else {}


def root_ca():
    out = host(NODE).run("curl -sS --cacert %s https://127.0.0.1:8200/v1/pki/cert/ca", CA_FILE).stdout
    return json.loads(out)["data"]["certificate"]


def test_wiped_and_restored_with_the_shamir_shares():
    os.makedirs(WORK, mode=0o700, exist_ok=True)
    before = root_ca()
    rc, output = run("vault_backup.yml", "-e", "mailmesh_vault_backup_dir=%s" % WORK)
    assert rc == 0, output
    snapshot = re.search(r"(\S+-raft-\d{8}T\d{6}Z\.snap)", output).group(1)
    assert host(NODE).run("systemctl stop %s && rm -rf /var/lib/openbao/* && systemctl start %s",
                          SERVICE, SERVICE).rc == 0
    deadline = time.monotonic() + 60
    while seal_status().get("initialized") is not False:
        assert time.monotonic() < deadline, "the wiped node did not come back uninitialized"
        time.sleep(1)
    rc, output = run("vault_restore.yml", "-e", "mailmesh_vault_restore_snapshot=%s" % snapshot)
    assert rc == 0, output
    assert "into the rebuilt cluster" in output, output
    status = seal_status()
    assert status["type"] == "shamir" and not status["sealed"] and status["t"] == 2, status
    login = subprocess.run(["docker", "exec", "-i", CLIENT, "python3", "-c", LOGIN],
                           capture_output=True, text=True, timeout=60, check=False)
    assert login.stdout.strip() == "200", login.stdout + login.stderr
    assert root_ca() == before


def test_the_converge_after_the_restore_changes_nothing():
    done = play(SCENARIO_DIR, "converge.yml")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    leaked = sorted(name for name, value in secrets().items() if value in output)
    assert not leaked, leaked
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M))
    assert sorted(recap) == ["gw1", "store1", "vault1"], output[-3000:]
    assert set(recap.values()) == {"0"}, output[-3000:]
