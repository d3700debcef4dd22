#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: envoy_ready
short_description: Wait until Envoy is ready and serves its certificates
version_added: 0.1.0
description:
  - Asks Envoy's admin interface for C(/ready) until it answers C(LIVE), then for
    C(/certs) until it lists at least one certificate chain, and fails when either does
    not come within O(timeout).
  - C(/ready) says C(LIVE) even when Envoy could not read its certificate files (it then
    resets every TLS connection), hence the second question.
  - Uses C(http.client) only and no module_utils, so it runs without a fork under
    Mitogen and imports little; C(ansible.builtin.uri) cost about a second per run on an
    emulated Raspberry Pi, most of it imports.
  - Changes nothing, ever.
attributes:
  check_mode:
    support: full
    description: Asks the same read-only questions in check mode.
  diff_mode:
    support: none
    description: Nothing to show; the module never changes anything.
options:
  admin_address:
    description:
      - The admin interface on the host itself, as the absolute path of its Unix socket
        (the envoy role's C(/run/envoy/admin.sock)), or as C(host:port).
      - The socket is open to root and Envoy's user only, so the module needs C(become).
    type: str
    required: true
  timeout:
    description: Seconds to wait for both answers together.
    type: int
    default: 60
  require_certificates:
    description: Wait for C(/certs) to list a certificate chain too.
    type: bool
    default: true
seealso:
  - name: Envoy admin interface
    description: The C(/ready) and C(/certs) endpoints.
    link: https://www.envoyproxy.io/docs/envoy/latest/operations/admin
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check that Envoy is ready and serves its certificate
  mailmesh.imap.envoy_ready:
    admin_address: /run/envoy/admin.sock
  become: true
"""

RETURN = r"""
state:
  description: What C(/ready) answered last.
  returned: always
  type: str
  sample: LIVE
certificate_chains:
  description: Number of certificate chains C(/certs) listed (0 when not asked).
  returned: always
  type: int
  sample: 1
"""

import http.client
import json
import socket
import time

from ansible.module_utils.basic import AnsibleModule

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
    while True:
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
            return result, problem + "; waited %s s" % timeout
        sleep(DELAY)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            admin_address=dict(type="str", required=True),
            timeout=dict(type="int", default=60),
            require_certificates=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    address = module.params["admin_address"]
    if not address.startswith("/") and not address.rpartition(":")[2].isdigit():
        module.fail_json(msg="admin_address must be the path of a Unix socket or host:port, got %r"
                         % address)
    result, problem = wait(address, module.params["timeout"], module.params["require_certificates"])
    if problem:
        module.fail_json(msg=problem, changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
