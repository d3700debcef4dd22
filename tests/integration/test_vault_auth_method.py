"""vault_auth_method against the shared OpenBao dev server."""


def _method(bao, path):
    return bao.client().adapter.get("/v1/sys/auth")["data"].get(path + "/")


def test_auth_method_lifecycle(bao, run_module):
    args = bao.connection(path="t_am_approle", method_type="approle", description="hosts")

    result = run_module("vault_auth_method", args, check=True)
    assert not result.failed, result
    assert result.changed and _method(bao, "t_am_approle") is None

    result = run_module("vault_auth_method", args)
    assert result.changed, result
    assert _method(bao, "t_am_approle")["type"] == "approle"

    assert not run_module("vault_auth_method", args).changed
    assert not run_module("vault_auth_method", args, check=True).changed

    result = run_module("vault_auth_method", dict(args, description="all hosts"), diff=True)
    assert result.changed
    assert result["diff"]["before"]["description"] == "hosts"
    assert result["diff"]["after"]["description"] == "all hosts"
    assert _method(bao, "t_am_approle")["description"] == "all hosts"

    result = run_module("vault_auth_method", dict(args, method_type="userpass"))
    assert result.failed and "approle" in result["msg"]

    gone = bao.connection(path="t_am_approle", state="absent")
    assert run_module("vault_auth_method", gone, check=True).changed
    assert _method(bao, "t_am_approle") is not None
    assert run_module("vault_auth_method", gone).changed
    assert _method(bao, "t_am_approle") is None
    assert not run_module("vault_auth_method", gone).changed
