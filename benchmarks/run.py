"""Benchmark the container lab: three IMAP paths, edge Envoy memory, Ansible re-run time.

Runs on the controller (the host that ran ``make lab``), standard library only::

    python3 benchmarks/run.py                 # everything, about 30 minutes
    python3 benchmarks/run.py --skip-ansible  # IMAP paths and memory only

1. Memory. On each ``--memory-hosts`` device (lab-pi1: arm64 under qemu-user; lab-edge1:
   amd64, native) Envoy's VmRSS and RssAnon (``/proc/<pid>/status``, PID from
   ``systemctl show -p MainPID --value envoy``) at idle, the peak while ``--sessions``
   sessions are held open through it (imapload ``--mix hold`` on the device itself),
   idle again, and once more after the load phases below.
2. Load. ``benchmarks/imapload.py`` is copied into the edge container (``--client``,
   lab-edge1) and run there for every path, so the client is the same machine:

   * ``direct``  - Dovecot's own TLS on lab-store1:993;
   * ``gateway`` - NGINX on lab-gw1:993 (TLS), auth_http, Envoy egress -> store ingress;
   * ``chain``   - plain IMAP to the edge's Envoy on 127.0.0.1:143, mTLS to a gateway,
     then as ``gateway``.

   Rounds alternate the paths (the order rotates each round) and the mixes; the table
   shows medians over rounds and each path's ratio to ``direct``. Host load and the CPU
   each container (and its long-lived programs) used are recorded for every run.
   The gateways limit auth_http requests per login and per client address (a
   brute-force guard), which one benchmark user on one address would measure instead
   of the path: ``--deployed-rounds`` login rounds show the limits as deployed, then
   ``playbooks/gateways.yml`` is re-applied with the limits lifted (extra vars only) for
   the load and paced phases, and once more as deployed afterwards.
3. Paced logins. The gateways limit auth_http requests per login and per client
   address, so back-to-back logins through them measure that limit. Logins paced below
   it give each path's latency and CPU cost per login (the client, gateway and store
   containers, less their idle use), hence the login rate the shared cores would allow.
4. Ansible. Wall time of ``ansible-playbook -i inventories/lab playbooks/site.yml`` (a
   re-run on the applied lab: its recap must show changed=0; ansible.posix's profile
   callbacks time plays, roles and tasks) against
   ``ansible all -i inventories/lab -m ansible.builtin.ping``; then the same pair once
   more without the emulated arm64 host (``--also-without``), for the native hosts alone.

Every step has a timeout. Results go to ``.build/benchmarks/<UTC time>.json``; the
tables are printed as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
IMAPLOAD = REPO / "benchmarks" / "imapload.py"
REMOTE_IMAPLOAD = "/tmp/imapload.py"
REMOTE_USERS = "/tmp/imapload-users"
CAFILE = "/etc/mailmesh/vault/ca.pem"
PASSWORD_ENV = "IMAPLOAD_PASSWORD"

PATHS = {
    "direct": {"host": "lab-store1", "port": 993, "tls": True, "servername": "lab-store1"},
    "gateway": {"host": "lab-gw1", "port": 993, "tls": True, "servername": "lab-gw1"},
    "chain": {"host": "127.0.0.1", "port": 143, "tls": False},
}
STATUS_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads")
# The lab's demo users (inventories/lab/group_vars/all.yml, also printed in
# .build/lab/summary.txt). Dovecot allows each user 20 sessions per client address
# (mail_max_userip_connections), so the memory probe holds at most that many per user
# logged in and keeps the rest at the greeting.
LAB_USERS = (("alice@example.test", "alice-secret"), ("bob@example.test", "bob-secret"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sh(argv: list[str], timeout: float, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run a command with a timeout; a timeout is reported as return code 124."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        proc = subprocess.CompletedProcess(argv, 124, out, err + f"\ntimeout after {timeout:g} s")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc


def dexec(container: str, argv: list[str], timeout: float = 30, check: bool = False,
          env_names: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """docker exec; env_names are passed by name, so values never appear in argv."""
    env_args = [arg for name in env_names for arg in ("-e", name)]
    return sh(["docker", "exec", *env_args, container, *argv], timeout, check=check)


# --------------------------------------------------------------------------- host facts


def loadavg() -> list[float]:
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host, from /proc/stat."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine() -> dict:
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", pathlib.Path("/proc/meminfo").read_text(), re.MULTILINE)
    docker = sh(["docker", "version", "--format", "{{.Server.Version}}"], 30).stdout.strip()
    virt = sh(["systemd-detect-virt"], 10).stdout.strip() if shutil.which("systemd-detect-virt") else ""
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "virtualisation": virt or None,
        "docker": docker,
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }


def first_line(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0] if proc.returncode == 0 and text else f"unknown (rc {proc.returncode})"


def lab_versions() -> dict:
    """Versions of the lab's programs, read from the containers (best effort)."""
    probes = {
        "nginx (lab-gw1)": ("lab-gw1", ["nginx", "-v"]),
        "dovecot (lab-store1)": ("lab-store1", ["dovecot", "--version"]),
        "dovecot (lab-store2)": ("lab-store2", ["dovecot", "--version"]),
        "envoy (lab-gw1)": ("lab-gw1", ["sh", "-c", "envoy --version 2>&1 | grep -o 'version: .*' || envoy --version"]),
        "envoy (lab-edge1)": ("lab-edge1", ["sh", "-c", "envoy --version 2>&1 | grep -o 'version: .*' || envoy --version"]),
        "envoy (lab-pi1)": ("lab-pi1", ["sh", "-c", "envoy --version 2>&1 | grep -o 'version: .*' || envoy --version"]),
        "openbao (lab-vault1)": ("lab-vault1", ["bao", "version"]),
        "python3 (lab-edge1)": ("lab-edge1", ["python3", "--version"]),
        "os (lab-edge1)": ("lab-edge1", ["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "arch (lab-pi1)": ("lab-pi1", ["uname", "-m"]),
    }
    return {name: first_line(dexec(container, argv, timeout=120)) for name, (container, argv) in probes.items()}


def containers() -> dict[str, dict]:
    """Running lab containers: name -> {id, pid, cgroup cpuacct file}."""
    names = sh(["docker", "ps", "--filter", "label=org.mailmesh.lab=true", "--format", "{{.Names}}"], 30,
               check=True).stdout.split()
    result = {}
    for name in sorted(names):
        info = json.loads(sh(["docker", "inspect", name], 30, check=True).stdout)[0]
        cid = info["Id"]
        candidates = [
            f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
            f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage",
            f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat",
            f"/sys/fs/cgroup/docker/{cid}/cpu.stat",
        ]
        cpu_file = next((c for c in candidates if os.path.exists(c)), None)
        result[name] = {"id": cid[:12], "pid": info["State"]["Pid"], "cpu_file": cpu_file}
    return result


def namespace_processes(init_pid: int) -> list[int]:
    """Host PIDs of the processes in the PID namespace of a container's init."""
    try:
        namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def process_cpu(init_pid: int) -> dict[str, float]:
    """CPU seconds so far of each program (by comm) in a container; exited ones are not seen."""
    totals: dict[str, float] = {}
    for pid in namespace_processes(init_pid):
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        totals[comm] = totals.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return totals


def container_cpu_ns(cpu_file: str | None) -> int | None:
    if cpu_file is None:
        return None
    text = pathlib.Path(cpu_file).read_text()
    if cpu_file.endswith("cpuacct.usage"):
        return int(text.strip())
    match = re.search(r"^usage_usec (\d+)", text, re.MULTILINE)
    return int(match.group(1)) * 1000 if match else None


class CpuMeter:
    """CPU used by the host and by each lab container between start() and stop()."""

    def __init__(self, lab: dict[str, dict], programs_in: tuple[str, ...] = ()):
        self.lab = lab
        self.programs_in = [name for name in programs_in if name in lab]

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.host0 = cpu_times()
        self.cont0 = {name: container_cpu_ns(c["cpu_file"]) for name, c in self.lab.items()}
        self.prog0 = {name: process_cpu(self.lab[name]["pid"]) for name in self.programs_in}

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        busy1, total1 = cpu_times()
        busy0, total0 = self.host0
        per_container = {}
        for name, c in self.lab.items():
            before, after = self.cont0[name], container_cpu_ns(c["cpu_file"])
            if before is not None and after is not None:
                per_container[name] = round((after - before) / 1e9 / wall, 3)  # cores used
        programs = {}
        for name in self.programs_in:
            before, after = self.prog0[name], process_cpu(self.lab[name]["pid"])
            used = {comm: round((after[comm] - before.get(comm, 0.0)) / wall, 3) for comm in after}
            programs[name] = {comm: cores for comm, cores in sorted(used.items()) if cores >= 0.01}
        return {
            "wall_s": round(wall, 2),
            "host_busy_pct": round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1),
            "container_cores": per_container,
            "program_cores": programs,
            "loadavg": loadavg(),
        }


# --------------------------------------------------------------------------- load


def imapload_argv(path: str, mix: str, args: argparse.Namespace, extra: tuple[str, ...] = ()) -> list[str]:
    spec = PATHS[path]
    argv = ["python3", REMOTE_IMAPLOAD, "--host", spec["host"], "--port", str(spec["port"]),
            "--user", args.user, "--password-env", PASSWORD_ENV, "--label", path, "--mix", mix,
            "--sizes", args.sizes, "--seed", str(args.seed), *extra]
    if spec["tls"]:
        argv += ["--tls", "--cafile", CAFILE, "--servername", spec["servername"]]
    return argv


def last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def run_imapload(path: str, mix: str, args: argparse.Namespace, meter: CpuMeter, extra: tuple[str, ...],
                 timeout: float) -> dict:
    meter.start()
    proc = dexec(args.client, imapload_argv(path, mix, args, extra), timeout=timeout, env_names=(PASSWORD_ENV,))
    cpu = meter.stop()
    report = last_json(proc.stdout) or {"path": path, "mix": mix, "ops": 0, "errors": None,
                                        "failed": (proc.stderr or proc.stdout).strip()[-400:]}
    report["rc"] = proc.returncode
    report["cpu"] = cpu
    return report


def prepare_corpus(args: argparse.Namespace) -> dict:
    argv = imapload_argv("direct", "login", args, ("--prepare", "--copies", str(args.copies)))
    argv = [a for a in argv if a not in ("--mix", "login")]
    proc = dexec(args.client, argv, timeout=600, env_names=(PASSWORD_ENV,))
    result = last_json(proc.stdout)
    if proc.returncode != 0 or not result or "error" in result:
        raise RuntimeError(f"--prepare failed ({proc.returncode}): {proc.stdout.strip()} {proc.stderr.strip()[-400:]}")
    return result


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict], paths: list[str], mixes: list[str]) -> list[dict]:
    rows = []
    for mix in mixes:
        direct = [r for r in runs if r["mix"] == mix and r["path"] == "direct"]
        for path in paths:
            mine = [r for r in runs if r["mix"] == mix and r["path"] == path]
            ops = median([r.get("ops_per_s") for r in mine])
            base = median([r.get("ops_per_s") for r in direct])
            paired = [m.get("ops_per_s") / d["ops_per_s"] for m, d in zip(mine, direct)
                      if m.get("ops_per_s") and d.get("ops_per_s")]
            rows.append({
                "mix": mix,
                "path": path,
                "rounds": len(mine),
                "ops_per_s": ops,
                "ops_per_s_all": [r.get("ops_per_s") for r in mine],
                "p50_ms": median([r.get("p50_ms") for r in mine]),
                "p99_ms": median([r.get("p99_ms") for r in mine]),
                "mib_per_s": round(rate / 2**20, 2) if (rate := median([r.get("bytes_per_s") for r in mine])) else None,
                "errors": sum(r.get("errors") or 0 for r in mine),
                "error_kinds": sorted({k for r in mine for k in (r.get("error_kinds") or {})}),
                "host_busy_pct": median([r["cpu"]["host_busy_pct"] for r in mine]),
                "container_cores": {
                    name: median([r["cpu"]["container_cores"].get(name) for r in mine])
                    for name in (mine[0]["cpu"]["container_cores"] if mine else {})
                },
                "ratio_to_direct": round(ops / base, 3) if ops and base else None,
                "paired_ratio_median": round(median(paired), 3) if paired else None,
            })
    return rows


def load_phase(args: argparse.Namespace, meter: CpuMeter) -> dict:
    """Closed loop: --concurrency sessions back to back, paths alternating in rounds."""
    paths, mixes = args.paths.split(","), args.mixes.split(",")
    runs = []
    extra = ("--concurrency", str(args.concurrency), "--duration", str(args.duration))
    for round_no in range(args.rounds):
        order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]
        for mix in mixes:
            for path in order:
                # The gateways' auth_http limit (per login and per client address) must
                # be back at rest, so that no run inherits the previous one's logins.
                time.sleep(args.pause)
                report = run_imapload(path, mix, args, meter, extra, args.duration + 120)
                report["round"] = round_no + 1
                runs.append(report)
                log(f"round {round_no + 1} {mix:5} {path:7} ops/s={report.get('ops_per_s')} "
                    f"p50={report.get('p50_ms')} p99={report.get('p99_ms')} errors={report.get('errors')} "
                    f"{report.get('error_kinds') or ''} host busy={report['cpu']['host_busy_pct']}% "
                    f"load={report['cpu']['loadavg'][0]}")
    return {"runs": runs, "summary": summarise(runs, paths, mixes)}


def paced_login_phase(args: argparse.Namespace, meter: CpuMeter) -> dict:
    """Logins paced below the gateways' auth_http limit: latency and CPU per login.

    The CPU all lab containers used, less what they use idle over the same time,
    divided by the logins: on a host where every hop shares the same cores this
    bounds the login rate each path could reach without the limit.
    """
    paths = args.paths.split(",")
    time.sleep(args.pause)
    log(f"idle baseline ({args.paced_duration:g} s)")
    meter.start()
    time.sleep(args.paced_duration)
    idle = meter.stop()
    extra = ("--concurrency", "2", "--rate", str(args.paced_rate), "--duration", str(args.paced_duration))
    runs = []
    for round_no in range(args.paced_rounds):
        order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]
        for path in order:
            time.sleep(args.pause)
            report = run_imapload(path, "login", args, meter, extra, args.paced_duration + 120)
            report["round"] = round_no + 1
            # Only the containers a login passes through: the others' idle noise (the
            # emulated Pi's timers, Vault) would be as large as a gateway's share.
            on_path = (args.client, "lab-gw1", "lab-gw2", "lab-store1")
            busy = {name: cores - idle["container_cores"].get(name, 0.0)
                    for name, cores in report["cpu"]["container_cores"].items() if name in on_path}
            per_login = {name: 1000.0 * cores * report["cpu"]["wall_s"] / report["ops"]
                         for name, cores in busy.items()} if report.get("ops") else {}
            report["cpu_ms_per_login"] = round(sum(per_login.values()), 2) if per_login else None
            report["cpu_ms_per_login_by_container"] = {name: round(ms, 2) for name, ms in per_login.items()}
            runs.append(report)
            log(f"paced login {path:7} ops={report.get('ops')} p50={report.get('p50_ms')} "
                f"p99={report.get('p99_ms')} errors={report.get('errors')} cpu/login={report['cpu_ms_per_login']} ms")
    summary = []
    cores = os.cpu_count() or 1
    base = median([r["cpu_ms_per_login"] for r in runs if r["path"] == "direct"])
    for path in paths:
        mine = [r for r in runs if r["path"] == path]
        cpu_ms = median([r["cpu_ms_per_login"] for r in mine])
        summary.append({
            "path": path,
            "logins": sum(r.get("ops") or 0 for r in mine),
            "errors": sum(r.get("errors") or 0 for r in mine),
            "p50_ms": median([r.get("p50_ms") for r in mine]),
            "p99_ms": median([r.get("p99_ms") for r in mine]),
            "cpu_ms_per_login": cpu_ms,
            "cpu_ms_by_container": {
                name: median([r["cpu_ms_per_login_by_container"].get(name) for r in mine])
                for name in sorted({n for r in mine for n in r["cpu_ms_per_login_by_container"]})
            },
            "cpu_bound_logins_per_s": round(cores * 1000.0 / cpu_ms, 1) if cpu_ms else None,
            "cpu_ratio_to_direct": round(base / cpu_ms, 3) if base and cpu_ms else None,
        })
    return {"rate": args.paced_rate, "duration": args.paced_duration, "idle": idle, "runs": runs,
            "summary": summary}


# --------------------------------------------------------------------------- memory


def parse_status(text: str) -> dict:
    values = {}
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        if key in STATUS_FIELDS:
            values[key] = int(value.split()[0])
    return values


def host_pid(container_init_pid: int, inner_pid: int) -> int | None:
    """The host PID of the process that is ``inner_pid`` in the container's PID namespace."""
    for pid in namespace_processes(container_init_pid):
        try:
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^NSpid:\s*(.*)$", status, re.MULTILINE)
        if match and int(match.group(1).split()[-1]) == inner_pid:
            return pid
    return None


def smaps_breakdown(pid: int) -> dict:
    """Anonymous memory of a process by kind of mapping (kB), from /proc/<pid>/smaps.

    Under qemu-user the process is the emulator: its translated-code buffer (an
    anonymous rwx mapping), its own brk heap ([heap]) and its binary's pages come on
    top of what the emulated program itself holds.
    """
    kinds = {"anon_total": 0, "anon_rwx_unnamed": 0, "anon_brk_heap": 0, "anon_in_emulator_binary": 0}
    perm = path = ""
    for line in pathlib.Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and re.match(r"^[0-9a-f]+-[0-9a-f]+$", fields[0]):
            perm, path = fields[1], (fields[5] if len(fields) > 5 else "")
        elif fields and fields[0] == "Anonymous:":
            kb = int(fields[1])
            kinds["anon_total"] += kb
            if perm.startswith("rwx") and not path:
                kinds["anon_rwx_unnamed"] += kb
            elif path == "[heap]":
                kinds["anon_brk_heap"] += kb
            elif "qemu" in path:
                kinds["anon_in_emulator_binary"] += kb
    return kinds


def install_imapload(container: str, users: list[tuple[str, str]]) -> None:
    """imapload at REMOTE_IMAPLOAD in ``container``, and its users file (0600) at REMOTE_USERS."""
    sh(["docker", "cp", str(IMAPLOAD), f"{container}:{REMOTE_IMAPLOAD}"], 60, check=True)
    text = "".join(f"{user} {password}\n" for user, password in users)
    subprocess.run(["docker", "exec", "-i", container, "sh", "-c", f"umask 077 && cat > {REMOTE_USERS}"],
                   input=text, text=True, capture_output=True, timeout=60, check=True)


def hold_argv(container: str, sessions: int, state: str, args: argparse.Namespace) -> list[str]:
    return ["docker", "exec", container, "python3", REMOTE_IMAPLOAD,
            "--host", "127.0.0.1", "--port", "143", "--users-file", REMOTE_USERS, "--label", f"hold-{state}",
            "--mix", "hold", "--hold-state", state, "--concurrency", str(sessions), "--duration", str(args.hold),
            "--noop-interval", "2", "--op-timeout", "90", "--setup-timeout", "120", "--grace", "15"]


def memory_probe(container: str, lab: dict[str, dict], args: argparse.Namespace) -> dict:
    inner = int(dexec(container, ["systemctl", "show", "-p", "MainPID", "--value", "envoy"], 60,
                      check=True).stdout.strip() or 0)
    if inner == 0:
        raise RuntimeError(f"{container}: envoy is not running (MainPID 0)")
    outer = host_pid(lab[container]["pid"], inner)
    inside_status = dexec(container, ["cat", f"/proc/{inner}/status"], 60, check=True).stdout

    def sample() -> dict:
        # Read from the host when the PID could be mapped: no process is started in the
        # device for it, so sampling does not itself load the (emulated) device.
        if outer is not None:
            return parse_status(pathlib.Path(f"/proc/{outer}/status").read_text())
        return parse_status(dexec(container, ["cat", f"/proc/{inner}/status"], 60, check=True).stdout)

    result = {
        "container": container,
        "arch": dexec(container, ["uname", "-m"], 60).stdout.strip(),
        "pid": inner,
        "host_pid": outer,
        "exe": dexec(container, ["readlink", f"/proc/{inner}/exe"], 60).stdout.strip(),
        "host_exe": os.readlink(f"/proc/{outer}/exe") if outer else None,
        "cmdline": dexec(container, ["sh", "-c", f"tr '\\0' ' ' < /proc/{inner}/cmdline"], 60).stdout.strip()[:300],
        "check_inside_vs_host": {"inside": parse_status(inside_status), "host": sample()},
    }
    idle = []
    for _attempt in range(3):
        idle.append(sample())
        time.sleep(1)
    result["idle"] = idle[-1]

    install_imapload(container, LAB_USERS)
    authenticated = min(args.sessions, args.max_per_user * len(LAB_USERS))
    greeting = args.sessions - authenticated
    log(f"{container}: holding {authenticated} logged-in + {greeting} greeting-state sessions for {args.hold:g} s")
    meter = CpuMeter({container: lab[container]}, programs_in=(container,))
    meter.start()
    procs = [subprocess.Popen(hold_argv(container, authenticated, "authenticated", args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    if greeting:
        procs.append(subprocess.Popen(hold_argv(container, greeting, "greeting", args),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    samples, deadline = [], time.monotonic() + args.hold + 300
    peak_smaps: dict = {}
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        samples.append(sample())
        if outer is not None and samples[-1].get("RssAnon", 0) >= max(s.get("RssAnon", 0) for s in samples):
            peak_smaps = smaps_breakdown(outer)
        time.sleep(1)
    reports = []
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
        reports.append(last_json(out) or {"failed": (err or out).strip()[-400:]})
    result["hold_cpu"] = meter.stop()
    result["hold_reports"] = reports
    result["sessions_held"] = sum(r.get("sessions", 0) for r in reports)
    result["hold_errors"] = sum(r.get("errors") or 0 for r in reports)
    result["peak"] = {key: max(s.get(key, 0) for s in samples) for key in STATUS_FIELDS} if samples else {}
    result["samples"] = len(samples)
    result["peak_smaps_kb"] = peak_smaps
    result["idle_smaps_kb"] = smaps_breakdown(outer) if outer else {}
    dexec(container, ["rm", "-f", REMOTE_USERS], 60)
    time.sleep(5)
    result["idle_after"] = sample()
    return result


# --------------------------------------------------------------------------- ansible


def ansible_env() -> dict:
    env = dict(os.environ)
    venv = REPO / ".venv"
    site = next(iter(sorted(venv.glob("lib/python3*/site-packages"))), venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # As the Makefile: only the collections the project uses (tests/harness/collection-link.sh).
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".build" / "collections")
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    env["ANSIBLE_INJECT_FACT_VARS"] = "False"
    # As the Makefile: Mitogen's strategies, for a run that asks for one (--strategies).
    env["ANSIBLE_STRATEGY_PLUGINS"] = str(site / "ansible_mitogen" / "plugins" / "strategy")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.pop(PASSWORD_ENV, None)
    return env


# Stock Ansible's strategies and Mitogen's (requirements/controller.txt).
STRATEGIES = {"linear", "free", "host_pinned", "mitogen_linear", "mitogen_free", "mitogen_host_pinned"}
PROFILE_LINE_RE = re.compile(r"^(?P<name>.+?) -{2,} (?P<seconds>\d+\.\d+)s$")
TASK_CLOCK_RE = re.compile(r"\(\d+:\d+:\d+\.\d+\)\s+(?P<h>\d+):(?P<m>\d+):(?P<s>\d+\.\d+)\s+\*")


def profile_summary(stdout: str) -> dict:
    """Per-play wall time and the slowest tasks/roles from ansible.posix's profile callbacks.

    A play lasts from its first task's clock to the next play's; the last one to the clock
    profile_tasks prints after the recap (None without it).
    """
    plays: list[list] = []
    end = None
    after_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            after_recap = True
        elif line.startswith("PLAY [") and not after_recap:
            plays.append([line[6:line.index("]")], None])
        clock = TASK_CLOCK_RE.search(line)
        if not clock:
            continue
        seconds = int(clock["h"]) * 3600 + int(clock["m"]) * 60 + float(clock["s"])
        if after_recap:
            end = seconds if end is None else end
        elif plays and plays[-1][1] is None:
            plays[-1][1] = seconds
    bounds = [start for _name, start in plays if start is not None] + ([end] if end is not None else [])
    play_seconds = {}
    for name, start in plays:
        if start is None:
            continue
        later = [bound for bound in bounds if bound > start]
        play_seconds[name] = round(min(later) - start, 1) if later else None
    recap_at = stdout.rfind("PLAY RECAP")
    slowest = []
    for line in stdout[recap_at:].splitlines() if recap_at >= 0 else []:
        match = PROFILE_LINE_RE.match(line.strip())
        if match:
            slowest.append([match["name"].strip(), float(match["seconds"])])
    return {"play_started_after_s": dict(plays), "play_seconds": play_seconds,
            "profile": slowest}


def timed(argv: list[str], timeout: float, env: dict) -> dict:
    t0 = time.monotonic()
    busy0, total0 = cpu_times()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    busy1, total1 = cpu_times()
    return {
        "wall_s": round(time.monotonic() - t0, 2),
        "rc": proc.returncode,
        "host_busy_pct": round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1),
        "stdout": proc.stdout,
        "stderr": proc.stderr[-2000:],
    }


def ansible_phase(args: argparse.Namespace) -> dict:
    """The re-run against the ping floor, once per strategy (stock linear, Mitogen)."""
    return {strategy: ansible_pair(args, strategy) for strategy in args.strategies.split(",")}


def ansible_pair(args: argparse.Namespace, strategy: str) -> dict:
    env = dict(ansible_env(), ANSIBLE_STRATEGY=strategy)
    # Timing callbacks for the playbook (they print, they do not slow it measurably).
    profile_env = dict(env, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles,ansible.posix.profile_tasks",
                       PROFILE_TASKS_TASK_OUTPUT_LIMIT="15")
    ping_argv = ["ansible", "all", "-i", "inventories/lab", "-m", "ansible.builtin.ping"]
    site_argv = ["ansible-playbook", "-i", "inventories/lab", "playbooks/site.yml"]
    pings, sites = [], []
    # Alternate, so both see the same background load.
    for i in range(max(args.ping_runs, args.site_runs)):
        if i < args.ping_runs:
            log(f"[{strategy}] ansible ping run {i + 1}")
            run = timed(ping_argv, 600, env)
            run["hosts_ok"] = run["stdout"].count("SUCCESS")
            run.pop("stdout")
            pings.append(run)
            log(f"  {run['wall_s']} s, rc {run['rc']}, {run['hosts_ok']} hosts")
        if i < args.site_runs:
            log(f"[{strategy}] site.yml re-run {i + 1}")
            run = timed(site_argv, 1800, profile_env)
            run["recap"] = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                            for m in RECAP_RE.finditer(run["stdout"])}
            run["changed_total"] = sum(h["changed"] for h in run["recap"].values())
            run["tasks_ok_total"] = sum(h["ok"] for h in run["recap"].values())
            tail = run.pop("stdout").strip().splitlines()
            run.update(profile_summary("\n".join(tail)))
            recap_at = max((n for n, line in enumerate(tail) if line.startswith("PLAY RECAP")), default=len(tail))
            run["recap_text"] = "\n".join(tail[recap_at:recap_at + len(run["recap"]) + 1])
            sites.append(run)
            log(f"  {run['wall_s']} s, rc {run['rc']}, changed={run['changed_total']}")
    ping_s = median([r["wall_s"] for r in pings if r["rc"] == 0])
    site_s = median([r["wall_s"] for r in sites if r["rc"] == 0])
    without = {}
    if args.also_without:
        # The same pair without the emulated host(s): what native hosts alone cost.
        limit = ["--limit", ",".join(f"!{name}" for name in args.also_without.split(","))]
        log(f"[{strategy}] ansible ping and site.yml re-run {shlex.join(limit)}")
        ping_run = timed(ping_argv + limit, 600, env)
        site_run = timed(site_argv + limit, 1800, profile_env)
        site_recap = {m["host"]: int(m["changed"]) for m in RECAP_RE.finditer(site_run.pop("stdout"))}
        ping_run.pop("stdout")
        without = {"limit": shlex.join(limit), "ping_s": ping_run["wall_s"], "ping_rc": ping_run["rc"],
                   "site_s": site_run["wall_s"], "site_rc": site_run["rc"], "site_changed": site_recap,
                   "ratio": round(site_run["wall_s"] / ping_run["wall_s"], 2) if ping_run["wall_s"] else None}
        log(f"  ping {without['ping_s']} s, site.yml {without['site_s']} s (rc {without['site_rc']})")
    return {
        "strategy": strategy,
        "without": without,
        "ping_command": f"ANSIBLE_STRATEGY={strategy} {shlex.join(ping_argv)}",
        "site_command": f"ANSIBLE_STRATEGY={strategy} {shlex.join(site_argv)}",
        "ping": pings,
        "site": sites,
        "ping_median_s": ping_s,
        "site_median_s": site_s,
        "ratio": round(site_s / ping_s, 2) if ping_s and site_s else None,
    }


def apply_gateways(args: argparse.Namespace, lifted: bool) -> dict:
    """Re-apply playbooks/gateways.yml, with the auth_http limits lifted or as deployed.

    The gateways limit auth_http requests per login (2/s) and per client address
    (10/s): a brute-force guard, which a closed-loop login benchmark from one user on
    one address measures instead of the path. The load phases run with the limits
    lifted (an extra-vars override, nothing written to the inventory); the lab is put
    back as deployed afterwards, before the Ansible phase checks it is unchanged.
    """
    argv = ["ansible-playbook", "-i", "inventories/lab", "playbooks/gateways.yml"]
    if lifted:
        argv += ["-e", json.dumps({"nginx_mail_auth_rate_per_client": args.lifted_rate,
                                   "nginx_mail_auth_rate_per_user": args.lifted_rate})]
    log(f"gateways: auth_http limits {'lifted to ' + args.lifted_rate if lifted else 'as deployed'}")
    run = timed(argv, 1200, ansible_env())
    recap = {m["host"]: int(m["changed"]) for m in RECAP_RE.finditer(run.pop("stdout"))}
    if run["rc"] != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({run['rc']}): {run['stderr'][-500:]}")
    return {"lifted": lifted, "command": shlex.join(argv), "wall_s": run["wall_s"], "changed": recap}


# --------------------------------------------------------------------------- output


# Envoy's TLS counters (its stats listener, Prometheus text): handshakes and the
# sessions among them that were resumed, per upstream cluster (Envoy the client) and per
# listener (Envoy the server).
ENVOY_STATS_URL = "http://127.0.0.1:9902/stats/prometheus"
TLS_COUNTER = re.compile(r'^envoy_(cluster|listener)_ssl_(handshake|session_reused)\{([^}]*)\} (\d+)', re.M)
READ_URL = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


def envoy_tls_counters(lab: dict[str, dict]) -> dict:
    """{container: {"cluster gateways" | "listener 0.0.0.0_10993": {"handshake": n, "session_reused": n}}}
    for every lab container whose Envoy answers."""
    found: dict = {}
    for name in sorted(lab):
        got = dexec(name, ["python3", "-c", READ_URL, ENVOY_STATS_URL], timeout=30)
        if got.returncode != 0:
            continue
        for side, counter, labels, value in TLS_COUNTER.findall(got.stdout):
            label = re.search(r'envoy_(?:cluster_name|listener_address)="([^"]*)"', labels)
            key = f"{side} {label.group(1) if label else labels}"
            found.setdefault(name, {}).setdefault(key, {"handshake": 0, "session_reused": 0})[counter] += int(value)
    return found


def tls_resumption(before: dict, after: dict) -> list[dict]:
    """Per container and cluster/listener: the handshakes of a phase and the share resumed."""
    rows = []
    for name, sides in sorted(after.items()):
        for key, counts in sorted(sides.items()):
            start = before.get(name, {}).get(key, {"handshake": 0, "session_reused": 0})
            handshakes = counts["handshake"] - start["handshake"]
            reused = counts["session_reused"] - start["session_reused"]
            if handshakes > 0:
                rows.append({"container": name, "where": key, "handshakes": handshakes, "resumed": reused,
                             "resumed_share": round(reused / handshakes, 3)})
    return rows


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def print_load(load: dict | None, title: str) -> None:
    if not load:
        return
    if title:
        print(f"\n{title}:")
    print("\n| mix | path | ops/s (median) | ratio to direct | paired ratio | p50 ms | p99 ms | MiB/s | errors"
          " | host CPU busy | ops/s per round |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in load["summary"]:
        kinds = f" ({', '.join(row['error_kinds'])})" if row["error_kinds"] else ""
        print(f"| {row['mix']} | {row['path']} | {fmt(row['ops_per_s'])} | {fmt(row['ratio_to_direct'], 2)} "
              f"| {fmt(row['paired_ratio_median'], 2)} | {fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} "
              f"| {fmt(row['mib_per_s'])} | {row['errors']}{kinds} | {fmt(row['host_busy_pct'])} % "
              f"| {', '.join(fmt(v) for v in row['ops_per_s_all'])} |")


def print_tables(results: dict) -> None:
    for key, title in (("load_limits_as_deployed", "auth_http limits as deployed"),
                       ("load", "auth_http limits lifted" if results.get("gateway_applies") else "")):
        print_load(results.get(key), title)
    if results.get("tls_resumption"):
        print("\nTLS handshakes through Envoy during the load phase (the device port's NGINX and Dovecot"
              " count none; a hop to them shows on its client side):")
        print("\n| container | cluster (Envoy the client) or listener (the server) | handshakes | resumed | share |")
        print("|---|---|---:|---:|---:|")
        for row in results["tls_resumption"]:
            print(f"| {row['container']} | {row['where']} | {row['handshakes']} | {row['resumed']} "
                  f"| {fmt(row['resumed_share'] * 100)} % |")
    paced = results.get("paced_login")
    if paced:
        print(f"\n| path (logins at {paced['rate']:g}/s) | logins | errors | p50 ms | p99 ms | CPU ms per login "
              "| CPU-bound logins/s | ratio to direct | CPU ms by container |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in paced["summary"]:
            by = ", ".join(f"{name} {fmt(ms)}" for name, ms in row["cpu_ms_by_container"].items())
            print(f"| {row['path']} | {row['logins']} | {row['errors']} | {fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} "
                  f"| {fmt(row['cpu_ms_per_login'])} | {fmt(row['cpu_bound_logins_per_s'])} "
                  f"| {fmt(row['cpu_ratio_to_direct'], 2)} | {by} |")
    memory = results.get("memory")
    if memory:
        print("\n| device | arch | state | VmRSS MiB | RssAnon MiB | RssFile MiB | VmHWM MiB | threads |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for probe in memory:
            if "error" in probe:
                print(f"| {probe['container']} | - | error: {probe['error']} | | | | | |")
                continue
            held = f"peak, {probe['sessions_held']} sessions held ({probe['hold_errors']} errors)"
            states = [("idle", probe["idle"]), (held, probe["peak"]), ("idle after", probe["idle_after"])]
            if "after_load" in probe:
                states.append(("after the load phases", probe["after_load"]))
            for state, values in states:
                print(f"| {probe['container']} | {probe['arch']} | {state} | {fmt(values.get('VmRSS', 0) / 1024)} "
                      f"| {fmt(values.get('RssAnon', 0) / 1024)} | {fmt(values.get('RssFile', 0) / 1024)} "
                      f"| {fmt(values.get('VmHWM', 0) / 1024)} | {values.get('Threads', '-')} |")
    for strategy, ansible in (results.get("ansible") or {}).items():
        print(f"\n[{strategy}] ansible ping: {[r['wall_s'] for r in ansible['ping']]} s"
              f" (median {ansible['ping_median_s']});"
              f" site.yml re-run: {[r['wall_s'] for r in ansible['site']]} s (median {ansible['site_median_s']},"
              f" changed={[r['changed_total'] for r in ansible['site']]}); ratio {ansible['ratio']}")
        if ansible.get("without"):
            w = ansible["without"]
            print(f"[{strategy}] {w['limit']}: ping {w['ping_s']} s, site.yml re-run {w['site_s']} s;"
                  f" ratio {w['ratio']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--client", default="lab-edge1", help="container the load generator runs in")
    parser.add_argument("--user", default="alice@example.test")
    parser.add_argument("--password", default=None, help=f"default: ${PASSWORD_ENV} or the lab's alice-secret")
    parser.add_argument("--paths", default="direct,gateway,chain")
    parser.add_argument("--mixes", default="login,fetch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--sizes", default="2k,64k,1m")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pause", type=float, default=12.0,
                        help="seconds before each run (lets the gateways' per-login auth_http limit drain)")
    parser.add_argument("--paced-rate", type=float, default=1.5, help="paced login mix: logins per second")
    parser.add_argument("--paced-duration", type=float, default=30.0)
    parser.add_argument("--paced-rounds", type=int, default=2)
    parser.add_argument("--auth-limits", choices=("lifted", "deployed"), default="lifted",
                        help="the gateways' auth_http limits during the load phases (lifted: re-applied after)")
    parser.add_argument("--lifted-rate", default="100000r/s", help="auth_http rate while the limits are lifted")
    parser.add_argument("--deployed-rounds", type=int, default=1,
                        help="login-mix rounds with the limits as deployed, before they are lifted (0: none)")
    parser.add_argument("--memory-hosts", default="lab-pi1,lab-edge1")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--max-per-user", type=int, default=20,
                        help="logged-in sessions per user and address the stores allow (mail_max_userip_connections)")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the sessions stay open")
    parser.add_argument("--ping-runs", type=int, default=3)
    parser.add_argument("--site-runs", type=int, default=2)
    parser.add_argument("--also-without", default="lab-pi1",
                        help="hosts left out of one more ping and site.yml pair (empty: none)")
    parser.add_argument("--strategies", default="linear,mitogen_linear",
                        help="Ansible strategies the re-run and the ping are timed with, in turn")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-paced", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-ansible", action="store_true")
    parser.add_argument("--out-dir", default=str(REPO / ".build" / "benchmarks"))
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 10 or not 1 <= args.duration <= 120 or not 1 <= args.concurrency <= 200:
        parser.error("--rounds 1..10, --duration 1..120 s, --concurrency 1..200")
    if not 1 <= args.sessions <= 200 or not 1 <= args.hold <= 300 or not 0.1 <= args.paced_rate <= 50:
        parser.error("--sessions 1..200, --hold 1..300 s, --paced-rate 0.1..50")
    if not 1 <= args.paced_duration <= 120 or not 1 <= args.paced_rounds <= 10 or not 0 <= args.pause <= 60:
        parser.error("--paced-duration 1..120 s, --paced-rounds 1..10, --pause 0..60 s")
    if not 0 <= args.deployed_rounds <= 10 or not re.fullmatch(r"[1-9][0-9]{0,6}r/s", args.lifted_rate):
        parser.error("--deployed-rounds 0..10, --lifted-rate like 100000r/s")
    if not set(args.strategies.split(",")) <= STRATEGIES:
        parser.error(f"--strategies: a comma-separated list of {', '.join(sorted(STRATEGIES))}")
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown or "direct" not in args.paths.split(","):
        parser.error(f"--paths: known {sorted(PATHS)}, and direct is required (the ratios' base)")
    os.environ[PASSWORD_ENV] = args.password or os.environ.get(PASSWORD_ENV) or "alice-secret"

    started = datetime.datetime.now(datetime.timezone.utc)
    lab = containers()
    missing = {"lab-store1", "lab-gw1", args.client} - set(lab)
    if missing:
        log(f"lab containers not running: {sorted(missing)} (run make lab first)")
        return 2
    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k != "password"},
        "machine": machine(),
        "lab_versions": lab_versions(),
        "containers": {name: c["id"] for name, c in lab.items()},
        "lab_summary_present": (REPO / ".build" / "lab" / "summary.txt").exists(),
    }
    log(f"machine: {results['machine']}")
    meter = CpuMeter(lab, programs_in=("lab-store1", "lab-gw1", args.client))
    if not (args.skip_load and args.skip_paced):
        log(f"copying imapload.py into {args.client}; preparing the fetch corpus (idempotent)")
        sh(["docker", "cp", str(IMAPLOAD), f"{args.client}:{REMOTE_IMAPLOAD}"], 60, check=True)
        results["prepare"] = prepare_corpus(args)
        log(f"corpus: {results['prepare']}")
    # Memory first: its idle figures are then Envoy's before this run's load.
    if not args.skip_memory:
        results["memory"] = []
        for container in args.memory_hosts.split(","):
            try:
                results["memory"].append(memory_probe(container, lab, args))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                results["memory"].append({"container": container, "error": str(exc)})
    if not args.skip_load and args.deployed_rounds:
        # What a client sees from the lab as deployed: the login mix hits the limits.
        as_deployed = argparse.Namespace(**dict(vars(args), rounds=args.deployed_rounds, mixes="login"))
        results["load_limits_as_deployed"] = load_phase(as_deployed, meter)
    lift = args.auth_limits == "lifted" and not (args.skip_load and args.skip_paced)
    results["gateway_applies"] = []
    try:
        if lift:
            results["gateway_applies"].append(apply_gateways(args, lifted=True))
        if not args.skip_load:
            tls_before = envoy_tls_counters(lab)
            results["load"] = load_phase(args, meter)
            results["tls_resumption"] = tls_resumption(tls_before, envoy_tls_counters(lab))
        if not args.skip_paced:
            results["paced_login"] = paced_login_phase(args, meter)
    finally:
        if lift:
            results["gateway_applies"].append(apply_gateways(args, lifted=False))
    if not args.skip_memory and not (args.skip_load and args.skip_paced):
        for probe in results["memory"]:
            if probe.get("host_pid"):
                probe["after_load"] = parse_status(pathlib.Path(f"/proc/{probe['host_pid']}/status").read_text())
    if not args.skip_ansible:
        results["ansible"] = ansible_phase(args)
    results["machine"]["loadavg_at_end"] = loadavg()
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_tables(results)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
