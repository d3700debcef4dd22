"""Cutting a host off, against a real OpenBao: the module vault_pki_revoke (find by common
name in Vault's certificate store, revoke, rebuild the CRL; check mode; a second run
changes nothing), a deleted policy takes its rights from a token the host still holds,
the renewal agent re-enrols a host whose certificate was revoked (new key, new
certificate), and the Vault tier's tasks/identities.yml lists the AppRoles and policies
of hosts no longer in the inventory and removes them only when asked."""

from __future__ import annotations

import json
import uuid

import hvac
import pytest
from cryptography import x509

from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.tests.integration._support import Pki, api, approle, run_role_tasks
from ansible_collections.mailmesh.imap.tests.integration.test_cert_renew_agent import ALT, CN, IPS, Agent


def _issue(pki, common_name):
    data = api(pki.client, "post", "%s/issue/%s" % (pki.mount, pki.role), common_name=common_name, ttl="1h")["data"]
    return data["serial_number"]


def _crl_serials(bao, pki):
    import requests  # pylint: disable=import-outside-toplevel

    pem = requests.get("%s/v1/%s/crl/pem" % (bao.url, pki.mount), verify=bao.ca_cert, timeout=10).content
    return {"%x" % entry.serial_number for entry in x509.load_pem_x509_crl(pem)}


def _plain(serial):
    return serial.replace(":", "").lstrip("0")


def test_revoke_by_common_name(bao, run_module):
    pki = Pki(bao)
    lost = [_issue(pki, "pi17.example.org") for _ in range(2)]
    other = _issue(pki, "pi18.example.org")
    args = dict(url=bao.url, ca_cert=bao.ca_cert, token=bao.root_token, mount_point=pki.mount,
                common_names=["pi17.example.org"])

    checked = run_module("vault_pki_revoke", args, check=True)
    assert checked.changed and sorted(i["serial"] for i in checked["revoked"]) == sorted(lost), checked
    assert not checked["crl_rotated"] and _crl_serials(bao, pki) == set()

    done = run_module("vault_pki_revoke", args)
    assert done.changed and done["crl_rotated"], done
    assert sorted(i["serial"] for i in done["revoked"]) == sorted(lost)
    assert {i["common_name"] for i in done["revoked"]} == {"pi17.example.org"}
    assert done["scanned"] >= 3
    # The CRL lists them at once; the other host's certificate is untouched.
    assert _crl_serials(bao, pki) == {_plain(s) for s in lost}
    assert _plain(other) not in _crl_serials(bao, pki)
    assert bao.root_token not in done["_stdout"]

    again = run_module("vault_pki_revoke", args)
    assert not again.changed and again["revoked"] == [] and sorted(again["already_revoked"]) == sorted(lost)

    bad = run_module("vault_pki_revoke", dict(args, common_names=[" "]))
    assert bad.failed and "common_names must name at least one host" in bad["msg"]


def test_deleting_the_policy_takes_the_rights_of_a_token_already_held(bao):
    pki = Pki(bao)
    path, role_id, secret_id = approle(pki, CN, vault_cert_policy(pki.mount, pki.role, CN, ALT, IPS))
    token = api(pki.client, "post", "auth/%s/login" % path, role_id=role_id, secret_id=secret_id)["auth"]["client_token"]
    device = hvac.Client(url=bao.url, token=token, verify=bao.ca_cert)
    policy = "cert-" + path
    pki.client.sys.delete_policy(policy)
    pki.client.auth.approle.delete_role("h1", mount_point=path)
    with pytest.raises(hvac.exceptions.Forbidden):
        device.adapter.post("/v1/%s/issue/%s" % (pki.mount, pki.role), json={"common_name": CN})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        api(pki.client, "post", "auth/%s/login" % path, role_id=role_id, secret_id=secret_id)


def test_agent_re_enrols_a_revoked_certificate_with_a_new_key(bao, tmp_path):
    pki = Pki(bao)
    path, role_id, secret_id = approle(pki, CN, vault_cert_policy(pki.mount, pki.role, CN, ALT, IPS))
    agent = Agent(tmp_path)
    agent.approle_file.write_text(json.dumps({
        "url": bao.url, "ca_cert": bao.ca_cert, "approle_mount": path, "role_name": "h1",
        "role_id": role_id, "secret_id": secret_id, "mount": pki.mount, "pki_role": pki.role}))
    agent.approle_file.chmod(0o600)
    agent.register()
    assert agent.run().returncode == 0
    before, key_before = agent.cert(), agent.files["key"].read_bytes()
    assert "nothing to do" in agent.run().stdout
    serial = "%x" % before.serial_number
    serial = ":".join(("0" * (len(serial) % 2) + serial)[i:i + 2] for i in range(0, len(serial) + len(serial) % 2, 2))
    api(pki.client, "post", "%s/revoke" % pki.mount, serial_number=serial)
    done = agent.run()
    assert done.returncode == 0, done.stdout
    assert "svc: renewed (revoked): serial " in done.stdout and ", new key" in done.stdout, done.stdout
    assert agent.cert().serial_number != before.serial_number
    assert agent.files["key"].read_bytes() != key_before
    assert "nothing to do" in agent.run().stdout


def test_stale_identities_listed_then_removed_on_request(bao_own, tmp_path):
    """On a server of its own: the inventory here is kept1 alone; gone1 and gone2 have
    AppRoles, gone1 a certificate policy; mailmesh-admin is the admin AppRole."""
    bao = bao_own
    client = bao.client()
    mount = "approle_" + uuid.uuid4().hex[:6]
    client.sys.enable_auth_method("approle", path=mount)
    for host in ("kept1", "gone1", "gone2", "mailmesh-admin"):
        api(client, "post", "auth/%s/role/%s" % (mount, host), token_ttl="5m")
    for host in ("kept1", "gone1"):
        client.sys.create_or_update_policy("mailmesh-cert-" + host, 'path "x/%s" { capabilities = ["read"] }' % host)
    extra = {
        "__vault_server_local_url": bao.url, "vault_server_ca_file": bao.ca_cert,
        "__vault_server_token": bao.root_token, "vault_server_approle_mount": mount,
        "__vault_server_host_approle_specs": [
            {"name": "kept1", "policy": 'path "x/kept1" { capabilities = ["read"] }'}],
    }
    listed = run_role_tasks(tmp_path, "vault_server", "identities.yml", extra)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert ("Not in the inventory but still in Vault: AppRoles [gone1, gone2], policies [mailmesh-cert-gone1]"
            in " ".join(listed.stdout.split())), listed.stdout[-3000:]
    assert "Left as they are: vault_server_remove_stale_hosts=true removes them" in " ".join(listed.stdout.split())
    assert sorted(api(client, "list", "auth/%s/role" % mount)["data"]["keys"]) == ["gone1", "gone2", "kept1",
                                                                                   "mailmesh-admin"]
    assert bao.root_token not in listed.stdout + listed.stderr

    removed = run_role_tasks(tmp_path, "vault_server", "identities.yml",
                             dict(extra, vault_server_remove_stale_hosts=True))
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-2000:]
    assert "Removing them (vault_server_remove_stale_hosts)" in " ".join(removed.stdout.split())
    assert sorted(api(client, "list", "auth/%s/role" % mount)["data"]["keys"]) == ["kept1", "mailmesh-admin"]
    policies = client.sys.list_acl_policies()["data"]["keys"]
    assert "mailmesh-cert-gone1" not in policies and "mailmesh-cert-kept1" in policies
    assert bao.root_token not in removed.stdout + removed.stderr

    again = run_role_tasks(tmp_path, "vault_server", "identities.yml", dict(extra, vault_server_remove_stale_hosts=True))
    assert again.returncode == 0 and "Not in the inventory" not in again.stdout, again.stdout[-3000:]
