# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""A connection to Vault/OpenBao that does not need Ansible.

``VaultConnection`` is what every Vault module talks to Vault through (``_vault.py``
wraps it in an ``AnsibleModule``), and what the on-host certificate renewal
(``roles/vault_cert/files/mailmesh-cert-renew.py``) uses without Ansible installed on
the host: nothing here imports ``ansible``.

- ``unauthenticated_get()`` reads with the standard library only (no hvac, no requests)
  and remembers the server's clock (the ``Date`` header) in ``server_time``.
- ``client()`` logs in with the auth method of the options (``_vault_auth.py``) and
  returns an hvac client; hvac is imported on first use (about 60 ms on amd64, most of
  a second on a Raspberry Pi).
- ``vault_error()`` phrases any failure (hvac, requests, urllib, ssl, socket) as one
  sentence that names the Vault address and the cause.

The options are a dict with the keys of the modules' connection and auth options
(``url``, ``ca_cert``, ``validate_certs``, ``timeout``, ``namespace``, ``auth_method``,
``token``, ``role_id``, ``secret_id``, ...). It is read when used, not copied, so a
module may still fill it (from an AppRole file) after the connection is made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import http.client
import json
import os
import socket
import ssl
import sys
import traceback
import urllib.error
import urllib.request
from typing import Any, Dict, Optional, Tuple

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_auth import (
    AUTH_METHODS,
    AuthError,
)

__all__ = [
    "AuthError",
    "MissingLibraryError",
    "VaultConnection",
    "VaultHTTPError",
    "import_hvac",
]


class MissingLibraryError(Exception):
    """A Python library the connection needs is not installed (``library``, ``trace``)."""

    def __init__(self, library, trace):
        super(MissingLibraryError, self).__init__("the Python library %s is not installed" % library)
        self.library = library
        self.trace = trace


class VaultHTTPError(Exception):
    """Vault answered ``unauthenticated_get()`` with an HTTP error status.

    ``errors`` is Vault's error list, as on hvac's exceptions.
    """

    def __init__(self, status, reason, errors):
        super(VaultHTTPError, self).__init__("HTTP %s %s" % (status, reason))
        self.status = status
        self.errors = errors


class _TLSFileError(Exception):
    """ca_cert or the TLS client certificate could not be loaded."""

    def __init__(self, what, cause):
        super(_TLSFileError, self).__init__("cannot load %s: %s" % (what, cause))
        self.what = what
        self.cause = cause


def import_hvac():
    # type: () -> Tuple[Any, Optional[str]]
    """(hvac, None), or (None, the traceback) when hvac is not installed."""
    try:
        import hvac  # pylint: disable=import-outside-toplevel
        import hvac.exceptions  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return None, traceback.format_exc()
    return hvac, None


class VaultConnection:
    """Talk to the Vault at ``params['url']`` with the connection and auth options in ``params``."""

    def __init__(self, params):
        # type: (Dict[str, Any]) -> None
        self.params = params
        self._client = None  # type: Any
        # The server's clock as its last answer to unauthenticated_get() gave it (UTC).
        self.server_time = None  # type: Optional[datetime.datetime]

    @property
    def url(self):
        # type: () -> str
        return str(self.params["url"]).rstrip("/")

    def hvac(self):
        """The hvac package (imported now if not yet); MissingLibraryError without it."""
        hvac, error = import_hvac()
        if hvac is None:
            raise MissingLibraryError("hvac", error)
        return hvac

    def _verify(self):
        if not self.params.get("validate_certs", True):
            return False
        return self.params.get("ca_cert") or True

    def unauthenticated_client(self, **extra):
        """An hvac client that carries no token at all.

        hvac reads VAULT_TOKEN and ~/.vault-token when no token is given; an empty
        token stops that, so nothing from the environment is used unless asked for.
        """
        return self.hvac().Client(
            url=self.url,
            token="",
            verify=self._verify(),
            timeout=self.params.get("timeout", 30),
            namespace=self.params.get("namespace"),
            **extra
        )

    def auth_method(self):
        """The auth strategy of the options (``_vault_auth.AUTH_METHODS``)."""
        return AUTH_METHODS[self.params.get("auth_method") or "token"](self.params)

    def client(self):
        """Authenticated hvac client (cached).

        Raises AuthError (incomplete auth options), MissingLibraryError (no hvac) or
        whatever the login raised (phrase it with ``vault_error()``).
        """
        if self._client is not None:
            return self._client
        method = self.auth_method()
        method.validate()
        client = self.unauthenticated_client(**method.client_kwargs())
        method.authenticate(client)
        self._client = client
        return client

    def _ssl_context(self, cert=None):
        """TLS context as hvac would verify: ca_cert, else the system trust, or none."""
        if not self.params.get("validate_certs", True):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            ca_cert = self.params.get("ca_cert")
            try:
                if ca_cert and os.path.isdir(ca_cert):
                    context = ssl.create_default_context(capath=ca_cert)
                else:
                    context = ssl.create_default_context(cafile=ca_cert)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise _TLSFileError("ca_cert %s" % ca_cert if ca_cert else "the system's CA certificates", exc) from exc
        if cert:
            try:
                context.load_cert_chain(cert[0], cert[1])
            except (OSError, ValueError) as exc:
                raise _TLSFileError("the TLS client certificate %s (key %s)" % (cert[0], cert[1]), exc) from exc
        return context

    def unauthenticated_get(self, path, **client_kwargs):
        """GET ``/v1/<path>`` with no token, using the standard library only (no hvac).

        Same connection as ``unauthenticated_client(**client_kwargs)``: TLS verified
        against ca_cert or the system trust (or not at all with validate_certs=false),
        the TLS client certificate ``cert=(public, private)`` when given, namespace and
        timeout. Returns the JSON answer as a dict (``{}`` when it is empty or not
        JSON); raises ``VaultHTTPError`` for an HTTP error status and the standard
        library's exceptions otherwise. ``vault_error()`` phrases all of them. The
        answer's ``Date`` header, when there is one, goes to ``server_time``.
        """
        cert = client_kwargs.pop("cert", None)
        if client_kwargs:
            raise TypeError("unauthenticated_get() got unexpected %s" % ", ".join(sorted(client_kwargs)))
        headers = {"X-Vault-Request": "true"}
        if self.params.get("namespace"):
            headers["X-Vault-Namespace"] = self.params["namespace"]
        request = urllib.request.Request("%s/v1/%s" % (self.url, path.strip("/")), headers=headers)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._ssl_context(cert)))
        try:
            with opener.open(request, timeout=self.params.get("timeout", 30)) as response:
                self.server_time = _http_date(response.headers.get("Date"))
                body = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                self.server_time = _http_date(exc.headers.get("Date") if exc.headers else None)
                body = exc.read()
            raise VaultHTTPError(exc.code, exc.reason, _json_errors(body)) from exc
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def vault_error(self, exc, what):
        """Phrase an exception from hvac, requests or the standard library as one sentence."""
        where = "Vault at %s" % self.url
        if isinstance(exc, AuthError):
            return str(exc)
        if isinstance(exc, MissingLibraryError):
            return "cannot talk to %s while %s: %s" % (where, what, exc)
        # hvac's and requests' exceptions can only come when they were imported.
        requests_exceptions = sys.modules.get("requests.exceptions")
        hvac_exceptions = sys.modules.get("hvac.exceptions")
        if requests_exceptions is not None and isinstance(exc, requests_exceptions.SSLError):
            return _tls_verification_failed(where, what, exc)
        if requests_exceptions is not None and isinstance(
            exc, (requests_exceptions.ConnectionError, requests_exceptions.Timeout)
        ):
            return "%s is unreachable while %s: %s" % (where, what, exc)
        if hvac_exceptions is not None and isinstance(exc, hvac_exceptions.VaultError):
            return _status_error(_hvac_status(hvac_exceptions, exc), where, what, _errors(exc))
        if isinstance(exc, VaultHTTPError):
            errors = "%s (%s)" % (_errors(exc), exc) if exc.errors else str(exc)
            return _status_error(exc.status, where, what, errors)
        return _stdlib_error(exc, where, what, self.params.get("timeout", 30))


def _http_date(value):
    # type: (Optional[str]) -> Optional[datetime.datetime]
    """An HTTP ``Date`` header as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def _tls_verification_failed(where, what, exc):
    return (
        "TLS verification of %s failed while %s: %s. Point ca_cert at the CA "
        "that signed the server's certificate." % (where, what, exc)
    )


def _hvac_status(hvac_exceptions, exc):
    """The HTTP status behind one of hvac's exceptions, as far as the message needs it."""
    for cls, status in ((hvac_exceptions.VaultDown, 503), (hvac_exceptions.Forbidden, 403),
                        (hvac_exceptions.Unauthorized, 401), (hvac_exceptions.InvalidPath, 404)):
        if isinstance(exc, cls):
            return status
    return 400


def _status_error(status, where, what, errors):
    """The sentence for an HTTP error status (hvac's exception or VaultHTTPError)."""
    if status == 503:
        return "%s is sealed (or not ready) while %s: %s" % (where, what, errors)
    if status == 403:
        return "permission denied by %s while %s: %s" % (where, what, errors)
    if status == 401:
        return "%s refused the credentials while %s: %s" % (where, what, errors)
    if status == 404:
        return "%s has no such path while %s: %s" % (where, what, errors)
    return "%s rejected the request while %s: %s" % (where, what, errors)


def _stdlib_error(exc, where, what, timeout):
    """Phrase an exception of ``unauthenticated_get()`` (urllib, ssl, socket)."""
    if isinstance(exc, _TLSFileError):
        return "cannot load %s for %s while %s: %s" % (exc.what, where, what, exc.cause)
    # urllib wraps what goes wrong while connecting (refused, no route, unknown name,
    # TLS handshake) in URLError; what goes wrong later comes as it is.
    connecting = isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, Exception)
    cause = exc.reason if connecting else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _tls_verification_failed(where, what, cause)
    if isinstance(cause, ssl.SSLError):
        return (
            "TLS handshake with %s failed while %s: %s. Check the URL's scheme and port, "
            "and the TLS client certificate if the listener requires one." % (where, what, cause)
        )
    if isinstance(cause, (socket.timeout, TimeoutError)):
        return "%s is unreachable while %s: no answer within %s s (timeout)" % (where, what, timeout)
    if isinstance(cause, ConnectionError) or (connecting and isinstance(cause, OSError)):
        return "%s is unreachable while %s: %s" % (where, what, cause)
    if isinstance(cause, http.client.HTTPException):
        return "%s gave no valid HTTP answer while %s: %r" % (where, what, cause)
    return "unexpected error talking to %s while %s: %s" % (where, what, exc)


def _json_errors(body):
    """Vault's ``errors`` list from an error answer, else its text (shortened), else []."""
    try:
        errors = json.loads(body.decode("utf-8")).get("errors")
    except (ValueError, AttributeError):
        text = " ".join(body.decode("utf-8", "replace").split())
        return [text[:200]] if text else []
    return [str(error) for error in errors] if isinstance(errors, list) else []


def _errors(exc):
    errors = getattr(exc, "errors", None)
    if errors:
        # Vault wraps errors as "1 error occurred:\n\t* permission denied\n\n":
        # keep the message on one line.
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return str(exc) or exc.__class__.__name__
