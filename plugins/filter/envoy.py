# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters that build Envoy configuration as data (documented in the ``<filter>.yml``
sidecar files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.plugin_utils._envoy_bootstrap import (
    SpecError,
    build_bootstrap,
    build_sds_secret,
    egress_ports,
    name_variables_in_error,
    peer_addresses,
)


def _plain(value):
    """Ansible hands lazy/tagged containers to filters: make them plain Python."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def envoy_bootstrap(spec, problems=()):
    # What the caller found wrong in its input first: the role's checks of the profile,
    # the tiers and the install method (one message, before anything is built).
    problems = [str(problem) for problem in _plain(problems or [])]
    if problems:
        raise AnsibleFilterError("envoy_bootstrap: %s" % " ".join(problems))
    try:
        return build_bootstrap(_plain(spec))
    except SpecError as exc:
        raise AnsibleFilterError("envoy_bootstrap: %s" % exc)


def envoy_sds_secret(files, kind):
    try:
        return build_sds_secret(kind, _plain(files))
    except (SpecError, KeyError) as exc:
        raise AnsibleFilterError("envoy_sds_secret: %s" % exc)


def envoy_egress_ports(stores, base_port, address="127.0.0.1"):
    try:
        return egress_ports(_plain(stores), base_port, address)
    except SpecError as exc:
        raise AnsibleFilterError("envoy_egress_ports: %s" % exc)


def envoy_peer_addresses(peers):
    try:
        return peer_addresses(_plain(peers))
    except SpecError as exc:
        raise AnsibleFilterError("envoy_peer_addresses: %s" % exc)


def envoy_error_variables(error, variables):
    return name_variables_in_error(error, _plain(variables))


class FilterModule(object):
    """mailmesh.imap Envoy filters."""

    def filters(self):
        return {
            "envoy_bootstrap": envoy_bootstrap,
            "envoy_sds_secret": envoy_sds_secret,
            "envoy_egress_ports": envoy_egress_ports,
            "envoy_error_variables": envoy_error_variables,
            "envoy_peer_addresses": envoy_peer_addresses,
        }
