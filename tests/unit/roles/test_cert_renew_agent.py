"""roles/vault_cert/files/mailmesh-cert-renew.py without Vault: the metrics it writes
parse as Prometheus text and say what happened, secrets are never printed, a broken
entry is named. Its runs against a real OpenBao are in tests/integration."""

from __future__ import annotations

import importlib.util
import io
import json
import pathlib

from prometheus_client.parser import text_string_to_metric_families

SCRIPT = pathlib.Path(__file__).resolve().parents[2].parent / "roles/vault_cert/files/mailmesh-cert-renew.py"


def load():
    spec = importlib.util.spec_from_file_location("mailmesh_cert_renew", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = load()


def parse(text):
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_parse_and_count_successes_renewals_and_failures():
    state = {}
    agent.record(state, "nginx", True, True, 1000.0)
    agent.record(state, "nginx", True, False, 2000.0)
    agent.record(state, "envoy", False, False, 2500.0)
    agent.record(state, "envoy", False, False, 2600.0)
    text = agent.render_metrics(state, {"nginx": None, "envoy": None}, -2.4, 2700.0).decode()
    samples = parse(text)
    nginx, envoy = (("cert", "nginx"),), (("cert", "envoy"),)
    assert samples["mailmesh_cert_renew_success", nginx] == 1
    assert samples["mailmesh_cert_last_success_timestamp_seconds", nginx] == 2000
    assert samples["mailmesh_cert_last_renewal_timestamp_seconds", nginx] == 1000
    assert samples["mailmesh_cert_renewals_total", nginx] == 1
    assert samples["mailmesh_cert_renew_success", envoy] == 0
    assert samples["mailmesh_cert_consecutive_failures", envoy] == 2
    assert samples["mailmesh_cert_failures_total", envoy] == 2
    assert samples["mailmesh_cert_last_failure_timestamp_seconds", envoy] == 2600
    assert samples["mailmesh_cert_clock_skew_seconds", ()] == -2
    assert samples["mailmesh_cert_renew_last_run_timestamp_seconds", ()] == 2700
    # A success after failures resets the streak, not the total.
    agent.record(state, "envoy", True, True, 2800.0)
    samples = parse(agent.render_metrics(state, {"envoy": None}, None, 2900.0).decode())
    assert samples["mailmesh_cert_consecutive_failures", envoy] == 0
    assert samples["mailmesh_cert_failures_total", envoy] == 2
    assert ("mailmesh_cert_clock_skew_seconds", ()) not in samples


def test_label_values_are_escaped():
    state = {}
    agent.record(state, 'odd"name\\x', True, False, 1.0)
    text = agent.render_metrics(state, {'odd"name\\x': None}, None, 2.0).decode()
    samples = parse(text)
    assert samples["mailmesh_cert_renew_success", (("cert", 'odd"name\\x'),)] == 1


def test_known_secrets_never_reach_a_line():
    stream = io.StringIO()
    out = agent.Output(stream)
    out.hide("3f5e0a11-secret-id")
    out.hide("s.short")
    out.hide("")
    out.line("login failed for 3f5e0a11-secret-id with token s.short\nsecond line")
    assert stream.getvalue() == "login failed for ******** with token ******** second line\n"


def test_journal_priority_prefix_only_under_systemd(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    out = agent.Output(stream)
    out.line("ok")
    out.line("bad", error=True)
    assert stream.getvalue() == "<6>ok\n<3>bad\n"


def test_configurations_are_read_by_name_and_problems_named(tmp_path):
    good = dict(name="nginx", approle_file="/a.json", common_name="gw1", cert_path="/c", key_path="/k")
    (tmp_path / "nginx.json").write_text(json.dumps(good))
    (tmp_path / "envoy.json").write_text(json.dumps(dict(good, name="envoy", key_path="")))
    (tmp_path / "notes.txt").write_text("ignored")
    stream = io.StringIO()
    found = agent.load_configs(str(tmp_path), set(), agent.Output(stream))
    assert [(name, problem is None) for name, _config, problem in found] == [("envoy", False), ("nginx", True)]
    assert found[0][2].endswith("envoy.json: unusable certificate configuration (lacks key_path); run the "
                                "playbook that manages this host to write it again")
    # --only NAME: the file of that name (the vault_cert role names each file after its certificate).
    assert [name for name, _c, _p in agent.load_configs(str(tmp_path), {"nginx"}, agent.Output(stream))] == ["nginx"]
    assert agent.load_configs(str(tmp_path / "missing"), set(), agent.Output(stream)) is None
    assert "cannot read the configuration directory" in stream.getvalue()
