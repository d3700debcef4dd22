"""vault_pki_role against the shared OpenBao dev server."""

import pytest


@pytest.fixture(scope="module")
def pki_mount(bao):
    bao.client().adapter.post("/v1/sys/mounts/t_role_pki", json={"type": "pki"})
    return "t_role_pki"


def _role(bao, mount, name):
    try:
        return bao.client().adapter.get("/v1/%s/roles/%s" % (mount, name))["data"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_pki_role_lifecycle(bao, run_module, pki_mount):
    args = bao.connection(
        mount_point=pki_mount, name="hosts",
        allowed_domains=["b.example", "a.example"], allow_subdomains=True,
        allow_ip_sans=True, server_flag=True, client_flag=True,
        key_type="ec", key_bits=256, ttl="720h", max_ttl="2160h",
        use_csr_common_name=False, use_csr_sans=False,
        extra={"ou": ["mailmesh"], "not_before_duration": "30s"},
    )
    result = run_module("vault_pki_role", args, check=True, diff=True)
    assert not result.failed, result
    assert result.changed
    assert result["diff"]["before"] == {}
    assert _role(bao, pki_mount, "hosts") is None

    result = run_module("vault_pki_role", args)
    assert not result.failed, result
    assert result.changed
    role = _role(bao, pki_mount, "hosts")
    assert role["ttl"] == 720 * 3600 and role["max_ttl"] == 2160 * 3600
    assert sorted(role["allowed_domains"]) == ["a.example", "b.example"]
    assert role["use_csr_common_name"] is False and role["ou"] == ["mailmesh"]

    result = run_module("vault_pki_role", args)
    assert not result.failed, result
    assert not result.changed, result["changed_keys"]
    # same values written differently: still no change
    same = dict(args, ttl="2592000", allowed_domains=["a.example", "b.example"])
    assert not run_module("vault_pki_role", same, check=True).changed

    # update one option: only it shows in the diff; others keep their values
    result = run_module("vault_pki_role", dict(args, ttl="24h"), check=True, diff=True)
    assert result.changed and result["changed_keys"] == ["ttl"]
    assert result["diff"]["before"]["ttl"] == 2592000 and result["diff"]["after"]["ttl"] == 86400
    assert _role(bao, pki_mount, "hosts")["ttl"] == 2592000
    only_ttl = bao.connection(mount_point=pki_mount, name="hosts", ttl="24h")
    result = run_module("vault_pki_role", only_ttl, diff=True)
    assert result.changed
    assert set(result["diff"]["after"]) == {"ttl"}
    role = _role(bao, pki_mount, "hosts")
    assert role["ttl"] == 86400
    assert role["max_ttl"] == 2160 * 3600 and role["ou"] == ["mailmesh"]
    assert sorted(role["allowed_domains"]) == ["a.example", "b.example"]
    assert not run_module("vault_pki_role", only_ttl).changed

    gone = bao.connection(mount_point=pki_mount, name="hosts", state="absent")
    assert run_module("vault_pki_role", gone, check=True).changed
    assert _role(bao, pki_mount, "hosts") is not None
    assert run_module("vault_pki_role", gone).changed
    assert _role(bao, pki_mount, "hosts") is None
    assert not run_module("vault_pki_role", gone).changed
