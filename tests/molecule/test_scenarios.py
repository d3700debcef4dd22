"""Run every molecule scenario (molecule/*/molecule.yml) with ``molecule test``.

Molecule's output is streamed to the terminal while it runs (not captured), so a
failing converge, idempotence or verify step can be read in place. A scenario that has
its own wrapper, tests/molecule/test_<scenario>.py (to search the output, run extra
steps...), is left to that wrapper and not run twice.
"""

from __future__ import annotations

import os
import subprocess

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
GENERIC_SCENARIOS = [name for name in SCENARIOS if not has_own_wrapper(name)]


def test_harness_smoke_scenario_exists():
    # The harness's own scenario: without it a broken discovery would run nothing.
    assert "harness_smoke" in SCENARIOS, f"scenarios found: {SCENARIOS}"


@pytest.mark.parametrize("scenario", GENERIC_SCENARIOS)
def test_molecule_scenario(scenario, capfd):
    command = ["molecule", "test", "-s", scenario]
    with capfd.disabled():
        print(f"\n==> molecule: {' '.join(command)}", flush=True)
        try:
            completed = subprocess.run(command, cwd=REPO_ROOT, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"molecule test -s {scenario} did not finish within {TIMEOUT}s")
    assert completed.returncode == 0, f"molecule test -s {scenario} exited {completed.returncode}"
