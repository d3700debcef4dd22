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
- ``failover(operation)`` runs an operation against the current node of a cluster
  (``urls``) and, when that node cannot answer (``node_unavailable()``), against the
  next one, logging in again there; a definite answer (400, 401, 403, 404) is final.
  When no node could answer, ``NodesFailed`` lists every node with its cause.

The options are a dict with the keys of the modules' connection and auth options
(``url``, ``ca_cert``, ``validate_certs``, ``timeout``, ``namespace``, ``auth_method``,
``token``, ``role_id``, ``secret_id``, ...). It is read when used, not copied, so a
module may still fill it (from an AppRole file) after the connection is made. An
optional ``urls`` (every node of a Vault cluster, in the order to try them; an
AppRole file's ``urls``) stands for ``[url]``.
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
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_auth import (
    AUTH_METHODS,
    AuthError,
    UnusableAnswer,
)

__all__ = [
    "AuthError",
    "MissingLibraryError",
    "NodesFailed",
    "VaultConnection",
    "VaultHTTPError",
    "import_hvac",
    "node_unavailable",
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


class NodesFailed(Exception):
    """No node of the cluster could answer: ``failures`` is ``[(url, exception)]``, one
    entry per node in the order they were tried. ``vault_error()`` phrases it."""

    def __init__(self, failures):
        super(NodesFailed, self).__init__(
            "no Vault node could answer (%s)" % ", ".join(url for url, _exc in failures))
        self.failures = failures


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


# hvac's exceptions for the statuses of a node that cannot answer now (500, 501, 502 and
# 503 in hvac 2.x; an older hvac may lack some of them, and raises VaultError's
# subclasses it has).
_NODE_DOWN_HVAC = ("InternalServerError", "VaultNotInitialized", "BadGateway", "VaultDown")


def _answered(exc):
    # type: (BaseException) -> bool
    """Whether the node answered with an HTTP error (it runs, but could not serve)."""
    if isinstance(exc, VaultHTTPError):
        return True
    hvac_exceptions = sys.modules.get("hvac.exceptions")
    return hvac_exceptions is not None and isinstance(exc, hvac_exceptions.VaultError)


def node_unavailable(exc):
    # type: (BaseException) -> bool
    """Whether a failure means "this node cannot answer now", so another node may.

    True: no connection (refused, no route, unknown name, timeout, TLS handshake or
    certificate verification failed, the connection broke off, no valid HTTP answer) and
    the HTTP statuses 5xx (503: sealed, or a standby that is not ready; 500/502: a node in
    trouble, for example a standby that lost its leader). False: a definite answer (400,
    401, 403, 404, 429, ...), incomplete options, a missing library, an unreadable
    ca_cert or client certificate (the same on every node), anything else.
    """
    if isinstance(exc, (AuthError, MissingLibraryError, _TLSFileError, NodesFailed)):
        return False
    if isinstance(exc, VaultHTTPError):
        return 500 <= int(exc.status) <= 599
    hvac_exceptions = sys.modules.get("hvac.exceptions")
    if hvac_exceptions is not None and isinstance(exc, hvac_exceptions.VaultError):
        down = tuple(getattr(hvac_exceptions, name) for name in _NODE_DOWN_HVAC if hasattr(hvac_exceptions, name))
        return isinstance(exc, down)
    requests_exceptions = sys.modules.get("requests.exceptions")
    if requests_exceptions is not None and isinstance(exc, requests_exceptions.RequestException):
        return isinstance(exc, (requests_exceptions.ConnectionError, requests_exceptions.Timeout,
                                requests_exceptions.ChunkedEncodingError))
    # The standard library (unauthenticated_get): urllib's URLError while connecting,
    # socket and ssl errors (OSError), a broken HTTP answer.
    return isinstance(exc, (OSError, http.client.HTTPException))


class VaultConnection:
    """Talk to the Vault at ``params['url']`` (or to the nodes ``params['urls']``, one at a
    time) with the connection and auth options in ``params``."""

    def __init__(self, params):
        # type: (Dict[str, Any]) -> None
        self.params = params
        self._client = None  # type: Any
        # Index in urls of the node that operations go to (the next one after a failover).
        self._node = 0
        # The server's clock as its last answer to unauthenticated_get() gave it (UTC).
        self.server_time = None  # type: Optional[datetime.datetime]
        # failover(): when every node failed and one answered 5xx (no leader yet), wait
        # this long and try every node again, this many times.
        self.election_wait = 3.0
        self.election_retries = 1
        self._sleep = time.sleep

    @property
    def urls(self):
        # type: () -> List[str]
        """Every node, in the order to try them (``urls``, else ``[url]``), without repeats."""
        found = []  # type: List[str]
        for url in self.params.get("urls") or [self.params["url"]]:
            url = str(url).rstrip("/")
            if url not in found:
                found.append(url)
        return found

    @property
    def url(self):
        # type: () -> str
        """The node that operations go to now."""
        urls = self.urls
        return urls[self._node % len(urls)]

    def next_node(self):
        """Move to the next node; its operations log in again (the cached client is dropped)."""
        self._node = (self._node + 1) % len(self.urls)
        self._client = None

    def failover(self, operation, what=None, warn=None):
        # type: (Callable[[], Any], Optional[str], Optional[Callable[[str], None]]) -> Any
        """``operation()`` against the current node, then the next nodes while a node cannot answer.

        Each node is tried at most once per call, from the current one on. A failure
        that ``node_unavailable()`` accepts moves to the next node; any other failure is
        raised as it is, and so is every failure when there is a single node. When every
        node failed: ``NodesFailed``. After a success the connection stays on the node
        that answered. ``warn``, if given, gets one sentence per node passed over (the
        node, its cause while ``what``, the next node) once another node answered,
        successfully or with a definite failure; not with ``NodesFailed``, which names
        them all.
        """
        failures = []  # type: List[Tuple[str, BaseException]]
        passes = 0
        try:
            while True:
                try:
                    return operation()
                except Exception as exc:  # pylint: disable=broad-except
                    if len(self.urls) == 1 or not node_unavailable(exc):
                        raise
                    failures.append((self.url, exc))
                    if len(failures) >= len(self.urls):
                        # Every node failed, and one of them answered (5xx): a leader
                        # election (the leader stepped down or stopped) takes a few
                        # seconds; one more pass after it, then give up.
                        passes += 1
                        if passes > self.election_retries or not any(_answered(cause) for _url, cause in failures):
                            raise NodesFailed(failures) from exc
                        self._sleep(self.election_wait)
                        failures = []
                    self.next_node()
        finally:
            if warn is not None and len(failures) < len(self.urls):
                for number, (url, exc) in enumerate(failures):
                    following = failures[number + 1][0] if number + 1 < len(failures) else self.url
                    warn("%s; trying Vault at %s" % (self._phrase(exc, url, what), following))

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
        """Phrase an exception from hvac, requests or the standard library as one sentence;
        ``NodesFailed`` as one sentence that names every node and its cause."""
        if isinstance(exc, NodesFailed):
            return "none of the %d Vault nodes could answer while %s: %s" % (
                len(exc.failures), what, "; ".join(self._phrase(cause, url) for url, cause in exc.failures))
        return self._phrase(exc, self.url, what)

    def _phrase(self, exc, url, what=None):
        """The sentence for one failure at the node ``url`` (no "while ..." without ``what``)."""
        where = "Vault at %s" % url
        while_ = " while %s" % what if what else ""
        if isinstance(exc, AuthError):
            return str(exc)
        if isinstance(exc, UnusableAnswer):
            return "%s gave no usable answer%s: %s" % (where, while_, exc)
        if isinstance(exc, MissingLibraryError):
            return "cannot talk to %s%s: %s" % (where, while_, exc)
        # hvac's and requests' exceptions can only come when they were imported.
        requests_exceptions = sys.modules.get("requests.exceptions")
        hvac_exceptions = sys.modules.get("hvac.exceptions")
        if requests_exceptions is not None and isinstance(exc, requests_exceptions.SSLError):
            return _tls_verification_failed(where, while_, exc)
        if requests_exceptions is not None and isinstance(
            exc, (requests_exceptions.ConnectionError, requests_exceptions.Timeout)
        ):
            return "%s is unreachable%s: %s" % (where, while_, exc)
        if hvac_exceptions is not None and isinstance(exc, hvac_exceptions.VaultError):
            return _status_error(_hvac_status(hvac_exceptions, exc), where, while_, _errors(exc))
        if isinstance(exc, VaultHTTPError):
            errors = "%s (%s)" % (_errors(exc), exc) if exc.errors else str(exc)
            return _status_error(exc.status, where, while_, errors)
        return _stdlib_error(exc, where, while_, self.params.get("timeout", 30))


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


# OpenSSL's verify results for a certificate outside its validity period (9: not yet
# valid, 10: expired), and their texts, which requests' wrapped errors carry.
_VALIDITY_CODES = (9, 10)
_VALIDITY_TEXTS = ("certificate is not yet valid", "certificate has expired")


def _tls_verification_failed(where, while_, exc):
    if getattr(exc, "verify_code", None) in _VALIDITY_CODES or any(
            text in str(exc) for text in _VALIDITY_TEXTS):
        # The server's certificate is renewed long before it ends, so a wrong clock on
        # this host is the likely cause: say so, with the time this host believes.
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            "TLS verification of %s failed%s: %s. By this host's clock (%s) the server's "
            "certificate is outside its validity period: if that certificate is current, "
            "this host's clock is wrong; fix its time synchronisation (systemd-timesyncd, "
            "chrony)." % (where, while_, exc, now)
        )
    return (
        "TLS verification of %s failed%s: %s. Point ca_cert at the CA "
        "that signed the server's certificate." % (where, while_, exc)
    )


def _hvac_status(hvac_exceptions, exc):
    """The HTTP status behind one of hvac's exceptions, as far as the message needs it."""
    for cls, status in ((hvac_exceptions.VaultDown, 503), (hvac_exceptions.Forbidden, 403),
                        (hvac_exceptions.Unauthorized, 401), (hvac_exceptions.InvalidPath, 404)):
        if isinstance(exc, cls):
            return status
    return 400


def _status_error(status, where, while_, errors):
    """The sentence for an HTTP error status (hvac's exception or VaultHTTPError)."""
    if status == 503:
        return "%s is sealed (or not ready)%s: %s" % (where, while_, errors)
    if status == 403:
        return "permission denied by %s%s: %s" % (where, while_, errors)
    if status == 401:
        return "%s refused the credentials%s: %s" % (where, while_, errors)
    if status == 404:
        return "%s has no such path%s: %s" % (where, while_, errors)
    return "%s rejected the request%s: %s" % (where, while_, errors)


def _stdlib_error(exc, where, while_, timeout):
    """Phrase an exception of ``unauthenticated_get()`` (urllib, ssl, socket)."""
    if isinstance(exc, _TLSFileError):
        return "cannot load %s for %s%s: %s" % (exc.what, where, while_, exc.cause)
    # urllib wraps what goes wrong while connecting (refused, no route, unknown name,
    # TLS handshake) in URLError; what goes wrong later comes as it is.
    connecting = isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, Exception)
    cause = exc.reason if connecting else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _tls_verification_failed(where, while_, cause)
    if isinstance(cause, ssl.SSLError):
        return (
            "TLS handshake with %s failed%s: %s. Check the URL's scheme and port, "
            "and the TLS client certificate if the listener requires one." % (where, while_, cause)
        )
    if isinstance(cause, (socket.timeout, TimeoutError)):
        return "%s is unreachable%s: no answer within %s s (timeout)" % (where, while_, timeout)
    if isinstance(cause, ConnectionError) or (connecting and isinstance(cause, OSError)):
        return "%s is unreachable%s: %s" % (where, while_, cause)
    if isinstance(cause, http.client.HTTPException):
        return "%s gave no valid HTTP answer%s: %r" % (where, while_, cause)
    return "unexpected error talking to %s%s: %s" % (where, while_, exc)


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
