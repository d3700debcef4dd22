"""Unit tests for plugins/modules/vault_pki_cert.py that need no Vault."""

import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import AUTH_ARGSPEC, CONNECTION_ARGSPEC
from ansible_collections.mailmesh.imap.plugins.modules import vault_pki_cert as module

SHARED = set(AUTH_ARGSPEC) | set(CONNECTION_ARGSPEC)


def test_documented_options_match_argspec():
    doc = yaml.safe_load(module.DOCUMENTATION)
    spec = module.argument_spec()
    own = {name: opts for name, opts in spec.items() if name not in SHARED}
    assert set(doc["options"]) == set(own)
    for name, opts in own.items():
        documented = doc["options"][name]
        assert documented["type"] == opts["type"], name
        assert documented.get("required", False) == opts.get("required", False), name
        assert documented.get("default") == opts.get("default"), name
        assert documented.get("choices") == opts.get("choices"), name
        assert documented.get("elements") == opts.get("elements"), name


def test_doc_blocks_parse():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["version_added"] == "0.1.0"
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    assert "mailmesh.imap.vault_connection" in doc["extends_documentation_fragment"]
    assert "mailmesh.imap.vault_auth" in doc["extends_documentation_fragment"]
    assert doc["seealso"][0]["module"] == "community.hashi_vault.vault_pki_generate_certificate"
    assert yaml.safe_load(module.EXAMPLES)
    ret = yaml.safe_load(module.RETURN)
    for key in ("serial_number", "not_after", "not_before", "common_name", "alt_names", "ip_sans",
                "reasons", "cert_path", "key_path"):
        assert "sample" in ret[key], key


def test_json_helper():
    class Response:
        def __init__(self, body):
            self.body = body

        def json(self):
            if self.body is None:
                raise ValueError("no json")
            return self.body

    assert module._json({"data": 1}) == {"data": 1}
    assert module._json(Response({"data": 2})) == {"data": 2}
    assert module._json(Response(None)) == {}
    assert module._json(None) == {}
