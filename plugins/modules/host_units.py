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

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import NotObserved, observe_services, unit_name

# File states that `systemctl is-enabled` answers with 0 (what systemd_service counts as
# enabled).
ENABLED_STATES = frozenset(("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient"))


def plan(units, seen, check_mode=False):
    """{"enable", "restart", "start"}: the unit names each systemctl verb needs, from what
    observe_services() saw; ValueError naming the units systemd does not know (in check
    mode those are planned as new units instead)."""
    unknown = [unit_name(u["name"]) for u in units if seen[unit_name(u["name"])]["LoadState"] != "loaded"]
    if unknown and not check_mode:
        raise ValueError("systemd does not know %s" % ", ".join(unknown))
    steps = {"enable": [], "restart": [], "start": []}
    for unit in units:
        name = unit_name(unit["name"])
        state = seen[name]
        new = name in unknown
        if unit["enabled"] and (new or state["UnitFileState"] not in ENABLED_STATES):
            steps["enable"].append(name)
        if unit["state"] == "restarted":
            steps["restart"].append(name)
        elif unit["state"] == "started" and (new or state["ActiveState"] != "active"):
            steps["start"].append(name)
    return steps


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                enabled=dict(type="bool", default=True),
                state=dict(type="str", choices=["started", "restarted"]),
            )),
            daemon_reload=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    units = module.params["units"]
    names = [unit_name(u["name"]) for u in units]
    if len(set(names)) != len(names):
        twice = sorted(set(name for name in names if names.count(name) > 1))
        module.fail_json(msg="units: %s listed more than once" % ", ".join(twice))

    def systemctl(*argv):
        rc, out, err = module.run_command(["systemctl"] + list(argv))
        if rc != 0:
            return "systemctl %s failed (rc %s): %s" % (argv[0], rc, (err or out).strip())
        return None

    if module.params["daemon_reload"] and not module.check_mode:
        problem = systemctl("daemon-reload")
        if problem:
            module.fail_json(msg=problem, enabled=[], started=[], restarted=[])
    try:
        steps = plan(units, observe_services(module, names), module.check_mode)
    except (NotObserved, ValueError) as exc:
        module.fail_json(msg="units: %s" % exc, enabled=[], started=[], restarted=[])
    result = dict(changed=any(steps.values()), enabled=steps["enable"], started=steps["start"],
                  restarted=steps["restart"])
    if module.check_mode:
        module.exit_json(**result)
    for verb in ("enable", "restart", "start"):
        if not steps[verb]:
            continue
        problem = systemctl(verb, "--", *steps[verb])
        if problem:
            try:
                seen = observe_services(module, names)
                result["not_active"] = [unit_name(u["name"]) for u in units
                                        if u["state"] and seen[unit_name(u["name"])]["ActiveState"] != "active"]
            except NotObserved:
                pass
            module.fail_json(msg=problem, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
