"""benchmarks/soak.py: the parts that judge figures, without a lab (the load plan, the
reading of /proc/<pid>/status, the growth of each process, and the argument checks that
refuse an unbounded soak before anything is contacted)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

MODULE_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
_SPEC = importlib.util.spec_from_file_location("benchmark_soak", MODULE_PATH)
soak = importlib.util.module_from_spec(_SPEC)
sys.modules["benchmark_soak"] = soak
_SPEC.loader.exec_module(soak)


def test_segments_alternate_the_mixes_and_add_up():
    plan = soak.segments(150, 60)
    assert plan == [("login", 60.0), ("fetch", 60.0), ("login", 30.0)]
    assert sum(seconds for _mix, seconds in soak.segments(30 * 60, 60)) == 1800
    assert soak.segments(0.2, 60) == []


def test_parse_status_reads_rss_and_anon():
    text = "Name:\tenvoy\nVmRSS:\t   65536 kB\nRssAnon:\t   14336 kB\nThreads:\t9\n"
    assert soak.parse_status(text) == {"VmRSS": 65536, "RssAnon": 14336}


def test_growth_per_main_process_workers_summed_and_restarts():
    start = {"gw1": {"envoy/envoy/10": {"VmRSS": 1000, "RssAnon": 500, "fds": 40},
                     "nginx/nginx/20": {"VmRSS": 800, "RssAnon": 100, "fds": 12},
                     "nginx/nginx/21": {"VmRSS": 300, "RssAnon": 50, "fds": 20},
                     "nginx/nginx/22": {"VmRSS": 300, "RssAnon": 50, "fds": 20}}}
    end = {"gw1": {"envoy/envoy/11": {"VmRSS": 1500, "RssAnon": 700, "fds": 42},
                   "nginx/nginx/20": {"VmRSS": 800, "RssAnon": 100, "fds": 12},
                   # a reload replaced the workers
                   "nginx/nginx/31": {"VmRSS": 310, "RssAnon": 55, "fds": 21},
                   "nginx/nginx/32": {"VmRSS": 300, "RssAnon": 50, "fds": 20}}}
    rows = {row["process"]: row for row in soak.growth(start, end)}
    # Envoy's main process has another PID at the end: it was restarted.
    assert rows["envoy/envoy/10"] == {"container": "gw1", "process": "envoy/envoy/10", "restarted": True}
    assert rows["nginx/nginx/20"]["restarted"] is False
    assert rows["nginx/nginx/20"]["rss_growth_kib"] == 0
    # The workers, summed: replaced by a reload is no restart.
    workers = rows["nginx/workers"]
    assert workers["restarted"] is False
    assert workers["rss_kib"] == [600, 610] and workers["fds"] == [40, 41]
    assert workers["rss_growth_kib"] == 10 and workers["fd_growth"] == 1


@pytest.mark.parametrize("argv,message", [
    (["--minutes", "0"], "--minutes must be more than 0"),
    (["--minutes", "241"], "at most 240"),
    (["--segment", "900"], "--segment must be between 5 and 600"),
    (["--rotate-every", "0"], "--rotate-every must be more than 0"),
])
def test_unbounded_settings_are_refused_before_anything(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(soak, "lab_containers", lambda prefix: pytest.fail("contacted docker"))
    with pytest.raises(SystemExit) as exc:
        soak.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
