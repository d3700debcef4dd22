# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Vault authentication strategies: one small class per auth method.

Each strategy knows the options it needs (``validate``) and how to turn them into a
token on an hvac client (``authenticate``). Adding a method is one class and one entry
in ``AUTH_METHODS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["AUTH_METHODS", "AuthError", "ApproleAuth", "CertAuth", "TokenAuth"]


class AuthError(Exception):
    """Auth options are incomplete or inconsistent (a user error, not a Vault error)."""


class _AuthMethod:
    name = ""
    required = ()

    def __init__(self, params):
        self.params = params

    def validate(self):
        missing = [opt for opt in self.required if not self.params.get(opt)]
        if missing:
            raise AuthError(
                "auth_method=%s requires %s" % (self.name, ", ".join(missing))
            )

    def client_kwargs(self):
        """Extra keyword arguments for ``hvac.Client`` (e.g. a TLS client certificate)."""
        return {}

    def authenticate(self, client):
        raise NotImplementedError


class TokenAuth(_AuthMethod):
    name = "token"
    required = ("token",)

    def authenticate(self, client):
        client.token = self.params["token"]


class ApproleAuth(_AuthMethod):
    name = "approle"
    required = ("role_id", "secret_id")

    def authenticate(self, client):
        client.auth.approle.login(
            role_id=self.params["role_id"],
            secret_id=self.params["secret_id"],
            mount_point=self.params["approle_mount_point"],
            use_token=True,
        )


class CertAuth(_AuthMethod):
    name = "cert"
    required = ("cert_auth_public_key", "cert_auth_private_key")

    def client_kwargs(self):
        return {
            "cert": (
                self.params["cert_auth_public_key"],
                self.params["cert_auth_private_key"],
            )
        }

    def authenticate(self, client):
        body = {}
        if self.params.get("cert_auth_role"):
            body["name"] = self.params["cert_auth_role"]
        path = "/v1/auth/%s/login" % self.params["cert_auth_mount_point"].strip("/")
        response = client.adapter.post(path, json=body)
        if hasattr(response, "json"):
            response = response.json()
        client.token = response["auth"]["client_token"]


AUTH_METHODS = {cls.name: cls for cls in (TokenAuth, ApproleAuth, CertAuth)}
