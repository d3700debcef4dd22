"""Unit tests for the mailmesh.imap.vault_cert_policy filter."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter.vault import FilterModule, vault_cert_policy
from ansible_collections.mailmesh.imap.plugins.module_utils._names import join_names


def _allowed(policy):
    """allowed_parameters of the sign path as {name: [values]}."""
    block = policy.split("allowed_parameters = {", 1)[1].split("}", 1)[0]
    return {
        match.group(1): re.findall(r'"([^"]*)"', match.group(2))
        for match in re.finditer(r'"(\w+)" = \[([^\]]*)\]', block)
    }


def test_filter_is_registered():
    assert FilterModule().filters()["vault_cert_policy"] is vault_cert_policy


def test_minimal_policy():
    policy = vault_cert_policy("pki_int", "gateways", "gw1.example.org")
    assert 'path "pki_int/sign/gateways" {' in policy
    assert 'capabilities = ["create", "update"]' in policy
    assert _allowed(policy) == {"csr": [], "common_name": ["gw1.example.org"], "ttl": []}
    assert 'path "pki_int/cert/ca_chain"' in policy and 'path "pki_int/ca/pem"' in policy


def test_names_are_normalised_like_join_names():
    alt = [" B.example.org", "a.example.org", "b.example.org", ""]
    ips = ["10.0.0.2", "10.0.0.1", "10.0.0.2"]
    policy = vault_cert_policy("pki_int", "gateways", "gw1", alt_names=alt, ip_sans=ips,
                               ttl_values=["720h"])
    allowed = _allowed(policy)
    assert allowed["alt_names"] == [join_names(alt)] == ["a.example.org,b.example.org"]
    assert allowed["ip_sans"] == [join_names(ips)] == ["10.0.0.1,10.0.0.2"]
    assert allowed["ttl"] == ["720h"]


def test_matches_what_vault_pki_cert_sends():
    pki = pytest.importorskip("ansible_collections.mailmesh.imap.plugins.module_utils._pki")
    body = pki.sign_request_params("CSR", "gw1", ["b.x", "A.x"], ["10.0.0.1"], "720h")
    allowed = _allowed(vault_cert_policy("m", "r", "gw1", ["b.x", "A.x"], ["10.0.0.1"], ["720h"]))
    assert set(body) == set(allowed)
    for key in ("common_name", "alt_names", "ip_sans", "ttl"):
        assert allowed[key] == [body[key]]


def test_empty_names_are_omitted():
    allowed = _allowed(vault_cert_policy("pki", "r", "h", alt_names=[], ip_sans=None))
    assert "alt_names" not in allowed and "ip_sans" not in allowed


@pytest.mark.parametrize("kwargs, needle", [
    (dict(common_name='gw1" }\npath "sys/*" {'), "common_name"),
    (dict(common_name="gw1\nx"), "newline"),
    (dict(common_name=""), "common_name"),
    (dict(common_name="a\\b"), "backslash"),
    (dict(common_name="*.example.org"), "glob"),
    (dict(alt_names=["ok.example", 'bad"name']), "alt_names"),
    (dict(alt_names=["a.example,b.example"]), "comma"),
    (dict(alt_names="a.example"), "must be a list"),
    (dict(ip_sans=["10.0.0.1\n"]), "ip_sans"),
    (dict(alt_names=["${foo}"]), "interpolation"),
    (dict(mount="pki/*"), "mount"),
    (dict(role='r"'), "role"),
    (dict(role="+"), "role"),
    (dict(ttl_values=['720h"']), "ttl_values"),
])
def test_unsafe_values_are_rejected(kwargs, needle):
    args = dict(mount="pki_int", role="gateways", common_name="gw1")
    args.update(kwargs)
    with pytest.raises(AnsibleFilterError, match=re.escape(needle)):
        vault_cert_policy(**args)
