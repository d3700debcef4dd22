"""vault_pki against the shared OpenBao dev server: a whole PKI in one call, a re-run
that reads only, drift brought back part by part, check mode on an empty server."""

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

CRL = {"expiry": "72h", "auto_rebuild": True, "auto_rebuild_grace_period": "12h", "disable": False}


def _args(bao, prefix, **changes):
    root = {"mount_point": prefix + "_root", "description": "t root CA", "max_lease_ttl": "87600h",
            "common_name": "t root CA", "ttl": "87600h", "key_bits": 384, "crl": CRL,
            "issuing_certificates": [bao.url + "/v1/%s_root/ca" % prefix]}
    intermediate = {"mount_point": prefix + "_int", "description": "t issuing CA", "max_lease_ttl": "43800h",
                    "common_name": "t issuing CA", "ttl": "43800h", "crl": CRL,
                    "issuing_certificates": [bao.url + "/v1/%s_int/ca" % prefix],
                    "crl_distribution_points": [bao.url + "/v1/%s_int/crl" % prefix]}
    roles = [{"name": "gateways", "allowed_domains": ["gw2.example", "gw1.example"], "allow_bare_domains": True,
              "server_flag": True, "client_flag": True, "key_type": "ec", "key_bits": 256, "ttl": "72h"},
             {"name": "edge_devices", "allowed_domains": ["pi1.example"], "allow_bare_domains": True,
              "server_flag": False, "client_flag": True, "ttl": "72h", "extra": {"ou": ["mailmesh"]}}]
    args = {"root": root, "intermediate": intermediate, "roles": roles}
    args.update(changes)
    return bao.connection(**args)


def _get(bao, path):
    try:
        return bao.client().adapter.get("/v1/" + path)["data"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_a_whole_pki_in_one_call(bao, run_module):
    args = _args(bao, "t_pki")

    # Check mode on a server that has none of it: everything would change, nothing does.
    result = run_module("vault_pki", args, check=True)
    assert not result.failed, result
    assert result.changed
    assert result["root"]["changed"] == ["mount", "ca", "urls", "crl"]
    assert result["intermediate"]["changed"] == ["mount", "ca", "urls", "crl"]
    assert result["root"]["certificate"] is None
    assert set(result["roles"]) == {"gateways", "edge_devices"}
    assert "t_pki_root/" not in bao.client().adapter.get("/v1/sys/mounts")["data"]

    result = run_module("vault_pki", args)
    assert not result.failed, result
    assert result.changed
    root = x509.load_pem_x509_certificate(result["root"]["certificate"].encode())
    inter = x509.load_pem_x509_certificate(result["intermediate"]["certificate"].encode())
    assert root.subject.rfc4514_string() == "CN=t root CA"
    assert root.public_key().key_size == 384
    assert inter.issuer == root.subject
    root.public_key().verify(inter.signature, inter.tbs_certificate_bytes, ec.ECDSA(inter.signature_hash_algorithm))
    mounts = bao.client().adapter.get("/v1/sys/mounts")["data"]
    assert mounts["t_pki_int/"]["type"] == "pki"
    assert mounts["t_pki_int/"]["config"]["max_lease_ttl"] == 43800 * 3600
    for mount in ("t_pki_root", "t_pki_int"):
        crl = _get(bao, mount + "/config/crl")
        assert crl["auto_rebuild"] is True and crl["expiry"] == "72h", crl
    assert _get(bao, "t_pki_int/config/urls")["crl_distribution_points"] == [bao.url + "/v1/t_pki_int/crl"]
    gateways = _get(bao, "t_pki_int/roles/gateways")
    assert sorted(gateways["allowed_domains"]) == ["gw1.example", "gw2.example"]
    assert gateways["ttl"] == 72 * 3600 and gateways["client_flag"] is True
    assert _get(bao, "t_pki_int/roles/edge_devices")["ou"] == ["mailmesh"]
    assert _get(bao, "t_pki_root/roles/gateways") is None  # the roles live in the issuing mount

    # A re-run: no change, the same CAs.
    again = run_module("vault_pki", args)
    assert not again.failed and not again.changed, again["changed_parts"]
    assert again["root"]["serial_number"] == result["root"]["serial_number"]
    assert again["intermediate"]["certificate"] == result["intermediate"]["certificate"]
    assert not run_module("vault_pki", args, check=True).changed

    # Drift by hand, one part each: each is found and brought back, nothing else touched.
    client = bao.client()
    client.adapter.post("/v1/t_pki_int/config/crl", json={"expiry": "24h"})
    client.adapter.post("/v1/t_pki_root/config/crl", json={"auto_rebuild": False})
    client.adapter.delete("/v1/t_pki_int/roles/edge_devices")
    client.adapter.post("/v1/sys/mounts/t_pki_root/tune", json={"description": "changed by hand"})
    result = run_module("vault_pki", args, check=True)
    assert result["changed_parts"] == ["root:mount", "root:crl", "intermediate:crl", "role:edge_devices"]
    assert result["roles"]["gateways"]["changed_keys"] == []
    result = run_module("vault_pki", args)
    assert result["changed_parts"] == ["root:mount", "root:crl", "intermediate:crl", "role:edge_devices"]
    assert result["intermediate"]["serial_number"] == again["intermediate"]["serial_number"]
    assert _get(bao, "t_pki_int/config/crl")["expiry"] == "72h"
    assert _get(bao, "t_pki_root/config/crl")["auto_rebuild"] is True
    assert _get(bao, "t_pki_int/roles/edge_devices")["ou"] == ["mailmesh"]
    assert not run_module("vault_pki", args).changed

    # One role's option changed: only that role, only that key.
    roles = [dict(args["roles"][0], ttl="24h"), args["roles"][1]]
    result = run_module("vault_pki", dict(args, roles=roles))
    assert result["changed_parts"] == ["role:gateways"]
    assert result["roles"]["gateways"]["changed_keys"] == ["ttl"]
    assert _get(bao, "t_pki_int/roles/gateways")["ttl"] == 86400


def test_a_root_alone_keeps_the_roles(bao, run_module):
    args = _args(bao, "t_pki1", intermediate=None)
    result = run_module("vault_pki", args)
    assert not result.failed, result
    assert result["intermediate"] is None
    assert _get(bao, "t_pki1_root/roles/gateways")["server_flag"] is True
    assert not run_module("vault_pki", args).changed


def test_bad_input_names_the_option_and_changes_nothing(bao, run_module):
    args = _args(bao, "t_pki2")
    args["intermediate"] = dict(args["intermediate"], crl=dict(CRL, expiry="three days"))
    args["roles"] = [dict(args["roles"][0], max_ttl="soon"), args["roles"][0]]
    result = run_module("vault_pki", args)
    assert result.failed
    assert "intermediate.crl.expiry" in result["msg"]
    assert "roles[0] (gateways).max_ttl" in result["msg"]
    assert "roles[1].name: gateways is listed twice" in result["msg"]
    assert "t_pki2_root/" not in bao.client().adapter.get("/v1/sys/mounts")["data"]

    missing = _args(bao, "t_pki3")
    del missing["root"]["common_name"]
    result = run_module("vault_pki", missing)
    assert result.failed and "root.common_name is required" in result["msg"], result["msg"]
