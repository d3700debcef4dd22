"""Inventory shapes the roles refuse before any change (docs/reliability.md).

Each test writes a small inventory whose hosts are the controller itself (local
connection), runs one role's tasks/preflight.yml on them, and expects the play to fail
with a message naming the group or variable and the fix. Nothing but the preflight runs,
so nothing can change: that is the point of the preflight being first.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import VENV_BIN, ansible_env


def _preflight(tmp_path, role, inventory, hosts="all", extra=""):
    (tmp_path / "hosts.yml").write_text(textwrap.dedent(inventory), encoding="utf-8")
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Run mailmesh.imap.{role}'s preflight
          hosts: {hosts}
          gather_facts: false
          tasks:
            - name: Run the role's preflight tasks
              ansible.builtin.include_role:
                name: mailmesh.imap.{role}
                tasks_from: preflight
        """).format(role=role, hosts=hosts), encoding="utf-8")
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
            "-e", "ansible_connection=local", "-e", "ansible_python_interpreter=" + sys.executable]
    if extra:
        argv += ["-e", extra]
    proc = subprocess.run(argv, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300,
                          check=False)
    return proc, proc.stdout + proc.stderr


def test_a_host_in_two_tiers_that_conflict_is_refused(tmp_path):
    proc, output = _preflight(tmp_path, "envoy", """\
        all:
          children:
            gateways:
              hosts:
                both1:
            mailstores:
              hosts:
                both1:
                store2:
        """, hosts="both1")
    assert proc.returncode != 0, output
    assert ("both1 is in the inventory groups gateways and mailstores: a host runs one Envoy with one "
            "profile") in output, output
    assert "remove it from the others" in output, output


@pytest.mark.parametrize("role, host, empty, filled, message", [
    pytest.param("envoy", "pi1", "gateways", "edge_devices", "envoy_edge_gateways must be a non-empty list",
                 id="edge-device-without-gateways"),
    pytest.param("nginx_mail", "gw1", "mailstores", "gateways",
                 "nginx_mail_upstream_stores is empty: put the mail stores in the inventory group mailstores",
                 id="gateway-without-mailstores"),
])
def test_an_empty_tier_is_refused(tmp_path, role, host, empty, filled, message):
    proc, output = _preflight(tmp_path, role, """\
        all:
          children:
            %s:
              hosts: {}
            %s:
              hosts:
                %s:
        """ % (empty, filled, host), hosts=host)
    assert proc.returncode != 0, output
    assert message in output, output


def test_duplicate_user_names_are_refused(tmp_path):
    users = ('{"dovecot_users": [{"name": "alice@example.test", "password_hash": "{SHA512-CRYPT}$6$salt$hash"}, '
             '{"name": "Alice@example.test", "password_hash": "{SHA512-CRYPT}$6$salt$other"}]}')
    proc, output = _preflight(tmp_path, "dovecot", """\
        all:
          children:
            mailstores:
              hosts:
                store1:
        """, hosts="store1", extra=users)
    assert proc.returncode != 0, output
    assert "dovecot_users: user names must be unique" in output, output
    # The message names users, never a hash.
    assert "$6$salt" not in output.split("fatal:", 1)[1], output
