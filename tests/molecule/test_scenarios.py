"""Run every molecule scenario (molecule/*/molecule.yml) with ``molecule test``.

Molecule's output is streamed to the terminal while it runs (not captured), so a
failing converge, idempotence or verify step can be read in place. A scenario that has
its own wrapper, tests/molecule/test_<scenario>.py (to search the output, run extra
steps...), is left to that wrapper and not run twice. The background scenarios run on
two lanes beside the others (BACKGROUND_LANES, conftest.py); their tests wait for them
at the end and show their logs.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOLECULE_DIR = os.path.join(REPO_ROOT, "molecule")
WRAPPER_DIR = os.path.dirname(os.path.abspath(__file__))
# Per scenario; MOLECULE_SCENARIO_TIMEOUT (seconds) overrides it.
TIMEOUT = int(os.environ.get("MOLECULE_SCENARIO_TIMEOUT", "2700"))


def discover_scenarios() -> list[str]:
    if not os.path.isdir(MOLECULE_DIR):
        return []
    return sorted(
        name for name in os.listdir(MOLECULE_DIR)
        if os.path.isfile(os.path.join(MOLECULE_DIR, name, "molecule.yml"))
    )


def has_own_wrapper(scenario: str) -> bool:
    return os.path.isfile(os.path.join(WRAPPER_DIR, "test_%s.py" % scenario))


SCENARIOS = discover_scenarios()
# Run in the background, beside the foreground tests, unless MOLECULE_BACKGROUND=0; two
# lanes, each one scenario after another in the order given (tests/molecule/conftest.py):
# - "first" starts as soon as the collection is done: e2e, which waits most (the renewal
#   soak, a device offline until its certificate expired) while the unit and integration
#   tests and the foreground's scenarios use the CPU;
# - "late" starts when the foreground reaches its own scenarios (tests/molecule): from
#   then on the foreground's arm64 device under emulation and e2e's waits leave a core
#   partly idle, and without this lane the foreground ran on alone for ten minutes at
#   the end (docs/development.md, "CI time").
# A background scenario needs a network and container names of its own (it runs beside
# whichever others are running) and no wrapper of its own in tests/molecule/.
BACKGROUND_LANES = (("first", ("e2e",)), ("late", ("mail_gateway", "vault_cluster")))
BACKGROUND = [(name, lane) for lane, names in BACKGROUND_LANES for name in names
              if name in SCENARIOS and os.environ.get("MOLECULE_BACKGROUND", "1") != "0"]
GENERIC_SCENARIOS = [name for name in SCENARIOS
                     if not has_own_wrapper(name) and name not in {scenario for scenario, _lane in BACKGROUND}]
# Of a background scenario's log: the lines shown when it passed, and when it failed.
SUMMARY_LINES = 60
FAILURE_LINES = 500
# Molecule colours its output and frames a step's output in a box ("│ "), so a line is
# read without both.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FRAME = "│┌└ "
# pytest -v: a test's node id where it starts, its verdict alone on a later line.
NODE_ID = re.compile(r"^(\S+\.py::\S+)")
VERDICT_ALONE = re.compile(r"^(FAILED|ERROR)\s+\[\s*\d+%\]$")


def failure_lines(lines: list[str]) -> list[str]:
    """The lines that name what failed: the verifier's FAILED/ERROR test ids, the step
    molecule reports as failed, Ansible's failed tasks and recaps, the tasks an
    idempotence step found changed."""
    found, test_id = [], None
    for line in lines:
        text = ANSI.sub("", line).lstrip(FRAME).rstrip()
        started = NODE_ID.match(text)
        if started:
            test_id = started.group(1)
        # pytest -v ends a test that printed on a line of its own ("FAILED [ 52%]"),
        # away from the line that named it: the name is put back.
        verdict = VERDICT_ALONE.match(text)
        if verdict and test_id:
            text = "%s %s" % (verdict.group(1), test_id)
        if text.startswith(("FAILED ", "ERROR ", "fatal: ", "Idempotence test failed", "* [")) \
                or re.search(r"➜ \S+: Executed: Failed", text) or re.search(r"\bfailed=[1-9]", text):
            if not text.startswith("FAILED - RETRYING"):
                found.append(text)
    return found


def test_failure_lines_read_through_molecules_colours_and_frames():
    # A background scenario's failure names its test or task in the one-line summary
    # only if these are found in molecule's framed, coloured output.
    lines = [
        "  \x1b[2m│\x1b[0m tests/test_e2e.py::test_scan[gw1] {",
        "  \x1b[2m│\x1b[0m  \"gateway IMAPS e2e-gw1\": {}",
        "  \x1b[2m│\x1b[0m }",
        "  \x1b[2m│\x1b[0m FAILED [ 52%]",
        "  \x1b[2m│\x1b[0m tests/test_e2e.py::test_next PASSED [ 54%]",
        "  \x1b[2m│\x1b[0m FAILED tests/test_renewal.py::test_soak - assert 1 == 0",
        "  \x1b[2m│\x1b[0m FAILED - RETRYING: [localhost]: Wait for instance(s) deletion (3 retries left).",
        "  \x1b[2m│\x1b[0m ======================= 1 failed, 41 passed in 1183.66s",
        "  \x1b[2m\x1b[33m│\x1b[0m \x1b[33me2e-gw1 : ok=3 changed=0 unreachable=0 failed=1\x1b[0m",
        "  \x1b[2m│\x1b[0m e2e-gw2 : ok=3 changed=0 unreachable=0 failed=0",
        "\x1b[31mERROR   \x1b[0m Idempotence test failed because of the following tasks:",
        "* [e2e-edge1] => mailmesh.imap.vault_cert : Issue the certificate",
        "\x1b[36mERROR   \x1b[0m \x1b[32me2e\x1b[0m ➜ \x1b[33midempotence\x1b[0m: \x1b[31mExecuted: Failed\x1b[0m",
    ]
    assert failure_lines(lines) == [
        "FAILED tests/test_e2e.py::test_scan[gw1]",
        "FAILED tests/test_renewal.py::test_soak - assert 1 == 0",
        "e2e-gw1 : ok=3 changed=0 unreachable=0 failed=1",
        "ERROR    Idempotence test failed because of the following tasks:",
        "* [e2e-edge1] => mailmesh.imap.vault_cert : Issue the certificate",
        "ERROR    e2e ➜ idempotence: Executed: Failed",
    ]


def test_harness_smoke_scenario_exists():
    # The harness's own scenario: without it a broken discovery would run nothing.
    assert "harness_smoke" in SCENARIOS, f"scenarios found: {SCENARIOS}"


@pytest.mark.parametrize("scenario", GENERIC_SCENARIOS)
def test_molecule_scenario(scenario, molecule, capfd):
    command = molecule("test", "-s", scenario)
    with capfd.disabled():
        print(f"\n==> molecule: {' '.join(os.path.relpath(arg, REPO_ROOT) if os.path.isabs(arg) else arg for arg in command)}",
              flush=True)
        # Stopped with SIGTERM on a timeout: controller.sh then stops its container too.
        with subprocess.Popen(command, cwd=REPO_ROOT) as proc:
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=120)
                pytest.fail(f"molecule test -s {scenario} did not finish within {TIMEOUT}s")
    assert proc.returncode == 0, f"molecule test -s {scenario} exited {proc.returncode}"


@pytest.mark.parametrize("scenario,lane", BACKGROUND)
def test_molecule_scenario_in_background(scenario, lane, background_run, capfd):
    """Waits for the scenario that conftest.py queued on its lane."""
    run = background_run
    while not run.done.wait(timeout=5):
        if run.started is not None and time.monotonic() - run.started > TIMEOUT:
            run.proc.kill()
            run.done.wait(timeout=120)
            pytest.fail("molecule test -s %s did not finish within %ss (log: %s)" % (scenario, TIMEOUT, run.log_path))
    assert run.rc is not None, "molecule test -s %s did not start (the session was ending, or the lane failed: see above)" % scenario
    with open(run.log_path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    shown = lines[-(SUMMARY_LINES if run.rc == 0 else FAILURE_LINES):]
    with capfd.disabled():
        print("\n==> molecule: molecule test -s %s ran in the background (lane %s) for %.0fs, exit %d; the end of %s:\n%s"
              % (scenario, lane, run.ended - run.started, run.rc, run.log_path, "\n".join(shown)), flush=True)
    # The verifier's own summary lines (FAILED/ERROR test ids), so the failure's
    # one-line form already names the failing tests, not only the exit code.
    failed = failure_lines(lines)
    assert run.rc == 0, "molecule test -s %s exited %d (log: %s)%s" % (
        scenario, run.rc, run.log_path, "".join("\n  " + line for line in failed[:20]))
