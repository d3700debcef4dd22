"""Unit tests for the nginx_mail_* filters (plugins/filter/nginx_mail.py), which compute
what roles/nginx_mail/vars/main.yml gives the templates, the comparison and the
preflight."""

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter import nginx_mail as plugin

HOSTVARS = {
    # An inventory address that is an IP address wins over facts.
    "store1": {"ansible_host": "192.0.2.1", "ansible_facts": {"default_ipv4": {"address": "10.0.0.1"}}},
    # A host name: the facts' address; its own PROXY port.
    "store2": {"ansible_host": "store2.example.test", "dovecot_proxy_port": "10144",
               "ansible_facts": {"default_ipv4": {"address": "10.0.0.2"}}},
    # No facts yet (default_ipv4 is empty when the host has no default route).
    "store3": {"ansible_facts": {"default_ipv4": {}}},
    "store4": {},
}
ADVICE = ("Set its ansible_host to an IP address, let the role gather its facts, or set "
          "nginx_mail_upstream_overrides['%s'].")


def test_stores_address_and_port_by_precedence():
    overrides = {"store4": {"address": "127.0.0.1", "port": 11003}, "store3": {"port": "11002"}}
    stores = plugin.nginx_mail_stores(["store1", "store2", "store3", "store4", "outside"], overrides, HOSTVARS, 10143)
    assert stores == [
        {"name": "store1", "address": "192.0.2.1", "port": 10143},
        {"name": "store2", "address": "10.0.0.2", "port": 10144},
        {"name": "store3", "address": "", "port": 11002},
        {"name": "store4", "address": "127.0.0.1", "port": 11003},
        # Not in the inventory: only what the overrides and the defaults give.
        {"name": "outside", "address": "", "port": 10143},
    ]


def test_stores_ipv6_and_int_conversion_as_jinja_does():
    hostvars = {"s": {"ansible_host": "fd00::5"}}
    assert plugin.nginx_mail_stores(["s"], {}, hostvars, "10143.9") == [
        {"name": "s", "address": "fd00::5", "port": 10143}]
    assert plugin.nginx_mail_stores(["s"], {"s": {"port": "not a port"}}, hostvars, 1)[0]["port"] == 0
    # An override's address is taken as it is, as text.
    assert plugin.nginx_mail_stores(["s"], {"s": {"address": 10}}, hostvars, 1)[0]["address"] == "10"


def test_state_files_both_trees_by_sha256():
    texts = {"nginx.conf": "user www-data;\n", "mailmesh/mail.conf": "mail {}\n", "mailmesh/auth_http.conf": "x"}
    files = ["nginx.conf", "mailmesh/mail.conf", "mailmesh/auth_http.conf"]
    state = plugin.nginx_mail_state_files(files, texts, "/var/lib/staging", "/etc/nginx", "mailmesh")
    sha = dict((name, hashlib.sha256(text.encode()).hexdigest()) for name, text in texts.items())
    root = {"owner": "root", "group": "root"}
    assert state == [
        dict(root, path="/var/lib/staging", state="directory", mode="0700"),
        dict(root, path="/var/lib/staging/mailmesh", state="directory", mode="0700",
             entries=["mail.conf", "auth_http.conf"]),
        dict(root, path="/etc/nginx/mailmesh", state="directory", mode="0755",
             entries=["mail.conf", "auth_http.conf"]),
        dict(root, path="/var/lib/staging/nginx.conf", sha256=sha["nginx.conf"], mode="0644"),
        dict(root, path="/etc/nginx/nginx.conf", sha256=sha["nginx.conf"], mode="0644"),
        dict(root, path="/var/lib/staging/mailmesh/mail.conf", sha256=sha["mailmesh/mail.conf"], mode="0644"),
        dict(root, path="/etc/nginx/mailmesh/mail.conf", sha256=sha["mailmesh/mail.conf"], mode="0644"),
        dict(root, path="/var/lib/staging/mailmesh/auth_http.conf", sha256=sha["mailmesh/auth_http.conf"],
             mode="0644"),
        dict(root, path="/etc/nginx/mailmesh/auth_http.conf", sha256=sha["mailmesh/auth_http.conf"], mode="0644"),
    ]
    # Every file the tasks write is compared, in both trees.
    paths = [entry["path"] for entry in state]
    for name in files:
        assert "/var/lib/staging/" + name in paths and "/etc/nginx/" + name in paths
    with pytest.raises(AnsibleFilterError, match="no text rendered for mailmesh/new.conf"):
        plugin.nginx_mail_state_files(files + ["mailmesh/new.conf"], texts, "/s", "/l", "mailmesh")


def test_input_problems_none():
    assert plugin.nginx_mail_input_problems(["store1"], 5, 10, 20, {"alice@example.test": "store1"}) == ""


def test_input_problems_one_sentence_each():
    message = plugin.nginx_mail_input_problems(
        [], "1", 30, "20",
        {"bad user": "store1", "ok@example.test": "store1", 'quo"te': "s", "semi;colon": "s", "brace{": "s",
         "two  blanks": "s", "ok1": ["store1"], "ok2": "-store", "ok3": None, "back\\slash": "s", 7: "store1"})
    user = ("nginx_mail_user_map: %s -> %s: expected a login without blanks, quotes, backslashes, ';' or braces, "
            "mapped to an inventory host name.")
    assert message == " ".join([
        "nginx_mail_upstream_stores is empty: put the mail stores in the inventory group mailstores (the "
        "default) or list their inventory names.",
        "nginx_mail_auth_max_attempts must be between 2 and 10 (it is 1) and nginx_mail_auth_delay (30) must "
        "not exceed nginx_mail_auth_burst (20).",
        user % ('"bad user"', '"store1"'),
        user % ('"quo\\"te"', '"s"'),
        user % ('"semi;colon"', '"s"'),
        user % ('"brace{"', '"s"'),
        # Runs of white space are one blank in the message, as the template's layout made them.
        user % ('"two blanks"', '"s"'),
        user % ('"ok1"', "\"['store1']\""),
        user % ('"ok2"', '"-store"'),
        user % ('"ok3"', '"None"'),
    ])
    # As before: a backslash passes the login check (the message names it all the same).
    assert '"back\\\\slash"' not in message


@pytest.mark.parametrize("attempts, delay, burst, refused", [
    (2, 10, 20, False), (10, 20, 20, False), (11, 0, 1, True), ("1", 0, 1, True), (5, 21, 20, True),
    ("5.9", "x", 0, False),  # as `| int`: 5, 0 and 0
])
def test_input_problems_refused_login_settings(attempts, delay, burst, refused):
    message = plugin.nginx_mail_input_problems(["s"], attempts, delay, burst, {})
    assert message.startswith("nginx_mail_auth_max_attempts must be between 2 and 10") is refused, message


def test_input_problems_user_pinned_to_a_store_that_does_not_exist():
    user_map = {"alice@example.test": "store1", "bob@example.test": "stroe2", "carol@example.test": "stroe2"}
    message = plugin.nginx_mail_input_problems(["store1", "store2"], 5, 10, 20, user_map, False)
    assert message == (
        "nginx_mail_user_map sends bob@example.test, carol@example.test to stroe2, which is not in "
        "nginx_mail_upstream_stores (store1, store2): fix the store's name, add the store to the inventory "
        "group mailstores, or set nginx_mail_user_map_allow_unknown_stores to true to answer its users NO "
        "until it exists.")
    # Accepted when asked (a store announced before it is deployed), as a string from a variable too.
    for allow in (True, "true", "True", "yes"):
        assert plugin.nginx_mail_input_problems(["store1"], 5, 10, 20, user_map, allow) == ""
    assert plugin.nginx_mail_input_problems(["store1", "stroe2"], 5, 10, 20, user_map, "false") == ""


def test_input_problems_user_map_must_be_a_dict():
    with pytest.raises(AnsibleFilterError, match="nginx_mail_user_map must be a dictionary"):
        plugin.nginx_mail_input_problems(["s"], 5, 10, 20, ["alice"])


def test_store_problems():
    stores = [
        {"name": "good", "address": "10.0.0.1", "port": 10143},
        {"name": "v6", "address": "fd00::1", "port": 1},
        {"name": "unknown", "address": "", "port": 10143},
        {"name": "named", "address": "not-an-ip", "port": 10143},
        {"name": "zero", "address": "10.0.0.2", "port": 0},
        {"name": "high", "address": "10.0.0.3", "port": 65536},
    ]
    assert plugin.nginx_mail_store_problems(stores[:2], "off", "") == ""
    assert plugin.nginx_mail_store_problems(stores, "on", "") == " ".join([
        "mail store unknown: no usable IP address (\"\") or port (10143). " + ADVICE % "unknown",
        "mail store named: no usable IP address (\"not-an-ip\") or port (10143). " + ADVICE % "named",
        "mail store zero: no usable IP address (\"10.0.0.2\") or port (0). " + ADVICE % "zero",
        "mail store high: no usable IP address (\"10.0.0.3\") or port (65536). " + ADVICE % "high",
        "nginx_mail_ssl_verify_client needs nginx_mail_ssl_client_certificate (a CA bundle path).",
    ])
    assert plugin.nginx_mail_store_problems([], "optional", "/etc/mailmesh/vault/ca.pem") == ""


LOOPBACK = ("mail store %s: its Dovecot PROXY listener is on loopback (dovecot_proxy_address \"%s\"), so the "
            "gateways cannot reach it directly. Carry the gateways' connections with Envoy (an egress here, "
            "nginx_mail_upstream_overrides['%s'], and an ingress on the store), or set dovecot_proxy_address for "
            "%s to an address the gateways reach.")


def test_store_problems_a_store_reached_directly_must_not_listen_on_loopback():
    """The dovecot role's PROXY listener defaults to loopback (for an Envoy ingress): a
    gateway that would connect to it directly is refused, naming both variables."""
    stores = [{"name": name, "address": "10.0.0.1", "port": 10143}
              for name in ("default", "loop", "v6loop", "star", "own", "carried", "outside")]
    hostvars = {"default": {}, "loop": {"dovecot_proxy_address": "127.0.0.2"},
                "v6loop": {"dovecot_proxy_address": "::1"}, "star": {"dovecot_proxy_address": "*"},
                "own": {"dovecot_proxy_address": "10.0.0.1"}, "carried": {}}
    overrides = {"carried": {"address": "127.0.0.1", "port": 11000}}
    assert plugin.nginx_mail_store_problems(stores, "off", "", overrides, hostvars) == " ".join([
        LOOPBACK % ("default", "127.0.0.1", "default", "default"),
        LOOPBACK % ("loop", "127.0.0.2", "loop", "loop"),
        LOOPBACK % ("v6loop", "::1", "v6loop", "v6loop"),
    ])
    # Without hostvars (the old call) the check is skipped.
    assert plugin.nginx_mail_store_problems(stores, "off", "") == ""


def test_filters_through_the_templar():
    """The way the role's vars call them: values arrive as Ansible's own (lazy, tagged)
    types, hostvars as Ansible's hostvars."""
    templar_mod = pytest.importorskip("ansible.template")
    trust = pytest.importorskip("ansible._internal._datatag._tags")
    templar = templar_mod.Templar(loader=None, variables={
        "upstream_stores": ["store1", "store3"], "overrides": {"store3": {"address": "127.0.0.1", "port": 11000}},
        "hostvars": HOSTVARS, "user_map": {"bad user": "store1"},
    })

    def render(text):
        return templar.template(trust.TrustedAsTemplate().tag(text))

    stores = render("{{ upstream_stores | mailmesh.imap.nginx_mail_stores(overrides, hostvars, 10143) }}")
    assert stores == [{"name": "store1", "address": "192.0.2.1", "port": 10143},
                      {"name": "store3", "address": "127.0.0.1", "port": 11000}]
    message = render("{{ upstream_stores | mailmesh.imap.nginx_mail_input_problems(1, 10, 20, user_map) }}")
    assert message.startswith("nginx_mail_auth_max_attempts must be between 2 and 10 (it is 1)")
    assert '"bad user"' in message


@pytest.mark.parametrize("size, refused", [
    ("64k", False), ("32k", False), ("32768", False), ("1m", False), ("1M", False), (65536, False),
    ("31k", True), ("4k", True), ("", True), ("64 k", True), ("64kb", True), (None, False),
])
def test_input_problems_client_buffer_holds_the_largest_id(size, refused):
    """imap_client_buffer must hold an RFC 2971 ID of the largest size (about 32k), or
    NGINX closes the connection on it."""
    message = plugin.nginx_mail_input_problems(["s"], 5, 10, 20, {}, client_buffer=size)
    assert message.startswith("nginx_mail_imap_client_buffer must be a size NGINX reads (65536, 64k, 1m) of at "
                              "least 32k") is refused, message
    assert (message == "") is not refused


@pytest.mark.parametrize("capabilities, named", [
    (["IMAP4rev1", "SASL-IR", "ENABLE", "IDLE"], ""),
    (["IMAP4rev1", "LITERAL+"], "LITERAL+"),
    (["id", "literal-", "IDLE"], "ID, LITERAL-"),
])
def test_input_problems_capabilities_nginx_cannot_keep(capabilities, named):
    message = plugin.nginx_mail_input_problems(["s"], 5, 10, 20, {}, client_buffer="64k", capabilities=capabilities)
    if not named:
        assert message == ""
    else:
        assert message == ("nginx_mail_imap_capabilities must not list %s: NGINX answers ID with BAD, and closes "
                           "the connection on a non-synchronizing literal (LITERAL+, LITERAL-) in a command it "
                           "does not know. Remove them; after login the store's own list comes through." % named)


def test_largest_rfc2971_id_fits_the_smallest_accepted_buffer():
    """The arithmetic behind the 32k floor and the 64k default."""
    pairs = ' '.join('"%s" "%s"' % ("f" * 30, "v" * 1024) for _index in range(30))
    line = "a001 ID (%s)\r\n" % pairs
    assert len(line) <= plugin.IMAP_CLIENT_BUFFER_MIN
    escaped = ' '.join('"%s" "%s"' % ("\\\"" * 30, "\\\\" * 1024) for _index in range(30))
    assert len("a001 ID (%s)\r\n" % escaped) <= plugin.nginx_size("64k")
