"""Background scenarios run beside the others, on two lanes.

Most of e2e's time is waiting (the renewal soak, health checks, a device offline until
its certificate expired), so ``make test`` starts the lane "first" as soon as pytest has
collected the tests that wait for its scenarios; the lane "late" starts when the
foreground reaches a test of this directory (its own scenarios), or when a test waits
for one of its scenarios. On a lane each ``molecule test -s <scenario>`` starts after the
one before has ended, in the order of test_scenarios.BACKGROUND_LANES, which also says
which lane a waiting test's scenario is on (its parameter ``lane``). Meanwhile the other
tests (unit, integration, the other scenarios one after another) run in the foreground.
Each scenario's output goes to ``.build/molecule-logs/<scenario>.log``; its waiting
test, moved to the end of the run, prints the summary, and the log's tail when the
scenario failed. ``MOLECULE_BACKGROUND=0`` runs them in turn with the others instead.

The scenarios use their own container names and networks (``e2e-*``, ``e2e-mailmesh``,
``vc-*``...), so they do not meet; the Docker harness raises the host's inotify
instance limit, which a dozen systemd containers at once would otherwise exhaust.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Which ansible-core runs the scenarios. "newest" (the default): the newest release
# (requirements/controller-newest.txt), on Python 3.13 in a Debian 13 container
# (tests/harness/controller.sh). "host": the venv's ansible-core (2.19, the newest that
# Debian 12's Python 3.11 runs, and the one `make lab` uses).
CONTROLLERS = ("newest", "host")
CONTROLLER = os.environ.get("MOLECULE_CONTROLLER", "newest")
CONTROLLER_SCRIPT = os.path.join(REPO_ROOT, "tests", "harness", "controller.sh")
LOG_DIR = os.path.join(REPO_ROOT, ".build", "molecule-logs")
# The test function (test_scenarios.py) that waits for a background scenario, with the
# scenario as its parameter; which scenarios those are is decided there.
WAITER = "test_molecule_scenario_in_background"


class BackgroundRun:
    """One background scenario: its log, and once the lane reached it, its process, start
    time and (when it ended) exit code; `done` is set when it ended or was given up."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.log_path = os.path.join(LOG_DIR, scenario + ".log")
        self.proc: subprocess.Popen | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self.rc: int | None = None
        self.done = threading.Event()


# scenario -> BackgroundRun, in the lanes' order; filled as the lanes start.
RUNNING: dict[str, BackgroundRun] = {}
# lane -> its threads (each runs its scenarios after the threads before it have ended).
_LANES: dict[str, list[threading.Thread]] = {}
_STOP = threading.Event()
# The lane that starts when the foreground reaches this directory's tests.
LATE_LANE = "late"
# The waiting tests' scenarios of the late lane, in order, until it starts.
_LATE: list[str] = []


def molecule_command(*args: str) -> list[str]:
    """The argv that runs `molecule ARGS` on the chosen controller."""
    if CONTROLLER not in CONTROLLERS:
        raise pytest.UsageError("MOLECULE_CONTROLLER=%r: use one of %s" % (CONTROLLER, ", ".join(CONTROLLERS)))
    prefix = [CONTROLLER_SCRIPT] if CONTROLLER == "newest" else []
    return prefix + ["molecule", *args]


@pytest.fixture(scope="session")
def molecule():
    """molecule_command: the argv that runs molecule on the chosen controller."""
    return molecule_command


def _waited_for(items):
    """lane -> the background scenarios on it that collected tests wait for, in order."""
    lanes: dict[str, list[str]] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.originalname != WAITER or callspec is None:
            continue
        scenario = callspec.params.get("scenario")
        wanted = lanes.setdefault(callspec.params.get("lane"), [])
        if isinstance(scenario, str) and scenario not in wanted:
            wanted.append(scenario)
    return lanes


def pytest_collection_modifyitems(session, config, items):
    """The waiting tests last: everything else runs while the scenario does."""
    waiting = [item for item in items if item.originalname == WAITER]
    if waiting:
        items[:] = [item for item in items if item.originalname != WAITER] + waiting


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    lanes = _waited_for(session.items)
    _LATE[:] = lanes.pop(LATE_LANE, [])
    for lane, scenarios in lanes.items():
        start(scenarios, lane)


def pytest_runtest_setup(item):
    """The late lane starts with the first test of this directory (pytest calls this
    conftest's hook for those only) that is not a waiting one; its announcement is not
    captured as that test's own output."""
    if _LATE and item.originalname != WAITER:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            start(_LATE, LATE_LANE)
        _LATE.clear()


@pytest.fixture
def background_run(request):
    """The BackgroundRun of the scenario the waiting test is for."""
    params = request.node.callspec.params
    start([params["scenario"]], params["lane"])
    return RUNNING[params["scenario"]]


def start(scenarios, lane) -> None:
    """Queue these scenarios on the lane (those not queued yet), and start them."""
    new = [scenario for scenario in scenarios if scenario not in RUNNING]
    if not new:
        return
    os.makedirs(LOG_DIR, exist_ok=True)
    runs = [BackgroundRun(scenario) for scenario in new]
    for run in runs:
        RUNNING[run.scenario] = run
    threads = _LANES.setdefault(lane, [])
    thread = threading.Thread(target=_lane, args=(runs, list(threads)), name="molecule-" + lane, daemon=True)
    threads.append(thread)
    thread.start()
    print("\n==> molecule: in the background (lane %s), one after another: %s (logs: %s)"
          % (lane, ", ".join("molecule test -s " + run.scenario for run in runs), LOG_DIR), flush=True)


def _lane(runs, before) -> None:
    for thread in before:  # a lane queued earlier goes first
        thread.join()
    for run in runs:
        if _STOP.is_set():
            run.done.set()
            continue
        try:
            with open(run.log_path, "w", encoding="utf-8") as log:
                log.write("==> molecule test -s %s (in the background)\n" % run.scenario)
                log.flush()
                run.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                    molecule_command("test", "-s", run.scenario), cwd=REPO_ROOT, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
                run.started = time.monotonic()
            if _STOP.is_set():  # the session ended while it started
                run.proc.terminate()
            run.rc = run.proc.wait()
            run.ended = time.monotonic()
        finally:
            run.done.set()


def pytest_sessionfinish(session, exitstatus):
    """An interrupted run leaves no scenario behind, and starts none."""
    _STOP.set()
    for run in RUNNING.values():
        if run.proc is not None and run.proc.poll() is None:
            run.proc.terminate()
            try:
                run.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                run.proc.kill()
