"""The Vault tier's AppRole file on a client host (roles/vault_server/tasks/approle_file.yml)
against the session's OpenBao: a file that is corrupt, cut short, or has the wrong owner
and mode is written again, 0600 root, with a secret ID Vault accepts; a good file keeps its
secret ID. Nothing of the file reaches Ansible's output (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import VENV_BIN, ansible_env, api


@pytest.fixture(scope="module")
def approle_mount(bao):
    """An AppRole mount with a role named after the play's host (localhost)."""
    client = bao.client()
    mount = "t_af_" + uuid.uuid4().hex[:6]
    client.sys.enable_auth_method("approle", path=mount)
    api(client, "post", "auth/%s/role/localhost" % mount, token_policies=["default"], token_ttl="5m")
    return mount


def _write_file_tasks(bao, mount, tmp_path, **client):
    """Run approle_file.yml for localhost (in the group gateways) with the root token;
    ``client`` adds to __vault_server_approle_for (ca_bundle, ca_file: a client host's)."""
    approle_file = tmp_path / "approle.json"
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    gateways:\n      hosts:\n        localhost:\n",
                                        encoding="utf-8")
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Write a client's AppRole file
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Run the vault_server role's approle_file tasks
              ansible.builtin.include_role:
                name: mailmesh.imap.vault_server
                tasks_from: approle_file
        """), encoding="utf-8")
    extra = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "__vault_server_approle_for": {
            "vault_host": "localhost", "hosts": ["localhost"], "api_url": bao.url, "url": bao.url,
            "urls": [bao.url], "ca_file": bao.ca_cert, "approle_file": str(approle_file),
            "approle_mount": mount, "pki_int_mount": "pki_int", "pki_groups": ["gateways"],
            **client,
        },
        "__vault_server_approle_token": bao.root_token,
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra), encoding="utf-8")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
         "-e", "@" + str(tmp_path / "extra.json")],
        env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    return proc, approle_file


def _accepted(bao, mount, data):
    """Vault logs in with the file's role ID and secret ID."""
    answer = bao.client().adapter.post("/v1/auth/%s/login" % mount,
                                       json={"role_id": data["role_id"], "secret_id": data["secret_id"]})
    return bool(answer["auth"]["client_token"])


@pytest.mark.parametrize("content", [
    pytest.param(b'{"url": "https://vault1:8200", "secret_id": "abc', id="cut-short"),
    pytest.param(b"\x00\x00\x00\x00", id="zeros"),
])
def test_a_corrupt_approle_file_is_written_again(bao, approle_mount, tmp_path, content):
    approle_file = tmp_path / "approle.json"
    approle_file.write_bytes(content)
    os.chmod(approle_file, 0o644)
    proc, approle_file = _write_file_tasks(bao, approle_mount, tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    data = json.loads(approle_file.read_text(encoding="utf-8"))
    assert data["role_name"] == "localhost" and data["pki_role"] == "gateways", data
    assert _accepted(bao, approle_mount, data)
    assert stat.S_IMODE(approle_file.stat().st_mode) == 0o600
    assert approle_file.stat().st_uid == 0
    assert data["secret_id"] not in output and data["role_id"] not in output


def test_a_good_file_keeps_its_secret_id_and_gets_its_mode_back_then_is_only_read(bao, approle_mount, tmp_path):
    proc, approle_file = _write_file_tasks(bao, approle_mount, tmp_path)
    assert proc.returncode == 0 and "approle_write.yml" in proc.stdout, proc.stdout + proc.stderr
    first = json.loads(approle_file.read_text(encoding="utf-8"))
    os.chmod(approle_file, 0o644)
    proc, approle_file = _write_file_tasks(bao, approle_mount, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = json.loads(approle_file.read_text(encoding="utf-8"))
    assert again["secret_id"] == first["secret_id"]
    assert stat.S_IMODE(approle_file.stat().st_mode) == 0o600
    # The idempotent run: one comparison, no write task runs (the fleet's per-device cost).
    before = approle_file.stat()
    proc, approle_file = _write_file_tasks(bao, approle_mount, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout and "approle_write.yml" not in proc.stdout, proc.stdout
    assert "Write this host's AppRole credentials" not in proc.stdout
    assert approle_file.stat().st_mtime_ns == before.st_mtime_ns


def test_a_client_host_gets_its_directory_and_ca_bundle_and_keeps_them(bao, approle_mount, tmp_path):
    # The API call on the "Vault host" (localhost here) trusts ca_file too, so it holds
    # the session's CA from the start, with the directory's and the file's modes wrong.
    bundle = open(bao.ca_cert, encoding="utf-8").read()
    ca_file = tmp_path / "vault" / "ca.pem"
    ca_file.parent.mkdir(mode=0o700)
    ca_file.write_text(bundle, encoding="utf-8")
    os.chmod(ca_file, 0o600)
    client = {"ca_file": str(ca_file), "ca_bundle": bundle, "approle_file": str(ca_file.parent / "approle.json")}
    proc, _ = _write_file_tasks(bao, approle_mount, tmp_path, **client)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o644
    assert stat.S_IMODE(ca_file.parent.stat().st_mode) == 0o755
    data = json.loads((ca_file.parent / "approle.json").read_text(encoding="utf-8"))
    assert data["ca_cert"] == str(ca_file) and _accepted(bao, approle_mount, data)
    # A new bundle (here the same CA twice, which still verifies) is written; the secret ID stays.
    client["ca_bundle"] = bundle + bundle
    proc, _ = _write_file_tasks(bao, approle_mount, tmp_path, **client)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ca_file.read_text(encoding="utf-8") == bundle + bundle
    again = json.loads((ca_file.parent / "approle.json").read_text(encoding="utf-8"))
    assert again["secret_id"] == data["secret_id"]
    proc, _ = _write_file_tasks(bao, approle_mount, tmp_path, **client)
    assert proc.returncode == 0 and "changed=0" in proc.stdout and "approle_write.yml" not in proc.stdout, proc.stdout
