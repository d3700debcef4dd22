"""Unit tests for plugins/plugin_utils/_envoy_bootstrap.py (structure of the data only;
tests/integration/test_envoy_config.py has the real Envoy validate and run it)."""

import binascii
import copy

import pytest

from ansible_collections.mailmesh.imap.plugins.plugin_utils._envoy_bootstrap import (
    CA_SECRET,
    CERT_SECRET,
    PROFILES,
    UNAVAILABLE,
    UPSTREAM_SESSION_KEYS,
    SpecError,
    build_bootstrap,
    build_sds_secret,
    egress_ports,
    name_variables_in_error,
    peer_addresses,
)

TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def make_spec(profile, **sections):
    """A spec shaped like roles/envoy/vars/main.yml's __envoy_spec, with role defaults."""
    spec = {
        "profile": profile,
        "node_id": "host1",
        "admin": {"socket": "/run/envoy/admin.sock"},
        # The Prometheus listener is off here (envoy_stats_address empty), so that the
        # profiles' own listeners are alone; test_stats_listener turns it on.
        "stats": {"address": "", "port": 9902},
        "limits": {"buffer_bytes": 262144, "listener_connections": 8192,
                   "upstream_connections": 8192, "downstream_connections": 16384,
                   "heap_bytes": 512 * 1048576},
        "timeouts": {"connect": "2s", "idle": "1h", "connect_attempts": 3},
        "tls": {"cert_sds_path": "/etc/mailmesh/envoy/sds/cert.yaml",
                "ca_sds_path": "/etc/mailmesh/envoy/sds/ca.yaml",
                "min_version": "TLSv1_3",
                "cipher_suites": ["ECDHE-ECDSA-CHACHA20-POLY1305",
                                  "ECDHE-ECDSA-AES128-GCM-SHA256"]},
        "edge": {"listen_address": "127.0.0.1", "listen_port": 143,
                 "gateways": ["gw1.example.org", "gw2.example.org"], "gateway_port": 9993,
                 "health_check": {"interval": "2s", "timeout": "1s", "unhealthy_threshold": 2,
                                  "healthy_threshold": 1},
                 "outlier_detection": {"consecutive_failures": 3, "base_ejection_time": "10s"}},
        "egress": {"stores": ["store2", "store1", "store3"], "store_port": 10993,
                   "base_port": 11000, "listen_address": "127.0.0.1",
                   "unavailable_port": 10999,
                   "unavailable_message": "Mail store temporarily unavailable, try again later",
                   "health_check": {"interval": "5s", "timeout": "2s", "unhealthy_threshold": 2,
                                    "healthy_threshold": 1}},
        "ingress": {"listen_address": "0.0.0.0", "listen_port": 10993,
                    "allowed_peers": ["gw1", "gw2"], "backend_address": "127.0.0.1",
                    "backend_port": 10143},
    }
    for path, value in sections.items():
        # make_spec("edge", edge__gateways=[...]) sets spec["edge"]["gateways"].
        keys = path.split("__")
        target = spec
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return spec


_DELETE = object()


def _listener(boot, name):
    (listener,) = [l for l in boot["static_resources"]["listeners"] if l["name"] == name]
    return listener


def _cluster(boot, name):
    (cluster,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == name]
    return cluster


def _filters(listener):
    (chain,) = listener["filter_chains"]
    return {f["name"]: f["typed_config"] for f in chain["filters"]}


def _sans(common):
    return common["combined_validation_context"]["default_validation_context"][
        "match_typed_subject_alt_names"]


def _endpoints(cluster):
    (group,) = cluster["load_assignment"]["endpoints"]
    return [(e["endpoint"]["hostname"], e["endpoint"]["address"]["socket_address"]["address"],
             e["endpoint"]["address"]["socket_address"]["port_value"])
            for e in group["lb_endpoints"]]


def _assert_sds_sources(common, spec):
    (cert,) = common["tls_certificate_sds_secret_configs"]
    assert cert["name"] == CERT_SECRET
    assert cert["sds_config"] == {
        "path_config_source": {"path": spec["tls"]["cert_sds_path"],
                               "watched_directory": {"path": "/etc/mailmesh/envoy/sds"}},
        "resource_api_version": "V3",
    }
    ca = common["combined_validation_context"]["validation_context_sds_secret_config"]
    assert ca["name"] == CA_SECRET
    assert ca["sds_config"]["path_config_source"] == {
        "path": spec["tls"]["ca_sds_path"],
        "watched_directory": {"path": "/etc/mailmesh/envoy/sds"},
    }
    assert ca["sds_config"]["resource_api_version"] == "V3"


def _assert_tls13(common):
    assert common["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_3"
    assert common["tls_params"]["tls_maximum_protocol_version"] == "TLSv1_3"


def _assert_common_parts(boot, spec):
    """Overload manager, admin and node: the same for every profile."""
    assert boot["node"] == {"id": "host1", "cluster": "mailmesh_" + spec["profile"]}
    assert boot["admin"] == {"address": {"pipe": {"path": "/run/envoy/admin.sock",
                                                  "mode": 0o600}}}
    overload = boot["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in overload["resource_monitors"]}
    heap = monitors["envoy.resource_monitors.fixed_heap"]
    assert heap["max_heap_size_bytes"] == spec["limits"]["heap_bytes"]
    conns = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert conns["max_active_downstream_connections"] == spec["limits"]["downstream_connections"]
    actions = {a["name"] for a in overload["actions"]}
    assert actions == {"envoy.overload_actions.shrink_heap",
                       "envoy.overload_actions.stop_accepting_connections"}
    for listener in boot["static_resources"]["listeners"]:
        filters = _filters(listener)
        if listener["name"] == UNAVAILABLE:
            assert list(filters) == ["envoy.filters.network.connection_limit",
                                     "envoy.filters.network.direct_response"]
            continue
        assert list(filters) == ["envoy.filters.network.connection_limit",
                                 "envoy.filters.network.tcp_proxy"]
        limit = filters["envoy.filters.network.connection_limit"]
        assert limit["@type"].endswith("connection_limit.v3.ConnectionLimit")
        assert limit["max_connections"] == spec["limits"]["listener_connections"]
        proxy = filters["envoy.filters.network.tcp_proxy"]
        assert proxy["idle_timeout"] == "3600s"
        assert proxy["max_connect_attempts"] == 3
        assert listener["per_connection_buffer_limit_bytes"] == 262144
    for cluster in boot["static_resources"]["clusters"]:
        assert cluster["connect_timeout"] == "2s"
        (threshold,) = cluster["circuit_breakers"]["thresholds"]
        assert threshold["max_connections"] == 8192


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_builds(profile):
    spec = make_spec(profile)
    before = copy.deepcopy(spec)
    boot = build_bootstrap(spec)
    assert spec == before  # the spec is not changed
    _assert_common_parts(boot, spec)


def test_edge():
    spec = make_spec("edge", edge__gateways=[
        "gw1.example.org", {"name": "gw2.example.org", "address": "192.0.2.2", "port": 9994}])
    boot = build_bootstrap(spec)
    (listener,) = boot["static_resources"]["listeners"]
    assert listener["name"] == "edge_imap"
    assert listener["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 143}}
    assert "transport_socket" not in listener["filter_chains"][0]  # local apps speak plain IMAP
    assert _filters(listener)["envoy.filters.network.tcp_proxy"]["cluster"] == "gateways"

    (cluster,) = boot["static_resources"]["clusters"]
    assert cluster["name"] == "gateways"
    assert cluster["type"] == "STRICT_DNS"  # gw1 is a name
    assert cluster["dns_lookup_family"] == "V4_PREFERRED"
    assert _endpoints(cluster) == [("gw1.example.org", "gw1.example.org", 9993),
                                   ("gw2.example.org", "192.0.2.2", 9994)]

    (health,) = cluster["health_checks"]
    assert health["tcp_health_check"] == {"receive": [{"text": "2a204f4b"}]}
    assert binascii.unhexlify(health["tcp_health_check"]["receive"][0]["text"]) == b"* OK"
    assert (health["interval"], health["timeout"]) == ("2s", "1s")
    assert (health["unhealthy_threshold"], health["healthy_threshold"]) == (2, 1)

    outlier = cluster["outlier_detection"]
    assert outlier["split_external_local_origin_errors"] is True
    assert outlier["consecutive_local_origin_failure"] == 3
    assert outlier["base_ejection_time"] == "10s"
    assert outlier["max_ejection_percent"] == 100
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 0}}

    tls = cluster["transport_socket"]["typed_config"]
    assert tls["@type"] == TLS + "UpstreamTlsContext"
    assert "sni" not in tls
    assert tls["max_session_keys"] == UPSTREAM_SESSION_KEYS > 1
    # Each gateway its own context (its own sessions), trusting its own name only.
    metadata = [(lb["endpoint"]["hostname"], lb["metadata"]["filter_metadata"]["envoy.transport_socket_match"])
                for lb in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert metadata == [("gw1.example.org", {"mailmesh_peer": "gw1.example.org"}),
                        ("gw2.example.org", {"mailmesh_peer": "gw2.example.org"})]
    matches = cluster["transport_socket_matches"]
    assert [(m["name"], m["match"]) for m in matches] == [
        ("peer_gw1_example_org", {"mailmesh_peer": "gw1.example.org"}),
        ("peer_gw2_example_org", {"mailmesh_peer": "gw2.example.org"})]
    for match, name in zip(matches, ["gw1.example.org", "gw2.example.org"]):
        own = match["transport_socket"]["typed_config"]
        assert own["@type"] == TLS + "UpstreamTlsContext" and "sni" not in own
        assert own["max_session_keys"] == UPSTREAM_SESSION_KEYS
        _assert_tls13(own["common_tls_context"])
        assert _sans(own["common_tls_context"]) == [{"san_type": "DNS", "matcher": {"exact": name}}]
        _assert_sds_sources(own["common_tls_context"], spec)
    common = tls["common_tls_context"]
    _assert_tls13(common)
    assert _sans(common) == [
        {"san_type": "DNS", "matcher": {"exact": "gw1.example.org"}},
        {"san_type": "DNS", "matcher": {"exact": "gw2.example.org"}},
    ]
    _assert_sds_sources(common, spec)
    assert common["tls_params"]["cipher_suites"] == spec["tls"]["cipher_suites"]


def test_edge_with_addresses_only_is_static():
    spec = make_spec("edge", edge__gateways=[{"name": "gw1", "address": "192.0.2.1"},
                                             {"name": "gw2", "address": "2001:db8::2"}])
    cluster = build_bootstrap(spec)["static_resources"]["clusters"][0]
    assert cluster["type"] == "STATIC"
    assert "dns_lookup_family" not in cluster
    assert _endpoints(cluster) == [("gw1", "192.0.2.1", 9993), ("gw2", "2001:db8::2", 9993)]
    assert [m["matcher"]["exact"] for m in _sans(
        cluster["transport_socket"]["typed_config"]["common_tls_context"])] == ["gw1", "gw2"]


def test_edge_health_check_defaults():
    spec = make_spec("edge", edge__health_check=_DELETE, edge__outlier_detection=_DELETE)
    cluster = build_bootstrap(spec)["static_resources"]["clusters"][0]
    (health,) = cluster["health_checks"]
    assert (health["interval"], health["timeout"]) == ("2s", "1s")
    assert cluster["outlier_detection"]["consecutive_local_origin_failure"] == 3
    assert cluster["outlier_detection"]["base_ejection_time"] == "10s"


def test_mesh_egress():
    spec = make_spec("mesh_egress", egress__stores=[
        "store2", {"name": "store1", "address": "10.0.0.1"}, "store3"])
    boot = build_bootstrap(spec)
    listeners = boot["static_resources"]["listeners"]
    # One loopback listener per store, base_port + index in sorted name order, and the
    # one that answers for a store that is down.
    assert [(l["name"], l["address"]["socket_address"]["address"],
             l["address"]["socket_address"]["port_value"]) for l in listeners] == [
        ("egress_store1", "127.0.0.1", 11000),
        ("egress_store2", "127.0.0.1", 11001),
        ("egress_store3", "127.0.0.1", 11002),
        (UNAVAILABLE, "127.0.0.1", 10999),
    ]
    for listener in listeners:
        assert "transport_socket" not in listener["filter_chains"][0]  # NGINX speaks plain TCP
    # Each store's listener goes to the store while it passes its checks, else to the
    # listener that answers for it.
    assert [_filters(l)["envoy.filters.network.tcp_proxy"]["cluster"] for l in listeners[:3]] == [
        "to_store_store1", "to_store_store2", "to_store_store3"]

    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    assert sorted(clusters) == sorted(["store_store1", "store_store2", "store_store3",
                                       "to_store_store1", "to_store_store2", "to_store_store3",
                                       UNAVAILABLE])
    assert _endpoints(clusters["store_store1"]) == [("store1", "10.0.0.1", 10993)]
    assert clusters["store_store1"]["type"] == "STATIC"
    assert _endpoints(clusters["store_store2"]) == [("store2", "store2", 10993)]
    assert clusters["store_store2"]["type"] == "STRICT_DNS"
    for store in ["store1", "store2", "store3"]:
        cluster = clusters["store_" + store]
        tls = cluster["transport_socket"]["typed_config"]
        assert tls["@type"] == TLS + "UpstreamTlsContext"
        assert tls["sni"] == store
        assert tls["max_session_keys"] == UPSTREAM_SESSION_KEYS
        common = tls["common_tls_context"]
        # Each store's cluster trusts that store's name only, not its neighbours'.
        assert _sans(common) == [{"san_type": "DNS", "matcher": {"exact": store}}]
        _assert_tls13(common)
        _assert_sds_sources(common, spec)
        (check,) = cluster["health_checks"]
        assert check["interval"] == check["no_traffic_interval"] == "5s"
        assert check["timeout"] == "2s"
        assert (check["unhealthy_threshold"], check["healthy_threshold"]) == (2, 1)
        # A new connection per check: a PROXY header, then Dovecot's greeting.
        assert check["reuse_connection"] is False
        tcp = check["tcp_health_check"]
        assert binascii.unhexlify(tcp["send"]["text"]) == b"PROXY TCP4 127.0.0.1 127.0.0.1 1 143\r\n"
        assert [binascii.unhexlify(r["text"]) for r in tcp["receive"]] == [b"* OK"]
        assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 0}}
        aggregate = clusters["to_store_" + store]
        assert aggregate["lb_policy"] == "CLUSTER_PROVIDED"
        assert aggregate["cluster_type"]["name"] == "envoy.clusters.aggregate"
        assert aggregate["cluster_type"]["typed_config"]["clusters"] == ["store_" + store, UNAVAILABLE]
    assert _endpoints(clusters[UNAVAILABLE]) == [(UNAVAILABLE, "127.0.0.1", 10999)]
    assert "transport_socket" not in clusters[UNAVAILABLE]
    response = _filters(listeners[3])["envoy.filters.network.direct_response"]["response"]
    assert response == {"inline_string": "* BYE [UNAVAILABLE] Mail store temporarily unavailable, "
                                         "try again later\r\n"}


@pytest.mark.parametrize("port", [11000, 11002])
def test_mesh_egress_unavailable_port_outside_the_store_ports(port):
    spec = make_spec("mesh_egress", egress__unavailable_port=port)
    with pytest.raises(SpecError, match=r"^envoy_egress_unavailable_port %d is the egress port of "
                                        r"store store\d .*outside that range" % port):
        build_bootstrap(spec)


@pytest.mark.parametrize("message", ["two\r\nlines", "caf\u00e9", ""])
def test_mesh_egress_unavailable_message_is_one_ascii_line(message):
    spec = make_spec("mesh_egress", egress__unavailable_message=message)
    with pytest.raises(SpecError, match=r"^envoy_egress_unavailable_message "):
        build_bootstrap(spec)


def test_mesh_egress_health_check_values_are_checked():
    spec = make_spec("mesh_egress", egress__health_check={"interval": "soon"})
    with pytest.raises(SpecError, match=r"^envoy_egress_health_check_interval "):
        build_bootstrap(spec)
    spec = make_spec("mesh_egress", egress__health_check={"unhealthy_threshold": 0})
    with pytest.raises(SpecError, match=r"^envoy_egress_health_check_unhealthy_threshold "):
        build_bootstrap(spec)


def test_mesh_egress_names_are_made_safe_for_stats():
    spec = make_spec("mesh_egress", egress__stores=["store-1.example.org"])
    boot = build_bootstrap(spec)
    assert boot["static_resources"]["listeners"][0]["name"] == "egress_store_1_example_org"
    cluster = boot["static_resources"]["clusters"][0]
    assert cluster["name"] == "store_store_1_example_org"
    # The TLS names stay the real ones.
    assert cluster["transport_socket"]["typed_config"]["sni"] == "store-1.example.org"


def test_mesh_ingress():
    spec = make_spec("mesh_ingress")
    boot = build_bootstrap(spec)
    (listener,) = boot["static_resources"]["listeners"]
    assert listener["name"] == "ingress_imap"
    assert listener["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 10993}}
    assert _filters(listener)["envoy.filters.network.tcp_proxy"]["cluster"] == "mailstore"
    tls = listener["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls["@type"] == TLS + "DownstreamTlsContext"
    assert tls["require_client_certificate"] is True
    common = tls["common_tls_context"]
    assert _sans(common) == [{"san_type": "DNS", "matcher": {"exact": "gw1"}},
                             {"san_type": "DNS", "matcher": {"exact": "gw2"}}]
    _assert_tls13(common)
    _assert_sds_sources(common, spec)

    (cluster,) = boot["static_resources"]["clusters"]
    assert cluster["name"] == "mailstore"
    assert cluster["type"] == "STATIC"
    assert _endpoints(cluster) == [("mailstore", "127.0.0.1", 10143)]
    assert "transport_socket" not in cluster  # Dovecot on loopback, plain PROXY protocol


def test_tls_min_version_and_no_cipher_suites():
    spec = make_spec("mesh_ingress", tls__min_version="TLSv1_2", tls__cipher_suites=[])
    common = build_bootstrap(spec)["static_resources"]["listeners"][0]["filter_chains"][0][
        "transport_socket"]["typed_config"]["common_tls_context"]
    assert common["tls_params"] == {"tls_minimum_protocol_version": "TLSv1_2",
                                    "tls_maximum_protocol_version": "TLSv1_3"}


def test_tls_min_version_defaults_to_13():
    spec = make_spec("mesh_egress", tls__min_version=_DELETE)
    common = build_bootstrap(spec)["static_resources"]["clusters"][0]["transport_socket"][
        "typed_config"]["common_tls_context"]
    _assert_tls13(common)


@pytest.mark.parametrize("value, expected", [
    ("2s", "2s"), ("0.5s", "0.5s"), (2, "2s"), ("2", "2s"), ("500ms", "0.5s"),
    ("1500ms", "1.5s"), ("5m", "300s"), ("1h", "3600s"), (" 3s ", "3s"),
])
def test_durations(value, expected):
    spec = make_spec("mesh_ingress", timeouts__connect=value)
    assert build_bootstrap(spec)["static_resources"]["clusters"][0]["connect_timeout"] == expected


@pytest.mark.parametrize("profile, sections, variable", [
    # Ports
    ("mesh_ingress", {"ingress__listen_port": 70000}, "envoy_ingress_port"),
    ("mesh_ingress", {"ingress__listen_port": "imaps"}, "envoy_ingress_port"),
    ("mesh_ingress", {"ingress__backend_port": 0}, "envoy_ingress_backend_port"),
    ("edge", {"edge__listen_port": -1}, "envoy_edge_listen_port"),
    ("edge", {"edge__gateway_port": 65536}, "envoy_edge_gateway_port"),
    ("edge", {"edge__gateways": [{"name": "gw1", "port": 99999}]}, "envoy_edge_gateways"),
    ("mesh_egress", {"egress__base_port": "x"}, "envoy_egress_base_port"),
    ("mesh_egress", {"egress__store_port": 0}, "envoy_ingress_port"),
    ("edge", {"stats__address": "127.0.0.1", "stats__port": 123456}, "envoy_stats_port"),
    ("edge", {"stats__address": "127.0.0.1", "stats__port": None}, "envoy_stats_port"),
    # Durations
    ("mesh_ingress", {"timeouts__connect": "2 seconds"}, "envoy_connect_timeout"),
    ("mesh_ingress", {"timeouts__idle": "1d"}, "envoy_idle_timeout"),
    ("edge", {"edge__health_check__interval": "often"}, "envoy_edge_health_check_interval"),
    ("edge", {"edge__health_check__timeout": "-1s"}, "envoy_edge_health_check_timeout"),
    ("edge", {"edge__outlier_detection__base_ejection_time": "10x"},
     "envoy_edge_outlier_base_ejection_time"),
    # Lists
    ("edge", {"edge__gateways": []}, "envoy_edge_gateways"),
    ("edge", {"edge__gateways": None}, "envoy_edge_gateways"),
    ("edge", {"edge__gateways": "gw1"}, "envoy_edge_gateways"),
    ("edge", {"edge__gateways": [{"address": "192.0.2.1"}]}, "envoy_edge_gateways"),
    ("mesh_egress", {"egress__stores": []}, "envoy_egress_stores"),
    ("mesh_ingress", {"ingress__allowed_peers": []}, "envoy_ingress_allowed_peers"),
    ("mesh_ingress", {"ingress__allowed_peers": "gw1"}, "envoy_ingress_allowed_peers"),
    # Numbers and required values
    ("edge", {"limits__heap_bytes": 0}, "envoy_max_heap_mb"),
    ("edge", {"limits__buffer_bytes": "lots"}, "envoy_buffer_limit_bytes"),
    ("edge", {"limits__listener_connections": _DELETE}, "envoy_listener_max_connections"),
    ("edge", {"limits__downstream_connections": -5}, "envoy_max_downstream_connections"),
    ("edge", {"timeouts__connect_attempts": 0}, "envoy_connect_attempts"),
    ("edge", {"edge__health_check__unhealthy_threshold": 0},
     "envoy_edge_health_check_unhealthy_threshold"),
    ("edge", {"edge__listen_address": ""}, "envoy_edge_listen_address"),
    ("mesh_ingress", {"ingress__backend_address": None}, "envoy_ingress_backend_address"),
    ("mesh_egress", {"egress__listen_address": _DELETE}, "envoy_egress_listen_address"),
    ("edge", {"admin__socket": _DELETE}, "__envoy_admin_socket"),
    ("edge", {"admin__socket": "run/envoy/admin.sock"}, "__envoy_admin_socket"),
    ("edge", {"admin__socket": "/run/" + "x" * 120}, "__envoy_admin_socket"),
    ("edge", {"node_id": ""}, "inventory_hostname"),
    ("edge", {"tls__cert_sds_path": "sds/cert.yaml"}, "envoy_config_dir"),
    ("edge", {"tls__ca_sds_path": _DELETE}, "envoy_config_dir"),
])
def test_bad_values_name_the_variable(profile, sections, variable):
    spec = make_spec(profile, **sections)
    with pytest.raises(SpecError) as err:
        build_bootstrap(spec)
    assert str(err.value).startswith(variable), str(err.value)


@pytest.mark.parametrize("profile", ["", None, "ingress", "Edge", "mesh-egress"])
def test_unknown_profile(profile):
    spec = make_spec("edge")
    spec["profile"] = profile
    with pytest.raises(SpecError, match=r"^envoy_profile must be one of edge, mesh_egress, "
                                        r"mesh_ingress, got"):
        build_bootstrap(spec)


def test_bad_port_message_shows_the_value():
    with pytest.raises(SpecError) as err:
        build_bootstrap(make_spec("mesh_ingress", ingress__listen_port=70000))
    assert str(err.value) == ("envoy_ingress_port must be a port number between 1 and 65535, "
                              "got 70000")


def test_bad_duration_message_shows_the_value():
    with pytest.raises(SpecError) as err:
        build_bootstrap(make_spec("edge", timeouts__idle="1 hour"))
    assert str(err.value) == ("envoy_idle_timeout must be a duration such as 2s, 500ms, 5m or "
                              "1h, got '1 hour'")


def test_other_profiles_sections_are_not_checked():
    """A gateway has no envoy_edge_* values to speak of: only its own profile's count."""
    spec = make_spec("mesh_ingress", edge__gateways=[], egress__stores=None)
    assert build_bootstrap(spec)


def test_egress_ports_are_stable():
    ports = egress_ports(["store3", "store1", "store2"], 11000)
    assert ports == {"store1": {"address": "127.0.0.1", "port": 11000},
                     "store2": {"address": "127.0.0.1", "port": 11001},
                     "store3": {"address": "127.0.0.1", "port": 11002}}
    # Any order, duplicates, numbers as strings: the same answer.
    assert egress_ports(["store2", "store1", "store3", "store1"], "11000") == ports
    assert egress_ports(("store1", "store2", "store3"), 11000) == ports
    # Adding a store that sorts last keeps the others' ports.
    more = egress_ports(["store1", "store2", "store3", "store4"], 11000)
    assert {k: more[k] for k in ports} == ports
    assert more["store4"]["port"] == 11003


def test_egress_ports_address_and_empty():
    assert egress_ports(["s"], 12000, "127.0.0.2") == {"s": {"address": "127.0.0.2", "port": 12000}}
    assert egress_ports([], 11000) == {}
    assert egress_ports(None, 11000) == {}


@pytest.mark.parametrize("base, count", [(65535, 2), (65530, 7), (0, 1), (65536, 0), ("none", 1)])
def test_egress_ports_bad_base(base, count):
    with pytest.raises(SpecError, match="^envoy_egress_base_port"):
        egress_ports(["s%d" % i for i in range(count)], base)


def test_egress_ports_last_port():
    # The last store may take port 65535 itself.
    assert egress_ports(["a"], 65535) == {"a": {"address": "127.0.0.1", "port": 65535}}
    assert egress_ports(["a", "b"], 65534) == {
        "a": {"address": "127.0.0.1", "port": 65534},
        "b": {"address": "127.0.0.1", "port": 65535},
    }


def test_egress_listeners_match_egress_ports():
    spec = make_spec("mesh_egress")
    boot = build_bootstrap(spec)
    ports = egress_ports(spec["egress"]["stores"], spec["egress"]["base_port"])
    for listener in boot["static_resources"]["listeners"]:
        if listener["name"] == UNAVAILABLE:
            continue
        store = listener["name"][len("egress_"):]
        assert listener["address"]["socket_address"]["port_value"] == ports[store]["port"]


def test_peer_addresses():
    assert peer_addresses(["gw1", {"name": "gw2", "address": "192.0.2.2"}, {"name": "gw3"}]) == [
        "gw1", "192.0.2.2", "gw3"]
    with pytest.raises(SpecError, match="^envoy_edge_gateways"):
        peer_addresses([])
    with pytest.raises(SpecError, match="^other_var"):
        peer_addresses(None, "other_var")


def test_sds_cert_secret():
    sds = build_sds_secret("cert", {"fullchain": "/etc/mailmesh/tls/envoy/fullchain.pem",
                                    "key": "/etc/mailmesh/tls/envoy/key.pem"})
    assert sds == {"resources": [{
        "@type": TLS + "Secret",
        "name": CERT_SECRET,
        "tls_certificate": {
            "certificate_chain": {"filename": "/etc/mailmesh/tls/envoy/fullchain.pem"},
            "private_key": {"filename": "/etc/mailmesh/tls/envoy/key.pem"},
            "watched_directory": {"path": "/etc/mailmesh/tls/envoy"},
        },
    }]}


def test_sds_ca_secret():
    sds = build_sds_secret("ca", {"ca": "/etc/mailmesh/vault/ca.pem"})
    assert sds == {"resources": [{
        "@type": TLS + "Secret",
        "name": CA_SECRET,
        "validation_context": {
            "trusted_ca": {"filename": "/etc/mailmesh/vault/ca.pem"},
            "watched_directory": {"path": "/etc/mailmesh/vault"},
        },
    }]}


def test_sds_bad_kind():
    with pytest.raises(SpecError, match="kind must be cert or ca"):
        build_sds_secret("key", {"key": "/k"})
    with pytest.raises(KeyError):
        build_sds_secret("cert", {"fullchain": "/c"})


ENVOY_ERROR = (
    "[2026-03-01 12:00:00.000][1][critical][main] [source/server/config_validation/server.cc:76] "
    "error initializing configuration '/etc/mailmesh/envoy/envoy.yaml.tmp': Protobuf message "
    "(type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT: unknown enum value: "
    "'TLSv9') has unknown fields"
)


def test_name_variables_in_error():
    variables = {
        "envoy_tls_min_version": "TLSv9",
        "envoy_profile": "mesh_ingress",
        "envoy_stats_address": "127.0.0.1",
        "envoy_ingress_allowed_peers": ["gw1", "gw2"],
        "envoy_connect_timeout": "2s",
        "envoy_idle_timeout": "1h",
        # Short and common values never count, even when they appear in the text.
        "envoy_quickack": True,
        "envoy_short": "v3",
        "envoy_one": "1",
        "envoy_none": None,
        "envoy_dict": {"TLSv9": "TLSv9"},
        "envoy_bool_list": [False, True],
    }
    assert name_variables_in_error(ENVOY_ERROR, variables) == ["envoy_tls_min_version"]


def test_name_variables_in_error_lists_and_order():
    text = "no healthy upstream for gw2.example.org; unknown cipher FOO-BAR"
    variables = {
        "envoy_tls_cipher_suites": ["ECDHE-ECDSA-AES128-GCM-SHA256", "FOO-BAR"],
        "envoy_edge_gateways": ["gw1.example.org", "gw2.example.org"],
        "envoy_egress_stores": [],
    }
    assert name_variables_in_error(text, variables) == ["envoy_edge_gateways",
                                                        "envoy_tls_cipher_suites"]
    assert name_variables_in_error(text, {}) == []
    assert name_variables_in_error(RuntimeError("bad 'TLSv9'"), {"v": "TLSv9"}) == ["v"]


def test_name_variables_in_error_booleans_are_ignored():
    # "True" is long enough, but a bool is never a clue (its text is everywhere).
    assert name_variables_in_error("field True is invalid", {"envoy_quickack": True}) == []
    assert name_variables_in_error("field 443 is invalid", {"envoy_port": 443}) == ["envoy_port"]
    assert name_variables_in_error("field 44 is invalid", {"envoy_port": 44}) == []


@pytest.mark.parametrize("profile", ["edge", "mesh_egress", "mesh_ingress"])
def test_stats_listener(profile):
    """GET /stats/prometheus goes to the admin socket, everything else gets a 404."""
    plain = build_bootstrap(make_spec(profile))
    boot = build_bootstrap(make_spec(profile, stats__address="127.0.0.1"))
    listeners = boot["static_resources"]["listeners"]
    clusters = boot["static_resources"]["clusters"]
    assert listeners[:-1] == plain["static_resources"]["listeners"]
    assert clusters[:-1] == plain["static_resources"]["clusters"]
    stats, admin = listeners[-1], clusters[-1]
    assert stats["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 9902}}
    assert admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "pipe": {"path": "/run/envoy/admin.sock"}}
    (chain,) = stats["filter_chains"]
    (manager,) = chain["filters"]
    config = manager["typed_config"]
    assert config["normalize_path"] and config["merge_slashes"]
    assert config["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    (host,) = config["route_config"]["virtual_hosts"]
    forward, rest = host["routes"]
    assert forward["match"] == {"path": "/stats/prometheus",
                                "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]}
    assert forward["route"]["cluster"] == admin["name"]
    assert rest["match"] == {"prefix": "/"} and rest["direct_response"]["status"] == 404
    assert "route" not in rest
