# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters the dovecot role's vars call (documented in the ``<filter>.yml`` sidecar
files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.mailmesh.imap.plugins.plugin_utils._role_vars import jinja_text, sentences


def _distinct(values):
    """How many ``values | unique`` gives: strings compared without case, as Ansible's
    unique filter does when it is not told otherwise."""
    return len(set(value.lower() if isinstance(value, str) else value for value in values))


def dovecot_input_problems(spec):
    """What tasks/preflight.yml refuses after the password hashes, one sentence per
    problem; empty when there is none. spec: users, bad_names, imaps_port,
    imap_loopback_port, proxy_port, os_family, host."""
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
