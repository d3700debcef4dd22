#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_units
short_description: Enable and start, or restart, several systemd units in one call
version_added: 0.1.0
description:
  - "What a loop of M(ansible.builtin.systemd_service) tasks with C(enabled=true) and
    C(state=started) or C(state=restarted) does, in one module call: one C(systemctl
    show) looks at every unit, then at most one C(systemctl daemon-reload), one
    C(systemctl enable), one C(systemctl restart) and one C(systemctl start), each for
    all the units that need it."
  - A unit that systemd does not know (after the reload, when asked) fails the module,
    naming it, before any unit is enabled, started or restarted.
  - When a start or restart fails, the module fails with systemctl's message and names
    every unit that is not active afterwards, as C(not_active).
attributes:
  check_mode:
    support: full
    description: Runs only C(systemctl show) and reports what it would enable, start and
      restart; a unit systemd does not know yet (its file not written in check mode) is
      reported as one it would enable and start.
  diff_mode:
    support: none
    description: Nothing to show but the lists it returns.
options:
  units:
    description: The units, in the order their lists are given to systemctl.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit's name; C(.service) is added to a name without a suffix.
        type: str
        required: true
      enabled:
        description: Enable the unit (a unit whose file state is V(enabled), V(static),
          V(alias), V(indirect), V(generated), V(transient) or V(enabled-runtime) counts
          as enabled). V(false) leaves it as it is.
        type: bool
        default: true
      state:
        description: V(started) starts the unit where it is not active; V(restarted)
          restarts it (starts it where it is not running). Omitted, the unit is neither
          started nor stopped.
        type: str
        choices: [started, restarted]
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (after a unit file was written);
      not counted as a change.
    type: bool
    default: false
seealso:
  - module: ansible.builtin.systemd_service
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Start the sidecar and its helper, restarting the sidecar after a new bootstrap
  mailmesh.imap.host_units:
    daemon_reload: "{{ written.paths | intersect(['/etc/systemd/system/envoy.service']) | length > 0 }}"
    units:
      - name: envoy
        state: "{{ 'restarted' if restart_envoy else 'started' }}"
      - name: mailmesh-quickack
        state: started
      - name: systemd-timesyncd
"""

RETURN = r"""
enabled:
  description: The units this call enabled (or would, in check mode).
  returned: always
  type: list
  elements: str
  sample: [envoy.service, mailmesh-quickack.service]
started:
  description: The units this call started (or would).
  returned: always
  type: list
  elements: str
  sample: [envoy.service]
restarted:
  description: The units this call restarted (or would).
  returned: always
  type: list
  elements: str
  sample: []
not_active:
  description: After a failed start or restart, the units that are not active.
  returned: failure of a start or restart
  type: list
  elements: str
  sample: [envoy.service]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailmesh.imap.plugins.module_utils._units import UNIT_OPTIONS, UnitsError, keep_units


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True, options=UNIT_OPTIONS),
            daemon_reload=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = keep_units(module, module.params["units"], module.params["daemon_reload"])
    except UnitsError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
