# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors AUTH_ARGSPEC in plugins/module_utils/_vault.py.
    DOCUMENTATION = r"""
options:
  auth_method:
    description:
      - How to log in to Vault.
      - C(token) uses O(token); C(approle) uses O(role_id) and O(secret_id);
        C(cert) presents O(cert_auth_public_key) and O(cert_auth_private_key).
      - A token found in the environment (E(VAULT_TOKEN), C(~/.vault-token)) is never used.
    type: str
    choices: [approle, cert, token]
    default: token
  token:
    description:
      - Vault token, for O(auth_method=token).
    type: str
  role_id:
    description:
      - AppRole role ID, for O(auth_method=approle).
    type: str
  secret_id:
    description:
      - AppRole secret ID, for O(auth_method=approle).
    type: str
  approle_mount_point:
    description:
      - Mount point of the AppRole auth method.
    type: str
    default: approle
  cert_auth_public_key:
    description:
      - Path to the client certificate (PEM), for O(auth_method=cert).
    type: path
  cert_auth_private_key:
    description:
      - Path to the client certificate's private key (PEM), for O(auth_method=cert).
    type: path
  cert_auth_mount_point:
    description:
      - Mount point of the TLS certificate auth method.
    type: str
    default: cert
  cert_auth_role:
    description:
      - Name of the certificate role to log in against; Vault tries all when omitted.
    type: str
"""
