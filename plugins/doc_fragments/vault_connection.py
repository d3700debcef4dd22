# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors CONNECTION_ARGSPEC in plugins/module_utils/_vault.py.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - URL of the Vault or OpenBao server, for example C(https://vault1:8200).
    type: str
    required: true
  ca_cert:
    description:
      - Path to a PEM file with the CA certificate(s) used to verify the server.
      - The system trust store is used when omitted.
    type: path
    aliases: [cacert]
  validate_certs:
    description:
      - Verify the server's TLS certificate. Only switch this off for a throw-away test.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each request.
    type: int
    default: 30
  namespace:
    description:
      - Vault namespace (Vault Enterprise or OpenBao namespaces).
    type: str
requirements:
  - hvac (Debian's C(python3-hvac) is enough)
"""
