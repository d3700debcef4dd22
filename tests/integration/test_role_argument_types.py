"""Every role refuses a variable of the wrong type before its first task (its
meta/argument_specs.yml, which Ansible checks before anything else of the role runs), with
a message that names the variable and the type it wants (docs/reliability.md). The role
runs on the controller (local connection): nothing of it may run, so nothing changes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.mailmesh.imap.tests.integration._support import VENV_BIN, ansible_env


def _apply_role(tmp_path, role, variables):
    """ansible-playbook applying the role on the controller with these extra variables;
    its return code and output."""
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Apply mailmesh.imap.{role} with wrong input
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Apply the role
              ansible.builtin.include_role:
                name: mailmesh.imap.{role}
        """).format(role=role), encoding="utf-8")
    (tmp_path / "extra.json").write_text(json.dumps(dict(variables, ansible_connection="local",
                                                         ansible_python_interpreter=sys.executable)),
                                         encoding="utf-8")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
         "-e", "@" + str(tmp_path / "extra.json")],
        env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("role, variables, named", [
    pytest.param("dovecot", {"dovecot_users": "alice@example.test"}, "dovecot_users", id="dovecot-users-a-string"),
    pytest.param("nginx_mail", {"nginx_mail_user_map": ["alice@example.test", "store1"]}, "nginx_mail_user_map",
                 id="nginx-mail-user-map-a-list"),
    pytest.param("envoy", {"envoy_stats_port": "eight thousand"}, "envoy_stats_port", id="envoy-port-not-a-number"),
    pytest.param("vault_server", {"vault_server_secret_shares": "many"}, "vault_server_secret_shares",
                 id="vault-server-shares-not-a-number"),
    pytest.param("vault_cert", {"vault_cert_service": "nginx", "vault_cert_force": "sometimes"}, "vault_cert_force",
                 id="vault-cert-force-not-a-boolean"),
])
def test_a_variable_of_the_wrong_type_is_refused_before_the_role_runs(tmp_path, role, variables, named):
    returncode, output = _apply_role(tmp_path, role, variables)
    assert returncode != 0, output
    assert "Validating arguments against arg spec" in output, output
    assert named in output.split("fatal:", 1)[-1], output
    # The argument check was the only task of the role that ran.
    tasks = [line for line in output.splitlines() if line.startswith("TASK [mailmesh.imap.")]
    assert len(tasks) == 1 and "Validating arguments" in tasks[0], tasks


@pytest.mark.parametrize("variables, named", [
    pytest.param({"vault_cert_service": "nginx; rm", "vault_cert_crl_format": "envoy", "vault_cert_crl_mounts": []},
                 ["vault_cert_service must be a plain name", "got 'nginx; rm'",
                  "vault_cert_crl_mounts must be a non-empty list"], id="service-and-crl-mounts"),
    pytest.param({"vault_cert_service": "nginx", "vault_cert_crl_format": "nginx", "vault_cert_agent_enabled": False,
                  "vault_cert_crl_session_cache": "lots"},
                 ["needs vault_cert_agent_enabled", "vault_cert_crl_session_cache must be empty or an NGINX size",
                  "got 'lots'"], id="crl-without-agent-bad-cache"),
])
def test_vault_cert_names_each_wrong_value_in_one_check(tmp_path, variables, named):
    """Values of the right type that the role still refuses: one check, every wrong
    variable named, and nothing after it runs."""
    returncode, output = _apply_role(tmp_path, "vault_cert", variables)
    assert returncode != 0, output
    failure = output.split("fatal:", 1)[-1]
    for text in named:
        assert text in failure, output
    tasks = [line for line in output.splitlines() if line.startswith("TASK [mailmesh.imap.")]
    assert len(tasks) == 2 and "Check the input and the CRL settings" in tasks[1], tasks
