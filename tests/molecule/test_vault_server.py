"""The vault_server molecule scenario, run so that its whole output can be searched.

``molecule test -s vault_server --destroy never`` runs destroy, create, converge,
idempotence, side_effect (restart: Vault comes back sealed, a converge unseals it) and
verify. Its output is streamed to the terminal and written to
``.build/molecule-logs/vault_server.log``. Then no unseal key, no root token and no
AppRole secret ID may appear anywhere in that output: the keys and the token come from
the controller-side init file, the secret IDs from the client hosts' approle.json
(read before the containers are destroyed).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO = "vault_server"
LOG_DIR = os.path.join(REPO_ROOT, ".build", "molecule-logs")
LOG_FILE = os.path.join(LOG_DIR, SCENARIO + ".log")
INIT_FILE = os.path.join(REPO_ROOT, ".build", "molecule", SCENARIO, "vault1-init.json")
# Hosts with an AppRole file: the clients, and the Vault host itself (its listener).
CLIENTS = ("gw1", "store1", "vault1")
APPROLE_FILE = "/etc/mailmesh/vault/approle.json"
TIMEOUT = int(os.environ.get("MOLECULE_SCENARIO_TIMEOUT", "1800"))


def _run_streamed(command, log):
    """Run `command`, echo its output as it comes and append it to `log`; return (rc, text)."""
    log.write("\n==> %s\n" % " ".join(command))
    log.flush()
    chunks = []
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0
    ) as proc:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            chunks.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()
            log.write(text)
        rc = proc.wait(timeout=TIMEOUT)
    log.flush()
    return rc, "".join(chunks)


def _secret_id(host):
    out = subprocess.run(
        ["docker", "exec", host, "cat", APPROLE_FILE],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return json.loads(out)["secret_id"]


@pytest.fixture(scope="module")
def scenario_run(request, molecule):
    """Run the scenario once; yields (rc, output, secret IDs); destroys it afterwards."""
    os.makedirs(LOG_DIR, exist_ok=True)
    if os.path.exists(INIT_FILE):
        os.unlink(INIT_FILE)  # only this run's secrets count
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled(), open(LOG_FILE, "w", encoding="utf-8") as log:
        # `--destroy never` also skips the first destroy: clear leftovers explicitly.
        _run_streamed(molecule("destroy", "-s", SCENARIO), log)
        rc, output = _run_streamed(molecule("test", "-s", SCENARIO, "--destroy", "never"), log)
        secret_ids = {}
        if rc == 0:
            secret_ids = {host: _secret_id(host) for host in CLIENTS}
        destroy_rc, destroy_output = _run_streamed(molecule("destroy", "-s", SCENARIO), log)
    yield rc, output + destroy_output, secret_ids, destroy_rc


def test_scenario_passes(scenario_run):
    rc, _output, _secret_ids, destroy_rc = scenario_run
    assert rc == 0, "molecule test -s %s exited %d (log: %s)" % (SCENARIO, rc, LOG_FILE)
    assert destroy_rc == 0, "molecule destroy -s %s exited %d" % (SCENARIO, destroy_rc)


def test_no_secret_in_output(scenario_run):
    _rc, output, secret_ids, _destroy_rc = scenario_run
    # Checked whether or not the scenario passed: a failing run must not leak either.
    assert os.path.exists(INIT_FILE), "the scenario never wrote %s" % INIT_FILE
    with open(INIT_FILE, encoding="utf-8") as handle:
        init = json.load(handle)
    secrets = {"root token": init.get("root_token") or init["revoked_root_token"],
               "admin secret_id": init["admin"]["secret_id"]}
    for number, key in enumerate(init["keys"], 1):
        secrets["unseal key %d" % number] = key
        try:  # the same share in its other spelling (Vault returns hex and base64)
            secrets["unseal key %d (base64)" % number] = base64.b64encode(bytes.fromhex(key)).decode()
        except ValueError:
            secrets["unseal key %d (hex)" % number] = binascii.hexlify(base64.b64decode(key)).decode()
    for host, secret_id in secret_ids.items():
        secrets["secret_id of %s" % host] = secret_id
    assert len(init["keys"]) == 3
    assert all(len(value) >= 16 for value in secrets.values())
    leaked = sorted(name for name, value in secrets.items() if value in output)
    assert not leaked, "secrets in the molecule output (%s): %s" % (LOG_FILE, ", ".join(leaked))
