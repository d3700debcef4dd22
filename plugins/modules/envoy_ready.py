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
  - Uses C(http.client) only (the collection's C(_envoy_admin) module_utils, which
    M(mailmesh.imap.envoy_platform) asks with too), so it imports little;
    C(ansible.builtin.uri) cost about a second per run on an emulated Raspberry Pi,
    most of it imports.
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
notes:
  - "O(observe) is looked at once Envoy answered (its unit is then running): the envoy
    role compares the host again after its tasks in the call that waits for Envoy
    anyway, not in a M(mailmesh.imap.host_state) call of its own."
extends_documentation_fragment:
  - mailmesh.imap.host_observe
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
observed:
  description: What O(observe) asked for, after the wait, as
    RV(mailmesh.imap.envoy_platform#module:observed) returns it.
  returned: when O(observe) is set and Envoy answered
  type: dict
  sample: {"files": {}, "packages": [], "groups": [], "users": {}, "services": {}, "problems": []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailmesh.imap.plugins.module_utils._envoy_admin import wait
from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import OBSERVE_OPTIONS, observe


def main():
    module = AnsibleModule(
        argument_spec=dict(
            admin_address=dict(type="str", required=True),
            timeout=dict(type="int", default=60),
            require_certificates=dict(type="bool", default=True),
            observe=dict(type="dict", options=OBSERVE_OPTIONS),
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
    if module.params["observe"] is not None:
        result["observed"] = observe(module, **module.params["observe"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
