"""Unit tests for plugins/modules/host_units.py against a fake systemctl: one call per
verb for all the units that need it, nothing for units as asked, check mode runs only
`systemctl show`, and failures name the units."""

import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.mailmesh.imap.plugins.modules import host_units as module


class Systemd:
    """The units systemd knows ({name: [UnitFileState, ActiveState]}) and the systemctl
    command lines run against them."""

    def __init__(self, units, failing=()):
        self.units = {name: list(state) for name, state in units.items()}
        self.failing = set(failing)
        self.calls = []

    def run_command(self, _module, argv, **_kwargs):
        assert argv[0] == "systemctl"
        self.calls.append(argv[1:])
        verb, names = argv[1], [a for a in argv[2:] if not a.startswith("-")]
        if verb == "show":
            return 0, "".join("Id=%s\nLoadState=%s\nUnitFileState=%s\nActiveState=%s\n\n" % (
                name, "loaded" if name in self.units else "not-found",
                *(self.units.get(name) or ["", "inactive"])) for name in names), ""
        if verb == "daemon-reload":
            return 0, "", ""
        for name in names:
            if verb == "enable":
                self.units[name][0] = "enabled"
            elif name in self.failing:
                self.units[name][1] = "failed"
                return 1, "", "Job for %s failed because the control process exited with error code." % name
            else:
                self.units[name][1] = "active"
        return 0, "", ""

    def verbs(self):
        return [call[0] for call in self.calls]


@pytest.fixture
def systemd(monkeypatch):
    def install(units, failing=()):
        fake = Systemd(units, failing)

        def run_command(self, argv, **kwargs):  # in place of AnsibleModule's
            return fake.run_command(self, argv, **kwargs)

        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        return fake
    return install


UNITS = [{"name": "envoy", "state": "restarted"}, {"name": "mailmesh-quickack", "state": "started"},
         {"name": "systemd-timesyncd"}]


def test_one_call_per_verb_for_the_units_that_need_it(systemd, run_module):
    fake = systemd({"envoy.service": ["disabled", "inactive"], "mailmesh-quickack.service": ["disabled", "inactive"],
                    "systemd-timesyncd.service": ["enabled", "active"]})
    result = run_module(module, {"units": UNITS, "daemon_reload": True})
    assert result["changed"] is True
    assert (result["enabled"], result["restarted"], result["started"]) == (
        ["envoy.service", "mailmesh-quickack.service"], ["envoy.service"], ["mailmesh-quickack.service"])
    assert fake.calls == [["daemon-reload"],
                          ["show", "--property=Id,LoadState,UnitFileState,ActiveState", "--", "envoy.service",
                           "mailmesh-quickack.service", "systemd-timesyncd.service"],
                          ["enable", "--", "envoy.service", "mailmesh-quickack.service"],
                          ["restart", "--", "envoy.service"],
                          ["start", "--", "mailmesh-quickack.service"]]


def test_units_as_asked_change_nothing_and_a_static_unit_counts_as_enabled(systemd, run_module):
    fake = systemd({"envoy.service": ["enabled", "active"], "mailmesh-quickack.service": ["static", "active"],
                    "systemd-timesyncd.service": ["enabled", "inactive"]})
    units = [{"name": "envoy", "state": "started"}, {"name": "mailmesh-quickack", "state": "started"},
             {"name": "systemd-timesyncd"}]
    result = run_module(module, {"units": units})
    assert result["changed"] is False and result["enabled"] == result["started"] == result["restarted"] == []
    assert fake.verbs() == ["show"]


def test_check_mode_runs_only_show_and_counts_a_unit_not_written_yet(systemd, run_module):
    fake = systemd({"systemd-timesyncd.service": ["disabled", "inactive"]})
    result = run_module(module, {"units": UNITS, "daemon_reload": True, "_ansible_check_mode": True})
    assert result["changed"] is True
    assert result["enabled"] == ["envoy.service", "mailmesh-quickack.service", "systemd-timesyncd.service"]
    assert (result["restarted"], result["started"]) == (["envoy.service"], ["mailmesh-quickack.service"])
    assert fake.verbs() == ["show"]


def test_a_unit_systemd_does_not_know_fails_before_anything_changes(systemd, run_module):
    fake = systemd({"envoy.service": ["disabled", "inactive"]})
    result = run_module(module, {"units": UNITS})
    assert result["failed"] and result["msg"] == (
        "units: systemd does not know mailmesh-quickack.service, systemd-timesyncd.service")
    assert fake.verbs() == ["show"] and fake.units["envoy.service"] == ["disabled", "inactive"]


def test_a_failed_start_names_the_units_that_are_not_active(systemd, run_module):
    systemd({"envoy.service": ["enabled", "inactive"], "mailmesh-quickack.service": ["enabled", "active"],
             "systemd-timesyncd.service": ["enabled", "inactive"]}, failing={"envoy.service"})
    result = run_module(module, {"units": UNITS})
    assert result["failed"]
    assert result["msg"].startswith("systemctl restart failed (rc 1): Job for envoy.service failed")
    assert result["not_active"] == ["envoy.service"]


def test_a_unit_listed_twice_is_refused(systemd, run_module):
    fake = systemd({})
    result = run_module(module, {"units": [{"name": "envoy"}, {"name": "envoy.service"}]})
    assert result["failed"] and result["msg"] == "units: envoy.service listed more than once"
    assert fake.calls == []


def test_documented_options_and_return_values():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == {"units", "daemon_reload"}
    assert set(doc["options"]["units"]["suboptions"]) == {"name", "enabled", "state"}
    assert set(yaml.safe_load(module.RETURN)) == {"enabled", "started", "restarted", "not_active"}
    assert yaml.safe_load(module.EXAMPLES)
