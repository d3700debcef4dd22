"""Benchmark the mesh at fleet size: how a run's time and the host's memory grow with devices.

Runs on the controller, by hand (never in CI), standard library only::

    python3 benchmarks/fleet.py                       # N = 2, 25, 50; about an hour idle
    python3 benchmarks/fleet.py --sizes 2,5 --connections docker --strategies mitogen_linear
    python3 benchmarks/fleet.py --down                # remove the fleet

A fleet of its own beside any `make lab`: containers ``fx-*`` on the Docker network
``fx-mailmesh``, labelled ``org.mailmesh.fleet=true`` (never the lab's label), its state
under ``.build/fleet/``. The core is the lab's shape (fx-vault1, fx-store1 Debian 12,
fx-store2 Debian 13, fx-gw1, fx-gw2); the devices fx-edge001... are amd64 Debian 12
containers with the edge profile (the ``envoy`` role through ``playbooks/site.yml``).
The inventory it writes (``.build/fleet/inventory/``) takes the lab's group_vars, so
the fleet runs exactly what `make lab` runs; the containers come from
``playbooks/lab-containers.yml`` and go with ``playbooks/lab-down.yml``, the lab's own
tooling at fleet size. Every container runs sshd (images ``mailmesh/fleet-sshd-*``,
built once from the base images with Debian's openssh-server), so the same hosts are
reached through the Docker connection or over SSH as production reaches them (root
with a key made for the fleet, pipelining, ControlPersist).

For each size N, in increasing order (the fleet grows; nothing is torn down between):

1. the containers of the devices added (``lab-containers.yml``), and the host's
   MemAvailable before and after;
2. the first converge: ``site.yml`` on the whole fleet with the first strategy and
   connection given; for the smallest N that includes the core's first converge, later
   the new devices' (the others change nothing);
3. for every strategy x connection: ``ansible all -m ping``, then an idempotent
   ``site.yml`` (its recap must show changed=0) with ansible.posix's profile callbacks,
   whose play times give the Vault tier's share (the plays ``Vault servers`` and
   ``Vault clients``);
4. memory: each device container's memory (its cgroup's ``memory.current``) and the
   host's MemAvailable drop per device.

After the largest size, the reconnection storm (``--storm-hold``, 0 to skip): every
device holds one IMAP session through its edge Envoy (``benchmarks/imapload.py``'s hold
mix, one fleet user per device, a NOOP a second, a broken session logged in again every
0.5 s), then fx-gw1 shuts down (systemd's halt signal: its services stop, then the
container exits, as a gateway host that is shut down). Each
device reports when its session broke, when it was back and the failed attempts on the
way; the storm gives the time from the stop until every device's session works again and
the failed logins. It runs twice: devices with their own addresses, then all behind one
client address (SNAT on both gateways' device port, ``nsenter`` + ``iptables`` from the
host, removed after), as devices behind one NAT reach the gateways. fx-gw1 is started
again after each.

Then the marginal cost per added device between successive sizes (least squares over
all sizes as well), printed as Markdown and written to ``.build/benchmarks/fleet-<UTC>.json``.
The host's inotify limits are raised first (as ``make docker`` does, scaled to the
container count); every command has a timeout.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import pathlib
import resource
import secrets
import shlex
import subprocess
import sys
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("benchmark_run", REPO / "benchmarks" / "run.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("benchmark_run", bench)
_SPEC.loader.exec_module(bench)

FLEET = REPO / ".build" / "fleet"
PREFIX = "fx-"
NETWORK = "fx-mailmesh"
LABEL = "org.mailmesh.fleet"
CORE = {
    "vault_servers": ["fx-vault1"],
    "mailstores": ["fx-store1", "fx-store2"],
    "gateways": ["fx-gw1", "fx-gw2"],
}
DEBIAN13 = {"fx-store2"}
SSHD_IMAGES = {"debian12": "mailmesh/fleet-sshd-debian12:latest",
               "debian13": "mailmesh/fleet-sshd-debian13:latest"}
# --device-packages: the devices' image also holds the packages the envoy and vault_cert
# roles install on a device (a fleet imaged with them), to tell the distribution's
# package install apart from the collection's own cost in a first converge.
PACKAGED_IMAGE = "mailmesh/fleet-sshd-debian12-packaged:latest"
CONNECTIONS = {"docker", "ssh"}
VAULT_PLAYS = ("Vault servers", "Vault clients")
# inotify instances a systemd container may take (systemd, journald, udev, Envoy's SDS
# watch...), with room: the harness's floor is 1024 (tests/harness/docker-engine.sh).
INOTIFY_PER_CONTAINER = 12
LAB_GROUP_VARS = REPO / "inventories" / "lab" / "group_vars"


def log(message: str) -> None:
    bench.log(message)


def device_name(index: int) -> str:
    return f"{PREFIX}edge{index:03d}"


def parse_sizes(text: str, maximum: int) -> list[int]:
    """Sizes as a strictly increasing list of device counts between 1 and ``maximum``."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--sizes {text!r}: expected comma-separated device counts such as 2,25,50") from None
    if not sizes or any(size < 1 or size > maximum for size in sizes):
        raise ValueError(f"--sizes {text!r}: every size between 1 and {maximum} (--max-devices)")
    if sizes != sorted(set(sizes)):
        raise ValueError(f"--sizes {text!r}: sizes must increase (the fleet grows between them)")
    return sizes


def inventory_yaml(devices: int, connection: str, ssh_key: pathlib.Path, packaged: bool = False) -> str:
    """The fleet's hosts.yml (JSON, which YAML reads): the core and ``devices`` devices.

    Docker: Ansible's short name ``docker``, as the lab. SSH: each container's address on
    the fleet network (ansible_host, filled in by the caller's host_vars), root with the
    fleet's key, pipelining and ControlPersist as production runs. ``packaged``: the
    devices run PACKAGED_IMAGE.
    """
    if connection == "docker":
        conn = {"ansible_connection": "docker"}
    else:
        conn = {
            "ansible_connection": "ssh",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(ssh_key),
            # ControlMaster/ControlPersist are Ansible's default ssh_args; these add to them.
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o LogLevel=ERROR",
        }
    def image(name):  # host variables outrank the lab's group_vars
        return {"lab_image": SSHD_IMAGES["debian13" if name in DEBIAN13 else "debian12"]}

    hosts = {group: {"hosts": {name: image(name) for name in names}} for group, names in CORE.items()}
    device = {"lab_image": PACKAGED_IMAGE} if packaged else None
    hosts["edge_devices"] = {"hosts": {name: device or image(name)
                                       for name in map(device_name, range(1, devices + 1))}}
    return json.dumps({"all": {"vars": dict(conn, ansible_become=False,
                                            ansible_python_interpreter="/usr/bin/python3",
                                            ansible_pipelining=True),
                               "children": hosts}}, indent=1) + "\n"


def fleet_user(index: int) -> str:
    return f"fleet{index:03d}@example.test"


def fleet_credentials() -> dict:
    """The fleet users' password and its SHA512-CRYPT hash, made once (.build/fleet/users.json,
    0600): one password for every fleet user, never in the repository."""
    path = FLEET / "users.json"
    if path.exists():
        return json.loads(path.read_text())
    password = secrets.token_urlsafe(18)
    proc = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", text=True,
                          capture_output=True, timeout=30, check=True)
    credentials = {"password": password, "hash": "{SHA512-CRYPT}" + proc.stdout.strip()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(credentials) + "\n")
    return credentials


def fleet_vars(ssh_key: pathlib.Path, users: int) -> dict[str, dict]:
    """What the fleet sets over the lab's group_vars, per group (group_vars/<group>/zz-fleet.yml):
    its state, network and label; and the lab's users plus ``users`` fleet users (one per
    device in the storm), spread over the fleet's stores."""
    stores = CORE["mailstores"]
    credentials = fleet_credentials()
    lab_hashes = lab_password_hashes()
    names = [fleet_user(i) for i in range(1, users + 1)]
    return {
        "all": {
            "lab_state_dir": str(FLEET / "state"),
            "lab_network": NETWORK,
            "lab_label": LABEL,
            "lab_volumes": [f"{ssh_key.with_suffix('.pub')}:/root/.ssh/authorized_keys:ro"],
            # The lab's users and the fleet's, routed to the fleet's stores.
            "lab_users": [
                {"name": "alice@example.test", "password": "alice-secret", "store": stores[0]},
                {"name": "bob@example.test", "password": "bob-secret", "store": stores[1]},
            ] + [{"name": name, "password": credentials["password"], "store": stores[n % len(stores)]}
                 for n, name in enumerate(names)],
        },
        # Both stores know every user (as the lab's own mailstores.yml, whose list this replaces).
        # The gateways' PROXY headers are trusted from Docker's private ranges (as the e2e
        # scenario's stores): the storm restarts fx-gw1, and Docker may give it another address.
        "mailstores": {
            "dovecot_haproxy_trusted_networks": ["172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8"],
            "dovecot_users": [
                {"name": "alice@example.test", "password_hash": lab_hashes["alice"]},
                {"name": "bob@example.test", "password_hash": lab_hashes["bob"]},
            ] + [{"name": name, "password_hash": credentials["hash"]} for name in names],
        },
    }


def lab_password_hashes() -> dict[str, str]:
    """alice's and bob's hashes from the lab's mailstores.yml (the fleet's list replaces it)."""
    hashes = {}
    for line in (LAB_GROUP_VARS / "mailstores.yml").read_text().splitlines():
        line = line.strip()
        if line.startswith("- name:"):
            user = line.split(":", 1)[1].strip().split("@")[0]
        elif line.startswith("password_hash:"):
            hashes[user] = line.split(":", 1)[1].strip().strip('"')
    if {"alice", "bob"} - set(hashes):
        raise RuntimeError(f"{LAB_GROUP_VARS / 'mailstores.yml'}: alice's and bob's password_hash not found")
    return hashes


def write_inventory(devices: int, connection: str, ssh_key: pathlib.Path, addresses: dict[str, str],
                    users: int = 0, packaged: bool = False) -> pathlib.Path:
    """.build/fleet/inventory-<connection>/: hosts.yml, the lab's group_vars (links) and
    the fleet's own values after them; host_vars with each container's address for SSH."""
    root = FLEET / f"inventory-{connection}"
    for group in ("all", "edge_devices", "gateways", "mailstores"):
        directory = root / "group_vars" / group
        directory.mkdir(parents=True, exist_ok=True)
        link = directory / "00-lab.yml"
        if not link.is_symlink():
            link.symlink_to(LAB_GROUP_VARS / f"{group}.yml")
    for group, values in fleet_vars(ssh_key, users).items():
        path = root / "group_vars" / group / "zz-fleet.yml"
        path.touch(mode=0o600)
        path.write_text(json.dumps(values, indent=1) + "\n")
    (root / "hosts.yml").write_text(inventory_yaml(devices, connection, ssh_key, packaged))
    host_vars = root / "host_vars"
    host_vars.mkdir(exist_ok=True)
    for name, address in addresses.items():
        (host_vars / f"{name}.yml").write_text(json.dumps({"ansible_host": address}) + "\n")
    return root


def marginal(points: list[tuple[int, float]]) -> dict:
    """Seconds per added device: between successive sizes, and the least-squares slope."""
    points = sorted(points)
    steps = []
    for (n0, t0), (n1, t1) in zip(points, points[1:]):
        steps.append({"from": n0, "to": n1, "s_per_device": round((t1 - t0) / (n1 - n0), 3)})
    slope = None
    if len(points) >= 2:
        mean_n = sum(n for n, _ in points) / len(points)
        mean_t = sum(t for _, t in points) / len(points)
        den = sum((n - mean_n) ** 2 for n, _ in points)
        if den:
            slope = round(sum((n - mean_n) * (t - mean_t) for n, t in points) / den, 3)
    return {"steps": steps, "slope_s_per_device": slope}


def mem_available_kib() -> int:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def raise_inotify(containers: int) -> dict:
    """Raise the host's inotify limits for ``containers`` systemd containers (root only)."""
    wanted = {"max_user_instances": max(1024, INOTIFY_PER_CONTAINER * containers),
              "max_user_watches": max(524288, 8192 * containers)}
    result = {}
    for key, value in wanted.items():
        path = pathlib.Path("/proc/sys/fs/inotify") / key
        current = int(path.read_text())
        if current < value:
            try:
                path.write_text(str(value))
                log(f"raised fs.inotify.{key} from {current} to {value}")
                current = value
            except OSError as exc:
                raise RuntimeError(f"fs.inotify.{key} is {current}, {containers} containers need {value} "
                                   f"(sysctl -w fs.inotify.{key}={value} as root): {exc}") from None
        result[key] = current
    return result


def ensure_sshd_images() -> None:
    """mailmesh/fleet-sshd-<base>: the base image plus Debian's openssh-server, built once.
    apt uses the image's own sources (the mirror the base image was built from)."""
    for base, tag in SSHD_IMAGES.items():
        # As the base image: no package lists, and their directory dated 1970, so that
        # the roles' apt tasks (cache_valid_time) update them before installing.
        dockerfile = (f"FROM mailmesh/{base}-systemd:latest\n"
                      "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                      "--no-install-recommends openssh-server >/dev/null && apt-get clean "
                      "&& rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin && touch -d @0 /var/lib/apt/lists "
                      "&& install -d -m 0700 /root/.ssh\n")
        recipe = hashlib.sha256(dockerfile.encode()).hexdigest()
        inspect = bench.sh(["docker", "image", "inspect", "--format", '{{index .Config.Labels "org.mailmesh.recipe"}}',
                            tag], 30)
        if inspect.returncode == 0 and inspect.stdout.strip() == recipe:
            continue
        log(f"building {tag} from mailmesh/{base}-systemd")
        proc = subprocess.run(["docker", "build", "-q", "--label", f"org.mailmesh.recipe={recipe}", "-t", tag, "-"],
                              input=dockerfile, text=True, capture_output=True, timeout=1200, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"docker build {tag} failed: {proc.stderr.strip()[-800:]}")


def device_packages() -> list[str]:
    """What the envoy and vault_cert roles install on an edge device, from their vars:
    the envoy role's tools, systemd-timesyncd (the lab's devices have no other clock
    client) and the certificate module's libraries."""
    envoy = yaml.safe_load((REPO / "roles" / "envoy" / "vars" / "main.yml").read_text(encoding="utf-8"))
    vault_cert = yaml.safe_load((REPO / "roles" / "vault_cert" / "vars" / "main.yml").read_text(encoding="utf-8"))
    return envoy["__envoy_base_packages"] + ["systemd-timesyncd"] + vault_cert["__vault_cert_packages"]


def ensure_packaged_image() -> list[str]:
    """PACKAGED_IMAGE: the devices' image with device_packages() installed, built once per
    list (emptied package lists as in the image it starts from); the list."""
    packages = device_packages()
    dockerfile = (f"FROM {SSHD_IMAGES['debian12']}\n"
                  "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                  f"{' '.join(packages)} >/dev/null && apt-get clean "
                  "&& rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin && touch -d @0 /var/lib/apt/lists\n")
    recipe = hashlib.sha256(dockerfile.encode()).hexdigest()
    inspect = bench.sh(["docker", "image", "inspect", "--format", '{{index .Config.Labels "org.mailmesh.recipe"}}',
                        PACKAGED_IMAGE], 30)
    if inspect.returncode != 0 or inspect.stdout.strip() != recipe:
        log(f"building {PACKAGED_IMAGE} with {', '.join(packages)}")
        proc = subprocess.run(["docker", "build", "-q", "--label", f"org.mailmesh.recipe={recipe}", "-t",
                               PACKAGED_IMAGE, "-"], input=dockerfile, text=True, capture_output=True,
                              timeout=1200, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"docker build {PACKAGED_IMAGE} failed: {proc.stderr.strip()[-800:]}")
    return packages


def ensure_ssh_key() -> pathlib.Path:
    key = FLEET / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        bench.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mailmesh-fleet-benchmark",
                  "-f", str(key)], 60, check=True)
    return key


def addresses() -> dict[str, str]:
    proc = bench.sh(["docker", "ps", "--filter", f"label={LABEL}=true", "--format", "{{.Names}}"], 60, check=True)
    names = proc.stdout.split()
    if not names:
        return {}
    fmt = "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    out = bench.sh(["docker", "inspect", "--format", fmt, *names], 120, check=True).stdout
    return {name.lstrip("/"): ip for name, ip in (line.split() for line in out.splitlines() if line.strip())}


def cgroup_directories(container_id: str, v1_controller: str) -> tuple[tuple[pathlib.Path, bool], ...]:
    """Where a container's cgroup can be, each with True for cgroup v2: v2 under
    systemd's or Docker's own driver, then v1's hierarchy of ``v1_controller``."""
    return ((pathlib.Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"), True),
            (pathlib.Path(f"/sys/fs/cgroup/docker/{container_id}"), True),
            (pathlib.Path(f"/sys/fs/cgroup/{v1_controller}/docker/{container_id}"), False))


def cgroup_memory(container_id: str) -> dict[str, int] | None:
    """A container's memory from its cgroup, in bytes: ``current`` (everything charged
    to it, the page cache of the files it wrote included: the Envoy binary, apt's lists),
    ``anon`` (its processes' private memory) and ``file`` (its page cache). cgroup v2
    (``memory.current``, ``anon``, ``file``) or v1 (``memory.usage_in_bytes``, ``rss``,
    ``cache``); None when neither is there."""
    for path, v2 in cgroup_directories(container_id, "memory"):
        current, anon, file = ("memory.current", "anon", "file") if v2 else \
            ("memory.usage_in_bytes", "total_rss", "total_cache")
        if (path / current).exists():
            stat = parse_memory_stat((path / "memory.stat").read_text())
            return {"current": int((path / current).read_text()), "anon": stat.get(anon, 0),
                    "file": stat.get(file, 0)}
    return None


def parse_memory_stat(text: str) -> dict[str, int]:
    """The counters of a cgroup's ``memory.stat`` (bytes)."""
    return {key: int(value) for key, value in (line.split() for line in text.splitlines() if line.strip())}


def fleet_containers() -> list[tuple[str, str]]:
    """(full ID, name) of each running fleet container."""
    proc = bench.sh(["docker", "ps", "--filter", f"label={LABEL}=true", "--format", "{{.ID}} {{.Names}}",
                     "--no-trunc"], 60, check=True)
    return [tuple(line.split()) for line in proc.stdout.splitlines() if line.strip()]


def container_memory() -> dict[str, dict]:
    """Each fleet container's memory (cgroup_memory)."""
    result = {}
    for cid, name in fleet_containers():
        memory = cgroup_memory(cid)
        if memory is not None:
            result[name] = memory
    return result


def cgroup_cpu_s(container_id: str) -> float | None:
    """The CPU time a container's processes used since it started, in seconds: cgroup
    v2's ``cpu.stat`` ``usage_usec`` or v1's ``cpuacct.usage`` (ns); None when neither
    is there."""
    for path, v2 in cgroup_directories(container_id, "cpuacct"):
        try:
            text = (path / ("cpu.stat" if v2 else "cpuacct.usage")).read_text()
        except OSError:
            continue
        return parse_memory_stat(text)["usage_usec"] * 1e-6 if v2 else int(text.strip()) * 1e-9
    return None


def container_cpu() -> dict[str, float]:
    """Each fleet container's CPU time so far (cgroup_cpu_s)."""
    return {name: cpu for cid, name in fleet_containers() if (cpu := cgroup_cpu_s(cid)) is not None}


CPU_ROLES = (("devices", "edge"), ("vault", "vault"), ("gateways", "gw"), ("stores", "store"))


def cpu_used(before: dict[str, float], after: dict[str, float], children_before, children_after) -> dict:
    """Where a run's CPU went, in seconds: the controller (ansible-playbook and the
    processes it waited for; not the SSH ControlPersist masters, which it does not wait
    for), the devices' containers together, and each tier of the core."""
    used = {"controller_s": round(children_after.ru_utime + children_after.ru_stime
                                  - children_before.ru_utime - children_before.ru_stime, 2)}
    for role, marker in CPU_ROLES:
        used[f"{role}_s"] = round(sum(after[name] - before.get(name, 0.0) for name in after
                                      if name.removeprefix(PREFIX).startswith(marker)), 2)
    return used


def mean_mib(memory: dict[str, dict], key: str, devices: bool) -> float | None:
    values = [value[key] for name, value in memory.items() if ("edge" in name) == devices]
    return round(sum(values) / len(values) / 2**20, 1) if values else None


def playbook(argv: list[str], env: dict, timeout: float) -> dict:
    run = bench.timed(argv, timeout, env)
    stdout = run.pop("stdout")
    run["recap"] = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                    for m in bench.RECAP_RE.finditer(stdout)}
    run["changed_total"] = sum(h["changed"] for h in run["recap"].values())
    run["failed_hosts"] = sorted(h for h, r in run["recap"].items() if r["failed"] or r["unreachable"])
    if "PLAY RECAP" in stdout:
        run.update(bench.profile_summary(stdout))
        run["vault_tier_s"] = round(sum(run["play_seconds"].get(play) or 0 for play in VAULT_PLAYS), 1)
    if run["rc"] != 0:
        lines = stdout.splitlines()
        failures = [line for n, line in enumerate(lines) if line.startswith(("fatal:", "failed:"))
                    or (n and lines[n - 1].startswith(("fatal:", "failed:")))]
        run["tail"] = "\n".join(failures[-20:])[-3000:] or stdout[-3000:]
    return run


def env_for(strategy: str) -> dict:
    return dict(bench.ansible_env(), ANSIBLE_STRATEGY=strategy,
                ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles,ansible.posix.profile_tasks",
                PROFILE_TASKS_TASK_OUTPUT_LIMIT="10", ANSIBLE_HOST_KEY_CHECKING="False")


def grow(devices: int, key: pathlib.Path, args: argparse.Namespace) -> dict:
    """Start the containers up to ``devices`` devices; the host's memory before and after."""
    inventory = write_inventory(devices, "docker", key, {}, args.users, args.device_packages)
    raise_inotify(devices + sum(len(v) for v in CORE.values()))
    before = mem_available_kib()
    env = dict(bench.ansible_env(), ANSIBLE_FORKS=str(args.forks))
    run = playbook(["ansible-playbook", "-i", str(inventory), "playbooks/lab-containers.yml"], env, args.timeout)
    if run["rc"] != 0:
        raise RuntimeError(f"lab-containers.yml failed: {run.get('tail', '')[-1500:]}")
    time.sleep(5)
    return {"containers": run, "mem_available_before_kib": before, "mem_available_after_kib": mem_available_kib()}


def measure_size(devices: int, key: pathlib.Path, args: argparse.Namespace, result: dict, save) -> dict:
    """Fill ``result`` for ``devices`` devices, calling ``save()`` after every step."""
    log(f"N={devices}: containers")
    result.update(devices=devices, load_before=bench.loadavg())
    result.update(grow(devices, key, args))
    ips = addresses()
    inventories = {conn: write_inventory(devices, conn, key, ips if conn == "ssh" else {}, args.users,
                                         args.device_packages)
                   for conn in args.connections}
    first_conn, first_strategy = args.connections[0], args.strategies[0]
    log(f"N={devices}: first converge ({first_strategy}, {first_conn})")
    env = dict(env_for(first_strategy), ANSIBLE_FORKS=str(args.forks))
    result["first_converge"] = playbook(["ansible-playbook", "-i", str(inventories[first_conn]), "playbooks/site.yml"],
                                        env, args.timeout)
    result["first_converge"].update(strategy=first_strategy, connection=first_conn)
    save()
    if result["first_converge"]["rc"] != 0:
        log(f"N={devices}: first converge FAILED: {result['first_converge'].get('tail', '')[-1500:]}")
        return result
    result["runs"] = []
    for conn, strategy in run_order(args.connections, args.strategies):
        env = dict(env_for(strategy), ANSIBLE_FORKS=str(args.forks))
        log(f"N={devices}: ping and idempotent site.yml ({strategy}, {conn})")
        ping = bench.timed(["ansible", "all", "-i", str(inventories[conn]), "-m", "ansible.builtin.ping"],
                           args.timeout, env)
        ping.pop("stdout")
        cpu_before, children_before = container_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
        rerun = playbook(["ansible-playbook", "-i", str(inventories[conn]), "playbooks/site.yml"], env, args.timeout)
        rerun["cpu"] = cpu_used(cpu_before, container_cpu(), children_before,
                                resource.getrusage(resource.RUSAGE_CHILDREN))
        result["runs"].append({"strategy": strategy, "connection": conn, "ping_s": ping["wall_s"],
                               "ping_rc": ping["rc"], "site": rerun})
        save()
        log(f"N={devices}: {strategy}/{conn}: ping {ping['wall_s']} s, re-run {rerun['wall_s']} s, "
            f"changed={rerun['changed_total']}, vault tier {rerun.get('vault_tier_s')} s, CPU {rerun['cpu']}")
    memory = container_memory()
    result["memory"] = {
        "containers": memory,
        "device_mean_mib": mean_mib(memory, "current", True),
        "device_anon_mean_mib": mean_mib(memory, "anon", True),
        "core_mean_mib": mean_mib(memory, "current", False),
        "mem_available_kib": mem_available_kib(),
    }
    result["load_after"] = bench.loadavg()
    return result


STORM_GATEWAY = "fx-gw1"
DEVICE_PORT = 9993  # envoy_edge_gateway_port, the gateways' device port
NAT_ADDRESS = "192.0.2.1"  # TEST-NET-1: the one client address the gateways see in the NAT storm


def storm_setup(devices: int) -> None:
    """imapload and one fleet user's credentials (0600) in each device."""
    password = fleet_credentials()["password"]
    for index in range(1, devices + 1):
        bench.install_imapload(device_name(index), [(fleet_user(index), password)])


def container_pid(name: str) -> int:
    return int(bench.sh(["docker", "inspect", "--format", "{{.State.Pid}}", name], 60, check=True).stdout.strip())


def gateway_nat(enable: bool) -> list[str]:
    """SNAT every device's connection to the gateways' device port to NAT_ADDRESS (the nat
    table's INPUT chain in each gateway's network namespace, so the gateway's NGINX sees
    one client address); ``enable=False`` removes the rule. Returns the gateways changed."""
    changed = []
    for gateway in CORE["gateways"]:
        rule = ["-p", "tcp", "--dport", str(DEVICE_PORT), "-j", "SNAT", "--to-source", NAT_ADDRESS]
        base = ["nsenter", "-t", str(container_pid(gateway)), "-n", "iptables", "-t", "nat"]
        present = bench.sh(base + ["-C", "INPUT"] + rule, 30).returncode == 0
        if enable and not present:
            bench.sh(base + ["-A", "INPUT"] + rule, 30, check=True)
        elif not enable and present:
            bench.sh(base + ["-D", "INPUT"] + rule, 30, check=True)
        else:
            continue
        changed.append(gateway)
    return changed


def device_port_connections() -> dict[str, int]:
    """Established connections on each gateway's device port (the devices' sessions and,
    for a moment each, their health checks)."""
    counts = {}
    for gateway in CORE["gateways"]:
        out = bench.sh(["nsenter", "-t", str(container_pid(gateway)), "-n", "ss", "-Htn", "state", "established",
                        f"( sport = :{DEVICE_PORT} )"], 30).stdout
        counts[gateway] = len([line for line in out.splitlines() if line.strip()])
    return counts


def wait_running(name: str, timeout: float) -> str:
    """Start ``name`` if it is stopped and wait for its systemd to finish booting."""
    bench.sh(["docker", "start", name], 120, check=True)
    state = bench.sh(["docker", "exec", name, "timeout", str(int(timeout)), "systemctl", "is-system-running",
                      "--wait"], timeout + 30).stdout.strip()
    return state


def storm_outcome(reports: dict[str, dict], stopped_at: float) -> dict:
    """What the devices' hold reports say about the storm after the stop at ``stopped_at``."""
    broken, back, failed, kinds, never, before = [], [], 0, {}, [], []
    for name, report in sorted(reports.items()):
        for outage in report.get("outages") or []:
            if outage["lost"] < stopped_at - 1:
                before.append(name)
                continue
            broken.append(name)
            failed += outage["failed"]
            for kind, count in outage["kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + count
            if outage["back"] is None:
                never.append(name)
            else:
                back.append(round(outage["back"] - stopped_at, 2))
    back.sort()
    missing = sorted(name for name, report in reports.items() if not report.get("sessions"))
    return {
        "devices": len(reports),
        "sessions_broken": len(broken),
        "back": len(back),
        "never_back": never,
        "no_session": missing,
        "broken_before_the_stop": before,
        "failed_attempts": failed,
        "failed_kinds": kinds,
        "all_back_s": back[-1] if back and not never and not missing else None,
        "p50_back_s": back[len(back) // 2] if back else None,
        "first_back_s": back[0] if back else None,
    }


def storm(devices: int, args: argparse.Namespace, nat: bool) -> dict:
    """One reconnection storm (see the module's docstring); the gateway runs again after it."""
    log(f"storm ({'one client address' if nat else 'own addresses'}): {devices} devices hold a session")
    result = {"nat": nat, "gateway": STORM_GATEWAY, "hold_s": args.storm_hold}
    if nat:
        result["nat_rules"] = gateway_nat(True)
    procs = {}
    try:
        for index in range(1, devices + 1):
            name = device_name(index)
            procs[name] = subprocess.Popen(
                ["docker", "exec", name, "python3", bench.REMOTE_IMAPLOAD, "--host", "127.0.0.1", "--port", "143",
                 "--users-file", bench.REMOTE_USERS, "--label", "storm", "--mix", "hold", "--concurrency", "1",
                 "--duration", str(args.storm_hold), "--noop-interval", "1", "--op-timeout", "10",
                 "--setup-timeout", "60", "--grace", "15"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(args.storm_settle)
        result["load_at_stop"] = bench.loadavg()
        result["connections_before_stop"] = device_port_connections()
        # A host's orderly shutdown: systemd (PID 1) halts on SIGRTMIN+3, stopping NGINX and
        # Envoy first, then the container exits. (docker stop's SIGTERM only makes systemd
        # re-execute itself, and the container is killed after the timeout.)
        stopped_at = time.time()
        bench.sh(["docker", "kill", "--signal", "SIGRTMIN+3", STORM_GATEWAY], 60, check=True)
        exited = bench.sh(["docker", "wait", STORM_GATEWAY], 120)
        result["stop_s"] = round(time.time() - stopped_at, 2)
        result["stop_rc"] = exited.returncode
        log(f"storm: {STORM_GATEWAY} shut down in {result['stop_s']} s; the devices hold on for the rest of "
            f"{args.storm_hold:g} s")
        reports = {}
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=args.storm_hold + args.storm_settle + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            lines = [line for line in out.splitlines() if line.startswith("{")]
            reports[name] = json.loads(lines[-1]) if lines else {"error": err.strip()[-300:]}
        result["outcome"] = storm_outcome(reports, stopped_at)
        result["reports"] = reports
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        result["gateway_restart"] = wait_running(STORM_GATEWAY, 300)
        if nat:
            gateway_nat(False)
    outcome = result.get("outcome", {})
    log(f"storm: {outcome.get('sessions_broken')} sessions broken, {outcome.get('back')} back, all back after "
        f"{outcome.get('all_back_s')} s (p50 {outcome.get('p50_back_s')} s), {outcome.get('failed_attempts')} "
        f"failed attempts {outcome.get('failed_kinds')}; device port connections before the stop "
        f"{result.get('connections_before_stop')}; {STORM_GATEWAY} {result['gateway_restart']}")
    return result


def run_order(connections: list[str], strategies: list[str]) -> list[tuple[str, str]]:
    """(connection, strategy) pairs: the first of each, then the pair that differs in
    both (so a cut-short run still compares make lab's way with production's), then
    the rest."""
    first = (connections[0], strategies[0])
    pairs = [(c, s) for c in connections for s in strategies]
    opposite = [p for p in pairs if p[0] != first[0] and p[1] != first[1]][:1]
    return [first] + opposite + [p for p in pairs if p != first and p not in opposite]


def summarise(sizes: list[dict]) -> dict:
    """Marginal cost per added device for every measured series."""
    series: dict[str, list[tuple[int, float]]] = {}
    for size in sizes:
        n = size["devices"]
        first = size.get("first_converge") or {}
        if first.get("rc") == 0 and size is not sizes[0]:
            # The first size's converge includes the core's; later ones only the new devices'.
            series.setdefault("first converge of the added devices (s)", []).append((n, first["wall_s"]))
        for run in size.get("runs", []):
            label = f"{run['strategy']}/{run['connection']}"
            if run["site"]["rc"] == 0:
                series.setdefault(f"idempotent site.yml, {label} (s)", []).append((n, run["site"]["wall_s"]))
                series.setdefault(f"Vault tier in the re-run, {label} (s)", []).append(
                    (n, run["site"].get("vault_tier_s") or 0.0))
                for key, value in (run["site"].get("cpu") or {}).items():
                    series.setdefault(f"CPU of the re-run, {key.removesuffix('_s')}, {label} (s)", []).append(
                        (n, value))
            if run["ping_rc"] == 0:
                series.setdefault(f"ansible -m ping, {label} (s)", []).append((n, run["ping_s"]))
    out = {name: {"points": points, **marginal(points)} for name, points in series.items()}
    # The first converge's marginal cost: (new devices' converge - the previous size's
    # idempotent re-run under the same strategy/connection) per added device.
    steps = []
    for prev, cur in zip(sizes, sizes[1:]):
        first = cur.get("first_converge") or {}
        base = next((r["site"]["wall_s"] for r in prev.get("runs", [])
                     if r["strategy"] == first.get("strategy") and r["connection"] == first.get("connection")
                     and r["site"]["rc"] == 0), None)
        if first.get("rc") == 0 and base is not None:
            steps.append({"from": prev["devices"], "to": cur["devices"],
                          "s_per_device": round((first["wall_s"] - base) / (cur["devices"] - prev["devices"]), 2)})
    out["first converge per added device"] = {"steps": steps}
    return out


def print_report(results: dict) -> None:
    print(f"\n## Fleet benchmark ({results['started']}, load {results['load_start']})\n")
    columns = []
    for size in results["sizes"]:
        for run in size.get("runs", []):
            if (run["strategy"], run["connection"]) not in columns:
                columns.append((run["strategy"], run["connection"]))
    print("| N | first converge (s) | " + " | ".join(f"{s}/{c}: ping / re-run / Vault tier (s)" for s, c in columns)
          + " | memory per device, MiB (cgroup current / anon) | load before, after |")
    print("|---|---|" + "---|" * len(columns) + "---|---|")
    for size in results["sizes"]:
        runs = {(r["strategy"], r["connection"]): r for r in size.get("runs", [])}
        cells = [f"{r['ping_s']} / {r['site']['wall_s']} (changed={r['site']['changed_total']}) / "
                 f"{r['site'].get('vault_tier_s')}" if r else "-" for r in map(runs.get, columns)]
        first = size.get("first_converge", {})
        print(f"| {size['devices']} | {first.get('wall_s')} (rc={first.get('rc')}) | " + " | ".join(cells)
              + f" | {(size.get('memory') or {}).get('device_mean_mib')} / "
              f"{(size.get('memory') or {}).get('device_anon_mean_mib')} | {size.get('load_before')}, "
              f"{size.get('load_after')} |")
    if results.get("storms"):
        print("\n| reconnection storm (one gateway stopped) | devices | sessions broken | all back after (s) |"
              " p50 back (s) | failed attempts (kinds) | never back / no session |\n|---|---|---|---|---|---|---|")
        for run in results["storms"]:
            out = run.get("outcome") or {}
            print(f"| {'one client address (NAT)' if run['nat'] else 'own addresses'} | {out.get('devices')} | "
                  f"{out.get('sessions_broken')} | {out.get('all_back_s')} | {out.get('p50_back_s')} | "
                  f"{out.get('failed_attempts')} ({out.get('failed_kinds')}) | "
                  f"{len(out.get('never_back') or [])} / {len(out.get('no_session') or [])} |")
    print("\n| series | per added device (s), between sizes | least squares |\n|---|---|---|")
    for name, data in results["summary"].items():
        steps = ", ".join(f"{s['from']}->{s['to']}: {s['s_per_device']}" for s in data["steps"])
        print(f"| {name} | {steps} | {data.get('slope_s_per_device', '')} |")


def merge(files: list[dict]) -> dict:
    """Results of several runs as one: their sizes in order (a later run of the same
    size replaces an earlier one), the summary computed over all of them."""
    sizes: dict[int, dict] = {}
    for data in files:
        for size in data.get("sizes", []):
            if size.get("devices"):
                sizes[size["devices"]] = size
    ordered = [sizes[n] for n in sorted(sizes)]
    storms = next((data["storms"] for data in reversed(files) if data.get("storms")), None)
    return {"started": ", ".join(data.get("started", "?") for data in files),
            "load_start": [data.get("load_start") for data in files], "sizes": ordered,
            "summary": summarise(ordered), "storms": storms}


def report(paths: list[pathlib.Path]) -> int:
    print_report(merge([json.loads(path.read_text()) for path in paths]))
    return 0


def down(args: argparse.Namespace) -> int:
    inventory = FLEET / "inventory-docker"
    if not (inventory / "hosts.yml").exists():
        write_inventory(0, "docker", ensure_ssh_key(), {})
    proc = bench.sh(["ansible-playbook", "-i", str(inventory), "playbooks/lab-down.yml"], args.timeout,
                    env=bench.ansible_env())
    print(proc.stdout[-1500:])
    return proc.returncode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="2,25,50", help="device counts, increasing (default 2,25,50)")
    parser.add_argument("--max-devices", type=int, default=200, help="refuse sizes above this (default 200)")
    parser.add_argument("--strategies", default="mitogen_linear,linear",
                        help="comma-separated; the first also runs the first converge")
    parser.add_argument("--connections", default="docker,ssh", help="docker, ssh or both; the first runs the first converge")
    parser.add_argument("--forks", type=int, default=10, help="Ansible forks (default 10)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command (default 3600)")
    parser.add_argument("--storm-hold", type=float, default=90,
                        help="seconds each device holds its session in the reconnection storm after the largest "
                             "size (10 to 600; 0: no storm; default 90)")
    parser.add_argument("--storm-settle", type=float, default=20,
                        help="seconds between the sessions' start and the gateway's stop (default 20)")
    parser.add_argument("--storm-only", action="store_true",
                        help="run only the storm, on the fleet a run left with the largest of --sizes devices")
    parser.add_argument("--device-packages", action="store_true",
                        help="devices from an image that already holds the packages the roles install on a "
                             "device (the distribution's package install left out of the first converge)")
    parser.add_argument("--down", action="store_true", help="remove the fleet's containers, network and state, and stop")
    parser.add_argument("--report", nargs="+", type=pathlib.Path, metavar="JSON",
                        help="print the tables of earlier results files (sizes of several runs merged), and stop")
    args = parser.parse_args(argv)
    args.sizes = parse_sizes(args.sizes, args.max_devices)
    args.strategies = [s for s in args.strategies.split(",") if s]
    unknown = [s for s in args.strategies if s not in bench.STRATEGIES]
    if unknown or not args.strategies:
        parser.error(f"--strategies: unknown {', '.join(unknown) or '(none)'}; one of {', '.join(sorted(bench.STRATEGIES))}")
    args.connections = [c for c in args.connections.split(",") if c]
    if not args.connections or set(args.connections) - CONNECTIONS:
        parser.error(f"--connections: docker, ssh or both, not {args.connections}")
    if not 1 <= args.forks <= 200:
        parser.error("--forks: between 1 and 200")
    if not 60 <= args.timeout <= 4 * 3600:
        parser.error("--timeout: between 60 and 14400 seconds")
    if args.storm_only and not args.storm_hold:
        parser.error("--storm-only needs --storm-hold above 0")
    if args.storm_hold and not 10 <= args.storm_hold <= 600:
        parser.error("--storm-hold: 0, or between 10 and 600 seconds")
    if not 5 <= args.storm_settle <= min(120, args.storm_hold or 120):
        parser.error("--storm-settle: between 5 and 120 seconds, and at most --storm-hold")
    # One fleet user per device of the largest size, fixed for the whole run (the users
    # are in the stores' and gateways' configuration: a change would show in the re-runs).
    args.users = args.sizes[-1]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    if args.down:
        return down(args)
    if args.report:
        return report(args.report)
    (FLEET / "state").mkdir(parents=True, exist_ok=True)
    key = ensure_ssh_key()
    ensure_sshd_images()
    packaged = ensure_packaged_image() if args.device_packages else []
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    results = {"started": started, "machine": bench.machine(), "load_start": bench.loadavg(),
               "args": {k: v for k, v in vars(args).items()}, "device_image_packages": packaged, "sizes": []}
    out = REPO / ".build" / "benchmarks" / f"fleet-{started}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    def save():
        results["summary"] = summarise(results["sizes"])
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")

    for devices in ([] if args.storm_only else args.sizes):
        results["sizes"].append({})
        measure_size(devices, key, args, results["sizes"][-1], save)
        save()
        if results["sizes"][-1].get("first_converge", {}).get("rc") != 0:
            break
    else:
        if args.storm_hold:
            devices = args.sizes[-1]
            storm_setup(devices)
            results["storms"] = []
            for nat in (False, True):
                results["storms"].append(storm(devices, args, nat))
                save()
                time.sleep(20)  # the devices' health checks see the restarted gateway again
    print_report(results)
    listing = shlex.join(["docker", "ps", "--filter", f"label={LABEL}=true"])
    log(f"results: {out}; remove the fleet with: python3 benchmarks/fleet.py --down ({listing} lists it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
