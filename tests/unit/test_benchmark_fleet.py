"""benchmarks/fleet.py: the parts that judge figures and arguments, without a fleet.

The marginal cost per added device, the summary of measured sizes, the inventory it
writes for each connection, and the argument checks that refuse unbounded or
malformed settings before any container starts.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

MODULE_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"
_SPEC = importlib.util.spec_from_file_location("benchmark_fleet", MODULE_PATH)
fleet = importlib.util.module_from_spec(_SPEC)
sys.modules["benchmark_fleet"] = fleet
_SPEC.loader.exec_module(fleet)


def test_marginal_cost_between_sizes_and_least_squares():
    result = fleet.marginal([(50, 60.0), (2, 12.0), (25, 35.0)])
    assert result["steps"] == [{"from": 2, "to": 25, "s_per_device": 1.0},
                               {"from": 25, "to": 50, "s_per_device": 1.0}]
    assert result["slope_s_per_device"] == 1.0
    assert fleet.marginal([(2, 10.0)]) == {"steps": [], "slope_s_per_device": None}


def _size(devices, first, runs):
    return {"devices": devices, "first_converge": {"rc": 0, "wall_s": first, "strategy": "mitogen_linear",
                                                   "connection": "docker"},
            "runs": [{"strategy": s, "connection": c, "ping_s": p, "ping_rc": 0,
                      "site": {"rc": 0, "wall_s": w, "vault_tier_s": v, "cpu": {"devices_s": devices / 2}}}
                     for s, c, p, w, v in runs]}


def test_summary_series_and_first_converge_of_the_added_devices():
    sizes = [_size(2, 300.0, [("mitogen_linear", "docker", 2.0, 20.0, 5.0), ("linear", "ssh", 3.0, 40.0, 8.0)]),
             _size(12, 80.0, [("mitogen_linear", "docker", 3.0, 25.0, 5.5), ("linear", "ssh", 5.0, 50.0, 8.5)])]
    summary = fleet.summarise(sizes)
    assert summary["idempotent site.yml, linear/ssh (s)"]["slope_s_per_device"] == 1.0
    assert summary["Vault tier in the re-run, mitogen_linear/docker (s)"]["steps"][0]["s_per_device"] == 0.05
    assert summary["ansible -m ping, linear/ssh (s)"]["points"] == [(2, 3.0), (12, 5.0)]
    assert summary["CPU of the re-run, devices, linear/ssh (s)"]["points"] == [(2, 1.0), (12, 6.0)]
    # the first size's converge includes the core's: not a point of the series
    assert summary["first converge of the added devices (s)"]["points"] == [(12, 80.0)]
    # (80 s for 10 new devices on top of the 20 s the same run costs when nothing is new)
    assert summary["first converge per added device"]["steps"] == [{"from": 2, "to": 12, "s_per_device": 6.0}]


def test_a_failed_run_is_left_out_of_its_series():
    sizes = [_size(2, 300.0, [("linear", "docker", 2.0, 20.0, 5.0)]),
             _size(4, 80.0, [("linear", "docker", 2.5, 22.0, 5.0)])]
    sizes[1]["runs"][0]["site"]["rc"] = 2
    summary = fleet.summarise(sizes)
    assert summary["idempotent site.yml, linear/docker (s)"]["points"] == [(2, 20.0)]


@pytest.mark.parametrize("text, message", [
    ("", "every size between 1 and 200"),
    ("2,0", "every size between 1 and 200"),
    ("2,500", "every size between 1 and 200"),
    ("25,2", "sizes must increase"),
    ("2,2", "sizes must increase"),
    ("two", "expected comma-separated device counts"),
])
def test_sizes_are_refused_when_malformed_or_unbounded(text, message):
    with pytest.raises(ValueError, match=message):
        fleet.parse_sizes(text, 200)


def test_arguments():
    args = fleet.parse_args(["--sizes", "2,5", "--connections", "ssh", "--strategies", "linear"])
    assert args.sizes == [2, 5] and args.connections == ["ssh"] and args.strategies == ["linear"]
    assert (args.storm_hold, args.users, args.storm_only) == (90, 5, False)
    for bad in (["--strategies", "fast"], ["--connections", "winrm"], ["--forks", "0"], ["--timeout", "5"],
                ["--storm-hold", "5"], ["--storm-hold", "900"], ["--storm-hold", "30", "--storm-settle", "40"],
                ["--storm-only", "--storm-hold", "0"]):
        with pytest.raises(SystemExit):
            fleet.parse_args(bad)


def test_inventories_reach_the_same_hosts_by_docker_or_ssh(tmp_path):
    key = tmp_path / "id_ed25519"
    docker = json.loads(fleet.inventory_yaml(3, "docker", key))
    ssh = json.loads(fleet.inventory_yaml(3, "ssh", key))
    assert docker["all"]["children"] == ssh["all"]["children"]
    devices = docker["all"]["children"]["edge_devices"]["hosts"]
    assert list(devices) == ["fx-edge001", "fx-edge002", "fx-edge003"]
    assert all(name.startswith(fleet.PREFIX) for group in docker["all"]["children"].values() for name in group["hosts"])
    assert docker["all"]["children"]["mailstores"]["hosts"]["fx-store2"]["lab_image"] == fleet.SSHD_IMAGES["debian13"]
    assert docker["all"]["vars"]["ansible_connection"] == "docker"
    ssh_vars = ssh["all"]["vars"]
    assert ssh_vars["ansible_connection"] == "ssh" and ssh_vars["ansible_pipelining"] is True
    assert ssh_vars["ansible_ssh_private_key_file"] == str(key)



def test_device_packages_come_from_the_roles_and_only_devices_get_that_image(tmp_path):
    """--device-packages: the devices' image holds what the envoy and vault_cert roles
    install on a device (their vars, not a list of the benchmark's own); the core keeps
    its images."""
    assert fleet.parse_args([]).device_packages is False
    assert fleet.parse_args(["--device-packages"]).device_packages is True
    packages = fleet.device_packages()
    assert {"iproute2", "ca-certificates", "systemd-timesyncd", "python3-hvac", "python3-cryptography"} == set(packages)
    plain = json.loads(fleet.inventory_yaml(2, "ssh", tmp_path / "key"))["all"]["children"]
    packaged = json.loads(fleet.inventory_yaml(2, "ssh", tmp_path / "key", packaged=True))["all"]["children"]
    assert {host["lab_image"] for host in packaged["edge_devices"]["hosts"].values()} == {fleet.PACKAGED_IMAGE}
    assert {host["lab_image"] for host in plain["edge_devices"]["hosts"].values()} == {fleet.SSHD_IMAGES["debian12"]}
    assert {group: value for group, value in packaged.items() if group != "edge_devices"} == \
        {group: value for group, value in plain.items() if group != "edge_devices"}


def test_fleet_vars_own_names_and_one_user_per_device(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet, "FLEET", tmp_path)
    values = fleet.fleet_vars(tmp_path / "id_ed25519", 3)
    # never the lab's names: its own network and label
    assert values["all"]["lab_network"] != "lab-mailmesh"
    assert values["all"]["lab_label"] != "org.mailmesh.lab"
    users = values["all"]["lab_users"]
    assert [u["name"] for u in users] == ["alice@example.test", "bob@example.test", "fleet001@example.test",
                                          "fleet002@example.test", "fleet003@example.test"]
    assert [u["store"] for u in users[2:]] == ["fx-store1", "fx-store2", "fx-store1"]
    stored = values["mailstores"]["dovecot_users"]
    assert [u["name"] for u in stored] == [u["name"] for u in users]
    assert stored[0]["password_hash"].startswith("{SHA512-CRYPT}$6$mailmeshalice$")
    credentials = json.loads((tmp_path / "users.json").read_text())
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0
    assert stored[2]["password_hash"] == credentials["hash"] and credentials["hash"].startswith("{SHA512-CRYPT}$6$")
    assert credentials["password"] not in credentials["hash"] and users[2]["password"] == credentials["password"]
    # made once: a second call keeps the same password
    assert fleet.fleet_vars(tmp_path / "id_ed25519", 1)["all"]["lab_users"][2]["password"] == credentials["password"]


def test_storm_outcome_counts_from_the_gateway_stop():
    stop = 1000.0

    def report(*outages, sessions=1):
        return {"sessions": sessions, "outages": [dict(session=0, lost=lost, back=back, failed=failed,
                                                       kinds=kinds, stage="noop")
                                                  for lost, back, failed, kinds in outages]}
    reports = {
        "fx-edge001": report(),  # its session was on the other gateway
        "fx-edge002": report((1000.8, 1003.0, 2, {"connect": 2})),
        "fx-edge003": report((1001.2, 1002.1, 0, {})),
        "fx-edge004": report((990.0, 991.0, 1, {"login": 1}), (1000.5, 1006.4, 1, {"login": 1})),
    }
    out = fleet.storm_outcome(reports, stop)
    assert (out["devices"], out["sessions_broken"], out["back"]) == (4, 3, 3)
    assert out["broken_before_the_stop"] == ["fx-edge004"]
    assert (out["failed_attempts"], out["failed_kinds"]) == (3, {"connect": 2, "login": 1})
    assert (out["first_back_s"], out["p50_back_s"], out["all_back_s"]) == (2.1, 3.0, 6.4)
    # a device that never came back, or never had a session, leaves "all back" unset
    reports["fx-edge005"] = report((1001.0, None, 40, {"connect-timeout": 40}))
    reports["fx-edge006"] = report(sessions=0)
    out = fleet.storm_outcome(reports, stop)
    assert out["never_back"] == ["fx-edge005"] and out["no_session"] == ["fx-edge006"]
    assert out["all_back_s"] is None


def test_run_order_puts_the_opposite_corner_second():
    assert fleet.run_order(["docker", "ssh"], ["mitogen_linear", "linear"]) == [
        ("docker", "mitogen_linear"), ("ssh", "linear"), ("docker", "linear"), ("ssh", "mitogen_linear")]
    assert fleet.run_order(["ssh"], ["linear"]) == [("ssh", "linear")]


def test_merge_joins_runs_by_size():
    one = {"started": "a", "sizes": [_size(2, 300.0, [("linear", "docker", 2.0, 20.0, 5.0)])]}
    two = {"started": "b", "sizes": [_size(12, 80.0, [("linear", "docker", 3.0, 30.0, 6.0)]), {}]}
    two["storms"] = [{"nat": False, "outcome": {}}]
    merged = fleet.merge([one, two])
    assert [size["devices"] for size in merged["sizes"]] == [2, 12]
    assert merged["storms"] == two["storms"]
    assert merged["summary"]["idempotent site.yml, linear/docker (s)"]["slope_s_per_device"] == 1.0


def test_memory_stat_and_means():
    stat = fleet.parse_memory_stat("anon 1048576\nfile 2097152\nkernel 4096\n")
    assert stat == {"anon": 1048576, "file": 2097152, "kernel": 4096}
    memory = {"fx-edge001": {"current": 3 * 2**20, "anon": 2**20, "file": 2 * 2**20},
              "fx-edge002": {"current": 5 * 2**20, "anon": 3 * 2**20, "file": 2 * 2**20},
              "fx-gw1": {"current": 9 * 2**20, "anon": 8 * 2**20, "file": 2**20}}
    assert fleet.mean_mib(memory, "current", True) == 4.0
    assert fleet.mean_mib(memory, "anon", True) == 2.0
    assert fleet.mean_mib(memory, "current", False) == 9.0
    assert fleet.mean_mib({}, "anon", True) is None


def test_cpu_used_splits_the_run_by_tier():
    class Usage:
        def __init__(self, user, system):
            self.ru_utime, self.ru_stime = user, system

    before = {"fx-edge001": 10.0, "fx-edge002": 20.0, "fx-vault1": 5.0, "fx-gw1": 1.0, "fx-store1": 2.0}
    # fx-edge003 started during the run: all its CPU counts.
    after = {"fx-edge001": 10.5, "fx-edge002": 20.75, "fx-edge003": 1.0, "fx-vault1": 6.25, "fx-gw1": 1.5,
             "fx-store1": 2.0}
    assert fleet.cpu_used(before, after, Usage(3.0, 1.0), Usage(10.5, 2.0)) == {
        "controller_s": 8.5, "devices_s": 2.25, "vault_s": 1.25, "gateways_s": 0.5, "stores_s": 0.0}


def test_cgroup_cpu_reads_v1_and_v2(tmp_path, monkeypatch):
    files = {"/sys/fs/cgroup/system.slice/docker-a.scope/cpu.stat": "usage_usec 2500000\nuser_usec 2000000\n",
             "/sys/fs/cgroup/cpuacct/docker/b/cpuacct.usage": "1500000000\n"}

    def read_text(path, *args, **kwargs):
        if str(path) in files:
            return files[str(path)]
        raise FileNotFoundError(str(path))

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    assert fleet.cgroup_cpu_s("a") == 2.5
    assert fleet.cgroup_cpu_s("b") == 1.5
    assert fleet.cgroup_cpu_s("c") is None
