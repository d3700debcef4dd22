"""The on-host renewal agent (roles/vault_cert/files/mailmesh-cert-renew.py) against a
real OpenBao: installed as the vault_cert role installs it (the files the filter
mailmesh.imap.cert_agent_files lists), run by a Python in which `ansible` cannot be
imported, with the host's AppRole file and a policy rendered by the collection's own
filter. A fake `systemctl` on PATH records what the agent reloads."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib
import re
import stat
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.mailmesh.imap.plugins.filter.cert_agent import cert_agent_files
from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.tests.integration._support import Pki, approle, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
CN = "h1.example.org"
ALT = ["imap.example.org"]
IPS = ["192.0.2.10"]
# What an OpenBao or Vault token looks like (service and batch tokens, old and new).
TOKEN = re.compile(r"\b(hvs|hvb|s|b)\.[A-Za-z0-9_-]{20,}")

# Runs the agent as its unit does (python3 -I -B <program>), with `ansible` made
# unimportable: the agent must work on a host without Ansible.
LAUNCHER = (
    "import runpy, sys; sys.modules['ansible'] = None; program = sys.argv[1]; "
    "sys.argv = sys.argv[1:]; runpy.run_path(program, run_name='__main__')"
)
# The same, on a host whose clock is CLOCK_OFFSET seconds off (argv[1]): datetime.now()
# is all the agent reads the time from.
LAUNCHER_OFF_CLOCK = (
    "import datetime, runpy, sys; sys.modules['ansible'] = None; offset = float(sys.argv[1]); "
    "real = datetime.datetime\n"
    "class Off(real):\n"
    "    @classmethod\n"
    "    def now(cls, tz=None):\n"
    "        return real.now(tz) + datetime.timedelta(seconds=offset)\n"
    "datetime.datetime = Off; program = sys.argv[2]; sys.argv = sys.argv[2:]; "
    "runpy.run_path(program, run_name='__main__')"
)

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "%s"
exit 0
"""


class Agent:
    """The agent installed under tmp_path/install, one certificate registered."""

    def __init__(self, tmp_path: pathlib.Path):
        self.root = tmp_path
        self.install = tmp_path / "install"
        for entry in cert_agent_files(str(ROOT), str(self.install), with_text=True):
            dest = pathlib.Path(entry["path"])
            if entry.get("state") == "directory":
                dest.mkdir(parents=True, exist_ok=True)
            else:
                dest.write_text(entry["text"], encoding="utf-8")
        self.program = self.install / "mailmesh-cert-renew.py"
        self.config_dir = tmp_path / "cert-renew.d"
        self.state_dir = tmp_path / "state"
        self.textfile_dir = tmp_path / "textfile"
        self.cert_dir = tmp_path / "tls" / "svc"
        for directory in (self.config_dir, self.textfile_dir, self.cert_dir):
            directory.mkdir(parents=True)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.systemctl_log = tmp_path / "systemctl.log"
        systemctl = self.bin / "systemctl"
        systemctl.write_text(FAKE_SYSTEMCTL % self.systemctl_log)
        systemctl.chmod(0o755)
        self.approle_file = tmp_path / "approle.json"
        self.files = {part: self.cert_dir / ("%s.pem" % part) for part in ("cert", "key", "chain", "fullchain")}

    def register(self, **overrides):
        config = dict(
            name="svc", approle_file=str(self.approle_file), common_name=CN, alt_names=ALT, ip_sans=IPS,
            ttl="1h", renew_before="30m", max_clock_skew="5m",
            cert_path=str(self.files["cert"]), key_path=str(self.files["key"]),
            chain_path=str(self.files["chain"]), fullchain_path=str(self.files["fullchain"]),
            owner=None, group=None, key_mode="0640", cert_mode="0644", reload_units=["svc.service"],
        )
        config.update(overrides)
        (self.config_dir / "svc.json").write_text(json.dumps(config))

    def run(self, *extra, clock_offset=None):
        env = dict(os.environ, PATH="%s:%s" % (self.bin, os.environ["PATH"]))
        env.pop("JOURNAL_STREAM", None)
        launcher = [LAUNCHER] if clock_offset is None else [LAUNCHER_OFF_CLOCK, str(clock_offset)]
        return subprocess.run(
            [sys.executable, "-I", "-B", "-c", *launcher, str(self.program),
             "--config-dir", str(self.config_dir), "--state-dir", str(self.state_dir),
             "--textfile-dir", str(self.textfile_dir), *extra],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )

    def reloads(self):
        if not self.systemctl_log.exists():
            return []
        return [line for line in self.systemctl_log.read_text().splitlines() if line.startswith("reload")]

    def sha256(self):
        return {part: hashlib.sha256(path.read_bytes()).hexdigest() for part, path in self.files.items()}

    def cert(self):
        return x509.load_pem_x509_certificate(self.files["cert"].read_bytes())

    def metrics(self):
        text = (self.textfile_dir / "mailmesh_cert_renew.prom").read_text()
        return {sample.name: sample for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.labels.get("cert", "svc") == "svc"}


@pytest.fixture
def setup(bao, tmp_path):
    """(agent, pki, secret ID): a PKI role, an AppRole whose policy the collection's
    filter rendered for the host's names, and the host's AppRole file."""
    pki = Pki(bao)
    policy = vault_cert_policy(pki.mount, pki.role, CN, ALT, IPS)
    path, role_id, secret_id = approle(pki, CN, policy)
    agent = Agent(tmp_path)
    agent.approle_file.write_text(json.dumps({
        "url": bao.url, "ca_cert": bao.ca_cert, "approle_mount": path, "role_name": "h1",
        "role_id": role_id, "secret_id": secret_id, "mount": pki.mount, "pki_role": pki.role}))
    agent.approle_file.chmod(0o600)
    agent.register()
    return agent, pki, secret_id


def _no_secret(agent, done, secret_id):
    key_body = agent.files["key"].read_text().splitlines()[1] if agent.files["key"].exists() else None
    for text in (done.stdout, done.stderr, (agent.textfile_dir / "mailmesh_cert_renew.prom").read_text(),
                 (agent.state_dir / "state.json").read_text()):
        assert secret_id not in text
        assert "PRIVATE KEY" not in text
        assert key_body is None or key_body not in text
        assert not TOKEN.search(text), TOKEN.search(text)


def test_issues_keeps_and_renews_with_the_modules_rules(setup):
    agent, pki, secret_id = setup
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("svc: renewed (missing): serial "), lines
    assert "reloaded svc.service" in lines and agent.reloads() == ["reload svc.service"]
    cert = agent.cert()
    assert cert.issuer == pki.ca().subject
    dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(dns.get_values_for_type(x509.DNSName)) == sorted([CN] + ALT)
    assert [str(ip) for ip in dns.get_values_for_type(x509.IPAddress)] == IPS
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 3500 <= lifetime.total_seconds() <= 3700, lifetime  # ttl 1h (+ Vault's 30 s backdating)
    assert stat.S_IMODE(agent.files["key"].stat().st_mode) == 0o640
    assert stat.S_IMODE(agent.files["cert"].stat().st_mode) == 0o644
    metrics = agent.metrics()
    assert metrics["mailmesh_cert_not_after_timestamp_seconds"].value == int(cert.not_valid_after_utc.timestamp())
    assert metrics["mailmesh_cert_renew_success"].value == 1
    assert metrics["mailmesh_cert_renewals_total"].value == 1
    assert metrics["mailmesh_cert_last_failure_timestamp_seconds"].value == 0
    assert int(metrics["mailmesh_cert_info"].labels["serial"].replace(":", ""), 16) == cert.serial_number
    _no_secret(agent, done, secret_id)

    # Nothing due: nothing written, nothing reloaded.
    before = agent.sha256()
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("svc: nothing to do, the certificate stays valid until "), done.stdout
    assert agent.sha256() == before and agent.reloads() == ["reload svc.service"]

    # Due (the agent's renew_before is longer than what is left, shorter than the 1h + 30 s
    # lifetime): a new certificate for the same key, and one reload.
    agent.register(renew_before="3610s")
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("svc: renewed (expiring): serial "), done.stdout
    after = agent.sha256()
    assert after["cert"] != before["cert"] and after["key"] == before["key"]
    assert agent.cert().serial_number != cert.serial_number
    assert agent.reloads() == ["reload svc.service"] * 2
    assert agent.metrics()["mailmesh_cert_renewals_total"].value == 2
    _no_secret(agent, done, secret_id)

    # --check says what it would do and changes nothing.
    before = agent.sha256()
    done = agent.run("--check")
    assert done.returncode == 0 and "svc: would renew (expiring)" in done.stdout, done.stdout
    assert agent.sha256() == before and agent.reloads() == ["reload svc.service"] * 2


def test_an_expired_certificate_is_renewed(setup):
    agent, _pki, _secret_id = setup
    agent.register(ttl="3s", renew_before="1s")
    assert agent.run().returncode == 0
    expired = agent.cert()
    time.sleep(max(0.0, expired.not_valid_after_utc.timestamp() - time.time()) + 1.5)
    agent.register(ttl="1h", renew_before="30m")
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    # (A warning first: the expired certificate lived 3 s + 30 s, less than renew_before.)
    assert "\nsvc: renewed (expiring): serial " in done.stdout, done.stdout
    assert agent.cert().not_valid_after_utc.timestamp() > time.time() + 3000


def test_vault_unreachable_fails_in_one_line_and_changes_nothing(setup):
    agent, _pki, secret_id = setup
    assert agent.run().returncode == 0
    before = agent.sha256()
    data = json.loads(agent.approle_file.read_text())
    data["url"] = "https://127.0.0.1:%d" % free_port()
    agent.approle_file.write_text(json.dumps(data))
    agent.register(renew_before="3610s")  # due, so the failure is the renewal's
    done = agent.run()
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("svc: renewal of %s FAILED (Vault at %s is unreachable while reading the "
                               "issuing CA" % (agent.files["cert"], data["url"])), lines
    assert "the certificate stays valid until" in lines[0] and "the files are unchanged" in lines[0]
    assert agent.sha256() == before and agent.reloads() == ["reload svc.service"]
    metrics = agent.metrics()
    assert metrics["mailmesh_cert_renew_success"].value == 0
    assert metrics["mailmesh_cert_consecutive_failures"].value == 1
    assert metrics["mailmesh_cert_failures_total"].value == 1
    assert metrics["mailmesh_cert_last_failure_timestamp_seconds"].value >= time.time() - 60
    assert metrics["mailmesh_cert_last_success_timestamp_seconds"].value > 0
    _no_secret(agent, done, secret_id)


def test_a_refused_secret_id_is_named_and_not_printed(setup):
    agent, _pki, secret_id = setup
    data = json.loads(agent.approle_file.read_text())
    wrong = data["secret_id"][:-4] + "beef"
    data["secret_id"] = wrong
    agent.approle_file.write_text(json.dumps(data))
    done = agent.run()
    assert done.returncode == 1
    assert "refused the credentials while logging in with auth_method=approle" in done.stdout or \
        "rejected the request while logging in with auth_method=approle" in done.stdout, done.stdout
    assert wrong not in done.stdout and secret_id not in done.stdout
    assert not agent.files["key"].exists()


def test_the_agent_waits_for_a_renewal_in_progress(setup):
    """The module and the agent lock the key's directory: while someone holds it, the
    agent waits, then does its work."""
    agent, _pki, _secret_id = setup
    fd = os.open(agent.cert_dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = []

    def release():
        time.sleep(2)
        released.append(time.monotonic())
        os.close(fd)

    thread = threading.Thread(target=release)
    thread.start()
    started = time.monotonic()
    done = agent.run()
    thread.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started >= 2 and released
    assert agent.files["cert"].exists()


def test_a_bad_entry_is_named_and_the_others_go_on(setup):
    agent, _pki, _secret_id = setup
    (agent.config_dir / "broken.json").write_text("{not json")
    done = agent.run()
    assert done.returncode == 1
    assert "broken: renewal FAILED: %s: unusable certificate configuration" % (agent.config_dir / "broken.json") \
        in done.stdout, done.stdout
    assert "svc: renewed (missing)" in done.stdout


def test_a_sealed_vault_is_named_and_nothing_changes(setup, bao_fresh):
    agent, _pki, _secret_id = setup
    assert agent.run().returncode == 0
    before = agent.sha256()
    bao_fresh.client().sys.initialize(secret_shares=1, secret_threshold=1)  # left sealed
    data = json.loads(agent.approle_file.read_text())
    data["url"] = bao_fresh.url
    agent.approle_file.write_text(json.dumps(data))
    agent.register(renew_before="3610s", ca_cert=None)
    done = agent.run()
    assert done.returncode == 1
    assert ("svc: renewal of %s FAILED (Vault at %s is sealed (or not ready) while reading the issuing CA"
            % (agent.files["cert"], bao_fresh.url)) in done.stdout, done.stdout
    assert agent.sha256() == before


@pytest.mark.parametrize("offset,direction", [(3 * 86400, "ahead of"), (-2 * 3600, "behind")])
def test_a_wrong_clock_is_named_and_no_certificate_is_issued(setup, offset, direction):
    """A Pi with a clock days ahead would see every new certificate as expiring and ask
    for one on every run: the agent names the clock instead, and issues nothing, run
    after run."""
    agent, _pki, _secret_id = setup
    assert agent.run().returncode == 0
    before = agent.sha256()
    for _ in range(2):
        done = agent.run(clock_offset=offset)
        assert done.returncode == 1, done.stdout
        assert ("svc: renewal of %s FAILED (this host's clock" % agent.files["cert"]) in done.stdout, done.stdout
        assert (" %s the clock of Vault at " % direction) in done.stdout, done.stdout
        assert "fix its time synchronisation" in done.stdout
    assert agent.sha256() == before and agent.reloads() == ["reload svc.service"]
    assert agent.metrics()["mailmesh_cert_renewals_total"].value == 1
    skew = [line for line in (agent.textfile_dir / "mailmesh_cert_renew.prom").read_text().splitlines()
            if line.startswith("mailmesh_cert_clock_skew_seconds ")]
    assert skew and abs(float(skew[0].split()[1]) - offset) < 60, skew
