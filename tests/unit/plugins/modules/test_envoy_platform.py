"""Unit tests for plugins/modules/envoy_platform.py, run on this host as a module."""

import hashlib
import json
import os
import sys

import pytest
import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils import _host_state
from ansible_collections.mailmesh.imap.plugins.modules import envoy_platform as module


def test_reports_this_hosts_cpus_and_changes_nothing(run_module):
    result = run_module(module, {"fail_on_problem": False})
    assert result["changed"] is False
    assert result["cpus"] == os.cpu_count()
    assert result["machine"] == os.uname()[4]
    assert isinstance(result["va_bits"], int)


def test_every_returned_key_is_documented(run_module):
    result = run_module(module, {"fail_on_problem": False})
    documented = set(yaml.safe_load(module.RETURN))
    assert documented == {"machine", "arch", "va_bits", "cpus", "time_sync", "container", "problem", "envoy",
                          "observed", "certificate"}
    # envoy: only with admin_address; observed: only with observe; certificate: only with certificate.
    assert documented - {"envoy", "observed", "certificate"} == set(result) - {"changed", "invocation"}


def test_observe_looks_at_what_host_state_compares_in_the_same_call(run_module, tmp_path):
    """What it saw, compared as the host_state_differences filter compares it on the
    controller (module_utils/_host_state.compare), gives host_state's differences; a link
    is followed to the file beside it where asked."""
    (tmp_path / "envoy-1.0").write_text("binary\n")
    os.chmod(tmp_path / "envoy-1.0", 0o755)
    os.symlink("envoy-1.0", tmp_path / "envoy")
    (tmp_path / "envoy.yaml").write_text("admin: {}\n")
    os.chmod(tmp_path / "envoy.yaml", 0o600)
    result = run_module(module, {"fail_on_problem": False, "observe": {
        "files": [{"path": str(tmp_path / "envoy"), "follow": True},
                  {"path": str(tmp_path / "envoy.yaml"), "sha256": True}],
        "users": ["root", "no-such-user-here"]}})
    assert result["changed"] is False
    observed = result["observed"]
    assert set(observed) == {"files", "packages", "groups", "users", "services", "problems"}
    assert observed["problems"] == []
    assert observed["files"][str(tmp_path / "envoy")]["target"] == "envoy-1.0"
    assert observed["files"][str(tmp_path / "envoy-1.0")]["mode"] == "0755"
    assert observed["users"]["no-such-user-here"] is None
    expected = [{"path": str(tmp_path / "envoy"), "state": "link", "target": "envoy-1.0"},
                {"path": str(tmp_path / "envoy-1.0"), "mode": "0755"},
                {"path": str(tmp_path / "envoy.yaml"), "mode": "0640",
                 "sha256": hashlib.sha256(b"admin: {}\n").hexdigest()}]
    assert _host_state.compare(observed, files=expected, users=[{"name": "root", "home": "/root"}]) == \
        ["%s: mode is 0600, not 0640" % (tmp_path / "envoy.yaml")]


def test_time_sync_clients_by_their_programs():
    present = {"/usr/sbin/chronyd", "/lib/systemd/systemd-timesyncd"}
    assert module.time_sync_clients(present.__contains__) == ["chrony", "systemd-timesyncd"]
    assert module.time_sync_clients({"/usr/sbin/ntpd"}.__contains__) == ["ntpsec"]
    assert module.time_sync_clients(set().__contains__) == []


def test_container_by_systemds_marker_or_dockers():
    assert module.in_container({"/run/systemd/container"}.__contains__)
    assert module.in_container({"/.dockerenv"}.__contains__)
    assert not module.in_container(set().__contains__)


def _address(server):
    return "127.0.0.1:%d" % server.server_address[1]


def test_asks_the_running_envoy_once_when_given_its_admin_address(admin, run_module):
    result = run_module(module, {"fail_on_problem": False, "admin_address": _address(admin)})
    assert result["envoy"] == {"state": "LIVE", "certificate_chains": 1, "problem": ""}
    assert admin.requests == ["/ready", "/certs"]


def test_an_envoy_not_ready_is_reported_not_waited_for_nor_failed(admin, run_module):
    admin.answers["/ready"] = (503, "PRE_INITIALIZING\n")
    result = run_module(module, {"fail_on_problem": False, "admin_address": _address(admin)})
    assert not result.get("failed"), result
    assert result["envoy"]["state"] == "PRE_INITIALIZING" and result["envoy"]["certificate_chains"] == 0
    assert result["envoy"]["problem"].endswith("/ready answered 503 PRE_INITIALIZING; asked once")
    assert admin.requests == ["/ready"]


def test_no_envoy_at_the_address_is_a_problem_not_a_failure(run_module, tmp_path):
    result = run_module(module, {"fail_on_problem": False, "admin_address": str(tmp_path / "admin.sock")})
    assert not result.get("failed"), result
    assert result["envoy"]["state"] == "" and "does not answer" in result["envoy"]["problem"]


# ---- certificate: vault_pki_cert's look, in this call ---------------------------------------

def _certificate_host(tmp_path, tls_files, url, **changes):
    """A certificate directory as vault_cert keeps it, an AppRole file for the fake Vault,
    and envoy_platform's certificate option as the envoy role passes it."""
    import grp
    import pwd

    certs = tmp_path / "tls"
    certs.mkdir(mode=0o750)
    certs.chmod(0o750)
    for name, data, mode in (("cert.pem", tls_files.host_cert_pem, 0o644), ("key.pem", tls_files.host_key_pem, 0o640)):
        (certs / name).write_bytes(data)
        (certs / name).chmod(mode)
    approle = tmp_path / "approle.json"
    approle.write_text(json.dumps({"url": url, "approle_mount": "approle", "role_id": "rid",
                                   "secret_id": "s3cret-id-of-the-host", "mount": "pki", "pki_role": "hosts"}))
    approle.chmod(0o600)
    args = dict(approle_file=str(approle), ca_cert=tls_files.ca_cert, common_name="h1.example.org",
                cert_path=str(certs / "cert.pem"), key_path=str(certs / "key.pem"),
                owner=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name,
                mode="0640", cert_mode="0644",
                prerequisites={"packages": [], "services": [],
                               "files": [{"path": str(certs), "state": "directory", "mode": "0750"}]},
                units=[], daemon_reload=False)
    args.update(changes)
    return certs, args


def _serial_path(tls_files):
    from cryptography import x509
    serial = "%x" % x509.load_pem_x509_certificate(tls_files.host_cert_pem).serial_number
    serial = ("0" * (len(serial) % 2)) + serial
    return "/v1/pki/cert/" + ":".join(serial[i:i + 2] for i in range(0, len(serial), 2))


def test_a_certificate_that_needs_nothing_is_kept_without_a_change(fake_vault, tls_files, tmp_path, run_module):
    """vault_pki_cert's own reads (the issuing CA, the revocation), nothing written, and the
    AppRole's secret ID nowhere in the result."""
    vault = fake_vault({"/v1/pki/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}})}, tls_files)
    certs, args = _certificate_host(tmp_path, tls_files, vault.url)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_mode) for p in certs.iterdir()}
    result = run_module(module, {"fail_on_problem": False, "certificate": args})
    assert result["changed"] is False
    assert result["certificate"] == {"keep": True, "differences": [], "reasons": [], "problem": ""}
    assert [request[0] for request in vault.requests] == ["/v1/pki/cert/ca", _serial_path(tls_files)]
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_mode) for p in certs.iterdir()} == before
    assert "s3cret-id-of-the-host" not in json.dumps(result)


def test_a_difference_from_the_prerequisites_or_the_files_is_named_and_vault_not_asked(
        fake_vault, tls_files, tmp_path, run_module):
    vault = fake_vault({"/v1/pki/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}})}, tls_files)
    certs, args = _certificate_host(tmp_path, tls_files, vault.url)
    (certs / "key.pem").chmod(0o600)
    args["prerequisites"]["files"].append({"path": str(tmp_path / "agent.py"), "mode": "0644"})
    result = run_module(module, {"fail_on_problem": False, "certificate": args})
    assert result["certificate"] == {"keep": False, "reasons": [], "problem": "", "differences": [
        "%s: missing" % (tmp_path / "agent.py"), "%s: mode is 0600, not 0640" % (certs / "key.pem")]}
    assert vault.requests == []
    assert oct((certs / "key.pem").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("changes, reasons, asked", [
    # Other names than the certificate's: vault_pki_cert would issue one.
    ({"common_name": "h2.example.org"}, ["names_changed"], True),
    # vault_cert_force: issued without asking Vault first.
    ({"force": True}, ["forced"], False),
])
def test_a_certificate_that_would_be_issued_is_not_kept(fake_vault, tls_files, tmp_path, run_module,
                                                        changes, reasons, asked):
    vault = fake_vault({"/v1/pki/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}})}, tls_files)
    certs, args = _certificate_host(tmp_path, tls_files, vault.url, **changes)
    result = run_module(module, {"fail_on_problem": False, "certificate": args})
    assert result["changed"] is False
    assert result["certificate"] == {"keep": False, "differences": [], "reasons": reasons, "problem": ""}
    assert bool(vault.requests) is asked
    assert (certs / "cert.pem").read_bytes() == tls_files.host_cert_pem


def test_an_unreachable_vault_is_a_problem_for_the_certificate_call_to_report(tls_files, tmp_path, run_module):
    import socket
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = "https://127.0.0.1:%d" % sock.getsockname()[1]
    _certs, args = _certificate_host(tmp_path, tls_files, url)
    result = run_module(module, {"fail_on_problem": False, "certificate": args})
    assert not result.get("failed") and result["certificate"]["keep"] is False
    assert result["certificate"]["problem"].startswith("Vault at %s is unreachable" % url), result


@pytest.mark.parametrize("changes, message", [
    ({"cert_path": None}, "certificate: missing required arguments: cert_path"),
    ({"key_type": "dsa"}, "certificate: value of key_type must be one of: ec, rsa, got: dsa"),
    ({"units": [{"name": "mailmesh-cert-renew.timer"}]},
     "certificate: units and daemon_reload belong to the certificate module's own call"),
])
def test_wrong_certificate_arguments_fail_and_are_named(tls_files, tmp_path, run_module, changes, message):
    _certs, args = _certificate_host(tmp_path, tls_files, "https://127.0.0.1:1")
    args.update(changes)
    args = {key: value for key, value in args.items() if value is not None}
    result = run_module(module, {"fail_on_problem": False, "certificate": args})
    assert result["failed"] and result["msg"].startswith(message), result["msg"]


def test_the_certificate_options_are_vault_pki_certs():
    """Same types, defaults and choices as vault_pki_cert's options of the same name, so
    that the look and the module's call take the same arguments the same way."""
    from ansible_collections.mailmesh.imap.plugins.module_utils._cert_check import CHECK_OPTIONS
    from ansible_collections.mailmesh.imap.plugins.modules import vault_pki_cert

    from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS

    # owner, group and mode: the file arguments every file module has (add_file_common_args).
    spec = dict(FILE_COMMON_ARGUMENTS, **vault_pki_cert.argument_spec())
    for name, option in CHECK_OPTIONS.items():
        theirs = dict(spec[name])
        theirs.pop("aliases", None)
        if name in ("approle_file", "units"):
            # Required here (the role's call always has it); units: only its emptiness matters.
            theirs.pop("required", None)
            option = {k: v for k, v in option.items() if k != "required"}
            if name == "units":
                theirs.pop("options")
        assert option == theirs, name


def test_a_host_without_what_vault_cert_keeps_does_not_import_the_renewal_code(
        tls_files, tmp_path, run_in_fresh_python):
    """On a new host the comparison finds the libraries missing: neither the renewal
    code nor cryptography is imported, so an interpreter that stays between tasks
    (Mitogen) has no failed import of cryptography left when the role installed it."""
    _certs, args = _certificate_host(tmp_path, tls_files, "https://127.0.0.1:1")
    args["prerequisites"]["files"].append({"path": str(tmp_path / "agent.py"), "mode": "0644"})
    result, loaded = run_in_fresh_python(
        "envoy_platform", {"fail_on_problem": False, "certificate": args},
        ("cryptography", "ansible_collections.mailmesh.imap.plugins.module_utils._cert_renewal"))
    assert result["certificate"]["differences"] == ["%s: missing" % (tmp_path / "agent.py")], result
    assert loaded == []


FAKE_TOOLS = {
    # Every package asked for is installed.
    "dpkg-query": "import sys\nfor name in sys.argv[3:]:\n    print('%s ii ' % name)\n",
    # Every unit loaded, enabled and active, except those named in ./inactive.
    "systemctl": ("import os, sys\n"
                  "here = os.path.dirname(os.path.abspath(__file__))\n"
                  "if os.path.exists(os.path.join(here, 'no-systemd')):\n"
                  "    sys.exit('System has not been booted with systemd as init system (PID 1).')\n"
                  "path = os.path.join(here, 'inactive')\n"
                  "off = open(path).read().split() if os.path.exists(path) else []\n"
                  "for name in [a for a in sys.argv[2:] if not a.startswith('-')]:\n"
                  "    state = 'inactive' if name in off else 'active'\n"
                  "    print('Id=%s\\nLoadState=loaded\\nUnitFileState=enabled\\nActiveState=%s\\n' % (name, state))\n"),
}


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """dpkg-query and systemctl that log their command lines (<dir>/calls)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, body in FAKE_TOOLS.items():
        (directory / name).write_text("#!%s\nimport os, sys\nopen(os.path.join(os.path.dirname(os.path.abspath("
                                      "__file__)), 'calls'), 'a').write(os.path.basename(sys.argv[0]) + ' '"
                                      " + ' '.join(sys.argv[1:]) + '\\n')\n%s" % (sys.executable, body))
        (directory / name).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (directory, os.environ.get("PATH", "/usr/bin:/bin")))
    return directory


@pytest.mark.parametrize("inactive, keep", [([], True), (["mailmesh-cert-renew.timer"], False)])
def test_with_observe_the_packages_and_units_are_looked_at_once_for_both(
        fake_vault, tls_files, tmp_path, run_module, fake_tools, inactive, keep):
    """One dpkg-query and one systemctl for the sidecar's look and the certificate's;
    observed holds only what observe asked for, the certificate's answer compares its
    own."""
    (fake_tools / "inactive").write_text(" ".join(inactive))
    vault = fake_vault({"/v1/pki/cert/ca": (200, {"data": {"certificate": tls_files.ca_pem}})}, tls_files)
    _certs, args = _certificate_host(tmp_path, tls_files, vault.url)
    args["prerequisites"].update(packages=["python3-hvac"], services=["mailmesh-cert-renew.timer"])
    result = run_module(module, {"fail_on_problem": False, "certificate": args, "observe": {
        "files": [{"path": str(tmp_path)}], "packages": ["envoy-tools"], "services": ["envoy"]}})
    calls = (fake_tools / "calls").read_text().splitlines()
    assert [line.split()[0] for line in calls] == ["dpkg-query", "systemctl"], calls
    assert "python3-hvac" in calls[0] and "envoy-tools" in calls[0]
    assert "mailmesh-cert-renew.timer" in calls[1] and "envoy.service" in calls[1]
    observed = result["observed"]
    assert observed["packages"] == ["envoy-tools"] and list(observed["services"]) == ["envoy.service"]
    assert observed["problems"] == [] and list(observed["files"]) == [str(tmp_path)]
    if keep:
        assert result["certificate"] == {"keep": True, "differences": [], "reasons": [], "problem": ""}
    else:
        assert result["certificate"] == {"keep": False, "reasons": [], "problem": "", "differences": [
            "mailmesh-cert-renew.timer: not active (inactive)"]}
        assert vault.requests == []


@pytest.mark.parametrize("with_observe", [False, True])
def test_a_host_without_systemd_is_no_failure_of_the_certificates_look(
        tls_files, tmp_path, run_module, fake_tools, with_observe):
    """systemctl fails (a host without systemd as init): the role's own checks speak
    first, so the look does not fail the module; the timer counts as a difference."""
    (fake_tools / "no-systemd").write_text("")
    _certs, args = _certificate_host(tmp_path, tls_files, "https://127.0.0.1:1")
    args["prerequisites"]["services"] = ["mailmesh-cert-renew.timer"]
    call = {"fail_on_problem": False, "certificate": args}
    if with_observe:
        call["observe"] = {"services": ["envoy"]}
    result = run_module(module, call)
    assert not result.get("failed"), result
    assert result["certificate"]["keep"] is False
    assert result["certificate"]["differences"] == [
        "mailmesh-cert-renew.timer: not looked at",
        "not looked at: systemctl show failed (rc 1): System has not been booted with systemd as init system (PID 1)."]
    if with_observe:
        assert result["observed"]["services"] is None and result["observed"]["problems"]
