"""Soak the container lab: mixed IMAP through the whole chain while certificates rotate.

Runs by hand on the controller (the host that ran ``make lab``), never in CI; standard
library only::

    python3 benchmarks/soak.py                  # 30 minutes
    python3 benchmarks/soak.py --minutes 5      # a short run

For ``--minutes`` (at most 240), on the edge container ``--client`` (lab-edge1): the
load generator ``benchmarks/imapload.py`` runs segments of ``--segment`` seconds one
after the other, alternating the ``login`` and ``fetch`` mixes, through the device's
Envoy on 127.0.0.1:143 (edge Envoy, mTLS to a gateway's NGINX, auth_http, the gateway's
Envoy egress, mTLS to the store's Envoy ingress, Dovecot). Meanwhile, every
``--rotate-every`` minutes, ``playbooks/rotate_certs.yml`` renews every certificate of
the mesh (as an operator does after a suspected leak), so every Envoy and NGINX takes
new certificates under load.

At the start and at the end: the resident memory (VmRSS, RssAnon from
``/proc/<pid>/status``) and the number of open file descriptors of every Envoy and every
NGINX process (master and workers) of every lab container. The report gives each
figure's growth, the operations and the failed ones (the error count), and the
rotations and whether each succeeded. Exit status 0 when no operation and no rotation
failed and no process grew beyond ``--max-rss-growth-mib`` / ``--max-fd-growth``.

Results go to ``.build/benchmarks/soak-<UTC time>.json``; the table is printed as
Markdown for docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
IMAPLOAD = REPO / "benchmarks" / "imapload.py"
REMOTE_IMAPLOAD = "/tmp/imapload.py"
PASSWORD_ENV = "IMAPLOAD_PASSWORD"
MAX_MINUTES = 240
# Each process whose memory and descriptors are watched: the unit, and its children too
# (NGINX's workers).
WATCHED_UNITS = ("envoy", "nginx")


def log(message: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def run(argv: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command with a timeout; a timeout is reported as return code 124."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(argv, 124, out, "timeout after %g s" % timeout)


def ansible_env() -> dict:
    """The Makefile's environment for ansible-playbook (benchmarks/run.py's)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import run as lab_run  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    return lab_run.ansible_env()


def parse_status(text: str) -> dict:
    """VmRSS and RssAnon (kB) of a /proc/<pid>/status text."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            found[name] = int(value.split()[0])
    return found


# Runs in a container: for each unit, its main PID and that PID's children; per process
# its status fields and its count of open descriptors. One JSON object on stdout.
PROBE = r"""
import json, os, subprocess, sys
out = {}
for unit in sys.argv[1:]:
    main = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", unit],
                          capture_output=True, text=True).stdout.strip()
    if not main or main == "0":
        continue
    pids = [int(main)]
    children = "/proc/%s/task/%s/children" % (main, main)
    if os.path.exists(children):
        pids += [int(p) for p in open(children).read().split()]
    for pid in pids:
        try:
            status = open("/proc/%d/status" % pid).read()
            fds = len(os.listdir("/proc/%d/fd" % pid))
            name = open("/proc/%d/comm" % pid).read().strip()
        except OSError:
            continue
        out["%s/%s/%d" % (unit, name, pid)] = {"status": status, "fds": fds}
print(json.dumps(out))
"""


def lab_containers(prefix: str) -> list[str]:
    proc = run(["docker", "ps", "--format", "{{.Names}}"], 30)
    return sorted(name for name in proc.stdout.split() if name.startswith(prefix))


def sample(containers: list[str]) -> dict:
    """{container: {unit/comm/pid: {VmRSS, RssAnon, fds}}} for every watched process."""
    found = {}
    for name in containers:
        proc = run(["docker", "exec", name, "python3", "-c", PROBE, *WATCHED_UNITS], 60)
        if proc.returncode != 0:
            continue
        processes = {}
        for key, value in json.loads(proc.stdout or "{}").items():
            figures = parse_status(value["status"])
            figures["fds"] = value["fds"]
            processes[key] = figures
        if processes:
            found[name] = processes
    return found


def _with_workers_summed(processes: dict) -> dict:
    """The unit's main process as it is (unit/comm/pid, the first PID the probe lists),
    its children (NGINX's workers, replaced by every reload) summed as unit/workers."""
    merged, mains = {}, {}
    for key, figures in processes.items():
        unit = key.split("/", 1)[0]
        if unit not in mains:
            mains[unit] = key
            merged[key] = figures
            continue
        total = merged.setdefault("%s/workers" % unit, {"VmRSS": 0, "RssAnon": 0, "fds": 0})
        for name in total:
            total[name] += figures.get(name) or 0
    return merged


def growth(start: dict, end: dict) -> list[dict]:
    """One row per main process present at both ends (same PID: it was never
    restarted), and one per unit for its workers, summed."""
    rows = []
    for container in sorted(start):
        before_all = _with_workers_summed(start[container])
        after_all = _with_workers_summed(end.get(container, {}))
        for key in sorted(before_all):
            if key not in after_all:
                rows.append({"container": container, "process": key, "restarted": True})
                continue
            before, after = before_all[key], after_all[key]
            rows.append({
                "container": container, "process": key, "restarted": False,
                "rss_kib": [before.get("VmRSS"), after.get("VmRSS")],
                "anon_kib": [before.get("RssAnon"), after.get("RssAnon")],
                "fds": [before["fds"], after["fds"]],
                "rss_growth_kib": after.get("VmRSS", 0) - before.get("VmRSS", 0),
                "fd_growth": after["fds"] - before["fds"],
            })
    return rows


def segments(total_seconds: float, segment: float) -> list[tuple[str, float]]:
    """The load plan: (mix, seconds) alternating login and fetch, summing to the total."""
    plan, left, index = [], float(total_seconds), 0
    while left > 0.5:
        length = min(segment, left)
        plan.append(("login" if index % 2 == 0 else "fetch", length))
        left -= length
        index += 1
    return plan


def imapload(args: argparse.Namespace, mix: str, seconds: float) -> dict:
    argv = ["docker", "exec", "-e", PASSWORD_ENV, args.client, "python3", REMOTE_IMAPLOAD,
            "--host", "127.0.0.1", "--port", "143", "--user", args.user, "--password-env", PASSWORD_ENV,
            "--label", "chain", "--mix", mix, "--concurrency", str(args.concurrency),
            "--duration", "%g" % seconds, "--sizes", args.sizes, "--op-timeout", "30"]
    env = dict(os.environ, **{PASSWORD_ENV: args.password})
    proc = run(argv, seconds + 120, env=env)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            result["returncode"] = proc.returncode
            return result
    return {"mix": mix, "ops": 0, "errors": 1, "returncode": proc.returncode,
            "failure": (proc.stderr or proc.stdout).strip()[-500:]}


class Rotator(threading.Thread):
    """rotate_certs.yml every `every` seconds until stopped; keeps each run's outcome."""

    def __init__(self, args: argparse.Namespace, stop: threading.Event):
        super().__init__(daemon=True)
        self.args, self.stop = args, stop
        self.runs: list[dict] = []

    def run(self) -> None:
        while not self.stop.wait(self.args.rotate_every * 60):
            started = time.monotonic()
            proc = run(["ansible-playbook", "-i", self.args.inventory, str(REPO / "playbooks" / "rotate_certs.yml")],
                       1800, env=ansible_env())
            self.runs.append({"at_s": round(started - self.args.started, 1),
                              "seconds": round(time.monotonic() - started, 1), "ok": proc.returncode == 0,
                              "tail": "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-1000:]})
            log("rotation %s in %.0f s" % ("ok" if proc.returncode == 0 else "FAILED", time.monotonic() - started))


def print_table(report: dict) -> None:
    print("\nSoak: %.1f min of IMAP through the chain, %d operations, %d failed; %d rotations, %d failed\n" % (
        report["minutes"], report["ops"], report["errors"], len(report["rotations"]),
        sum(1 for r in report["rotations"] if not r["ok"])))
    print("| container | process | VmRSS start → end (MiB) | RssAnon start → end (MiB) | fds start → end |")
    print("|---|---|---|---|---|")
    for row in report["growth"]:
        if row["restarted"]:
            print("| %s | %s | restarted | | |" % (row["container"], row["process"]))
            continue
        process = row["process"] if row["process"].endswith("/workers") else row["process"].rsplit("/", 1)[0]
        print("| %s | %s | %.1f → %.1f | %.1f → %.1f | %d → %d |" % (
            row["container"], process,
            row["rss_kib"][0] / 1024, row["rss_kib"][1] / 1024,
            (row["anon_kib"][0] or 0) / 1024, (row["anon_kib"][1] or 0) / 1024, row["fds"][0], row["fds"][1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (at most %d)" % MAX_MINUTES)
    parser.add_argument("--segment", type=float, default=60.0, help="seconds per load segment (at most 600)")
    parser.add_argument("--rotate-every", type=float, default=10.0, help="minutes between two rotations")
    parser.add_argument("--client", default="lab-edge1", help="edge container the load runs in")
    parser.add_argument("--prefix", default="lab-", help="the lab's containers (memory and descriptors)")
    parser.add_argument("--inventory", default=str(REPO / "inventories" / "lab"))
    parser.add_argument("--user", default="alice@example.test")
    parser.add_argument("--password", default=os.environ.get(PASSWORD_ENV, "alice-secret"),
                        help="default: $%s or the lab's alice-secret" % PASSWORD_ENV)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sizes", default="2k,64k")
    parser.add_argument("--max-rss-growth-mib", type=float, default=32.0)
    parser.add_argument("--max-fd-growth", type=int, default=16)
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error("--minutes must be more than 0 and at most %d" % MAX_MINUTES)
    if not 5 <= args.segment <= 600:
        parser.error("--segment must be between 5 and 600 seconds (imapload's bound)")
    if args.rotate_every <= 0:
        parser.error("--rotate-every must be more than 0 minutes")

    containers = lab_containers(args.prefix)
    if args.client not in containers:
        parser.error("no running container %s (start the lab with make lab, or name --client and --prefix)"
                     % args.client)
    run(["docker", "cp", str(IMAPLOAD), "%s:%s" % (args.client, REMOTE_IMAPLOAD)], 60)
    prepare = imapload_prepare(args)
    if prepare:
        parser.exit(1, "preparing the fetch corpus failed: %s\n" % prepare)

    start = sample(containers)
    args.started = time.monotonic()
    stop = threading.Event()
    rotator = Rotator(args, stop)
    rotator.start()
    results = []
    try:
        for mix, seconds in segments(args.minutes * 60, args.segment):
            result = imapload(args, mix, seconds)
            results.append(result)
            log("%s %.0f s: %s operations, %s failed" % (mix, seconds, result.get("ops"), result.get("errors")))
    finally:
        stop.set()
        rotator.join(timeout=1800)
    end = sample(containers)

    rows = growth(start, end)
    report = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "minutes": round((time.monotonic() - args.started) / 60, 1),
        "ops": sum(int(r.get("ops") or 0) for r in results),
        "errors": sum(int(r.get("errors") or 0) for r in results),
        "segments": results, "rotations": rotator.runs, "start": start, "end": end, "growth": rows,
        "settings": {k: v for k, v in vars(args).items() if k not in ("password", "started")},
    }
    out = REPO / ".build" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("soak-%s.json" % report["when"].replace(":", ""))
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print_table(report)
    log("results: %s" % path)
    grown = [r for r in rows if r["restarted"] or r["rss_growth_kib"] > args.max_rss_growth_mib * 1024
             or r["fd_growth"] > args.max_fd_growth]
    return 0 if report["errors"] == 0 and all(r["ok"] for r in rotator.runs) and not grown else 1


def imapload_prepare(args: argparse.Namespace) -> str:
    """APPEND the fetch corpus once (imapload --prepare is idempotent); '' when done."""
    argv = ["docker", "exec", "-e", PASSWORD_ENV, args.client, "python3", REMOTE_IMAPLOAD,
            "--host", "127.0.0.1", "--port", "143", "--user", args.user, "--password-env", PASSWORD_ENV,
            "--sizes", args.sizes, "--prepare"]
    proc = run(argv, 300, env=dict(os.environ, **{PASSWORD_ENV: args.password}))
    return "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()[-500:]


if __name__ == "__main__":
    sys.exit(main())
