"""Unit tests for the mailmesh.imap envoy_* filters (plugins/filter/envoy.py): thin
wrappers over plugin_utils/_envoy_bootstrap.py that turn SpecError into
AnsibleFilterError."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import envoy as plugin
from ansible_collections.mailmesh.imap.plugins.plugin_utils._envoy_bootstrap import build_bootstrap

FILTER_DIR = os.path.dirname(plugin.__file__)
NAMES = ["envoy_bootstrap", "envoy_sds_secret", "envoy_egress_ports", "envoy_error_variables",
         "envoy_peer_addresses"]

SPEC = {
    "profile": "mesh_ingress",
    "node_id": "store1",
    "admin": {"socket": "/run/envoy/admin.sock"},
    "stats": {"address": "127.0.0.1", "port": 9902},
    "limits": {"buffer_bytes": 262144, "listener_connections": 8192,
               "upstream_connections": 8192, "downstream_connections": 16384,
               "heap_bytes": 536870912},
    "timeouts": {"connect": "2s", "idle": "1h", "connect_attempts": 3},
    "tls": {"cert_sds_path": "/etc/mailmesh/envoy/sds/cert.yaml",
            "ca_sds_path": "/etc/mailmesh/envoy/sds/ca.yaml", "min_version": "TLSv1_3"},
    "ingress": {"listen_address": "0.0.0.0", "listen_port": 10993, "allowed_peers": ["gw1"],
                "backend_address": "127.0.0.1", "backend_port": 10143},
}


def test_filters_are_registered():
    filters = plugin.FilterModule().filters()
    assert sorted(filters) == sorted(NAMES)
    for name in NAMES:
        assert filters[name] is getattr(plugin, name)


@pytest.mark.parametrize("name", NAMES)
def test_sidecar_docs(name):
    with open(os.path.join(FILTER_DIR, name + ".yml"), encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["version_added"] == "0.1.0"
    assert "_input" in doc["DOCUMENTATION"]["options"]
    assert doc["EXAMPLES"].strip()
    assert "mailmesh.imap." + name in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


def test_bootstrap_filter_returns_the_builders_result():
    assert plugin.envoy_bootstrap(SPEC) == build_bootstrap(SPEC)


def test_bootstrap_filter_plain_copies_tuples_and_keys():
    spec = dict(SPEC, ingress=dict(SPEC["ingress"], allowed_peers=("gw1", "gw2")))
    boot = plugin.envoy_bootstrap(spec)
    sans = boot["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"][
        "typed_config"]["common_tls_context"]["combined_validation_context"][
        "default_validation_context"]["match_typed_subject_alt_names"]
    assert [m["matcher"]["exact"] for m in sans] == ["gw1", "gw2"]


@pytest.mark.parametrize("change, variable", [
    ({"profile": "sidecar"}, "envoy_profile"),
    ({"ingress": dict(SPEC["ingress"], listen_port=0)}, "envoy_ingress_port"),
    ({"timeouts": dict(SPEC["timeouts"], idle="forever")}, "envoy_idle_timeout"),
    ({"ingress": dict(SPEC["ingress"], allowed_peers=[])}, "envoy_ingress_allowed_peers"),
])
def test_bootstrap_filter_error(change, variable):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.envoy_bootstrap(dict(SPEC, **change))
    assert str(err.value).startswith("envoy_bootstrap: " + variable), str(err.value)


def test_sds_secret_filter():
    files = {"fullchain": "/etc/mailmesh/tls/envoy/fullchain.pem",
             "key": "/etc/mailmesh/tls/envoy/key.pem"}
    secret = plugin.envoy_sds_secret(files, "cert")["resources"][0]
    assert secret["name"] == "mailmesh_cert"
    assert plugin.envoy_sds_secret({"ca": "/ca.pem"}, "ca")["resources"][0]["name"] == "mailmesh_ca"
    with pytest.raises(AnsibleFilterError, match="^envoy_sds_secret: kind must be cert or ca"):
        plugin.envoy_sds_secret(files, "chain")
    # A missing path is a filter error too, not a KeyError traceback.
    with pytest.raises(AnsibleFilterError, match="^envoy_sds_secret: 'key'"):
        plugin.envoy_sds_secret({"fullchain": "/c.pem"}, "cert")


def test_egress_ports_filter():
    assert plugin.envoy_egress_ports(["b", "a"], 11000) == {
        "a": {"address": "127.0.0.1", "port": 11000}, "b": {"address": "127.0.0.1", "port": 11001}}
    assert plugin.envoy_egress_ports(["a"], "11000", "127.0.0.2") == {
        "a": {"address": "127.0.0.2", "port": 11000}}
    with pytest.raises(AnsibleFilterError, match="^envoy_egress_ports: envoy_egress_base_port"):
        plugin.envoy_egress_ports(["a"], 99999)


def test_peer_addresses_filter():
    assert plugin.envoy_peer_addresses(["gw1", {"name": "gw2", "address": "192.0.2.2"}]) == [
        "gw1", "192.0.2.2"]
    with pytest.raises(AnsibleFilterError, match="^envoy_peer_addresses: envoy_edge_gateways"):
        plugin.envoy_peer_addresses([])


def test_error_variables_filter():
    text = "unknown enum value: 'TLSv9'"
    assert plugin.envoy_error_variables(text, {"envoy_tls_min_version": "TLSv9",
                                               "envoy_quickack": True}) == ["envoy_tls_min_version"]


def test_filters_through_the_templar():
    """The way the role calls them: values arrive as Ansible's own (tagged) types."""
    templar_mod = pytest.importorskip("ansible.template")
    trust = pytest.importorskip("ansible._internal._datatag._tags")
    templar = templar_mod.Templar(loader=None, variables={
        "spec": SPEC, "stores": ["store2", "store1"], "files": {"ca": "/etc/ca.pem"},
        "bad": dict(SPEC, stats={"address": "127.0.0.1", "port": "stats"}),
    })

    def render(text):
        return templar.template(trust.TrustedAsTemplate().tag(text))

    boot = render("{{ spec | mailmesh.imap.envoy_bootstrap }}")
    assert boot == build_bootstrap(SPEC)
    assert render("{{ stores | mailmesh.imap.envoy_egress_ports(11000) }}")["store1"]["port"] == 11000
    assert render("{{ files | mailmesh.imap.envoy_sds_secret('ca') }}")["resources"][0][
        "validation_context"]["trusted_ca"]["filename"] == "/etc/ca.pem"
    with pytest.raises(Exception) as err:  # Ansible wraps the filter's error
        render("{{ bad | mailmesh.imap.envoy_bootstrap }}")
    assert "envoy_stats_port must be a port number" in str(err.value)


def test_bootstrap_fails_first_with_the_callers_problems():
    with pytest.raises(AnsibleFilterError, match=r"^envoy_bootstrap: pi1 is in two tiers\. binary needs a sha256\.$"):
        # the spec is not looked at: the problems come first
        plugin.envoy_bootstrap({}, problems=["pi1 is in two tiers.", "binary needs a sha256."])
    with pytest.raises(AnsibleFilterError, match=r"^envoy_bootstrap: "):
        plugin.envoy_bootstrap({}, problems=[])
