"""Checks of the roles' units that the scenarios' verifiers share (molecule/conftest.py
puts this directory on sys.path): a service killed again and again, or ending cleanly,
comes back every time and its restart count reaches node_exporter's textfile
directory; a reload is no restart; `systemctl stop` still stops; the system call filter
is in effect. Every wait is bounded."""

import re
import time

import pytest

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# More kills in a row than the old start limit (StartLimitBurst=5 in 60 s) allowed.
KILLS = 6


def props(target, unit, *names):
    out = target.check_output("systemctl show -p %s %s", ",".join(names), unit)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main_pid(target, unit):
    return int(props(target, unit, "MainPID")["MainPID"])


def restarts(target, unit):
    return int(props(target, unit, "NRestarts")["NRestarts"])


def restart_metric(target, unit):
    """The value of mailmesh_service_restarts_total for the unit in its textfile."""
    path = "%s/mailmesh_restarts_%s.prom" % (TEXTFILE_DIR, unit)
    text = target.file(path).content_string
    assert "# TYPE mailmesh_service_restarts_total counter" in text, text
    found = re.search(r'^mailmesh_service_restarts_total\{unit="%s\.service"\} (\d+)$' % re.escape(unit), text, re.M)
    assert found, text
    mode = target.file(path).mode
    assert mode & 0o004, "%s is not readable by node_exporter: %o" % (path, mode)
    return int(found.group(1))


def wait_back(target, unit, old_pid, journal, timeout=180):
    """Wait until the unit is active again with a main process other than old_pid."""
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline:
        seen = props(target, unit, "ActiveState", "SubState", "MainPID")
        if seen["ActiveState"] == "active" and int(seen["MainPID"]) not in (0, old_pid):
            return int(seen["MainPID"])
        time.sleep(0.5)
    pytest.fail("%s did not come back after pid %d ended: %s\n%s" % (unit, old_pid, seen, journal()))
    return 0


def check_comes_back(target, unit, journal, reload=True, timeout=180):
    """A reload keeps the process and the count; KILLS times SIGKILL, then a clean exit
    (SIGTERM to the main process, not `systemctl stop`): back every time, each counted,
    the count in the textfile. Then `systemctl stop` stops it for good and a start by
    hand sets the count back to 0. The unit is running again at the end."""
    before = restarts(target, unit)
    pid = main_pid(target, unit)
    assert pid > 0, journal()
    if reload:
        target.run_expect([0], "systemctl reload %s", unit)
        assert main_pid(target, unit) == pid and restarts(target, unit) == before, journal()
    for signal in ["KILL"] * KILLS + ["TERM"]:
        target.run_expect([0], "kill -s %s %s", signal, str(pid))
        pid = wait_back(target, unit, pid, journal, timeout)
    after = restarts(target, unit)
    assert after == before + KILLS + 1, journal()
    assert restart_metric(target, unit) == after

    target.run_expect([0], "systemctl stop %s", unit)
    # Longer than any RestartSec of the roles (5 s): it stays down.
    for _second in range(8):
        assert props(target, unit, "ActiveState")["ActiveState"] in ("inactive", "failed"), journal()
        time.sleep(1)
    target.run_expect([0], "systemctl start %s", unit)
    assert props(target, unit, "ActiveState")["ActiveState"] == "active", journal()
    assert restarts(target, unit) == 0 and restart_metric(target, unit) == 0


def seccomp_filters(target, pid):
    status = target.file("/proc/%d/status" % pid).content_string
    found = re.search(r"^Seccomp_filters:\s*(\d+)$", status, re.M)
    assert found, status
    return int(found.group(1))


def check_syscall_filter(target, unit, in_effect=True):
    """The unit asks for @system-service with EPERM on the native architecture, and its
    main process carries more seccomp filters than PID 1 (which has the container
    engine's own): systemd's filter is installed. Under qemu-user systemd cannot install
    one (qemu refuses seccomp), and a oneshot has no process left to look at: there
    (in_effect=False) only the configuration is checked."""
    seen = props(target, unit, "SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures")
    assert seen["SystemCallFilter"].strip(), seen
    # systemd shows the allow-list expanded: a call of @system-service is in it, one of
    # @mount (not in @system-service) is not.
    calls = seen["SystemCallFilter"].split()
    assert "openat" in calls and "mount" not in calls, seen["SystemCallFilter"][:200]
    # systemd 252 shows the number (EPERM = 1), later releases the name
    assert seen["SystemCallErrorNumber"] in ("1", "EPERM"), seen
    assert seen["SystemCallArchitectures"] == "native", seen
    if not in_effect:
        return
    pid = main_pid(target, unit)
    assert pid > 0
    assert seccomp_filters(target, pid) > seccomp_filters(target, 1), "no seccomp filter of systemd's on %s" % unit
