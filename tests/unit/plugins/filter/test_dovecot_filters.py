"""Unit tests for the dovecot_input_problems filter (plugins/filter/dovecot.py), the
message of the dovecot role's preflight check after the password hashes."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import dovecot as plugin

GOOD = {
    "users": [{"name": "alice@example.test", "password_hash": "h"}, {"name": "bob@example.test", "password_hash": "h"}],
    "bad_names": [], "imaps_port": 993, "imap_loopback_port": 143, "proxy_port": 10143,
    "os_family": "Debian", "host": "store1",
}
NAMES = ("dovecot_users: user names must be unique and contain no ':', '/' or white space (offending: %s).")


def test_no_problem():
    assert plugin.dovecot_input_problems(GOOD) == ""
    assert plugin.dovecot_input_problems(dict(GOOD, users=[])) == ""


def test_every_problem_in_one_message():
    spec = dict(GOOD, users=GOOD["users"] + [{"name": "bad name"}, {"name": "c:d"}], bad_names=["bad name", "c:d"],
                imap_loopback_port=993, os_family="RedHat")
    assert plugin.dovecot_input_problems(spec) == " ".join([
        NAMES % "bad name, c:d",
        "dovecot_imaps_port (993), dovecot_imap_loopback_port (993) and dovecot_proxy_port (10143) must differ.",
        "dovecot supports Debian-family hosts; store1 is RedHat.",
    ])


def test_names_repeated_without_regard_to_case():
    """As `dovecot_users | map(attribute='name') | unique`: Ansible's unique ignores case."""
    users = [{"name": "Alice@example.test"}, {"name": "alice@example.test"}]
    assert plugin.dovecot_input_problems(dict(GOOD, users=users)) == NAMES % "none"


@pytest.mark.parametrize("ports, refused", [
    ((993, 143, 10143), False), ((993, 993, 10143), True), (("993", 993, 10143), False), (("993", "993", 1), True),
])
def test_ports_must_differ(ports, refused):
    spec = dict(GOOD, imaps_port=ports[0], imap_loopback_port=ports[1], proxy_port=ports[2])
    assert plugin.dovecot_input_problems(spec).endswith("must differ.") is refused


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="^dovecot_input_problems: KeyError"):
        plugin.dovecot_input_problems({"users": []})
