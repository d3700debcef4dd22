"""A rolling configuration change of the three-node cluster while the client issues.

This file runs last of the scenario's verify tests (pytest takes the files in name order:
test_vault_cluster.py, test_vault_cluster_restore.py, then this one), so the cluster is
left with the changed log level and no second converge puts it back: molecule's
idempotence step ran before verify, and nothing after this test needs the old value."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from mesh_checks import host, play  # noqa: E402
from test_vault_cluster import (  # noqa: E402
    CONFIG, NODES, SCENARIO_DIR, SERVICE, admin_token, healthy_voters, issue_on_client, leader, wait_for)


def _started_at(node):
    """When systemd last started the node's service (its monotonic clock, microseconds)."""
    return int(host(node).run("systemctl show -p ActiveEnterTimestampMonotonic --value %s", SERVICE).stdout)


def test_a_rolling_configuration_change_while_the_client_issues():
    """A configuration change (the log level) reaches every node one at a time, the
    leader last, while a loop on the client issues certificates: not one fails."""
    token = admin_token()
    old_leader = wait_for("a leader", lambda: leader(token))
    before = {node: _started_at(node) for node in NODES}
    stop, results = threading.Event(), []

    def issue_loop():
        deadline = time.monotonic() + 600
        while not stop.is_set() and time.monotonic() < deadline and len(results) < 400:
            results.append(issue_on_client())

    loop = threading.Thread(target=issue_loop, daemon=True)
    loop.start()
    try:
        wait_for("a first issuance", lambda: len(results) > 0, timeout=120)
        done = play(SCENARIO_DIR, "converge.yml", "-e", "vault_server_log_level=debug")
    finally:
        stop.set()
        loop.join(timeout=180)
    failed = [output for rc, output in results if rc != 0]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Restart one node at a time, the leader last" in done.stdout
    assert not failed, "%d of %d issuances failed; first: %s" % (len(failed), len(results), failed[0])
    assert len(results) >= 3, results
    after = {node: _started_at(node) for node in NODES}
    assert all(after[node] > before[node] for node in NODES), (before, after)
    # The leader went last.
    assert max(after, key=after.get) == old_leader, (old_leader, after)
    for node in NODES:
        assert host(node).file(CONFIG).contains('log_level     = "debug"'), node
    print("%d issuances during the rolling change, none failed" % len(results))
    wait_for("three healthy voters", lambda: healthy_voters(admin_token()) == NODES)
