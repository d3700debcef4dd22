"""The renewal agent's CRL part (roles/vault_cert/files/mailmesh-cert-renew.py with
module_utils/_crl.py) against a real OpenBao: it fetches the CRL, writes the listener's
setting (NGINX snippet, Envoy SDS file), reloads NGINX only when the CRL changed, shows
a revocation at once with --crl-only, keeps the CRL at hand while Vault is down, and
fails open (no CRL checked, an error line, the metric at 0) once Vault has been down for
longer than the CRL's lifetime; the next run that reaches Vault restores the check.

The CRL's lifetime is Vault's own (config/crl expiry, 2 minutes here); the agent's clock
is moved past it instead of waiting (the launcher of test_cert_renew_agent.py).

The stores' ingress is also run as deployed: a real Envoy (test_envoy_config.py's
mesh_ingress) reads the agent's SDS file, refuses a revoked gateway's next connection,
and keeps serving every peer while the agent fails open."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time

import pytest
from cryptography import x509

from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.plugins.plugin_utils._envoy_bootstrap import build_sds_secret
from ansible_collections.mailmesh.imap.tests.integration._support import Pki, api, approle, envoy_binary, free_port, until
from ansible_collections.mailmesh.imap.tests.integration.test_cert_renew_agent import ALT, CN, IPS, Agent, _no_secret
from ansible_collections.mailmesh.imap.tests.integration.test_envoy_config import (
    PROXY_HEADER,
    Backend,
    EnvoyProcess,
    make_spec,
    prometheus_value,
    try_tls,
)


@pytest.fixture
def crl_setup(bao, tmp_path):
    pki = Pki(bao)
    api(pki.client, "post", "%s/config/crl" % pki.mount, expiry="2m", auto_rebuild=False)
    api(pki.client, "get", "%s/crl/rotate" % pki.mount)
    policy = vault_cert_policy(pki.mount, pki.role, CN, ALT, IPS)
    path, role_id, secret_id = approle(pki, CN, policy)
    agent = Agent(tmp_path)
    agent.approle_file.write_text(json.dumps({
        "url": bao.url, "urls": [bao.url], "ca_cert": bao.ca_cert, "approle_mount": path, "role_name": "h1",
        "role_id": role_id, "secret_id": secret_id, "mount": pki.mount, "pki_role": pki.role}))
    agent.approle_file.chmod(0o600)
    return agent, pki, secret_id


def _register(agent, pki, fmt, margin="30s", session_cache=""):
    setting = agent.cert_dir / ("crl.conf" if fmt == "nginx" else "validation.json")
    crl = {"format": fmt, "mounts": [pki.mount], "margin": margin, "file": str(agent.cert_dir / "crl.pem"),
           "setting_file": str(setting), "session_cache": session_cache}
    if fmt == "envoy":
        crl.update(ca_file=str(agent.root / "ca-bundle.pem"), ca_copy=str(agent.cert_dir / "ca.pem"),
                   secret_name="mailmesh_ca")
        (agent.root / "ca-bundle.pem").write_text(pki.ca_pem + "\n")
    agent.register(crl=crl, reload_units=["nginx.service"] if fmt == "nginx" else [])
    return setting


def _colon_hex(serial):
    raw = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
    return ":".join("%02x" % byte for byte in raw)


def _revoked(agent):
    crl = x509.load_pem_x509_crl((agent.cert_dir / "crl.pem").read_bytes())
    return {entry.serial_number for entry in crl}


def _crl_metrics(agent):
    from prometheus_client.parser import text_string_to_metric_families  # pylint: disable=import-outside-toplevel

    text = (agent.textfile_dir / "mailmesh_cert_renew.prom").read_text()
    return {sample.name: sample for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("mailmesh_crl_")}


def _session_cache(setting):
    """The name of the listener's own TLS session cache in the snippet."""
    return re.search(r"^ssl_session_cache shared:(mailmesh_device_\w+):10m;$", setting.read_text(), re.M).group(1)


def test_nginx_crl_revocation_outage_fail_open_and_back(crl_setup):
    agent, pki, secret_id = crl_setup
    setting = _register(agent, pki, "nginx", session_cache="10m")
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "svc: CRL updated from %s" % agent_url(agent) in done.stdout, done.stdout
    assert "\nssl_crl %s;\n" % (agent.cert_dir / "crl.pem") in setting.read_text()
    first_cache = _session_cache(setting)
    assert agent.reloads() == ["reload nginx.service"]
    metrics = _crl_metrics(agent)
    assert metrics["mailmesh_crl_checked"].value == 1
    assert metrics["mailmesh_crl_revoked_certificates"].value == 0
    next_update = metrics["mailmesh_crl_next_update_timestamp_seconds"].value
    assert 100 <= next_update - metrics["mailmesh_crl_this_update_timestamp_seconds"].value <= 130
    assert metrics["mailmesh_crl_consecutive_fetch_failures"].value == 0

    # Nothing new in Vault: no write, no reload.
    done = agent.run("--crl-only")
    assert done.returncode == 0 and "svc: CRL fetched from" in done.stdout, done.stdout
    assert agent.reloads() == ["reload nginx.service"]
    assert _session_cache(setting) == first_cache

    # A revocation: --crl-only (what the revoke playbook runs) takes it, NGINX reloads once.
    serial = agent.cert().serial_number
    api(pki.client, "post", "%s/revoke" % pki.mount, serial_number=_colon_hex(serial))
    done = agent.run("--crl-only")
    assert done.returncode == 0 and "svc: CRL updated from" in done.stdout, done.stdout
    assert serial in _revoked(agent)
    assert agent.reloads() == ["reload nginx.service"] * 2
    # A new CRL, a new (empty) session cache: the revoked certificate cannot resume.
    revoked_cache = _session_cache(setting)
    assert revoked_cache != first_cache
    assert _crl_metrics(agent)["mailmesh_crl_revoked_certificates"].value == 1

    # Vault down: the CRL at hand is kept and still checked; the run says the fetch failed.
    at_hand = (agent.cert_dir / "crl.pem").read_bytes()
    dead = "https://127.0.0.1:%d" % free_port()
    approle_data = json.loads(agent.approle_file.read_text())
    agent.approle_file.write_text(json.dumps(dict(approle_data, url=dead, urls=[dead])))
    done = agent.run("--crl-only")
    assert done.returncode == 1, done.stdout
    assert "svc: CRL fetch FAILED (no Vault node served the CRLs of %s" % pki.mount in done.stdout
    assert (agent.cert_dir / "crl.pem").read_bytes() == at_hand
    assert "ssl_crl" in setting.read_text()
    assert _crl_metrics(agent)["mailmesh_crl_consecutive_fetch_failures"].value == 1

    # Still down, 3 minutes later (the CRL lives 2): fail-open, said in the journal line and
    # the metrics, one reload, the revoked CRL itself kept for when the check returns.
    done = agent.run("--crl-only", clock_offset=180)
    assert done.returncode == 1, done.stdout
    assert "svc: FAIL-OPEN: the listener checks no CRL: the CRL of" in done.stdout
    assert "EXPIRED at" in done.stdout
    assert "ssl_crl" not in setting.read_text() and "Fail-open" in setting.read_text()
    assert _session_cache(setting) == "mailmesh_device_open"
    assert agent.reloads() == ["reload nginx.service"] * 3
    metrics = _crl_metrics(agent)
    assert metrics["mailmesh_crl_checked"].value == 0
    assert metrics["mailmesh_crl_consecutive_fetch_failures"].value == 2
    # Within the margin (30 s before the end) it already fails open.
    done = agent.run("--crl-only", clock_offset=100)
    assert "within the 30 s margin" in done.stdout and "ssl_crl" not in setting.read_text()

    # Vault back: Vault rebuilds the expired CRL when asked (here by hand, as auto_rebuild
    # does on its own), the agent takes it and the check is back.
    agent.approle_file.write_text(json.dumps(approle_data))
    api(pki.client, "get", "%s/crl/rotate" % pki.mount)
    done = agent.run("--crl-only")
    assert done.returncode == 0, done.stdout
    assert "ssl_crl" in setting.read_text() and serial in _revoked(agent)
    assert _crl_metrics(agent)["mailmesh_crl_checked"].value == 1
    _no_secret(agent, done, secret_id)


def test_envoy_validation_context_with_and_without_crl(crl_setup):
    agent, pki, _secret_id = crl_setup
    setting = _register(agent, pki, "envoy")
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    secret = json.loads(setting.read_text())["resources"][0]
    context = secret["validation_context"]
    assert secret["name"] == "mailmesh_ca"
    assert context["trusted_ca"] == {"filename": str(agent.cert_dir / "ca.pem")}
    assert context["crl"] == {"filename": str(agent.cert_dir / "crl.pem")}
    assert context["watched_directory"] == {"path": str(agent.cert_dir)}
    assert (agent.cert_dir / "ca.pem").read_text() == pki.ca_pem + "\n"
    # Envoy re-reads its SDS file by itself: nothing is reloaded.
    assert agent.reloads() == []

    # What the role runs (--only svc --crl-only): the textfile keeps the host's other
    # certificates.
    other = json.loads((agent.config_dir / "svc.json").read_text())
    other_dir = agent.root / "tls" / "other"
    other_dir.mkdir()
    other.update(name="other", crl=None, **{key: str(other_dir / ("%s.pem" % key.split("_")[0]))
                                              for key in ("cert_path", "key_path", "chain_path", "fullchain_path")})
    (agent.config_dir / "other.json").write_text(json.dumps(other))
    assert agent.run("--only", "other").returncode == 0
    done = agent.run("--only", "svc", "--crl-only")
    assert done.returncode == 0 and "other" not in done.stdout, done.stdout
    text = (agent.textfile_dir / "mailmesh_cert_renew.prom").read_text()
    assert 'mailmesh_cert_not_after_timestamp_seconds{cert="other"}' in text
    assert 'mailmesh_cert_not_after_timestamp_seconds{cert="svc"}' in text

    # An unreadable CRL file (corrupt on disk, Vault unreachable): fail-open.
    dead = "https://127.0.0.1:%d" % free_port()
    agent.approle_file.write_text(json.dumps(dict(json.loads(agent.approle_file.read_text()), url=dead, urls=[dead])))
    (agent.cert_dir / "crl.pem").write_text("-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n")
    done = agent.run("--crl-only")
    assert done.returncode == 1
    assert "FAIL-OPEN" in done.stdout and "unreadable" in done.stdout, done.stdout
    context = json.loads(setting.read_text())["resources"][0]["validation_context"]
    assert "crl" not in context and context["trusted_ca"] == {"filename": str(agent.cert_dir / "ca.pem")}


def test_bad_crl_answers_are_named(crl_setup):
    """A node answering garbage is passed over; the next one serves the CRL."""
    agent, pki, _secret_id = crl_setup
    from ansible_collections.mailmesh.imap.plugins.module_utils import _crl  # pylint: disable=import-outside-toplevel

    good = {}

    def getter(url):
        if url.startswith("https://bad"):
            return b"<html>not a CRL</html>"
        good["url"] = url
        return api_crl(pki)

    data, node, problems = _crl.fetch_crls(["https://bad:8200", "https://good:8200"], [pki.mount], None,
                                           getter=getter)
    assert node == "https://good:8200" and len(_crl.split_pem_crls(data)) == 1
    assert problems == ["https://bad:8200: https://bad:8200/v1/%s/crl/pem answered 0 CRL blocks, expected 1"
                        % pki.mount]
    with pytest.raises(_crl.CrlError, match="no Vault node served the CRLs"):
        _crl.fetch_crls(["https://bad:8200"], [pki.mount], None, getter=getter)
    del agent


def api_crl(pki):
    import requests  # pylint: disable=import-outside-toplevel

    return requests.get("%s/v1/%s/crl/pem" % (pki.bao.url, pki.mount), verify=pki.bao.ca_cert, timeout=10).content


def agent_url(agent):
    return json.loads(agent.approle_file.read_text())["url"]


# --- the stores' ingress: a real Envoy with the agent's SDS file ---------------------

PEERS = ("gwa.example.org", "gwb.example.org")


def _issue_peer(pki, directory, name):
    """A certificate of Vault's PKI for name (as a gateway's egress holds one): the
    client's TLS context with it (one per peer: a TLS session resumes only in the context
    it came from), and its serial (colon hex, as Vault names it)."""
    data = api(pki.client, "post", "%s/issue/%s" % (pki.mount, pki.role), common_name=name, ttl="1h")["data"]
    files = {"cert": directory / ("%s.pem" % name), "key": directory / ("%s-key.pem" % name)}
    files["cert"].write_text(data["certificate"] + "\n")
    files["key"].write_text(data["private_key"] + "\n")
    context = ssl.create_default_context(cadata=pki.ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(str(files["cert"]), str(files["key"]))
    return context, data["serial_number"]


def _session(port, context, session=None, resumed=None):
    """What the ingress answers a new connection with a peer's certificate, as the
    gateway's egress opens one (the PROXY header first): 'answered' with the store's
    greeting, or how it was refused (try_tls; session and resumed as there)."""
    return try_tls(port, context, CN, PROXY_HEADER, session=session, resumed=resumed)


def _served(answer):
    return answer.startswith("answered b'* OK")


def _refused(answer):
    """The answer when the ingress did not serve the connection, else None."""
    return None if _served(answer) else answer


def _verify_errors(envoy_process):
    """Envoy's count of refused peer certificates, over its listeners."""
    status, text = envoy_process.stats_get("/stats/prometheus")
    assert status == 200, text
    return prometheus_value(text, "envoy_listener_ssl_fail_verify_error") or 0


def test_envoy_ingress_refuses_a_revoked_peer_and_fails_open(crl_setup, tmp_path):
    """The stores' ingress as deployed: a real Envoy (profile mesh_ingress) whose
    validation context is the agent's SDS file (validation.json) and whose certificate
    is the agent's. A revoked peer (a gateway's egress) is refused on its next new
    connection once `--crl-only` ran (what revoke_host.yml runs), without a restart; the
    other peer goes on; the revoked peer's open session lives on (TLS checked it at the
    handshake, documented in docs/operations.md). Vault down longer than the CRL lives:
    the agent fails open and the ingress keeps serving every peer; Vault back, the check
    and the refusal are back."""
    agent, pki, _secret_id = crl_setup
    setting = _register(agent, pki, "envoy")
    done = agent.run()
    assert done.returncode == 0, done.stdout + done.stderr
    peers_dir = tmp_path / "peers"
    peers_dir.mkdir()
    peers = {name: _issue_peer(pki, peers_dir, name) for name in PEERS}
    revoked, other = PEERS

    sds_dir = tmp_path / "sds"
    sds_dir.mkdir()
    (sds_dir / "cert.yaml").write_text(json.dumps(build_sds_secret(
        "cert", {"fullchain": str(agent.files["fullchain"]), "key": str(agent.files["key"])})))
    tls = {"cert_sds_path": str(sds_dir / "cert.yaml"), "ca_sds_path": str(setting), "min_version": "TLSv1_3"}
    backend = Backend()
    envoy_dir = tmp_path / "envoy"
    envoy_dir.mkdir()
    spec = make_spec("mesh_ingress", tls, admin_socket=str(envoy_dir / "admin.sock"),
                     ingress={"backend_port": backend.port, "allowed_peers": list(PEERS)})
    ingress = EnvoyProcess(str(envoy_binary()), envoy_dir, spec)
    held = None
    try:
        ingress.wait_ready()
        port = spec["ingress"]["listen_port"]
        for name in PEERS:
            assert _served(_session(port, peers[name][0])), name
        # The egress resumes its TLS sessions at the ingress (docs/performance.md): one
        # resumed before the revocation, kept to try again after it.
        tls_session = {}
        assert _served(_session(port, peers[revoked][0], resumed=tls_session))
        first = tls_session["session"]
        assert _served(_session(port, peers[revoked][0], first, tls_session))
        assert tls_session["reused"], "the ingress did not resume the peer's TLS session"
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held = peers[revoked][0].wrap_socket(held, server_hostname=CN)
        held.sendall(PROXY_HEADER)
        assert held.recv(1024).startswith(b"* OK")
        assert _verify_errors(ingress) == 0

        # Revoked in Vault, taken by --crl-only: refused on its next connection, no restart.
        api(pki.client, "post", "%s/revoke" % pki.mount, serial_number=peers[revoked][1])
        done = agent.run("--crl-only")
        assert done.returncode == 0 and "svc: CRL updated from" in done.stdout, done.stdout
        taken = time.monotonic()
        refusal = until("the ingress refuses the revoked peer",
                        lambda: _refused(_session(port, peers[revoked][0])), timeout=30)
        print("ingress: the revoked peer was refused %.1f s after --crl-only ended (%s)"
              % (time.monotonic() - taken, refusal))
        assert _verify_errors(ingress) >= 1
        # Nor can it resume its session of before: Envoy builds a new TLS context (with new
        # session ticket keys) for the new validation context; a full handshake is refused.
        again = {}
        answer = _session(port, peers[revoked][0], first, again)
        assert _refused(answer) and again["reused"] is False, (answer, again)
        assert _served(_session(port, peers[other][0]))
        assert ingress.proc.poll() is None
        held.sendall(b"a1 NOOP\r\n")
        assert backend.wait_data(4, len(PROXY_HEADER) + 9).endswith(b"a1 NOOP\r\n"), backend.snapshot()

        # Vault down for longer than the CRL lives: fail-open, every peer is served.
        approle_data = json.loads(agent.approle_file.read_text())
        dead = "https://127.0.0.1:%d" % free_port()
        agent.approle_file.write_text(json.dumps(dict(approle_data, url=dead, urls=[dead])))
        done = agent.run("--crl-only", clock_offset=180)
        assert done.returncode == 1 and "svc: FAIL-OPEN" in done.stdout, done.stdout
        assert "crl" not in json.loads(setting.read_text())["resources"][0]["validation_context"]
        until("the ingress, failing open, serves the peers again",
              lambda: all(_served(_session(port, peers[name][0])) for name in PEERS),
              timeout=30)

        # Vault back: the CRL and the refusal are back.
        agent.approle_file.write_text(json.dumps(approle_data))
        api(pki.client, "get", "%s/crl/rotate" % pki.mount)
        done = agent.run("--crl-only")
        assert done.returncode == 0, done.stdout
        refused_before = _verify_errors(ingress)
        until("the ingress refuses the revoked peer again",
              lambda: _refused(_session(port, peers[revoked][0])), timeout=30)
        assert _verify_errors(ingress) > refused_before
        assert _served(_session(port, peers[other][0]))
        assert ingress.proc.poll() is None
    finally:
        if held is not None:
            held.close()
        ingress.stop()
        backend.stop()
