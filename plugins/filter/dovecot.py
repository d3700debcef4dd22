# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters the dovecot role's vars call (documented in the ``<filter>.yml`` sidecar
files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import jinja_int, jinja_text, sentences


def _distinct(values):
    """How many ``values | unique`` gives: strings compared without case, as Ansible's
    unique filter does when it is not told otherwise."""
    return len(set(value.lower() if isinstance(value, str) else value for value in values))


def _listen_address(value):
    """True for what the direct IMAPS listener may bind to: "*", "::" or one IP address."""
    if not isinstance(value, str):
        return False
    if value in ("*", "::"):
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def dovecot_input_problems(spec):
    """What tasks/preflight.yml refuses after the password hashes, one sentence per
    problem; empty when there is none. spec: users, bad_names, imaps, listen,
    imaps_port, imap_loopback_port, proxy_port, auth_failure_delay, os_family, host."""
    try:
        names = [user.get("name") for user in spec["users"]]
        bad_names = spec["bad_names"]
        found = []
        if len(bad_names) > 0 or _distinct(names) != len(names):
            found.append("dovecot_users: user names must be unique and contain no ':', '/' or white space "
                         "(offending: %s)." % (", ".join(to_text(name, nonstring="simplerepr") for name in bad_names) or "none"))
        ports = [spec["imaps_port"], spec["imap_loopback_port"], spec["proxy_port"]]
        if _distinct(ports) != 3:
            found.append("dovecot_imaps_port (%s), dovecot_imap_loopback_port (%s) and dovecot_proxy_port (%s) "
                         "must differ." % tuple(jinja_text(port) for port in ports))
        listen = spec["listen"]
        if not isinstance(listen, list) or not all(_listen_address(address) for address in listen):
            found.append("dovecot_listen must be a list of IP addresses, \"*\" (every IPv4 address) or "
                         "\"::\" (every IPv6 address); it is %s." % to_text(listen, nonstring="simplerepr"))
        elif boolean(spec["imaps"], strict=False) and len(listen) == 0:
            found.append("dovecot_imaps is on but dovecot_listen is empty: name the addresses the direct "
                         "IMAPS listener binds to (the store's address on its direct clients' network, or "
                         "\"*\" and \"::\" for every address), or leave dovecot_imaps off so that "
                         "clients come through the gateways.")
        if not 1 <= jinja_int(spec["auth_failure_delay"]) <= 15:
            found.append("dovecot_auth_failure_delay must be a whole number of seconds from 1 to 15 "
                         "(it is %s)." % jinja_text(spec["auth_failure_delay"]))
        if spec["os_family"] != "Debian":
            found.append("dovecot supports Debian-family hosts; %s is %s."
                         % (jinja_text(spec["host"]), jinja_text(spec["os_family"])))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("dovecot_input_problems: %s %s" % (type(exc).__name__, exc))
    return sentences(found)


class FilterModule(object):
    """mailmesh.imap dovecot filters."""

    def filters(self):
        return {"dovecot_input_problems": dovecot_input_problems}
