"""vault_policy against the shared OpenBao dev server, plus the shared error messages."""

POLICY = 'path "t_pol/*" {\n  capabilities = ["read"]\n}\n'


def _policy(bao, name):
    try:
        return bao.client().adapter.get("/v1/sys/policies/acl/" + name)["data"]["policy"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_policy_lifecycle(bao, run_module):
    args = bao.connection(name="t-pol", policy=POLICY)

    result = run_module("vault_policy", args, check=True)
    assert not result.failed, result
    assert result.changed and _policy(bao, "t-pol") is None

    assert run_module("vault_policy", args).changed
    assert _policy(bao, "t-pol").strip() == POLICY.strip()

    assert not run_module("vault_policy", args).changed
    # trailing whitespace does not count
    result = run_module("vault_policy", dict(args, policy=POLICY.replace("{\n", "{   \n") + "\n\n"),
                        check=True)
    assert not result.changed

    new = POLICY.replace('"read"', '"read", "list"')
    result = run_module("vault_policy", dict(args, policy=new), check=True, diff=True)
    assert result.changed
    assert '"list"' in result["diff"]["after"] and '"list"' not in result["diff"]["before"]
    assert '"list"' not in _policy(bao, "t-pol")
    assert run_module("vault_policy", dict(args, policy=new)).changed
    assert '"list"' in _policy(bao, "t-pol")

    gone = bao.connection(name="t-pol", state="absent")
    assert run_module("vault_policy", gone, check=True).changed
    assert run_module("vault_policy", gone).changed
    assert _policy(bao, "t-pol") is None
    assert not run_module("vault_policy", gone).changed


def test_unreachable_url_is_named(run_module):
    url = "https://127.0.0.1:1"
    result = run_module("vault_policy", {"url": url, "token": "x", "name": "p", "policy": POLICY})
    assert result.failed
    assert url in result["msg"] and "unreachable" in result["msg"]


def test_permission_denied_is_named(bao, run_module):
    token = bao.client().adapter.post(
        "/v1/auth/token/create", json={"policies": ["default"], "ttl": "5m"}
    )["auth"]["client_token"]
    args = bao.connection(token=token, name="t-pol-denied", policy=POLICY)
    result = run_module("vault_policy", args)
    assert result.failed
    assert bao.url in result["msg"] and "permission denied" in result["msg"]
    assert token not in result["_stdout"]
