"""The roles and playbooks: no meta task that ansible-core runs whatever its `when` says.

ansible-core applies no `when` to meta noop, refresh_inventory and reset_connection: the
task runs on every host and a warning says so. A condition belongs on an include of a
file that holds the meta task (roles/vault_cert/tasks/reconnect.yml).
"""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
UNCONDITIONAL = {"noop", "refresh_inventory", "reset_connection"}


def _tasks(items):
    for task in items or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(task.get(key))


def _files():
    for pattern in ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "playbooks/*.yml"):
        yield from sorted(ROOT.glob(pattern))


def test_no_meta_task_has_a_condition_it_would_not_apply():
    found, metas = [], 0
    for path in _files():
        for task in _tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
            action = task.get("ansible.builtin.meta", task.get("meta"))
            if action is None:
                continue
            metas += 1
            if action in UNCONDITIONAL and "when" in task:
                found.append((str(path.relative_to(ROOT)), task.get("name")))
    assert metas > 0  # the walk reaches meta tasks at all
    assert not found, found
