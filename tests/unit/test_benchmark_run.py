"""benchmarks/run.py: the parts that judge figures, without a lab.

The summary's ratios to the direct path, the reading of /proc/<pid>/status, the
PLAY RECAP and profile parsing of an ansible-playbook run, and the argument checks
that refuse unbounded or malformed settings before anything is contacted.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

MODULE_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
_SPEC = importlib.util.spec_from_file_location("benchmark_run", MODULE_PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["benchmark_run"] = bench
_SPEC.loader.exec_module(bench)


def _run(path, mix, ops, round_no, busy=50.0):
    return {"path": path, "mix": mix, "round": round_no, "ops_per_s": ops, "p50_ms": 10.0 * round_no,
            "p99_ms": 20.0 * round_no, "bytes_per_s": 2**20 * ops if ops else None, "errors": 0, "error_kinds": {},
            "cpu": {"host_busy_pct": busy, "container_cores": {"lab-gw1": 0.5 * round_no}}}


def test_summary_ratios_are_medians_and_paired_per_round():
    runs = [
        _run("direct", "fetch", 100.0, 1), _run("chain", "fetch", 90.0, 1),
        _run("direct", "fetch", 200.0, 2), _run("chain", "fetch", 100.0, 2),
        _run("direct", "fetch", 300.0, 3), _run("chain", "fetch", 240.0, 3),
    ]
    rows = {row["path"]: row for row in bench.summarise(runs, ["direct", "chain"], ["fetch"])}
    assert rows["direct"]["ratio_to_direct"] == 1.0
    # Medians: chain 100 over direct 200.
    assert rows["chain"]["ops_per_s"] == 100.0
    assert rows["chain"]["ratio_to_direct"] == 0.5
    # Round by round: 0.9, 0.5, 0.8 -> median 0.8.
    assert rows["chain"]["paired_ratio_median"] == 0.8
    assert rows["chain"]["ops_per_s_all"] == [90.0, 100.0, 240.0]
    assert rows["chain"]["mib_per_s"] == 100.0
    assert rows["chain"]["container_cores"] == {"lab-gw1": 1.0}


def test_summary_without_direct_figures_has_no_ratio():
    runs = [_run("chain", "login", 5.0, 1), _run("direct", "login", None, 1)]
    rows = {row["path"]: row for row in bench.summarise(runs, ["direct", "chain"], ["login"])}
    assert rows["chain"]["ratio_to_direct"] is None
    assert rows["chain"]["paired_ratio_median"] is None
    assert rows["direct"]["mib_per_s"] is None


def test_parse_status_reads_the_memory_fields_in_kb():
    text = "Name:\tenvoy\nVmHWM:\t   72540 kB\nVmRSS:\t   72500 kB\nRssAnon:\t   19600 kB\n" \
           "RssFile:\t   52900 kB\nRssShmem:\t       0 kB\nThreads:\t9\nVmSwap:\t0 kB\n"
    assert bench.parse_status(text) == {"VmHWM": 72540, "VmRSS": 72500, "RssAnon": 19600,
                                        "RssFile": 52900, "RssShmem": 0, "Threads": 9}


RECAP = """
PLAY RECAP *********************************************************************
lab-edge1                  : ok=61   changed=0    unreachable=0    failed=0    skipped=20   rescued=0    ignored=0
lab-gw1                    : ok=80   changed=2    unreachable=0    failed=0    skipped=25   rescued=0    ignored=0

Wednesday 25 November 2026  18:20:00 +0000 (0:00:00.512)       0:02:44.010 *****
===============================================================================
envoy ------------------------------------------------------------------ 78.20s
vault_server ----------------------------------------------------------- 41.13s
"""


def test_recap_and_profile_lines_are_parsed():
    recap = {m["host"]: (int(m["ok"]), int(m["changed"])) for m in bench.RECAP_RE.finditer(RECAP)}
    assert recap == {"lab-edge1": (61, 0), "lab-gw1": (80, 2)}
    summary = bench.profile_summary(RECAP)
    assert summary["profile"] == [["envoy", 78.2], ["vault_server", 41.13]]


PLAYS = """
PLAY [Vault servers] ***********************************************************

TASK [Gathering Facts] *********************************************************
Thursday 26 November 2026  09:12:52 +0000 (0:00:00.133)       0:00:00.133 *****
ok: [lab-vault1]

PLAY [Edge devices] ************************************************************

TASK [Gathering Facts] *********************************************************
Thursday 26 November 2026  09:12:57 +0000 (0:00:01.106)       0:00:05.433 *****
ok: [lab-pi1]

PLAY RECAP *********************************************************************
lab-pi1                    : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0

Thursday 26 November 2026  09:13:05 +0000 (0:00:00.333)       0:00:13.033 *****
===============================================================================
"""


def test_every_play_gets_its_seconds_the_last_one_until_the_recap_clock():
    summary = bench.profile_summary(PLAYS)
    assert summary["play_seconds"] == {"Vault servers": 5.3, "Edge devices": 7.6}
    assert summary["play_started_after_s"] == {"Vault servers": 0.133, "Edge devices": 5.433}
    # Without profile_tasks' clock after the recap, the last play has no end.
    cut = PLAYS[:PLAYS.index("Thursday 26 November 2026  09:13:05")]
    assert bench.profile_summary(cut)["play_seconds"] == {"Vault servers": 5.3, "Edge devices": None}


@pytest.mark.parametrize("argv", [
    ["--rounds", "0"],
    ["--duration", "600"],
    ["--concurrency", "5000"],
    ["--sessions", "1000"],
    ["--deployed-rounds", "50"],
    ["--lifted-rate", "unlimited"],
    ["--lifted-rate", "0r/s"],
    ["--paths", "chain"],
    ["--paths", "direct,elsewhere"],
    ["--strategies", "mitogen"],
    ["--strategies", "linear,"],
])
def test_bad_settings_are_refused_before_the_lab_is_touched(argv, monkeypatch, capsys):
    def no_docker(*_args, **_kwargs):
        raise AssertionError("the lab was contacted")

    monkeypatch.setattr(bench, "sh", no_docker)
    monkeypatch.setattr(bench, "containers", no_docker)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert "--" in capsys.readouterr().err


def test_tls_resumption_is_the_share_of_a_phases_handshakes(monkeypatch):
    """Envoy's TLS counters before and after a phase, per cluster and listener; only
    what had handshakes in the phase is reported."""
    texts = iter([
        'envoy_cluster_ssl_handshake{envoy_cluster_name="gateways"} 10\n'
        'envoy_cluster_ssl_session_reused{envoy_cluster_name="gateways"} 2\n'
        'envoy_listener_ssl_handshake{envoy_listener_address="0.0.0.0_10993"} 5\n'
        'envoy_listener_ssl_session_reused{envoy_listener_address="0.0.0.0_10993"} 0\n',
        'envoy_cluster_ssl_handshake{envoy_cluster_name="gateways"} 110\n'
        'envoy_cluster_ssl_session_reused{envoy_cluster_name="gateways"} 92\n'
        'envoy_listener_ssl_handshake{envoy_listener_address="0.0.0.0_10993"} 5\n'
        'envoy_listener_ssl_session_reused{envoy_listener_address="0.0.0.0_10993"} 0\n',
    ])

    def dexec(container, argv, timeout=30, check=False):
        assert argv[-1] == bench.ENVOY_STATS_URL
        return bench.subprocess.CompletedProcess(argv, 0, next(texts), "")

    monkeypatch.setattr(bench, "dexec", dexec)
    lab = {"lab-edge1": {}}
    before = bench.envoy_tls_counters(lab)
    after = bench.envoy_tls_counters(lab)
    assert before["lab-edge1"]["cluster gateways"] == {"handshake": 10, "session_reused": 2}
    assert bench.tls_resumption(before, after) == [
        {"container": "lab-edge1", "where": "cluster gateways", "handshakes": 100, "resumed": 90,
         "resumed_share": 0.9}]
