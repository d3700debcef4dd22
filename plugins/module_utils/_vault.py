# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""One base class for every Vault module of the collection.

``VaultModule.generate_argspec(**own_options)`` merges the shared connection and auth
options (documented by the ``mailmesh.imap.vault_connection`` and
``mailmesh.imap.vault_auth`` doc fragments) with a module's own. ``client()`` returns an
authenticated hvac client; ``vault_error()`` turns any failure into a message that names
the Vault address and the cause.

The connection itself is ``_vault_client.VaultConnection`` (no Ansible imports: the
on-host certificate renewal uses it too); this class adds the argument spec and turns
its failures into ``fail_json``. hvac (and with it requests) is imported on first use:
about 60 ms on amd64, most of a second on a Raspberry Pi. A module that may get by
without it (``vault_pki_cert``, whose re-run only reads the issuing CA) passes
``hvac_required=False`` and reads with ``unauthenticated_get()``, which uses the
standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_auth import (
    AUTH_METHODS,
    AuthError,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_client import (
    MissingLibraryError,
    VaultConnection,
    VaultHTTPError,
)

__all__ = ["VaultModule", "VaultModuleError", "VaultHTTPError", "CONNECTION_ARGSPEC", "AUTH_ARGSPEC"]


CONNECTION_ARGSPEC = dict(
    url=dict(type="str", required=True),
    ca_cert=dict(type="path", aliases=["cacert"]),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=30),
    namespace=dict(type="str"),
)

AUTH_ARGSPEC = dict(
    auth_method=dict(type="str", default="token", choices=sorted(AUTH_METHODS)),
    token=dict(type="str", no_log=True),
    role_id=dict(type="str"),
    secret_id=dict(type="str", no_log=True),
    approle_mount_point=dict(type="str", default="approle"),
    cert_auth_public_key=dict(type="path"),
    cert_auth_private_key=dict(type="path", no_log=False),
    cert_auth_mount_point=dict(type="str", default="cert"),
    cert_auth_role=dict(type="str"),
)


class VaultModuleError(Exception):
    """A failure already phrased for the user."""


class VaultModule(AnsibleModule):
    """AnsibleModule with a Vault connection; see the module docstring."""

    def __init__(self, *args, **kwargs):
        """``hvac_required=False``: fail for a missing hvac only when a client is made."""
        hvac_required = kwargs.pop("hvac_required", True)
        super(VaultModule, self).__init__(*args, **kwargs)
        # Reads self.params when used: options filled in later (approle_file) count.
        self.connection = VaultConnection(self.params)
        if hvac_required:
            self.hvac()

    def hvac(self):
        """The hvac package (imported now if not yet), or fail_json when it is missing."""
        try:
            return self.connection.hvac()
        except MissingLibraryError as exc:
            self.fail_json(msg=missing_required_lib(exc.library), exception=exc.trace)
        return None

    @staticmethod
    def generate_argspec(**own_options):
        argspec = dict(CONNECTION_ARGSPEC)
        argspec.update(AUTH_ARGSPEC)
        argspec.update(own_options)
        return argspec

    @property
    def url(self):
        return self.connection.url

    def unauthenticated_client(self, **extra):
        """An hvac client that carries no token at all (none from the environment either)."""
        self.hvac()
        return self.connection.unauthenticated_client(**extra)

    def client(self):
        """Authenticated hvac client (cached), or fail_json with a clear message."""
        self.hvac()
        try:
            return self.connection.client()
        except AuthError as exc:
            self.fail_json(msg=str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            method = self.params.get("auth_method") or "token"
            self.fail_vault(exc, "logging in with auth_method=%s" % method)
        return None

    def unauthenticated_get(self, path, **client_kwargs):
        """GET ``/v1/<path>`` with no token, with the standard library only
        (``VaultConnection.unauthenticated_get``)."""
        return self.connection.unauthenticated_get(path, **client_kwargs)

    def vault_error(self, exc, what):
        """Phrase an exception from hvac, requests or the standard library as one sentence."""
        return self.connection.vault_error(exc, what)

    def fail_vault(self, exc, what, **result):
        self.fail_json(msg=self.vault_error(exc, what), **result)
