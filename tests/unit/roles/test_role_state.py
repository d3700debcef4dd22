"""roles/envoy, dovecot, nginx_mail and vault_server: every path the tasks that run only after a difference
write on the host is in the role's __<role>_state_files, the list host_state compares
(tasks/compare.yml).

A path left out would not be compared: a change to it alone would not run the tasks
that put it back. The comparison after the tasks catches wrong expected values, not missing paths; this test catches those.
"""

import pathlib
import re

import yaml

import pytest

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
# Per role: the task files main.yml runs only where the comparison finds a difference.
CONVERGE = {
    "envoy": ["install.yml", "install_wheel.yml", "install_binary.yml", "configure.yml",
              "helpers.yml", "quickack.yml", "service.yml"],
    "dovecot": ["accounts.yml", "configure.yml", "service.yml"],
    "nginx_mail": ["configure.yml", "service.yml"],
    "vault_server": ["install.yml", "install_wheel.yml", "install_archive.yml", "configure.yml", "service.yml"],
}
WRITERS = ("ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.file")


def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _written_paths(role):
    """(file, task name, path expression) of every host-side write in the converge files."""
    for name in CONVERGE[role]:
        for task in _tasks(yaml.safe_load((ROLES / role / "tasks" / name).read_text(encoding="utf-8"))):
            module = next((m for m in WRITERS if m in task), None)
            if module is None or task.get("delegate_to") == "localhost":
                continue
            args = task[module]
            if args.get("state") == "absent":
                continue
            key = "dest" if "dest" in args else "path"
            expression = args[key]
            if "item" in expression and isinstance(task["loop"], str):
                # A loop over a variable (the list of files): its variables and the
                # destination's others must all be in the list compared.
                yield name, task["name"], expression.replace("{{ item }}", "") + task["loop"]
            elif "item" in expression:
                loop = task["loop"]
                assert isinstance(loop, list), (name, task["name"], loop)
                for item in loop:
                    yield name, task["name"], item[key] if isinstance(item, dict) else item
            else:
                yield name, task["name"], expression


def _variables(expression):
    return re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)", expression)


@pytest.mark.parametrize("role,at_least", [("envoy", 10), ("dovecot", 5), ("nginx_mail", 4), ("vault_server", 10)])
def test_the_converge_files_write_paths_at_all(role, at_least):
    paths = list(_written_paths(role))
    assert len(paths) >= at_least, paths


@pytest.mark.parametrize("role", sorted(CONVERGE))
def test_every_written_path_is_compared(role):
    variables_file = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text(encoding="utf-8"))
    state = str(variables_file["__%s_state_files" % role])
    missing = []
    for name, task, expression in _written_paths(role):
        variables = _variables(str(expression))
        assert variables, (name, task, expression)
        if not all(re.search(r"\b%s\b" % re.escape(v), state) for v in variables):
            missing.append((name, task, expression))
    assert not missing, missing
