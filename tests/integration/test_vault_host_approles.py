"""vault_host_approles (many hosts' policies, AppRoles and secret IDs in one call) against
the shared OpenBao dev server."""

import pytest

MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
HOSTS = ("fleet-a", "fleet-b", "fleet-c")


@pytest.fixture(scope="module")
def mount(bao):
    bao.client().adapter.post("/v1/sys/auth/t_hosts", json={"type": "approle"})
    return "t_hosts"


def _policy(host):
    return 'path "pki_int/sign/edge_devices" {\n  capabilities = ["update"]\n}\n# %s\n' % host


def _read(bao, path):
    try:
        return bao.client().adapter.get("/v1/" + path)["data"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_approles_then_secret_ids(bao, run_module, mount):
    approles = bao.connection(mount_point=mount, hosts=[{"name": h, "policy": _policy(h)} for h in HOSTS],
                              token_ttl="20m", token_max_ttl="1h", secret_id_ttl="0")

    result = run_module("vault_host_approles", approles, check=True)
    assert not result.failed, result
    assert result.changed and result["changed_hosts"] == list(HOSTS)
    assert _read(bao, "auth/%s/role/fleet-a" % mount) is None
    assert _read(bao, "sys/policies/acl/mailmesh-cert-fleet-a") is None

    result = run_module("vault_host_approles", approles)
    assert not result.failed, result
    assert result["changed_hosts"] == list(HOSTS)
    assert result["hosts"]["fleet-b"]["changed"] == ["policy", "role"]
    role = _read(bao, "auth/%s/role/fleet-b" % mount)
    assert role["token_policies"] == ["mailmesh-cert-fleet-b"] and role["token_ttl"] == 1200
    assert "# fleet-b" in _read(bao, "sys/policies/acl/mailmesh-cert-fleet-b")["policy"]
    role_ids = {h: result["hosts"][h]["role_id"] for h in HOSTS}
    assert all(role_ids.values()) and "secret_id" not in result["hosts"]["fleet-a"]

    # idempotent, in check mode too; one host's change is that host's only
    assert not run_module("vault_host_approles", approles).changed
    assert not run_module("vault_host_approles", approles, check=True).changed
    changed = dict(approles, hosts=[{"name": "fleet-a", "policy": _policy("other")}]
                   + approles["hosts"][1:])
    result = run_module("vault_host_approles", changed)
    assert result["changed_hosts"] == ["fleet-a"] and result["hosts"]["fleet-a"]["changed"] == ["policy"]
    assert run_module("vault_host_approles", dict(approles, token_ttl="30m"))["changed_hosts"] == list(HOSTS)

    # secret IDs: new for every host, then kept, unmasked in the result, masked in the invocation
    ids = bao.connection(mount_point=mount, approles=False, secret_ids=True,
                         hosts=[{"name": h} for h in HOSTS])
    result = run_module("vault_host_approles", ids, check=True)
    assert result.changed and result["hosts"]["fleet-a"]["secret_id"] is None
    result = run_module("vault_host_approles", ids)
    assert not result.failed, result
    secrets = {h: result["hosts"][h]["secret_id"] for h in HOSTS}
    assert all(secrets.values()) and len(set(secrets.values())) == 3 and MASK not in secrets.values()
    assert {h: result["hosts"][h]["role_id"] for h in HOSTS} == role_ids

    keep = dict(ids, hosts=[{"name": h, "current_secret_id": secrets[h]} for h in HOSTS])
    result = run_module("vault_host_approles", keep)
    assert not result.failed and not result.changed, result
    assert {h: result["hosts"][h]["secret_id"] for h in HOSTS} == secrets
    assert all(entry["current_secret_id"] == MASK for entry in result["invocation"]["module_args"]["hosts"])
    login = bao.client().auth.approle.login(role_id=role_ids["fleet-c"], secret_id=secrets["fleet-c"],
                                            mount_point=mount, use_token=False)
    assert login["auth"]["client_token"]

    # another host's secret ID, or an unknown one, is replaced for that host only
    swapped = dict(ids, hosts=[{"name": "fleet-a", "current_secret_id": secrets["fleet-b"]},
                               {"name": "fleet-b", "current_secret_id": secrets["fleet-b"]},
                               {"name": "fleet-c", "current_secret_id": "nope"}])
    result = run_module("vault_host_approles", swapped)
    assert result["changed_hosts"] == ["fleet-a", "fleet-c"]
    assert result["hosts"]["fleet-a"]["secret_id"] not in (secrets["fleet-a"], secrets["fleet-b"])
    assert result["hosts"]["fleet-b"]["secret_id"] == secrets["fleet-b"]


def test_refusals(bao, run_module, mount):
    no_policy = run_module("vault_host_approles", bao.connection(
        mount_point=mount, hosts=[{"name": "fleet-x"}, {"name": "fleet-y", "policy": "x"}]))
    assert no_policy.failed and "needs a policy" in no_policy["msg"] and "fleet-x" in no_policy["msg"]
    twice = run_module("vault_host_approles", bao.connection(
        mount_point=mount, hosts=[{"name": "h", "policy": "x"}, {"name": "h", "policy": "x"}]))
    assert twice.failed and "h is listed twice" in twice["msg"]
    bad_ttl = run_module("vault_host_approles", bao.connection(
        mount_point=mount, token_ttl="soon", hosts=[{"name": "h", "policy": "x"}]))
    assert bad_ttl.failed and "token_ttl" in bad_ttl["msg"]
    missing = run_module("vault_host_approles", bao.connection(
        mount_point=mount, approles=False, secret_ids=True, hosts=[{"name": "fleet-missing"}]))
    assert missing.failed and "fleet-missing" in missing["msg"] and bao.url in missing["msg"]
    assert _read(bao, "sys/policies/acl/mailmesh-cert-h") is None


def test_bound_cidrs(bao, run_module, mount):
    """A host's bound_cidrs reach its role as both bindings (a /32 written as a CIDR,
    which Vault takes, and compared as the bare address Vault shows); a second run
    changes nothing, [] removes the binding, and a bad entry fails before any write."""
    spec = {"name": "fleet-bound", "policy": _policy("fleet-bound"), "bound_cidrs": ["192.0.2.10/32", "198.51.100.0/24"]}
    args = bao.connection(mount_point=mount, hosts=[spec])
    assert run_module("vault_host_approles", args).changed
    role = _read(bao, "auth/%s/role/fleet-bound" % mount)
    for key in ("secret_id_bound_cidrs", "token_bound_cidrs"):
        assert sorted(value.replace("/32", "") for value in role[key]) == ["192.0.2.10", "198.51.100.0/24"], role
    assert not run_module("vault_host_approles", args).changed
    cleared = bao.connection(mount_point=mount, hosts=[dict(spec, bound_cidrs=[])])
    assert run_module("vault_host_approles", cleared)["hosts"]["fleet-bound"]["changed"] == ["role"]
    assert not (_read(bao, "auth/%s/role/fleet-bound" % mount).get("secret_id_bound_cidrs") or [])
    assert not run_module("vault_host_approles", cleared).changed
    bad = run_module("vault_host_approles", bao.connection(
        mount_point=mount, hosts=[{"name": "fleet-bad", "policy": "x", "bound_cidrs": ["192.0.2.300/32"]}]))
    assert bad.failed and "fleet-bad: bound_cidrs" in bad["msg"] and "192.0.2.300/32" in bad["msg"]
    assert _read(bao, "sys/policies/acl/mailmesh-cert-fleet-bad") is None


def test_the_auth_method_and_the_hosts_that_left(bao, run_module):
    """One call enables the auth method, writes the hosts' identities and finds those of
    hosts no longer listed; it removes them only with stale=remove."""
    mount = "t_stale"
    hosts = [{"name": h, "policy": _policy(h)} for h in ("keep-a", "keep-b", "gone-c")]
    args = bao.connection(mount_point=mount, hosts=hosts, auth_method_description="t host identities",
                          stale="report", stale_keep=["t-admin"],
                          policy_prefix="t-stale-cert-")  # the shared server holds other tests' policies

    result = run_module("vault_host_approles", args, check=True)
    assert not result.failed, result
    assert result.changed and result["stale_approles"] == [] and result["stale_policies"] == []
    assert "t_stale/" not in bao.client().adapter.get("/v1/sys/auth")["data"]

    result = run_module("vault_host_approles", args)
    assert not result.failed, result
    assert bao.client().adapter.get("/v1/sys/auth")["data"]["t_stale/"]["description"] == "t host identities"
    bao.client().adapter.post("/v1/auth/%s/role/t-admin" % mount, json={"token_policies": ["default"]})
    assert not run_module("vault_host_approles", args).changed

    # gone-c left the inventory: reported, kept, and the call changes nothing
    left = dict(args, hosts=hosts[:2])
    result = run_module("vault_host_approles", left)
    assert not result.failed and not result.changed, result
    assert result["stale_approles"] == ["gone-c"] and result["stale_policies"] == ["t-stale-cert-gone-c"]
    assert _read(bao, "auth/%s/role/gone-c" % mount) is not None
    # check mode reports the removal and removes nothing
    result = run_module("vault_host_approles", dict(left, stale="remove"), check=True)
    assert result.changed and result["stale_approles"] == ["gone-c"]
    assert _read(bao, "sys/policies/acl/t-stale-cert-gone-c") is not None
    result = run_module("vault_host_approles", dict(left, stale="remove"))
    assert result.changed and result["stale_policies"] == ["t-stale-cert-gone-c"]
    assert _read(bao, "auth/%s/role/gone-c" % mount) is None
    assert _read(bao, "sys/policies/acl/t-stale-cert-gone-c") is None
    assert _read(bao, "auth/%s/role/t-admin" % mount) is not None  # stale_keep
    assert _read(bao, "sys/policies/acl/default") is not None  # not a certificate policy
    result = run_module("vault_host_approles", dict(left, stale="remove"))
    assert not result.changed and result["stale_approles"] == [] and result["stale_policies"] == []

    # another auth method at the mount: refused with the reason
    bao.client().adapter.post("/v1/sys/auth/t_stale_tok", json={"type": "userpass"})
    result = run_module("vault_host_approles", dict(args, mount_point="t_stale_tok"))
    assert result.failed and "userpass" in result["msg"], result["msg"]
