"""inventories/: the example inventory loads without any vault password and keeps its
secrets out of the cleartext files; the lab inventory has the hosts, images and
container settings `make lab` relies on, and its demo passwords match the hashes the
stores get."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "example"
LAB = REPO / "inventories" / "lab"
GROUPS = ("vault_servers", "mailstores", "gateways", "edge_devices")


def _yaml(path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _ansible_inventory(inventory):
    exe = shutil.which("ansible-inventory") or os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(exe):
        pytest.skip("ansible-inventory not found (make venv)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    env["ANSIBLE_FORCE_COLOR"] = "0"
    done = subprocess.run(
        [exe, "-i", str(inventory), "--list"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _hosts(listing, group):
    return listing.get(group, {}).get("hosts", [])


def _dovecot_hash_regex():
    spec = _yaml(REPO / "roles" / "dovecot" / "vars" / "main.yml")["__dovecot_password_hash_regex"]
    return re.compile(spec.strip())


def test_example_lists_without_a_vault_password():
    listing = _ansible_inventory(EXAMPLE)
    assert len(_hosts(listing, "vault_servers")) == 3  # a raft cluster
    assert len(_hosts(listing, "mailstores")) == 2
    assert len(_hosts(listing, "gateways")) == 2
    assert len(_hosts(listing, "edge_devices")) == 3
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["store1.example.net"]["dovecot_users"] == "{{ vault_dovecot_users }}"
    assert hostvars["pi1.example.net"]["ansible_user"] == "pi"


def test_example_group_vars_are_directories():
    # Ansible reads group_vars/<group>.yml or group_vars/<group>/, never both: the
    # encrypted vault.yml must sit in the directory.
    for group in ("all",) + GROUPS:
        assert (EXAMPLE / "group_vars" / group / "main.yml").is_file(), group
        assert not (EXAMPLE / "group_vars" / (group + ".yml")).exists(), group


def test_example_secrets_are_only_in_vault_templates():
    group_vars = EXAMPLE / "group_vars"
    used = set()
    for path in group_vars.glob("*/main.yml"):
        # Variables the cleartext files take from a vault file: "{{ vault_... }}".
        used |= set(re.findall(r"\{\{\s*(vault_[a-z0-9_]+)", path.read_text(encoding="utf-8")))
    defined = set()
    for path in group_vars.glob("*/vault.yml.example"):
        names = set(_yaml(path))
        assert all(name.startswith("vault_") for name in names), path
        defined |= names
    assert used and used <= defined, {"used but not in a vault.yml.example": sorted(used - defined)}
    # No cleartext secret file ships (vault.yml is made from the template and encrypted).
    for path in group_vars.glob("*/vault.yml"):
        assert path.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;"), path


def test_example_placeholder_hashes_are_refused():
    regex = _dovecot_hash_regex()
    users = _yaml(EXAMPLE / "group_vars" / "mailstores" / "vault.yml.example")["vault_dovecot_users"]
    assert users
    for user in users:
        assert not regex.match(user["password_hash"]), user["name"]


def test_lab_hosts_and_containers():
    listing = _ansible_inventory(LAB)
    assert _hosts(listing, "vault_servers") == ["lab-vault1"]
    assert sorted(_hosts(listing, "mailstores")) == ["lab-store1", "lab-store2"]
    assert sorted(_hosts(listing, "gateways")) == ["lab-gw1", "lab-gw2"]
    assert sorted(_hosts(listing, "edge_devices")) == ["lab-edge1", "lab-pi1"]
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["lab-store2"]["lab_image"] == "mailmesh/debian13-systemd:latest"
    assert hostvars["lab-pi1"]["lab_image"] == "mailmesh/debian12-arm64-systemd:latest"
    assert hostvars["lab-pi1"]["lab_platform"] == "linux/arm64"
    for host in hostvars:
        caps = hostvars[host]["lab_capabilities"]
        assert "SYS_ADMIN" in caps, host
        needs_net_admin = host in _hosts(listing, "gateways") + _hosts(listing, "edge_devices")
        assert ("NET_ADMIN" in caps) == needs_net_admin, host
        # The short name: Mitogen (make lab) takes over only that; stock Ansible follows
        # its redirect to community.docker.docker (test below).
        assert hostvars[host]["ansible_connection"] == "docker", host
        # docker exec is root already: no sudo in the lab (connection variables outrank
        # the plays' `become: true`).
        assert hostvars[host]["ansible_become"] is False, host
    # Published on the host's loopback only (the expression in group_vars/all.yml).
    assert hostvars["lab-gw1"]["lab_client_port"] == 9930
    assert "'127.0.0.1:%s:993'" in hostvars["lab-gw1"]["lab_published_ports"]
    assert "127.0.0.1" in hostvars["lab-gw1"]["vault_server_client_ip_sans"]


def test_lab_users_match_the_store_hashes():
    lab_all = _yaml(LAB / "group_vars" / "all.yml")
    hashes = {u["name"]: u["password_hash"] for u in _yaml(LAB / "group_vars" / "mailstores.yml")["dovecot_users"]}
    regex = _dovecot_hash_regex()
    assert {u["name"] for u in lab_all["lab_users"]} == set(hashes)
    for user in lab_all["lab_users"]:
        assert regex.match(hashes[user["name"]]), user["name"]
        assert user["store"] in ("lab-store1", "lab-store2"), user["name"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt")
    for user in lab_all["lab_users"]:
        crypted = hashes[user["name"]].split("}", 1)[1]
        assert crypt.crypt(user["password"], crypted) == crypted, user["name"]


def test_lab_connection_name_is_community_docker():
    """`docker`, the lab's connection, is the community.docker.docker plugin to stock Ansible."""
    exe = shutil.which("ansible-doc") or os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    if not os.path.exists(exe):
        pytest.skip("ansible-doc not found (make venv)")
    done = subprocess.run([exe, "-t", "connection", "--json", "docker"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["docker"]["doc"]
    assert (doc["collection"], doc["name"]) == ("community.docker", "docker")
