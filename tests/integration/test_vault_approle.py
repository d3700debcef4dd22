"""vault_approle_role and vault_approle_secret_id against the shared OpenBao dev server."""

import time

import pytest

MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.fixture(scope="module")
def approle_mount(bao):
    bao.client().adapter.post("/v1/sys/auth/t_ar", json={"type": "approle"})
    return "t_ar"


def _role(bao, mount, name):
    try:
        return bao.client().adapter.get("/v1/auth/%s/role/%s" % (mount, name))["data"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_approle_role_lifecycle(bao, run_module, approle_mount):
    args = bao.connection(mount_point=approle_mount, role_name="host1",
                          token_policies=["p2", "p1"], token_ttl="10m", token_max_ttl="30m",
                          token_type="service", secret_id_ttl="0", secret_id_num_uses=0,
                          token_bound_cidrs=["127.0.0.1/32"], bind_secret_id=True)
    result = run_module("vault_approle_role", args, check=True, diff=True)
    assert not result.failed, result
    assert result.changed and result["role_id"] is None
    assert _role(bao, approle_mount, "host1") is None

    result = run_module("vault_approle_role", args)
    assert not result.failed, result
    assert result.changed and result["role_id"]
    role_id = result["role_id"]
    role = _role(bao, approle_mount, "host1")
    assert sorted(role["token_policies"]) == ["p1", "p2"]
    assert role["token_ttl"] == 600 and role["token_max_ttl"] == 1800

    result = run_module("vault_approle_role", args)
    assert not result.failed and not result.changed, result
    assert result["role_id"] == role_id
    result = run_module("vault_approle_role", args, check=True)
    assert not result.changed and result["role_id"] == role_id

    result = run_module("vault_approle_role", dict(args, token_ttl="15m",
                                                   secret_id_bound_cidrs=["10.0.0.0/8"]),
                        check=True, diff=True)
    assert result.changed
    assert result["changed_keys"] == ["secret_id_bound_cidrs", "token_ttl"]
    assert result["diff"]["before"]["token_ttl"] == 600
    assert result["diff"]["after"]["token_ttl"] == 900
    assert _role(bao, approle_mount, "host1")["token_ttl"] == 600
    result = run_module("vault_approle_role", dict(args, token_ttl="15m"), diff=True)
    assert result.changed and result["changed_keys"] == ["token_ttl"]
    assert _role(bao, approle_mount, "host1")["token_ttl"] == 900
    assert not run_module("vault_approle_role", dict(args, token_ttl="900")).changed

    gone = bao.connection(mount_point=approle_mount, role_name="host1", state="absent")
    assert run_module("vault_approle_role", gone, check=True).changed
    assert run_module("vault_approle_role", gone).changed
    assert _role(bao, approle_mount, "host1") is None
    assert not run_module("vault_approle_role", gone).changed


def test_approle_secret_id(bao, run_module, approle_mount):
    for name in ("host2", "other"):
        assert run_module("vault_approle_role", bao.connection(
            mount_point=approle_mount, role_name=name, token_policies=["default"])).changed
    args = bao.connection(mount_point=approle_mount, role_name="host2",
                          metadata={"host": "host2"})

    # check mode without a current secret: would generate, generates nothing
    result = run_module("vault_approle_secret_id", args, check=True)
    assert not result.failed, result
    assert result.changed and result["secret_id"] is None and result["role_id"]

    result = run_module("vault_approle_secret_id", args)
    assert not result.failed, result
    assert result.changed
    secret, accessor = result["secret_id"], result["secret_id_accessor"]
    assert secret and accessor and secret != MASK

    # repeat with the current secret: kept, returned unmasked, masked in the invocation
    keep = dict(args, current_secret_id=secret)
    result = run_module("vault_approle_secret_id", keep)
    assert not result.failed, result
    assert not result.changed
    assert result["secret_id"] == secret and result["secret_id_accessor"] == accessor
    assert result["invocation"]["module_args"]["current_secret_id"] == MASK
    assert not run_module("vault_approle_secret_id", keep, check=True).changed

    # it logs in
    login = bao.client().auth.approle.login(role_id=result["role_id"], secret_id=secret,
                                            mount_point=approle_mount, use_token=False)
    assert login["auth"]["client_token"]

    # unknown secret, or one of another role: replaced
    result = run_module("vault_approle_secret_id", dict(args, current_secret_id="nope"), check=True)
    assert result.changed and result["secret_id"] is None
    other = run_module("vault_approle_secret_id", bao.connection(
        mount_point=approle_mount, role_name="other"))["secret_id"]
    result = run_module("vault_approle_secret_id", dict(args, current_secret_id=other))
    assert result.changed and result["secret_id"] not in (other, secret)

    # expired: replaced
    assert run_module("vault_approle_role", bao.connection(
        mount_point=approle_mount, role_name="host2", secret_id_ttl="10s")).changed
    short = run_module("vault_approle_secret_id", args)["secret_id"]
    issued = time.monotonic()
    assert not run_module("vault_approle_secret_id", dict(args, current_secret_id=short)).changed
    time.sleep(max(0, issued + 11 - time.monotonic()))
    result = run_module("vault_approle_secret_id", dict(args, current_secret_id=short))
    assert not result.failed, result
    assert result.changed and result["secret_id"] != short

    # a missing role is a clear error
    result = run_module("vault_approle_secret_id", bao.connection(
        mount_point=approle_mount, role_name="missing"))
    assert result.failed and "missing" in result["msg"] and bao.url in result["msg"]


def test_approle_role_bound_cidrs(bao, run_module, approle_mount):
    """A host with a fixed address: its secret ID and tokens work from its own network
    only. The server sees this test's logins from 127.0.0.1."""
    base = bao.connection(mount_point=approle_mount, role_name="fixed", token_policies=["default"])
    assert run_module("vault_approle_role", base).changed
    # no binding asked, none there: [] reads as Vault's unset value, so nothing to change
    assert not run_module("vault_approle_role", dict(base, secret_id_bound_cidrs=[], token_bound_cidrs=[])).changed

    # a bad entry fails naming the option, and nothing is written
    result = run_module("vault_approle_role", dict(base, secret_id_bound_cidrs=["10.0.0.0/8", "10.0.0.300/32"],
                                                   token_bound_cidrs=["10.0.0.0/8"]))
    assert result.failed
    assert result["msg"].startswith("secret_id_bound_cidrs: '10.0.0.300/32' is not an IPv4 or IPv6 network")
    assert not _role(bao, approle_mount, "fixed").get("token_bound_cidrs")

    secret = run_module("vault_approle_secret_id", bao.connection(mount_point=approle_mount, role_name="fixed"))
    role_id, secret_id = secret["role_id"], secret["secret_id"]

    def login():
        return bao.client(token="none").auth.approle.login(role_id=role_id, secret_id=secret_id,
                                                           mount_point=approle_mount, use_token=False)

    # bound elsewhere: the existing secret ID is refused from here
    elsewhere = dict(base, secret_id_bound_cidrs=["192.0.2.0/24"], token_bound_cidrs=["192.0.2.0/24"])
    result = run_module("vault_approle_role", elsewhere)
    assert result.changed and result["changed_keys"] == ["secret_id_bound_cidrs", "token_bound_cidrs"]
    assert not run_module("vault_approle_role", elsewhere).changed
    with pytest.raises(Exception):
        login()

    # bound to this host's network (a single address as Vault stores it): it works
    here = dict(base, secret_id_bound_cidrs=["127.0.0.1/32"], token_bound_cidrs=["127.0.0.0/8"])
    result = run_module("vault_approle_role", here)
    assert result.changed, result.get("msg")
    assert not run_module("vault_approle_role", dict(here, secret_id_bound_cidrs=["127.0.0.1"])).changed
    token = login()["auth"]["client_token"]
    assert bao.client(token=token).auth.token.lookup_self()["data"]["id"] == token

    # [] removes the binding
    result = run_module("vault_approle_role", dict(base, secret_id_bound_cidrs=[], token_bound_cidrs=[]))
    assert result.changed
    assert not _role(bao, approle_mount, "fixed").get("secret_id_bound_cidrs")
    assert login()["auth"]["client_token"]
