# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters the nginx_mail role's vars call (documented in the ``<filter>.yml`` sidecar
files): the mail stores as the gateway reaches them, the files the role keeps for
``mailmesh.imap.host_state``, and the preflight's messages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import (
    jinja_int,
    jinja_text,
    json_text,
    matches,
    sentences,
    text_sha256,
)

# An IPv4 address, or something shaped like an IPv6 address: what NGINX's auth_http
# answer (Auth-Server) accepts.
IP_PATTERN = r"^([0-9]{1,3}\.){3}[0-9]{1,3}$|^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*$"
# nginx_mail_user_map: an inventory host name, and a login that can stand between double
# quotes in NGINX's map. (A backslash passes: the role's check has always let it through,
# though its message names it.)
STORE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
LOGIN_PATTERN = r'^[^\s";{}]+$'


def _truthy(value):
    """A boolean as Ansible passes it from a variable (a bool, or its text)."""
    return value is True or to_text(value, nonstring="simplerepr").strip().lower() in ("true", "yes", "1", "on")


def _hostvars_of(hostvars, name):
    """``hostvars[name] | default({})``."""
    return hostvars[name] if name in hostvars else {}


def nginx_mail_stores(stores, overrides, hostvars, default_port):
    """Each store's name, address and port, as auth_http hands them to NGINX.

    The address: the override's, else the host's ansible_host when it is an IP address,
    else its default IPv4 address from facts ('' while unknown). The port: the
    override's, else the host's dovecot_proxy_port, else default_port.
    """
    result = []
    for store in stores:
        override = overrides.get(store, {})
        host_vars = _hostvars_of(hostvars, store)
        host = to_text(host_vars.get("ansible_host", ""), nonstring="simplerepr")
        fact = (host_vars.get("ansible_facts", {}).get("default_ipv4", {}) or {}).get("address", "")
        address = override.get("address") or (host if matches(host, IP_PATTERN) else fact)
        port = override.get("port") or host_vars.get("dovecot_proxy_port") or default_port
        result.append({"name": store, "address": to_text(address, nonstring="simplerepr"),
                       "port": jinja_int(port)})
    return result


def nginx_mail_state_files(files, texts, staging_dir, live_dir, subdir):
    """What tasks/configure.yml and service.yml keep: both trees, the files by sha256,
    and in the subdirectory of each tree no file the role no longer renders."""
    entries = [posixpath.basename(name) for name in files if name.startswith(subdir + "/")]
    result = [
        {"path": staging_dir, "state": "directory", "owner": "root", "group": "root", "mode": "0700"},
        {"path": "%s/%s" % (staging_dir, subdir), "state": "directory", "owner": "root", "group": "root",
         "mode": "0700", "entries": list(entries)},
        {"path": "%s/%s" % (live_dir, subdir), "state": "directory", "owner": "root", "group": "root",
         "mode": "0755", "entries": list(entries)},
    ]
    for name in files:
        if name not in texts:
            raise AnsibleFilterError("nginx_mail_state_files: no text rendered for %s" % name)
        sha256 = text_sha256(texts[name])
        for tree in (staging_dir, live_dir):
            result.append({"path": "%s/%s" % (tree, name), "sha256": sha256, "owner": "root", "group": "root",
                           "mode": "0644"})
    return result


# NGINX's size syntax (ngx_parse_size): a number of bytes, k or m.
SIZE_PATTERN = r"^[0-9]+[kKmM]?$"
# The smallest imap_client_buffer that holds the largest RFC 2971 ID of plain quoted
# strings: 30 pairs of a 30-octet field and a 1024-octet value, quoted, in one line.
IMAP_CLIENT_BUFFER_MIN = 32 * 1024
# Capabilities NGINX must not advertise before login: ID (it answers BAD), LITERAL+ and
# LITERAL- (a non-synchronizing literal in a command NGINX does not know closes the
# connection).
PRE_LOGIN_REFUSED_CAPABILITIES = ("ID", "LITERAL+", "LITERAL-")


def nginx_size(value):
    """Bytes of an NGINX size ("64k", "1m", "65536"); None when it is not one."""
    text = to_text(value, nonstring="simplerepr").strip()
    if not matches(text, SIZE_PATTERN):
        return None
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmM"), 10) * scale


def nginx_mail_input_problems(stores, max_attempts, delay, burst, user_map, allow_unknown_stores=True,
                              client_buffer=None, capabilities=None):
    """What the preflight refuses before the stores' facts, one sentence per problem.

    A login mapped to a store that is not in ``stores`` is refused unless
    ``allow_unknown_stores`` (its users then get a clean NO until the store exists)."""
    if not isinstance(user_map, Mapping):
        raise AnsibleFilterError("nginx_mail_input_problems: nginx_mail_user_map must be a dictionary")
    found = []
    if len(stores) == 0:
        found.append("nginx_mail_upstream_stores is empty: put the mail stores in the inventory group "
                     "mailstores (the default) or list their inventory names.")
    if not 2 <= jinja_int(max_attempts) <= 10 or jinja_int(delay) > jinja_int(burst):
        found.append("nginx_mail_auth_max_attempts must be between 2 and 10 (it is %s) and "
                     "nginx_mail_auth_delay (%s) must not exceed nginx_mail_auth_burst (%s)."
                     % (jinja_text(max_attempts), jinja_text(delay), jinja_text(burst)))
    for login, store in user_map.items():
        if not isinstance(store, str) or not matches(store, STORE_PATTERN) or not matches(login, LOGIN_PATTERN):
            found.append("nginx_mail_user_map: %s -> %s: expected a login without blanks, quotes, "
                         "backslashes, ';' or braces, mapped to an inventory host name."
                         % (json_text(login), json_text(store)))
    if not _truthy(allow_unknown_stores):
        unknown = sorted(set(store for store in user_map.values() if isinstance(store, str) and matches(store, STORE_PATTERN)
                             and store not in stores))
        for store in unknown:
            logins = sorted(to_text(login, nonstring="simplerepr") for login, target in user_map.items() if target == store)
            found.append("nginx_mail_user_map sends %s to %s, which is not in nginx_mail_upstream_stores (%s): "
                         "fix the store's name, add the store to the inventory group mailstores, or set "
                         "nginx_mail_user_map_allow_unknown_stores to true to answer its users NO until it exists."
                         % (", ".join(logins), store, ", ".join(to_text(name) for name in stores) or "none"))
    if client_buffer is not None:
        size = nginx_size(client_buffer)
        if size is None or size < IMAP_CLIENT_BUFFER_MIN:
            found.append("nginx_mail_imap_client_buffer must be a size NGINX reads (65536, 64k, 1m) of at least "
                         "32k, to hold the largest ID command a client may send before login (RFC 2971); it is %s."
                         % json_text(client_buffer))
    refused = sorted(set(to_text(capability, nonstring="simplerepr").upper() for capability in capabilities or [])
                     & set(PRE_LOGIN_REFUSED_CAPABILITIES))
    if refused:
        found.append("nginx_mail_imap_capabilities must not list %s: NGINX answers ID with BAD, and closes the "
                     "connection on a non-synchronizing literal (LITERAL+, LITERAL-) in a command it does not "
                     "know. Remove them; after login the store's own list comes through."
                     % ", ".join(refused))
    return sentences(found)


# The dovecot role's default for dovecot_proxy_address: the stores' PROXY listener on
# loopback, for an Envoy ingress in front of it.
DOVECOT_PROXY_ADDRESS_DEFAULT = "127.0.0.1"


def _loopback(address):
    """True for an address only the host itself reaches."""
    text = to_text(address, nonstring="simplerepr").strip().strip("[]")
    return text.startswith("127.") or text in ("::1", "localhost")


def nginx_mail_store_problems(stores, verify_client, client_certificate, overrides=None, hostvars=None):
    """What the preflight refuses after the stores' facts, one sentence per problem.

    With overrides and hostvars: a store of the inventory that NGINX would reach directly
    (no override) while its Dovecot PROXY listener is on loopback (its
    dovecot_proxy_address, the dovecot role's default 127.0.0.1 when unset)."""
    found = []
    for store in stores:
        name = store["name"]
        if hostvars is None or name in (overrides or {}) or name not in hostvars:
            continue
        proxy_address = _hostvars_of(hostvars, name).get("dovecot_proxy_address", DOVECOT_PROXY_ADDRESS_DEFAULT)
        if _loopback(proxy_address):
            found.append("mail store %s: its Dovecot PROXY listener is on loopback (dovecot_proxy_address %s), so "
                         "the gateways cannot reach it directly. Carry the gateways' connections with Envoy "
                         "(an egress here, nginx_mail_upstream_overrides['%s'], and an ingress on the store), "
                         "or set dovecot_proxy_address for %s to an address the gateways reach."
                         % (jinja_text(name), json_text(proxy_address), jinja_text(name), jinja_text(name)))
    for store in stores:
        address, port = store["address"], store["port"]
        if len(address) == 0 or not matches(address, IP_PATTERN) or port <= 0 or port >= 65536:
            found.append("mail store %s: no usable IP address (%s) or port (%s). Set its ansible_host "
                         "to an IP address, let the role gather its facts, or set "
                         "nginx_mail_upstream_overrides['%s']."
                         % (jinja_text(store["name"]), json_text(address), jinja_text(port),
                            jinja_text(store["name"])))
    if verify_client != "off" and len(client_certificate) == 0:
        found.append("nginx_mail_ssl_verify_client needs nginx_mail_ssl_client_certificate (a CA bundle path).")
    return sentences(found)


class FilterModule(object):
    """mailmesh.imap nginx_mail filters."""

    def filters(self):
        return {
            "nginx_mail_stores": nginx_mail_stores,
            "nginx_mail_state_files": nginx_mail_state_files,
            "nginx_mail_input_problems": nginx_mail_input_problems,
            "nginx_mail_store_problems": nginx_mail_store_problems,
        }
