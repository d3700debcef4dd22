"""Unit tests for plugins/modules/vault_pki_cert.py that need no Vault."""

import hashlib
import json
import os
import socket
import sys

import pytest
import yaml
from cryptography import x509

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import AUTH_ARGSPEC, CONNECTION_ARGSPEC
from ansible_collections.mailmesh.imap.plugins.modules import vault_pki_cert as module

SHARED = set(AUTH_ARGSPEC) | set(CONNECTION_ARGSPEC)


def test_documented_options_match_argspec():
    doc = yaml.safe_load(module.DOCUMENTATION)
    spec = module.argument_spec()
    # url is shared, but documented here: approle_file can give it.
    own = {name: opts for name, opts in spec.items() if name not in SHARED or name == "url"}
    assert set(doc["options"]) == set(own)
    for name, opts in own.items():
        documented = doc["options"][name]
        assert documented["type"] == opts["type"], name
        assert documented.get("required", False) == opts.get("required", False), name
        assert documented.get("default") == opts.get("default"), name
        assert documented.get("choices") == opts.get("choices"), name
        assert documented.get("elements") == opts.get("elements"), name


def test_doc_blocks_parse():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["version_added"] == "0.1.0"
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    assert "mailmesh.imap.vault_connection" in doc["extends_documentation_fragment"]
    assert "mailmesh.imap.vault_auth" in doc["extends_documentation_fragment"]
    assert doc["seealso"][0]["module"] == "community.hashi_vault.vault_pki_generate_certificate"
    assert yaml.safe_load(module.EXAMPLES)
    ret = yaml.safe_load(module.RETURN)
    for key in ("serial_number", "not_after", "not_before", "common_name", "alt_names", "ip_sans",
                "reasons", "cert_path", "key_path"):
        assert "sample" in ret[key], key


def test_json_helper():
    class Response:
        def __init__(self, body):
            self.body = body

        def json(self):
            if self.body is None:
                raise ValueError("no json")
            return self.body

    assert module._json({"data": 1}) == {"data": 1}
    assert module._json(Response({"data": 2})) == {"data": 2}
    assert module._json(Response(None)) == {}
    assert module._json(None) == {}


class FakeModule:
    def __init__(self, **params):
        self.params = dict(dict.fromkeys(("url", "role_id", "secret_id", "approle_mount_point",
                                          "engine_mount_point", "role_name", "ca_cert")),
                           auth_method="token", **params)
        self.no_log_values = set()

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs["msg"])


APPROLE = {"url": "https://vault1:8200", "ca_cert": "/etc/mailmesh/vault/ca.pem",
           "approle_mount": "approle", "role_name": "gw1", "role_id": "rid",
           "secret_id": "s3cret-id", "mount": "pki_int", "pki_role": "gateways"}


def test_approle_file_fills_the_login_on_the_host(tmp_path):
    path = tmp_path / "approle.json"
    path.write_text(json.dumps(APPROLE))
    path.chmod(0o600)
    fake = FakeModule(approle_file=str(path))
    module.load_approle_file(fake)
    assert {k: fake.params[k] for k in module.APPROLE_FILE_KEYS} == {
        "url": "https://vault1:8200", "role_id": "rid", "secret_id": "s3cret-id",
        "approle_mount_point": "approle", "engine_mount_point": "pki_int", "role_name": "gateways"}
    assert fake.params["auth_method"] == "approle"
    assert fake.params["ca_cert"] == "/etc/mailmesh/vault/ca.pem"
    assert "s3cret-id" in fake.no_log_values
    # An explicit ca_cert wins over the file's.
    fake = FakeModule(approle_file=str(path), ca_cert="/other/ca.pem")
    module.load_approle_file(fake)
    assert fake.params["ca_cert"] == "/other/ca.pem"


def test_approle_file_problems_are_named(tmp_path):
    with pytest.raises(AssertionError, match="approle_file .*missing.json: cannot read it as JSON"):
        module.load_approle_file(FakeModule(approle_file=str(tmp_path / "missing.json")))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in APPROLE.items() if k not in ("secret_id", "mount")}))
    partial.chmod(0o600)
    with pytest.raises(AssertionError, match="lacks mount, secret_id"):
        module.load_approle_file(FakeModule(approle_file=str(partial)))
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    listed.chmod(0o600)
    with pytest.raises(AssertionError, match="expected a JSON object"):
        module.load_approle_file(FakeModule(approle_file=str(listed)))
    # Readable by others: refused, its secret ID not in the message.
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps(APPROLE))
    loose.chmod(0o644)
    with pytest.raises(AssertionError, match=r"loose.json is open to group or others \(mode 0644") as info:
        module.load_approle_file(FakeModule(approle_file=str(loose)))
    assert "s3cret-id" not in str(info.value)


def test_without_approle_file_nothing_is_filled():
    fake = FakeModule(approle_file=None, url="https://v:8200")
    module.load_approle_file(fake)
    assert fake.params["url"] == "https://v:8200" and fake.params["auth_method"] == "token"


def test_approle_file_and_the_options_it_gives_exclude_each_other(tmp_path, run_module):
    paths = {"common_name": "gw1", "cert_path": str(tmp_path / "c.pem"), "key_path": str(tmp_path / "k.pem")}
    result = run_module(module, dict(paths, approle_file=str(tmp_path / "a.json"), url="https://v:8200"))
    assert result["failed"] and "mutually exclusive" in result["msg"] and "approle_file" in result["msg"]
    result = run_module(module, dict(paths, role_name="gateways"))
    assert result["failed"] and "url" in result["msg"] and "approle_file" in result["msg"]
    # Alone, approle_file passes the checks (defaults such as auth_method do not count).
    result = run_module(module, dict(paths, approle_file=str(tmp_path / "a.json")))
    assert result["failed"] and "cannot read it as JSON" in result["msg"], result["msg"]


# ---- a re-run loads neither hvac nor requests ----------------------------------------------

@pytest.fixture
def run_in_fresh_python(run_in_fresh_python):
    """(the module's result, which of hvac/requests it imported), in a fresh Python."""

    def run(args, check_mode=False, path_prefix=None):
        return run_in_fresh_python("vault_pki_cert", args, ("hvac", "requests"), check_mode, path_prefix)

    return run


@pytest.fixture
def pki_vault(fake_vault, tls_files):
    """A fake Vault over TLS whose PKI mount 'pki' has tls_files' CA as issuing CA."""
    return fake_vault({"/v1/pki/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}})}, tls_files)


def cert_args(url, tls_files, directory):
    return dict(url=url, ca_cert=tls_files.ca_cert, token="a-long-test-token",
                engine_mount_point="pki", role_name="hosts", common_name="h1.example.org",
                cert_path=str(directory / "cert.pem"), key_path=str(directory / "key.pem"))


def test_rerun_with_a_valid_certificate_loads_neither_hvac_nor_requests(pki_vault, tls_files, tmp_path, run_in_fresh_python):
    (tmp_path / "cert.pem").write_bytes(tls_files.host_cert_pem)
    (tmp_path / "key.pem").write_bytes(tls_files.host_key_pem)
    (tmp_path / "cert.pem").chmod(0o644)
    (tmp_path / "key.pem").chmod(0o600)
    result, loaded = run_in_fresh_python(cert_args(pki_vault.url, tls_files, tmp_path))
    assert not result.get("failed") and not result["changed"] and result["reasons"] == [], result
    assert loaded == []
    # The issuing CA, and whether Vault lists the certificate as revoked (both unauthenticated).
    serial = "%x" % x509.load_pem_x509_certificate(tls_files.host_cert_pem).serial_number
    serial = ("0" * (len(serial) % 2)) + serial
    assert [request[0] for request in pki_vault.requests] == [
        "/v1/pki/cert/ca", "/v1/pki/cert/" + ":".join(serial[i:i + 2] for i in range(0, len(serial), 2))]


def test_check_mode_loads_neither_hvac_nor_requests(pki_vault, tls_files, tmp_path, run_in_fresh_python):
    result, loaded = run_in_fresh_python(cert_args(pki_vault.url, tls_files, tmp_path), check_mode=True)
    assert not result.get("failed") and result["changed"] and result["reasons"] == ["missing"], result
    assert loaded == []
    assert not os.path.exists(tmp_path / "key.pem")


def test_issuing_loads_hvac(pki_vault, tls_files, tmp_path, run_in_fresh_python):
    # The fake Vault has no sign endpoint: hvac's 404 shows it was hvac that asked.
    result, loaded = run_in_fresh_python(cert_args(pki_vault.url, tls_files, tmp_path))
    assert result["failed"] and loaded == ["hvac", "requests"], result
    assert result["msg"].startswith("Vault at %s has no such path while signing a CSR" % pki_vault.url), result
    assert [request[0] for request in pki_vault.requests] == ["/v1/pki/cert/ca", "/v1/pki/sign/hosts"]
    assert not os.path.exists(tmp_path / "key.pem")


def test_unreachable_vault_is_named_on_a_rerun(tls_files, tmp_path, run_in_fresh_python):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = "https://127.0.0.1:%d" % sock.getsockname()[1]
    result, loaded = run_in_fresh_python(cert_args(url, tls_files, tmp_path))
    assert result["failed"] and loaded == [], result
    assert result["msg"].startswith("Vault at %s is unreachable while reading the issuing CA of PKI mount "
                                    "'pki' (pki/cert/ca): " % url), result["msg"]


# ---- prerequisites: the comparison that makes a re-run one module call -------------------

def test_prerequisites_that_differ_leave_the_certificate_alone(pki_vault, tls_files, tmp_path, run_in_fresh_python):
    """A missing directory and a file with another mode: both named, the certificate left
    alone (no key written, Vault not asked, no library loaded), changed=false."""
    agent = tmp_path / "agent.py"
    agent.write_text("print('agent')\n")
    agent.chmod(0o600)
    certs = tmp_path / "tls" / "h1"
    args = dict(cert_args(pki_vault.url, tls_files, certs), prerequisites={"files": [
        {"path": str(certs), "state": "directory", "mode": "0750"},
        {"path": str(agent), "mode": "0644"},
    ]})
    result, loaded = run_in_fresh_python(args)
    assert not result.get("failed") and result["changed"] is False, result
    assert result["differences"] == ["%s: missing" % certs, "%s: mode is 0600, not 0644" % agent]
    assert result["cert_path"] == str(certs / "cert.pem") and "reasons" not in result
    assert pki_vault.requests == [] and loaded == []
    assert not (tmp_path / "tls").exists()


def test_prerequisites_that_hold_keep_the_certificate_as_before(pki_vault, tls_files, tmp_path, run_in_fresh_python):
    (tmp_path / "cert.pem").write_bytes(tls_files.host_cert_pem)
    (tmp_path / "key.pem").write_bytes(tls_files.host_key_pem)
    (tmp_path / "cert.pem").chmod(0o644)
    (tmp_path / "key.pem").chmod(0o600)
    tmp_path.chmod(0o750)
    args = dict(cert_args(pki_vault.url, tls_files, tmp_path), prerequisites={"files": [
        {"path": str(tmp_path), "state": "directory", "mode": "0750"},
        {"path": str(tmp_path / "cert.pem"), "sha256": hashlib.sha256(tls_files.host_cert_pem).hexdigest()},
    ]})
    result, loaded = run_in_fresh_python(args)
    assert not result.get("failed") and result["changed"] is False and result["reasons"] == [], result
    assert result["differences"] == [] and loaded == []
    assert [request[0] for request in pki_vault.requests][:1] == ["/v1/pki/cert/ca"]


# ---- units: the renewal agent's timer started in the call that kept the certificate -------

FAKE_SYSTEMCTL = """#!%s
import os, sys
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "show":
    for name in [a for a in sys.argv[2:] if not a.startswith("-")]:
        print("Id=%%s\\nLoadState=loaded\\nUnitFileState=disabled\\nActiveState=inactive\\n" %% name)
""" % sys.executable


@pytest.fixture
def fake_systemctl(tmp_path):
    """A directory with a systemctl that logs its command lines (to <dir>/calls) and shows
    every unit as loaded, disabled and inactive."""
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "systemctl").write_text(FAKE_SYSTEMCTL)
    (directory / "systemctl").chmod(0o755)
    return directory


def _systemctl_calls(directory):
    calls = directory / "calls"
    return [line.split()[0] for line in calls.read_text().splitlines()] if calls.exists() else []


def _valid_certificate(directory, tls_files):
    directory.mkdir(exist_ok=True)
    (directory / "cert.pem").write_bytes(tls_files.host_cert_pem)
    (directory / "key.pem").write_bytes(tls_files.host_key_pem)
    (directory / "cert.pem").chmod(0o644)
    (directory / "key.pem").chmod(0o600)


def test_units_start_once_the_certificate_is_kept(pki_vault, tls_files, tmp_path, fake_systemctl, run_in_fresh_python):
    _valid_certificate(tmp_path / "tls", tls_files)
    args = dict(cert_args(pki_vault.url, tls_files, tmp_path / "tls"), daemon_reload=True,
                units=[{"name": "mailmesh-cert-renew.timer", "state": "started"}])
    result, _loaded = run_in_fresh_python(args, path_prefix=str(fake_systemctl))
    assert not result.get("failed") and result["changed"] is True and result["reasons"] == [], result
    assert result["units"] == {"enabled": ["mailmesh-cert-renew.timer"], "started": ["mailmesh-cert-renew.timer"],
                               "restarted": []}
    assert _systemctl_calls(fake_systemctl) == ["daemon-reload", "show", "enable", "start"]


def test_units_wait_while_the_prerequisites_differ(pki_vault, tls_files, tmp_path, fake_systemctl, run_in_fresh_python):
    """The certificate left alone (a missing directory): the timer is not touched."""
    args = dict(cert_args(pki_vault.url, tls_files, tmp_path / "tls"), daemon_reload=True,
                units=[{"name": "mailmesh-cert-renew.timer", "state": "started"}],
                prerequisites={"files": [{"path": str(tmp_path / "tls"), "state": "directory"}]})
    result, _loaded = run_in_fresh_python(args, path_prefix=str(fake_systemctl))
    assert not result.get("failed") and result["changed"] is False, result
    assert result["differences"] == ["%s: missing" % (tmp_path / "tls")] and "units" not in result
    assert _systemctl_calls(fake_systemctl) == [] and pki_vault.requests == []


def test_a_unit_listed_twice_fails_before_anything(pki_vault, tls_files, tmp_path, fake_systemctl, run_in_fresh_python):
    args = dict(cert_args(pki_vault.url, tls_files, tmp_path), units=[
        {"name": "mailmesh-cert-renew.timer"}, {"name": "mailmesh-cert-renew.timer", "state": "started"}])
    result, _loaded = run_in_fresh_python(args, path_prefix=str(fake_systemctl))
    assert result["failed"] and result["msg"] == "units: mailmesh-cert-renew.timer listed more than once", result
    assert _systemctl_calls(fake_systemctl) == [] and pki_vault.requests == []
    assert not (tmp_path / "key.pem").exists()


def test_a_prerequisite_mode_that_is_not_octal_is_named(tmp_path, run_module):
    args = dict(url="https://v:8200", token="a-long-test-token", role_name="hosts", common_name="h1",
                cert_path=str(tmp_path / "c.pem"), key_path=str(tmp_path / "k.pem"),
                prerequisites={"files": [{"path": str(tmp_path), "state": "directory", "mode": "rwx"}]})
    result = run_module(module, args)
    assert result["failed"] and result["msg"] == "prerequisites.files: mode of %s must be octal, got 'rwx'" % tmp_path
