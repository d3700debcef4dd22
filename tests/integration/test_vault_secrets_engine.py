"""vault_secrets_engine against the shared OpenBao dev server."""


def _mount(bao, path):
    return bao.client().adapter.get("/v1/sys/mounts")["data"].get(path + "/")


def test_secrets_engine_lifecycle(bao, run_module):
    args = bao.connection(path="t_se_pki", engine_type="pki", description="test pki",
                          max_lease_ttl="87600h")

    result = run_module("vault_secrets_engine", args, check=True, diff=True)
    assert not result.failed, result
    assert result.changed
    assert result["diff"]["after"]["max_lease_ttl"] == 87600 * 3600
    assert _mount(bao, "t_se_pki") is None

    result = run_module("vault_secrets_engine", args)
    assert not result.failed, result
    assert result.changed
    mount = _mount(bao, "t_se_pki")
    assert mount["type"] == "pki" and mount["description"] == "test pki"
    assert mount["config"]["max_lease_ttl"] == 315360000

    result = run_module("vault_secrets_engine", args)
    assert not result.failed and not result.changed, result
    # seconds and a duration string are the same value
    result = run_module("vault_secrets_engine", dict(args, max_lease_ttl="315360000"), check=True)
    assert not result.changed

    # tune
    tuned = dict(args, default_lease_ttl="1h", description="tuned")
    result = run_module("vault_secrets_engine", tuned, check=True, diff=True)
    assert result.changed
    assert result["diff"]["before"]["default_lease_ttl"] == 0
    assert result["diff"]["after"]["default_lease_ttl"] == 3600
    assert _mount(bao, "t_se_pki")["description"] == "test pki"
    result = run_module("vault_secrets_engine", tuned, diff=True)
    assert result.changed
    mount = _mount(bao, "t_se_pki")
    assert mount["description"] == "tuned" and mount["config"]["default_lease_ttl"] == 3600
    assert not run_module("vault_secrets_engine", tuned).changed

    # another type at the same path: clear failure, nothing changed
    result = run_module("vault_secrets_engine", dict(args, engine_type="kv"))
    assert result.failed
    assert "pki" in result["msg"] and "t_se_pki" in result["msg"]

    # bad duration: clear failure naming the option
    result = run_module("vault_secrets_engine", dict(args, max_lease_ttl="ten years"))
    assert result.failed and "max_lease_ttl" in result["msg"]

    # absent
    gone = bao.connection(path="t_se_pki", state="absent")
    result = run_module("vault_secrets_engine", gone, check=True)
    assert result.changed and _mount(bao, "t_se_pki") is not None
    assert run_module("vault_secrets_engine", gone).changed
    assert _mount(bao, "t_se_pki") is None
    assert not run_module("vault_secrets_engine", gone).changed
