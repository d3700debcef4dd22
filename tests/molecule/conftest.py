"""The long e2e scenario runs beside the others.

Most of e2e's time is waiting (the renewal soak, health checks, the emulated Pi), so
``make test`` starts ``molecule test -s e2e`` in the background as soon as pytest has
collected a test that waits for it, and the other tests (unit, integration, the other
scenarios one after another) run meanwhile. Its output goes to
``.build/molecule-logs/<scenario>.log``; the waiting test, moved to the end of the run,
prints the summary, and the log's tail when the scenario failed.
``MOLECULE_BACKGROUND=0`` runs it in turn with the others instead.

The scenarios use their own container names and networks (``e2e-*``, ``e2e-mailmesh``),
so they do not meet; the Docker harness raises the host's inotify instance limit, which
twelve systemd containers at once would otherwise exhaust.
"""

from __future__ import annotations

import os
import subprocess
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

# scenario -> (Popen, log path, start time); filled when the collection is done.
RUNNING: dict[str, tuple[subprocess.Popen, str, float]] = {}


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
    """The background scenarios that a collected test waits for."""
    wanted = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        scenario = callspec.params.get("scenario") if callspec is not None else None
        if item.originalname == WAITER and isinstance(scenario, str):
            if scenario not in wanted:
                wanted.append(scenario)
    return wanted


def pytest_collection_modifyitems(session, config, items):
    """The waiting tests last: everything else runs while the scenario does."""
    waiting = [item for item in items if item.originalname == WAITER]
    if waiting:
        items[:] = [item for item in items if item.originalname != WAITER] + waiting


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    for scenario in _waited_for(session.items):
        start(scenario)


@pytest.fixture
def background_run(request):
    """(Popen, log path, start time) of the scenario the waiting test is for."""
    scenario = request.node.callspec.params["scenario"]
    start(scenario)
    return RUNNING[scenario]


def start(scenario: str) -> None:
    if scenario in RUNNING:
        return
    os.makedirs(LOG_DIR, exist_ok=True)
    log_path = os.path.join(LOG_DIR, scenario + ".log")
    log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    log.write("==> molecule test -s %s (in the background)\n" % scenario)
    log.flush()
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        molecule_command("test", "-s", scenario), cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    log.close()
    RUNNING[scenario] = (proc, log_path, time.monotonic())
    print("\n==> molecule: molecule test -s %s started in the background (log: %s)" % (scenario, log_path),
          flush=True)


def pytest_sessionfinish(session, exitstatus):
    """An interrupted run leaves no scenario behind."""
    for proc, _log, _started in RUNNING.values():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
