"""Unit tests for the dovecot_input_problems filter (plugins/filter/dovecot.py), the
message of the dovecot role's preflight check after the password hashes."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import dovecot as plugin

GOOD = {
    "users": [{"name": "alice@example.test", "password_hash": "h"}, {"name": "bob@example.test", "password_hash": "h"}],
    "bad_names": [], "imaps": False, "listen": [], "imaps_port": 993, "imap_loopback_port": 143,
    "proxy_port": 10143, "auth_failure_delay": 2, "os_family": "Debian", "host": "store1",
}
LISTEN_EMPTY = ("dovecot_imaps is on but dovecot_listen is empty: name the addresses the direct IMAPS listener binds "
                "to (the store's address on its direct clients' network, or \"*\" and \"::\" for every address), or "
                "leave dovecot_imaps off so that clients come through the gateways.")
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


@pytest.mark.parametrize("imaps, listen", [
    (False, []), (True, ["*"]), (True, ["*", "::"]), ("yes", ["192.0.2.10"]), (True, ["2001:db8::10", "127.0.0.1"]),
    (False, ["*", "::"]),
])
def test_direct_imaps_binds_to_named_addresses(imaps, listen):
    assert plugin.dovecot_input_problems(dict(GOOD, imaps=imaps, listen=listen)) == ""


@pytest.mark.parametrize("imaps", [True, "true", "yes", 1])
def test_direct_imaps_without_an_address_is_refused(imaps):
    """The direct listener never binds to every address by default: the operator names them."""
    assert plugin.dovecot_input_problems(dict(GOOD, imaps=imaps)) == LISTEN_EMPTY


@pytest.mark.parametrize("listen", [["store1.example"], ["0.0.0.0/0"], "*", [None], ["*", "192.0.2.300"]])
def test_listen_entries_must_be_addresses(listen):
    message = plugin.dovecot_input_problems(dict(GOOD, imaps=True, listen=listen))
    assert message.startswith("dovecot_listen must be a list of IP addresses, \"*\" (every IPv4 address) or "
                              "\"::\" (every IPv6 address); it is "), message


@pytest.mark.parametrize("delay, refused", [(1, False), (2, False), ("15", False), (0, True), (16, True), ("x", True)])
def test_auth_failure_delay_range(delay, refused):
    message = plugin.dovecot_input_problems(dict(GOOD, auth_failure_delay=delay))
    assert (message == "dovecot_auth_failure_delay must be a whole number of seconds from 1 to 15 (it is %s)."
            % delay) is refused
    assert (message == "") is not refused
