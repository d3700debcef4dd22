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
