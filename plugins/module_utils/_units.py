# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Enable and start, or restart, several systemd units with one ``systemctl show`` and
at most one call per verb: shared by host_units and vault_pki_cert (which starts the
renewal agent's timer in the call that kept the certificate)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import NotObserved, observe_services, unit_name

# File states that `systemctl is-enabled` answers with 0 (what systemd_service counts as
# enabled).
ENABLED_STATES = frozenset(("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient"))

# The options of one unit, as a module's argument spec takes them.
UNIT_OPTIONS = dict(
    name=dict(type="str", required=True),
    enabled=dict(type="bool", default=True),
    state=dict(type="str", choices=["started", "restarted"]),
)


class UnitsError(Exception):
    """A step failed; ``result`` holds what was done (and ``not_active`` where known)."""

    def __init__(self, message, result):
        super(UnitsError, self).__init__(message)
        self.result = result


def input_problem(units):
    """What is wrong with the units option (a unit listed twice), or None: a module that
    takes them checks this before it changes anything."""
    names = [unit_name(u["name"]) for u in units]
    twice = sorted(set(name for name in names if names.count(name) > 1))
    return "units: %s listed more than once" % ", ".join(twice) if twice else None


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


def keep_units(module, units, daemon_reload=False):
    """Run what the units need (a daemon-reload first when asked) and return
    {"changed", "enabled", "started", "restarted"}; in check mode only look. Raises
    UnitsError with a message that starts with "units: " where the input or systemd's
    view is wrong, or with systemctl's message where a step failed."""
    names = [unit_name(u["name"]) for u in units]
    empty = dict(changed=False, enabled=[], started=[], restarted=[])
    problem = input_problem(units)
    if problem:
        raise UnitsError(problem, empty)
    if not units:
        return empty

    def systemctl(*argv):
        rc, out, err = module.run_command(["systemctl"] + list(argv))
        if rc != 0:
            return "systemctl %s failed (rc %s): %s" % (argv[0], rc, (err or out).strip())
        return None

    if daemon_reload and not module.check_mode:
        problem = systemctl("daemon-reload")
        if problem:
            raise UnitsError(problem, empty)
    try:
        steps = plan(units, observe_services(module, names), module.check_mode)
    except (NotObserved, ValueError) as exc:
        raise UnitsError("units: %s" % exc, empty)
    result = dict(changed=any(steps.values()), enabled=steps["enable"], started=steps["start"],
                  restarted=steps["restart"])
    if module.check_mode:
        return result
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
            raise UnitsError(problem, result)
    return result
