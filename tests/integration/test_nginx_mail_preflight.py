"""nginx_mail's input checks (tasks/preflight.yml): two tasks, before and after the
stores' facts, each refusing every problem it finds at once, one sentence per problem.

The role's preflight tasks run on the controller (localhost); the store is a name with
an address override, as for a store outside the inventory.
"""

from __future__ import annotations

from ansible_collections.mailmesh.imap.tests.integration._support import run_role_tasks

STORE = {"nginx_mail_upstream_stores": ["store1"],
         "nginx_mail_upstream_overrides": {"store1": {"address": "10.0.0.5", "port": 10143}}}


def _preflight(tmp_path, **extra_vars):
    proc = run_role_tasks(tmp_path, "nginx_mail", "preflight", dict(STORE, **extra_vars))
    return proc, proc.stdout + proc.stderr


def test_good_input_passes(tmp_path):
    proc, output = _preflight(tmp_path)
    assert proc.returncode == 0, output
    assert "Check every store's address and port, and the client certificate settings" in output


def test_input_problems_are_named_together(tmp_path):
    proc, output = _preflight(tmp_path, nginx_mail_auth_max_attempts=1,
                              nginx_mail_user_map={"bad user": "store1", "ok@example.test": "store1"})
    assert proc.returncode != 0, output
    assert "nginx_mail_auth_max_attempts must be between 2 and 10 (it is 1)" in output, output
    assert '"bad user"' in output and "ok@example.test" not in output.split('"msg":', 1)[1], output


def test_no_stores(tmp_path):
    proc, output = _preflight(tmp_path, nginx_mail_upstream_stores=[])
    assert proc.returncode != 0, output
    assert "nginx_mail_upstream_stores is empty" in output, output


def test_store_problems_after_the_facts(tmp_path):
    proc, output = _preflight(tmp_path,
                              nginx_mail_upstream_overrides={"store1": {"address": "not-an-ip", "port": 10143}},
                              nginx_mail_ssl_verify_client="optional", nginx_mail_ssl_client_certificate="")
    assert proc.returncode != 0, output
    assert 'mail store store1: no usable IP address (\\"not-an-ip\\")' in output, output
    assert "nginx_mail_ssl_verify_client needs nginx_mail_ssl_client_certificate" in output, output


def test_a_user_pinned_to_a_store_that_does_not_exist(tmp_path):
    proc, output = _preflight(tmp_path, nginx_mail_user_map={"alice@example.test": "store1",
                                                             "bob@example.test": "store9"})
    assert proc.returncode != 0, output
    assert "nginx_mail_user_map sends bob@example.test to store9, which is not in nginx_mail_upstream_stores" \
        in output, output
    assert "nginx_mail_user_map_allow_unknown_stores" in output, output
    proc, output = _preflight(tmp_path, nginx_mail_user_map={"bob@example.test": "store9"},
                              nginx_mail_user_map_allow_unknown_stores=True)
    assert proc.returncode == 0, output
