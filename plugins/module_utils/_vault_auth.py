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

__all__ = ["AUTH_METHODS", "AuthError", "ApproleAuth", "CertAuth", "TokenAuth", "UnusableAnswer"]


class AuthError(Exception):
    """Auth options are incomplete or inconsistent (a user error, not a Vault error)."""


class UnusableAnswer(Exception):
    """Something answered the login with HTTP success, but not with a Vault token (a proxy's
    page, an answer cut short): phrased by the caller with the node's URL."""


def _token_of(answer):
    """auth.client_token of a login answer (a dict, or hvac's Response when it was no JSON)."""
    if hasattr(answer, "json"):
        try:
            answer = answer.json()
        except ValueError:
            raise UnusableAnswer("the login answer is not JSON (%s bytes): a proxy in the way, or an answer "
                                 "cut short" % len(getattr(answer, "content", b"") or b""))
    auth = answer.get("auth") if isinstance(answer, dict) else None
    token = auth.get("client_token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise UnusableAnswer("the login answer has no auth.client_token")
    return token


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
        path = "/v1/auth/%s/login" % self.params["approle_mount_point"].strip("/")
        answer = client.adapter.post(path, json={"role_id": self.params["role_id"],
                                                 "secret_id": self.params["secret_id"]})
        client.token = _token_of(answer)


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
        client.token = _token_of(client.adapter.post(path, json=body))


AUTH_METHODS = {cls.name: cls for cls in (TokenAuth, ApproleAuth, CertAuth)}
