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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_auth import (
    AUTH_METHODS,
    AuthError,
)

try:
    import hvac
    import hvac.exceptions
except ImportError:
    HVAC_IMPORT_ERROR = traceback.format_exc()
    hvac = None
else:
    HVAC_IMPORT_ERROR = None

try:
    import requests.exceptions
except ImportError:  # requests comes with hvac; without hvac we fail earlier
    requests = None

__all__ = ["VaultModule", "VaultModuleError", "CONNECTION_ARGSPEC", "AUTH_ARGSPEC"]


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
        super(VaultModule, self).__init__(*args, **kwargs)
        if hvac is None:
            self.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)
        self._client = None

    @staticmethod
    def generate_argspec(**own_options):
        argspec = dict(CONNECTION_ARGSPEC)
        argspec.update(AUTH_ARGSPEC)
        argspec.update(own_options)
        return argspec

    @property
    def url(self):
        return self.params["url"].rstrip("/")

    def _verify(self):
        if not self.params["validate_certs"]:
            return False
        return self.params["ca_cert"] or True

    def unauthenticated_client(self, **extra):
        """An hvac client that carries no token at all.

        hvac reads VAULT_TOKEN and ~/.vault-token when no token is given; an empty
        token stops that, so nothing from the environment is used unless asked for.
        """
        return hvac.Client(
            url=self.url,
            token="",
            verify=self._verify(),
            timeout=self.params["timeout"],
            namespace=self.params["namespace"],
            **extra
        )

    def client(self):
        """Authenticated hvac client (cached), or fail_json with a clear message."""
        if self._client is not None:
            return self._client
        method_cls = AUTH_METHODS[self.params["auth_method"]]
        method = method_cls(self.params)
        try:
            method.validate()
        except AuthError as exc:
            self.fail_json(msg=str(exc))
        client = self.unauthenticated_client(**method.client_kwargs())
        try:
            method.authenticate(client)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail_vault(exc, "logging in with auth_method=%s" % method.name)
        self._client = client
        return client

    def vault_error(self, exc, what):
        """Phrase an exception from hvac or requests as one sentence for the user."""
        where = "Vault at %s" % self.url
        if requests is not None and isinstance(exc, requests.exceptions.SSLError):
            return (
                "TLS verification of %s failed while %s: %s. Point ca_cert at the CA "
                "that signed the server's certificate." % (where, what, exc)
            )
        if requests is not None and isinstance(
            exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
        ):
            return "%s is unreachable while %s: %s" % (where, what, exc)
        if isinstance(exc, hvac.exceptions.VaultDown):
            return "%s is sealed (or not ready) while %s: %s" % (where, what, _errors(exc))
        if isinstance(exc, hvac.exceptions.Forbidden):
            return "permission denied by %s while %s: %s" % (where, what, _errors(exc))
        if isinstance(exc, hvac.exceptions.Unauthorized):
            return "%s refused the credentials while %s: %s" % (where, what, _errors(exc))
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return "%s has no such path while %s: %s" % (where, what, _errors(exc))
        if isinstance(exc, hvac.exceptions.VaultError):
            return "%s rejected the request while %s: %s" % (where, what, _errors(exc))
        return "unexpected error talking to %s while %s: %s" % (where, what, exc)

    def fail_vault(self, exc, what, **result):
        self.fail_json(msg=self.vault_error(exc, what), **result)


def _errors(exc):
    errors = getattr(exc, "errors", None)
    if errors:
        # Vault wraps errors as "1 error occurred:\n\t* permission denied\n\n":
        # keep the message on one line.
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return str(exc) or exc.__class__.__name__
