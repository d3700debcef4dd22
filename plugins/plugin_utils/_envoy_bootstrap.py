# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Envoy bootstrap for the three mailmesh profiles, built as data.

Internal to mailmesh.imap: names and signatures may change without notice. The
``mailmesh.imap.envoy_bootstrap`` filter is the public face; the role dumps the result
as YAML and has ``envoy --mode validate`` check it before it goes live.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import ipaddress
import os.path
import re

__all__ = [
    "PROFILES",
    "STATS_PATH",
    "UNAVAILABLE",
    "SpecError",
    "build_bootstrap",
    "build_sds_secret",
    "egress_ports",
    "name_variables_in_error",
    "peer_addresses",
]

PROFILES = ("edge", "mesh_egress", "mesh_ingress")

_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
_TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_CONN_LIMIT = ("type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3."
               "ConnectionLimit")
_FIXED_HEAP = ("type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3."
               "FixedHeapConfig")
_DOWNSTREAM_CONNS = ("type.googleapis.com/envoy.extensions.resource_monitors."
                     "downstream_connections.v3.DownstreamConnectionsConfig")
_DIRECT_RESPONSE = ("type.googleapis.com/envoy.extensions.filters.network.direct_response.v3."
                    "Config")
_AGGREGATE = "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"
_SECRET = _TLS + "Secret"
_HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager")
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

# The one admin page the stats listener passes on (Prometheus' text format).
STATS_PATH = "/stats/prometheus"
STATS_LISTENER = "prometheus_stats"
ADMIN_CLUSTER = "envoy_admin"
# The admin socket: only its owner (Envoy's user) and root may connect.
ADMIN_SOCKET_MODE = 0o600

# TLS sessions an upstream context keeps for resumption (Envoy's default is 1). TLS 1.3
# tickets are single-use and each context's queue is shared by every connection through
# it: NGINX and Envoy send two tickets per full handshake, so with one slot concurrent
# connections find the queue empty and handshake in full. A few dozen sessions cost a
# few KiB and let a burst of reconnections resume. The edge's gateways cluster has one
# context per gateway (_tls_per_endpoint), as the egress has one cluster per store.
UPSTREAM_SESSION_KEYS = 32

CERT_SECRET = "mailmesh_cert"
CA_SECRET = "mailmesh_ca"

# The endpoint metadata key that picks an endpoint's own TLS context.
_PEER_KEY = "mailmesh_peer"
# Envoy resource names end up in stat names: keep them to safe characters.
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_DURATION = re.compile(r"^[0-9]+(\.[0-9]+)?s$")
# What a message inside an IMAP response line may hold: printable ASCII, no CR or LF.
_IMAP_TEXT = re.compile(r"^[ -~]+$")
# The gateway's fallback for a store that fails its health checks (profile mesh_egress).
UNAVAILABLE = "store_unavailable"


class SpecError(ValueError):
    """A value in the spec is wrong; the message names the role variable."""


def _safe(name):
    return _UNSAFE.sub("_", str(name))


def _is_ip(address):
    try:
        ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return True


def _require(spec, key, variable):
    value = spec.get(key)
    if value is None or value == "" or value == []:
        raise SpecError("%s must be set (%s)" % (variable, key))
    return value


def _port(value, variable):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SpecError("%s must be a port number, got %r" % (variable, value))
    if not 0 < port < 65536:
        raise SpecError("%s must be a port number between 1 and 65535, got %r" % (variable, value))
    return port


def _positive(value, variable):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpecError("%s must be a positive integer, got %r" % (variable, value))
    if number < 1:
        raise SpecError("%s must be a positive integer, got %r" % (variable, value))
    return number


def _duration(value, variable):
    """Envoy durations are protobuf Durations: seconds with an 's' (``2s``, ``0.5s``)."""
    text = str(value).strip()
    if re.match(r"^[0-9]+(\.[0-9]+)?$", text):
        text += "s"
    m = re.match(r"^([0-9]+)(ms|m|h)$", text)
    if m:
        number, unit = int(m.group(1)), m.group(2)
        text = {"ms": ("%d.%03d" % divmod(number, 1000)).rstrip("0").rstrip(".") + "s",
                "m": "%ds" % (number * 60),
                "h": "%ds" % (number * 3600)}[unit]
    if not _DURATION.match(text):
        raise SpecError("%s must be a duration such as 2s, 500ms, 5m or 1h, got %r"
                        % (variable, value))
    return text


def _socket_address(address, port):
    return {"socket_address": {"address": str(address), "port_value": port}}


def _socket_path(path, variable):
    """An absolute Unix socket path that fits in sockaddr_un (107 bytes and a NUL)."""
    text = str(path)
    if not text.startswith("/") or text.endswith("/") or len(text.encode("utf-8")) > 107:
        raise SpecError("%s must be an absolute file path of at most 107 bytes, got %r"
                        % (variable, path))
    return text


def _admin(spec):
    """Envoy's admin interface on a Unix socket, mode 0600: no TCP port that any local
    user could reach (the admin API can stop Envoy, dump its configuration, change its
    log level)."""
    admin = spec.get("admin") or {}
    path = _socket_path(_require(admin, "socket", "__envoy_admin_socket"),
                        "__envoy_admin_socket")
    return {"address": {"pipe": {"path": path, "mode": ADMIN_SOCKET_MODE}}}


def _stats(spec, limits):
    """The Prometheus listener and its cluster, or (None, None) when turned off.

    An HTTP listener that passes GET /stats/prometheus (any query string) to the admin
    socket and answers 404 to everything else, so a scraper never reaches the rest of
    the admin API (the pattern Istio uses for its port 15090)."""
    stats = spec.get("stats") or {}
    address = stats.get("address")
    if address is None or str(address) == "":
        return None, None
    port = _port(_require(stats, "port", "envoy_stats_port"), "envoy_stats_port")
    manager = {
        "@type": _HCM,
        "stat_prefix": STATS_LISTENER,
        "codec_type": "HTTP1",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "stream_idle_timeout": "10s",
        "request_timeout": "10s",
        "route_config": {
            "name": STATS_LISTENER,
            "virtual_hosts": [{
                "name": STATS_LISTENER,
                "domains": ["*"],
                "routes": [
                    {"match": {"path": STATS_PATH,
                               "headers": [{"name": ":method",
                                            "string_match": {"exact": "GET"}}]},
                     "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"}},
                    {"match": {"prefix": "/"},
                     "direct_response": {
                         "status": 404,
                         "body": {"inline_string": "only GET %s is served here\n"
                                  % STATS_PATH}}},
                ],
            }],
        },
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": _ROUTER}}],
    }
    listener = {
        "name": STATS_LISTENER,
        "address": _socket_address(address, port),
        "per_connection_buffer_limit_bytes": limits["buffer_bytes"],
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": manager}]}],
    }
    cluster = {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "circuit_breakers": {"thresholds": [{"max_connections": 4,
                                             "max_pending_requests": 16,
                                             "max_requests": 4}]},
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "pipe": {"path": _admin(spec)["address"]["pipe"]["path"]}}}}]}],
        },
    }
    return listener, cluster


def _sds_source(path):
    return {
        "path_config_source": {
            "path": path,
            "watched_directory": {"path": os.path.dirname(path)},
        },
        "resource_api_version": "V3",
    }


def _common_tls_context(tls, peer_names):
    """Our certificate and the CA from SDS files; the peer must also carry one of the
    given DNS names."""
    tls_params = {
        "tls_minimum_protocol_version": tls.get("min_version", "TLSv1_3"),
        "tls_maximum_protocol_version": "TLSv1_3",
    }
    if tls.get("cipher_suites"):
        # Applies to TLS 1.2 only; for TLS 1.3 BoringSSL orders ChaCha20 first by itself
        # on CPUs without AES instructions.
        tls_params["cipher_suites"] = list(tls["cipher_suites"])
    return {
        "tls_params": tls_params,
        "tls_certificate_sds_secret_configs": [
            {"name": CERT_SECRET, "sds_config": _sds_source(tls["cert_sds_path"])},
        ],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": str(name)}}
                    for name in peer_names
                ],
            },
            "validation_context_sds_secret_config": {
                "name": CA_SECRET,
                "sds_config": _sds_source(tls["ca_sds_path"]),
            },
        },
    }


def _downstream_tls(tls, peer_names):
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TLS + "DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": _common_tls_context(tls, peer_names),
        },
    }


def _upstream_tls(tls, peer_names, sni=None):
    config = {
        "@type": _TLS + "UpstreamTlsContext",
        "common_tls_context": _common_tls_context(tls, peer_names),
        "max_session_keys": UPSTREAM_SESSION_KEYS,
    }
    if sni:
        config["sni"] = str(sni)
    return {"name": "envoy.transport_sockets.tls", "typed_config": config}


def _tls_per_endpoint(cluster, tls):
    """One TLS context per endpoint of ``cluster`` (transport socket matches on the
    endpoints' metadata). Each context keeps its own sessions, so a session is offered
    only to the peer that issued it (two gateways do not share ticket keys), and trusts
    only that peer's name. The cluster's own context stays the default."""
    matches = []
    for lb_endpoint in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
        name = lb_endpoint["endpoint"]["hostname"]
        lb_endpoint["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {_PEER_KEY: name}}}
        matches.append({"name": "peer_" + _safe(name), "match": {_PEER_KEY: name},
                        "transport_socket": _upstream_tls(tls, [name])})
    cluster["transport_socket_matches"] = matches


def _connection_limit(name, limits):
    return {
        "name": "envoy.filters.network.connection_limit",
        "typed_config": {
            "@type": _CONN_LIMIT,
            "stat_prefix": name,
            "max_connections": limits["listener_connections"],
        },
    }


def _tcp_listener(name, address, port, cluster, limits, timeouts, transport_socket=None):
    proxy = {
        "@type": _TCP_PROXY,
        "stat_prefix": name,
        "cluster": cluster,
        "idle_timeout": timeouts["idle"],
        "max_connect_attempts": timeouts["connect_attempts"],
    }
    if transport_socket:
        # Connect upstream only once the client's certificate has been checked, so a
        # refused client never reaches the backend (IMAP clients send nothing before
        # the greeting, so no early data is lost).
        proxy["upstream_connect_mode"] = "ON_DOWNSTREAM_TLS_HANDSHAKE"
        proxy["max_early_data_bytes"] = 0
    chain = {
        "filters": [
            _connection_limit(name, limits),
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy},
        ],
    }
    if transport_socket:
        chain["transport_socket"] = transport_socket
    return {
        "name": name,
        "address": _socket_address(address, port),
        "per_connection_buffer_limit_bytes": limits["buffer_bytes"],
        "filter_chains": [chain],
    }


def _cluster(name, endpoints, limits, timeouts, transport_socket=None):
    """endpoints: list of (hostname, address, port)."""
    static = all(_is_ip(endpoint[1]) for endpoint in endpoints)
    cluster = {
        "name": name,
        "type": "STATIC" if static else "STRICT_DNS",
        "connect_timeout": timeouts["connect"],
        "lb_policy": "ROUND_ROBIN",
        "per_connection_buffer_limit_bytes": limits["buffer_bytes"],
        "circuit_breakers": {
            "thresholds": [{
                "max_connections": limits["upstream_connections"],
                "max_pending_requests": limits["upstream_connections"],
            }],
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": [
                    {"endpoint": {"address": _socket_address(address, port),
                                  "hostname": str(host)}}
                    for host, address, port in endpoints
                ],
            }],
        },
    }
    if not static:
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if transport_socket:
        cluster["transport_socket"] = transport_socket
    return cluster


def _aggregate(name, members, limits, timeouts):
    """A cluster that sends each connection to the first member with a healthy host."""
    return {
        "name": name,
        "connect_timeout": timeouts["connect"],
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {"@type": _AGGREGATE, "clusters": list(members)},
        },
        "circuit_breakers": {
            "thresholds": [{
                "max_connections": limits["upstream_connections"],
                "max_pending_requests": limits["upstream_connections"],
            }],
        },
    }


def _store_health_check(health):
    """The gateway's check of a store, end to end: TLS to the store's Envoy ingress, which
    passes it to Dovecot's PROXY-protocol listener; healthy when Dovecot greets. A new
    connection each time (Dovecot would take a second PROXY header for a command)."""
    interval = _duration(health.get("interval", "5s"), "envoy_egress_health_check_interval")
    return {
        "timeout": _duration(health.get("timeout", "2s"), "envoy_egress_health_check_timeout"),
        "interval": interval,
        # The gateways' egress is idle between logins: check as often all the same.
        "no_traffic_interval": interval,
        "unhealthy_threshold": _positive(health.get("unhealthy_threshold", 2),
                                         "envoy_egress_health_check_unhealthy_threshold"),
        "healthy_threshold": _positive(health.get("healthy_threshold", 1),
                                       "envoy_egress_health_check_healthy_threshold"),
        "reuse_connection": False,
        "tcp_health_check": {
            "send": {"text": binascii.hexlify(
                b"PROXY TCP4 127.0.0.1 127.0.0.1 1 143\r\n").decode("ascii")},
            "receive": [{"text": binascii.hexlify(b"* OK").decode("ascii")}],
        },
    }


def _unavailable(egress, ports, limits):
    """The loopback listener that answers for a store that is down: one IMAP BYE line
    with the operator's message, then the connection closes. NGINX passes that line to
    the client (proxy_pass_error_message) in place of the store's greeting."""
    port = _port(_require(egress, "unavailable_port", "envoy_egress_unavailable_port"),
                 "envoy_egress_unavailable_port")
    address = _require(egress, "listen_address", "envoy_egress_listen_address")
    taken = dict((entry["port"], store) for store, entry in ports.items())
    if port in taken:
        raise SpecError("envoy_egress_unavailable_port %d is the egress port of store %s "
                        "(envoy_egress_base_port and up, one per store): choose a port "
                        "outside that range" % (port, taken[port]))
    message = str(_require(egress, "unavailable_message", "envoy_egress_unavailable_message"))
    if not _IMAP_TEXT.match(message):
        raise SpecError("envoy_egress_unavailable_message must be one line of printable "
                        "ASCII (it is sent in an IMAP response), got %r" % message)
    listener = {
        "name": UNAVAILABLE,
        "address": _socket_address(address, port),
        "per_connection_buffer_limit_bytes": limits["buffer_bytes"],
        "filter_chains": [{"filters": [
            _connection_limit(UNAVAILABLE, limits),
            {"name": "envoy.filters.network.direct_response",
             "typed_config": {
                 "@type": _DIRECT_RESPONSE,
                 "response": {"inline_string": "* BYE [UNAVAILABLE] %s\r\n" % message},
             }},
        ]}],
    }
    return {"address": address, "port": port, "listener": listener}


def _limits(spec):
    limits = spec.get("limits") or {}
    return {
        "buffer_bytes": _positive(_require(limits, "buffer_bytes", "envoy_buffer_limit_bytes"),
                                  "envoy_buffer_limit_bytes"),
        "listener_connections": _positive(
            _require(limits, "listener_connections", "envoy_listener_max_connections"),
            "envoy_listener_max_connections"),
        "upstream_connections": _positive(
            _require(limits, "upstream_connections", "envoy_listener_max_connections"),
            "envoy_listener_max_connections"),
        "downstream_connections": _positive(
            _require(limits, "downstream_connections", "envoy_max_downstream_connections"),
            "envoy_max_downstream_connections"),
        "heap_bytes": _positive(_require(limits, "heap_bytes", "envoy_max_heap_mb"),
                                "envoy_max_heap_mb"),
    }


def _timeouts(spec):
    timeouts = spec.get("timeouts") or {}
    return {
        "connect": _duration(_require(timeouts, "connect", "envoy_connect_timeout"),
                             "envoy_connect_timeout"),
        "idle": _duration(_require(timeouts, "idle", "envoy_idle_timeout"), "envoy_idle_timeout"),
        "connect_attempts": _positive(
            _require(timeouts, "connect_attempts", "envoy_connect_attempts"),
            "envoy_connect_attempts"),
    }


def _overload_manager(limits):
    heap = "envoy.resource_monitors.fixed_heap"
    conns = "envoy.resource_monitors.global_downstream_max_connections"
    return {
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {"name": heap,
             "typed_config": {"@type": _FIXED_HEAP, "max_heap_size_bytes": limits["heap_bytes"]}},
            {"name": conns,
             "typed_config": {"@type": _DOWNSTREAM_CONNS,
                              "max_active_downstream_connections":
                                  limits["downstream_connections"]}},
        ],
        "actions": [
            {"name": "envoy.overload_actions.shrink_heap",
             "triggers": [{"name": heap, "threshold": {"value": 0.9}}]},
            {"name": "envoy.overload_actions.stop_accepting_connections",
             "triggers": [{"name": heap, "threshold": {"value": 0.95}}]},
        ],
    }


def _peers(value, variable, default_port):
    """A list of names, or of dicts {name, address, port}, as (name, address, port)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError("%s must be a non-empty list, got %r" % (variable, value))
    peers = []
    for item in value:
        if isinstance(item, dict):
            name = item.get("name")
            if not name:
                raise SpecError("%s: every entry needs a name, got %r" % (variable, item))
            address = item.get("address") or name
            port = _port(item.get("port", default_port), variable)
        else:
            name = address = str(item)
            port = default_port
        peers.append((str(name), str(address), port))
    return peers


def peer_addresses(peers, variable="envoy_edge_gateways"):
    """The addresses of a peer list (names, or dicts with name/address), in order."""
    return [peer[1] for peer in _peers(peers, variable, 1)]


def egress_ports(stores, base_port, address="127.0.0.1"):
    """Loopback listener of the gateway's Envoy per mail store: {store: {address, port}}.

    Ports are assigned in sorted order of the store names, so Envoy and NGINX (which
    both call this with the same inventory group) agree.
    """
    base = _port(base_port, "envoy_egress_base_port")
    names = sorted(set(str(s) for s in stores or []))
    if base + len(names) - 1 > 65535:
        raise SpecError("envoy_egress_base_port %d leaves no room for %d stores" % (base, len(names)))
    return dict((name, {"address": address, "port": base + index})
                for index, name in enumerate(names))


def build_bootstrap(spec):
    """The whole bootstrap for ``spec['profile']`` (see the role's argument specs)."""
    profile = spec.get("profile")
    if profile not in PROFILES:
        raise SpecError("envoy_profile must be one of %s, got %r" % (", ".join(PROFILES), profile))
    limits = _limits(spec)
    timeouts = _timeouts(spec)
    tls = spec.get("tls") or {}
    for key, variable in (("cert_sds_path", "envoy_config_dir"), ("ca_sds_path", "envoy_config_dir")):
        if not str(_require(tls, key, variable)).startswith("/"):
            raise SpecError("%s must be an absolute path, got %r" % (variable, tls[key]))
    admin = _admin(spec)

    listeners, clusters = [], []
    if profile == "edge":
        edge = spec.get("edge") or {}
        gateways = _peers(edge.get("gateways"), "envoy_edge_gateways",
                          _port(_require(edge, "gateway_port", "envoy_edge_gateway_port"),
                                "envoy_edge_gateway_port"))
        names = [peer[0] for peer in gateways]
        cluster = _cluster("gateways", list(gateways), limits, timeouts,
                           _upstream_tls(tls, names))
        _tls_per_endpoint(cluster, tls)
        health = edge.get("health_check") or {}
        cluster["health_checks"] = [{
            "timeout": _duration(health.get("timeout", "1s"), "envoy_edge_health_check_timeout"),
            "interval": _duration(health.get("interval", "2s"),
                                  "envoy_edge_health_check_interval"),
            "unhealthy_threshold": _positive(health.get("unhealthy_threshold", 2),
                                             "envoy_edge_health_check_unhealthy_threshold"),
            "healthy_threshold": _positive(health.get("healthy_threshold", 1),
                                           "envoy_edge_health_check_healthy_threshold"),
            # The IMAP greeting proves TLS, NGINX and its certificate check all work.
            "tcp_health_check": {
                "receive": [{"text": binascii.hexlify(b"* OK").decode("ascii")}],
            },
        }]
        outlier = edge.get("outlier_detection") or {}
        cluster["outlier_detection"] = {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": _positive(
                outlier.get("consecutive_failures", 3),
                "envoy_edge_outlier_consecutive_failures"),
            "interval": "5s",
            "base_ejection_time": _duration(outlier.get("base_ejection_time", "10s"),
                                            "envoy_edge_outlier_base_ejection_time"),
            "max_ejection_percent": 100,
        }
        # Send nothing to a gateway that failed its checks, even when few are left.
        cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
        clusters.append(cluster)
        listeners.append(_tcp_listener(
            "edge_imap",
            _require(edge, "listen_address", "envoy_edge_listen_address"),
            _port(_require(edge, "listen_port", "envoy_edge_listen_port"),
                  "envoy_edge_listen_port"),
            "gateways", limits, timeouts))
    elif profile == "mesh_egress":
        egress = spec.get("egress") or {}
        stores = _peers(egress.get("stores"), "envoy_egress_stores",
                        _port(_require(egress, "store_port", "envoy_ingress_port"),
                              "envoy_ingress_port"))
        ports = egress_ports([peer[0] for peer in stores],
                             _require(egress, "base_port", "envoy_egress_base_port"),
                             _require(egress, "listen_address", "envoy_egress_listen_address"))
        safe_names = [_safe(peer[0]) for peer in stores]
        if len(set(safe_names)) != len(safe_names):
            raise SpecError("envoy_egress_stores has names that repeat, or that differ only in "
                            "characters other than letters, digits and '_': %r"
                            % [peer[0] for peer in stores])
        unavailable = _unavailable(egress, ports, limits)
        health = _store_health_check(egress.get("health_check") or {})
        for name, address, port in sorted(stores):
            cluster_name = "store_" + _safe(name)
            cluster = _cluster(cluster_name, [(name, address, port)], limits, timeouts,
                               _upstream_tls(tls, [name], sni=name))
            cluster["health_checks"] = [health]
            # A store that failed its checks gets no connection, even as the only host.
            cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
            clusters.append(cluster)
            clusters.append(_aggregate("to_" + cluster_name, [cluster_name, UNAVAILABLE],
                                       limits, timeouts))
            listeners.append(_tcp_listener(
                "egress_" + _safe(name), ports[name]["address"], ports[name]["port"],
                "to_" + cluster_name, limits, timeouts))
        clusters.append(_cluster(UNAVAILABLE, [(UNAVAILABLE, unavailable["address"],
                                                unavailable["port"])], limits, timeouts))
        listeners.append(unavailable["listener"])
    else:
        ingress = spec.get("ingress") or {}
        peers = ingress.get("allowed_peers")
        if not isinstance(peers, (list, tuple)) or not peers:
            raise SpecError("envoy_ingress_allowed_peers must be a non-empty list of the "
                            "gateways' names, got %r" % (peers,))
        clusters.append(_cluster(
            "mailstore",
            [("mailstore",
              _require(ingress, "backend_address", "envoy_ingress_backend_address"),
              _port(_require(ingress, "backend_port", "envoy_ingress_backend_port"),
                    "envoy_ingress_backend_port"))],
            limits, timeouts))
        listeners.append(_tcp_listener(
            "ingress_imap",
            _require(ingress, "listen_address", "envoy_ingress_listen_address"),
            _port(_require(ingress, "listen_port", "envoy_ingress_port"), "envoy_ingress_port"),
            "mailstore", limits, timeouts, _downstream_tls(tls, [str(p) for p in peers])))

    stats_listener, admin_cluster = _stats(spec, limits)
    if stats_listener:
        listeners.append(stats_listener)
        clusters.append(admin_cluster)

    return {
        "node": {"id": str(_require(spec, "node_id", "inventory_hostname")),
                 "cluster": "mailmesh_" + profile},
        "admin": admin,
        "overload_manager": _overload_manager(limits),
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def build_sds_secret(kind, files):
    """The SDS file for our certificate (kind ``cert``) or the trusted CA (``ca``).

    Envoy re-reads the files when one is moved into their watched directory, which is
    how vault_pki_cert writes them (temporary file, then rename).
    """
    if kind == "cert":
        secret = {
            "name": CERT_SECRET,
            "tls_certificate": {
                "certificate_chain": {"filename": files["fullchain"]},
                "private_key": {"filename": files["key"]},
                "watched_directory": {"path": os.path.dirname(files["fullchain"])},
            },
        }
    elif kind == "ca":
        secret = {
            "name": CA_SECRET,
            "validation_context": {
                "trusted_ca": {"filename": files["ca"]},
                "watched_directory": {"path": os.path.dirname(files["ca"])},
            },
        }
    else:
        raise SpecError("kind must be cert or ca, got %r" % (kind,))
    secret["@type"] = _SECRET
    return {"resources": [secret]}


def name_variables_in_error(error, variables):
    """The names of role variables whose value appears in an error message from Envoy.

    ``variables`` maps variable names to values; lists count when any item appears.
    Short or very common values (booleans, one- or two-character strings) never match.
    """
    text = str(error)
    found = []
    for name, value in sorted(variables.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool) or item is None or isinstance(item, dict):
                continue
            item = str(item)
            if len(item) >= 3 and item in text:
                found.append(name)
                break
    return found
