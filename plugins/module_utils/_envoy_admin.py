# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Envoy's admin interface over a Unix socket or host:port, with http.client only:
whether Envoy is ready and serves a certificate chain (the envoy_ready module waits
for it; envoy_platform asks once, before the role decides what to run)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import json
import socket
import time

DELAY = 1.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (Envoy's admin pipe)."""

    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection_to(address, timeout):
    """An HTTP connection to a Unix socket path or to host:port."""
    if address.startswith("/"):
        return UnixHTTPConnection(address, timeout)
    host, _sep, port = address.rpartition(":")
    return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)


def get(address, path, timeout):
    """(status, body text) of GET path on the admin interface; (None, reason) when
    unreachable."""
    connection = connection_to(address, timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc)
    finally:
        connection.close()


def chains(body):
    """Certificate chains in a /certs answer (JSON); 0 when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return 0
    return sum(len(cert.get("cert_chain") or []) for cert in data.get("certificates") or [])


def wait(address, timeout, require_certificates, clock=time.monotonic, sleep=time.sleep):
    """(result, problem): problem is None when Envoy is ready (and serves a chain)."""
    deadline = clock() + timeout
    result = dict(state="", certificate_chains=0)
    asked = 0
    while True:
        asked += 1
        left = max(deadline - clock(), 0.1)
        status, body = get(address, "/ready", min(left, 5))
        result["state"] = body.strip() if status is not None else ""
        if status == 200:
            if not require_certificates:
                return result, None
            status, body = get(address, "/certs", min(left, 5))
            result["certificate_chains"] = chains(body) if status == 200 else 0
            if result["certificate_chains"] > 0:
                return result, None
            problem = ("Envoy at %s is LIVE but serves no certificate (/certs lists none): it could "
                       "not read its certificate files" % address)
        elif status is None:
            problem = "Envoy's admin interface at %s does not answer (%s)" % (address, body)
        else:
            problem = "Envoy at %s is not ready: /ready answered %s %s" % (address, status, body.strip())
        if clock() + DELAY > deadline:
            return result, problem + ("; waited %s s" % timeout if asked > 1 else "; asked once")
        sleep(DELAY)
