"""vault_server's input checks (tasks/preflight.yml): one task refuses every problem at
once, one sentence per problem, each naming the variable, before anything changes.

The role's preflight tasks run on the controller (localhost), which has no inventory
groups, so the checks about client hosts look at localhost alone.
"""

from __future__ import annotations

from ansible_collections.mailmesh.imap.tests.integration._support import run_role_tasks


def _preflight(tmp_path, **extra_vars):
    return run_role_tasks(tmp_path, "vault_server", "preflight", extra_vars)


def test_good_input_passes(tmp_path):
    proc = _preflight(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Check the inventory and the input" in proc.stdout


def test_every_problem_is_named_in_one_message(tmp_path):
    proc = _preflight(
        tmp_path,
        vault_server_flavor="vault",
        vault_server_secret_threshold=4,
        vault_server_secret_shares=2,
        vault_server_client_ip_sans="10.0.0.1",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "vault_server_install_method 'wheel' installs OpenBao" in output, output
    assert "vault_server_secret_threshold (4) must not exceed vault_server_secret_shares (2)." in output, output
    assert ("localhost: vault_server_client_alt_names must be a list of DNS names and "
            "vault_server_client_ip_sans a list of IP addresses.") in output, output
    # One sentence after the other, no run of spaces left by the template's layout.
    message = [line for line in output.splitlines() if '"msg":' in line][0]
    assert "  " not in message.split('"msg":', 1)[1], message


def test_apt_needs_its_repository(tmp_path):
    proc = _preflight(tmp_path, vault_server_install_method="apt", vault_server_apt_key_url="")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "vault_server_install_method 'apt' needs vault_server_apt_key_url" in output, output
