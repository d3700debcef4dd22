"""Unit tests for plugins/modules/vault_pki.py's input check (the module itself runs
against OpenBao in tests/integration/test_vault_pki.py): each wrong value is named by
its option, before anything is read from or written to Vault."""

from ansible_collections.mailmesh.imap.plugins.modules.vault_pki import input_problems


def _ca(mount, **changes):
    ca = {"mount_point": mount, "description": None, "max_lease_ttl": "87600h", "common_name": "CA",
          "ttl": "87600h", "key_type": "ec", "key_bits": 256, "issuing_certificates": None,
          "crl_distribution_points": None, "crl": None}
    ca.update(changes)
    return ca


def _role(name, **changes):
    role = {"name": name, "extra": {}, "ttl": "72h", "max_ttl": None}
    role.update(changes)
    return role


def test_good_input_has_no_problem():
    params = {"root": _ca("pki", crl={"expiry": "72h", "auto_rebuild_grace_period": "12h",
                                      "auto_rebuild": True, "disable": False}),
              "intermediate": _ca("pki_int"), "roles": [_role("gateways"), _role("edge_devices")]}
    assert input_problems(params) == []
    assert input_problems(dict(params, intermediate=None)) == []


def test_each_wrong_value_is_named_by_its_option():
    params = {"root": _ca("pki", ttl="ten years", crl={"expiry": "72h", "auto_rebuild_grace_period": "soon"}),
              "intermediate": _ca("/pki/", max_lease_ttl="-1h"),
              "roles": [_role("gateways", max_ttl="a while"), _role("gateways", extra={"max_ttl": "x"})]}
    problems = input_problems(params)
    assert [problem.split(":")[0] for problem in problems] == [
        "root.ttl", "root.crl.auto_rebuild_grace_period", "intermediate.max_lease_ttl",
        "root.mount_point and intermediate.mount_point are the same mount (pki)",
        "roles[0] (gateways).max_ttl", "roles[1].name", "roles[1] (gateways).max_ttl"]


def test_each_ca_and_role_is_checked_as_its_own_module_checks_it():
    from ansible_collections.mailmesh.imap.plugins.modules.vault_pki import checked_params

    params = {"root": {"mount_point": "pki", "key_bits": "many", "crl": {"expiry": "72h", "rebuild": True}},
              "intermediate": None,
              "roles": [{"name": "gateways", "server_flag": "perhaps"}, {"ttl": "72h"}, "edge_devices"]}
    checked, problems = checked_params(params)
    assert [problem.split(":")[0] for problem in problems] == [
        "root", "root", "roles[0]", "roles[1]", "roles[2]"]
    text = "\n".join(problems)
    assert "key_bits" in text and "rebuild" in text and "server_flag" in text and "name" in text
    assert "roles[2]: must be a dict, not str" in problems

    checked, problems = checked_params({"root": {"mount_point": "pki", "common_name": "CA"}, "intermediate": None,
                                        "roles": [{"name": "gateways", "key_bits": "256"}]})
    assert problems == []
    assert checked["root"]["key_type"] == "ec" and checked["root"]["key_bits"] == 256 and checked["root"]["crl"] is None
    assert checked["roles"][0]["key_bits"] == 256 and checked["roles"][0]["extra"] == {}
