# Managed by Ansible (mailmesh.imap, role vault_cert).
"""Renew this host's certificates from Vault, with the host's own AppRole, between Ansible runs.

The systemd timer mailmesh-cert-renew.timer starts this (as the oneshot
mailmesh-cert-renew.service) shortly after boot and then periodically, with a random
delay. For every certificate the vault_cert role registered in the config directory (one
JSON file each) it runs the collection's own renewal code, the code the module
mailmesh.imap.vault_pki_cert runs (module_utils/_cert_renewal.py, installed beside this
file): the same reasons to renew, the key generated here, a CSR for exactly the host's
names, atomic writes with the key first, and the same lock. After a certificate changed
it reloads the units that use it (never a restart). It prints one line per certificate;
a failure line (Vault unreachable, sealed, refusing, a wrong clock...) names the
certificate and the cause, leaves the files as they were, and makes the run exit 1.
When the AppRole file lists the nodes of a Vault cluster (``urls``), a node that does
not answer is passed over with a warning line, the next one is tried, and the
certificate's line names the node that answered; a failure names every node and why.
Each certificate's validity, last success, last renewal and last failure go to a
node_exporter textfile (Prometheus text format).

A certificate whose configuration has a ``crl`` entry belongs to a listener that checks
client certificates (the gateways' device port, the stores' Envoy ingress): every run
also fetches the CRLs of the chain's CAs from Vault (no token needed), keeps them beside
the certificate, and writes the listener's CRL setting (an NGINX snippet, then a reload;
an Envoy SDS file, which Envoy re-reads by itself). A CRL that has expired, or will
within the configured margin, is left out of the setting (fail-open, module_utils/_crl.py
says why that re-admits no revoked certificate); the line and the metrics say so.
``--crl-only`` does the CRL part alone (the revoke playbook runs it on every checking
host right after a revocation).

  python3 -I mailmesh-cert-renew.py [--config-dir DIR] [--state-dir DIR]
      [--textfile-dir DIR] [--only NAME ...] [--force] [--check] [--crl-only]

Nothing is resident: the process ends when the certificates are done. No secret ID,
token or key is ever printed or written to the metrics.
"""

import argparse
import datetime
import io
import json
import os
import subprocess
import sys
import time

# The collection's module_utils sit beside this file, under ansible_collections/.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
from ansible_collections.mailmesh.imap.plugins.module_utils import _crl as crls  # noqa: E402
from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki  # noqa: E402
from ansible_collections.mailmesh.imap.plugins.module_utils._cert_renewal import (  # noqa: E402
    CertKeeper,
    RenewalError,
    approle_options,
    atomic_write,
    directory_lock,
    read_approle_file,
    span,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_client import (  # noqa: E402
    MissingLibraryError,
    VaultConnection,
)

CONFIG_DIR = "/etc/mailmesh/cert-renew.d"
STATE_DIR = "/var/lib/mailmesh/cert-renew"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
METRICS_FILE = "mailmesh_cert_renew.prom"
REQUIRED = ("name", "approle_file", "common_name", "cert_path", "key_path")
# journald reads a "<N>" prefix as the line's priority (3: error, 6: info).
ERR, INFO = "<3>", "<6>"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def _mode(value):
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(str(value), 8)


class Output:
    """One line per event, with the journal's priority prefix when journald reads stdout;
    every known secret replaced before it is printed."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))
        self.secrets = set()

    def hide(self, value):
        if value and len(str(value)) >= 6:
            self.secrets.add(str(value))

    def clean(self, text):
        text = " ".join(str(text).split())
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text

    def line(self, text, error=False):
        prefix = (ERR if error else INFO) if self.journal else ""
        self.stream.write(prefix + self.clean(text) + "\n")
        self.stream.flush()


def load_configs(config_dir, only, out):
    """[(name, config or None, problem or None)] for every *.json in config_dir, by name."""
    found = []
    try:
        names = sorted(n for n in os.listdir(config_dir) if n.endswith(".json"))
    except OSError as exc:
        out.line("cannot read the configuration directory %s: %s" % (config_dir, exc.strerror), error=True)
        return None
    for filename in names:
        path = os.path.join(config_dir, filename)
        name = filename[:-len(".json")]
        if only and name not in only:
            continue
        try:
            with open(path, "rb") as handle:
                config = json.loads(handle.read().decode("utf-8"))
            if not isinstance(config, dict):
                raise ValueError("expected a JSON object")
            missing = [key for key in REQUIRED if not config.get(key)]
            if missing:
                raise ValueError("lacks %s" % ", ".join(missing))
            name = str(config["name"])
        except (OSError, ValueError) as exc:
            found.append((name, None, "%s: unusable certificate configuration (%s); run the "
                                      "playbook that manages this host to write it again" % (path, exc)))
            continue
        found.append((name, config, None))
    return found


def keeper_options(config, force):
    return dict(
        engine_mount_point=None,  # from the AppRole file
        role_name=None,
        common_name=config["common_name"],
        alt_names=list(config.get("alt_names") or []),
        ip_sans=list(config.get("ip_sans") or []),
        ttl=config.get("ttl") or None,
        renew_before=config.get("renew_before") or None,
        max_clock_skew=config.get("max_clock_skew", "5m"),
        key_type=config.get("key_type") or "ec",
        key_bits=config.get("key_bits") or None,
        rotate_key=bool(config.get("rotate_key")),
        force=force,
        cert_path=config["cert_path"],
        key_path=config["key_path"],
        chain_path=config.get("chain_path") or None,
        fullchain_path=config.get("fullchain_path") or None,
        owner=config.get("owner"),
        group=config.get("group"),
        key_mode=_mode(config.get("key_mode", "0600")),
        cert_mode=_mode(config.get("cert_mode", "0644")),
    )


def renew_one(name, config, args, out):
    """(outcome dict, None, clock skew) or (None, the failure message, clock skew); the
    skew (this host's clock minus Vault's, in seconds) is None when Vault did not answer."""
    try:
        approle = read_approle_file(config["approle_file"])
    except RenewalError as exc:
        return None, str(exc), None
    out.hide(approle.get("secret_id"))
    out.hide(approle.get("role_id"))
    params = dict(approle_options(approle), validate_certs=True, timeout=int(config.get("timeout") or 30),
                  namespace=config.get("namespace"))
    if config.get("ca_cert"):
        params["ca_cert"] = config["ca_cert"]
    connection = VaultConnection(params)
    options = keeper_options(config, args.force)
    options["engine_mount_point"] = params["engine_mount_point"]
    options["role_name"] = params["role_name"]
    keeper = CertKeeper(connection, options, check_mode=args.check,
                        warn=lambda message: out.line("%s: warning: %s" % (name, message)))
    try:
        outcome = keeper.run()
        # Which node answered, when there is a choice of nodes.
        outcome["vault_url"] = connection.url if len(connection.urls) > 1 else None
        return outcome, None, keeper.clock_skew
    except RenewalError as exc:
        return None, str(exc), keeper.clock_skew
    except MissingLibraryError as exc:
        return None, "%s (install python3-hvac; the vault_cert role does)" % exc, keeper.clock_skew
    except Exception as exc:  # pylint: disable=broad-except
        return None, "unexpected %s: %s" % (type(exc).__name__, exc), keeper.clock_skew
    finally:
        client = getattr(connection, "_client", None)
        out.hide(getattr(client, "token", None))


def current_cert(config):
    try:
        with open(config["cert_path"], "rb") as handle:
            return pki.load_certificates(handle.read())[0]
    except Exception:  # pylint: disable=broad-except
        return None


def describe_validity(cert, now):
    if cert is None:
        return "no readable certificate at hand"
    end = pki.not_after(cert)
    left = (end - now).total_seconds()
    if left <= 0:
        return "the certificate EXPIRED at %s" % pki.utc_iso(end)
    return "the certificate stays valid until %s (%s)" % (pki.utc_iso(end), span(left))


def reload_units(units, out, check):
    """Reload each active unit (validated by the unit's own ExecReload); problems as lines."""
    problems = []
    for unit in units:
        if check:
            out.line("would reload %s" % unit)
            continue
        active = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False, timeout=60)
        if active.returncode != 0:
            out.line("%s is not running: it reads the new certificate when it starts" % unit)
            continue
        done = subprocess.run(["systemctl", "reload", unit], capture_output=True, text=True,
                              check=False, timeout=120)
        if done.returncode != 0:
            problems.append("reloading %s failed: %s" % (unit, (done.stderr or done.stdout).strip()))
        else:
            out.line("reloaded %s" % unit)
    return problems


# ---- certificate revocation lists ------------------------------------------------------------


def keep_crl(name, config, state, out, check):
    """Fetch the CRLs for one checking listener and write its setting.

    Returns (units to reload, failed). A fetch failure keeps the CRL at hand; an expired
    CRL (or one within the margin) is left out of the listener's setting (fail-open).
    """
    spec = config["crl"]
    entry = state.setdefault("_crl", {}).setdefault(name, {})
    for key in ("last_fetch_success", "last_fetch_failure", "consecutive_fetch_failures"):
        entry.setdefault(key, 0)
    failed = False
    crl_file = spec["file"]
    mounts = list(spec.get("mounts") or [])
    try:
        approle = read_approle_file(config["approle_file"])
        urls = approle.get("urls") or [approle["url"]]
        data, node, skipped = crls.fetch_crls(urls, mounts, config.get("ca_cert") or approle.get("ca_cert"),
                                              timeout=int(config.get("timeout") or 30))
        for problem in skipped:
            out.line("%s: warning: CRL: %s" % (name, problem))
        changed = False if check else atomic_write(crl_file, data, 0o644)
        entry["last_fetch_success"] = time.time()
        entry["consecutive_fetch_failures"] = 0
        out.line("%s: CRL %s from %s%s" % (name, "fetched" if not changed else "updated", node,
                                           " (would write)" if check else ""))
    except (RenewalError, crls.CrlError, KeyError) as exc:
        entry["last_fetch_failure"] = time.time()
        entry["consecutive_fetch_failures"] += 1
        out.line("%s: CRL fetch FAILED (%s); the CRL at hand is kept" % (name, exc), error=True)
        failed = True
    facts = []
    try:
        with open(crl_file, "rb") as handle:
            facts = [crls.crl_facts(block) for block in crls.split_pem_crls(handle.read())]
        problem = ""
    except (OSError, crls.CrlError) as exc:
        facts, problem = [], "the CRL file %s is unreadable (%s)" % (crl_file, getattr(exc, "strerror", None) or exc)
    try:
        margin = pki.parse_duration(spec.get("margin") or "0s")
    except ValueError:
        margin = 0
    use, why = crls.crl_verdict(facts, now_utc(), margin, expected=len(mounts) or None)
    why = problem or why
    # The CRL NGINX would load: names its session cache, and tells whether it must reload.
    digest = _digest(crl_file) if use else ""
    if spec["format"] == "nginx":
        setting = crls.nginx_snippet(crl_file, use, why, session_cache=spec.get("session_cache") or "",
                                     crl_digest=digest)
    else:
        ca_copy = spec["ca_copy"]
        try:
            with open(spec["ca_file"], "rb") as handle:
                ca_data = handle.read()
            if not check:
                atomic_write(ca_copy, ca_data, 0o644)
        except (OSError, RenewalError) as exc:
            out.line("%s: cannot copy the CA bundle %s: %s" % (name, spec["ca_file"], exc), error=True)
            failed = True
        setting = crls.envoy_validation(ca_copy, crl_file, os.path.dirname(spec["setting_file"]),
                                        spec.get("secret_name") or "mailmesh_ca", use)
    setting_changed = False if check else atomic_write(spec["setting_file"], setting, 0o644)
    if setting_changed:
        out.line("%s: CRL setting written to %s" % (name, spec["setting_file"]))
    entry["checked"] = bool(use)
    entry["facts"] = [{"issuer": f["issuer"], "this_update": f["this_update"].timestamp(),
                       "next_update": f["next_update"].timestamp() if f["next_update"] else 0,
                       "revoked": f["revoked"]} for f in facts]
    if use:
        earliest = min(f["next_update"] for f in facts)
        out.line("%s: the listener checks %d CRL(s), %d revoked certificate(s), valid until %s" % (
            name, len(facts), sum(f["revoked"] for f in facts), pki.utc_iso(earliest)))
    else:
        out.line("%s: FAIL-OPEN: the listener checks no CRL: %s; the next run that reaches Vault "
                 "restores the check" % (name, why), error=True)
        failed = True
    units = []
    # NGINX reads its CRL when it loads its configuration; Envoy re-reads the SDS file
    # and the CRL when a file is renamed into the watched directory.
    if spec["format"] == "nginx" and (setting_changed or (use and entry.get("loaded") != digest)):
        units = list(config.get("reload_units") or [])
    if not check and spec["format"] == "nginx":
        entry["loaded"] = digest
    return units, failed


def _digest(path):
    import hashlib  # pylint: disable=import-outside-toplevel
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return ""


# ---- state and metrics ------------------------------------------------------------------------


def load_state(path):
    try:
        with open(path, "rb") as handle:
            state = json.loads(handle.read().decode("utf-8"))
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def record(state, name, ok, renewed, when):
    entry = state.setdefault(name, {})
    for key in ("last_success", "last_failure", "last_renewal", "consecutive_failures",
                "renewals_total", "failures_total"):
        entry.setdefault(key, 0)
    if ok:
        entry["last_success"] = when
        entry["consecutive_failures"] = 0
        if renewed:
            entry["last_renewal"] = when
            entry["renewals_total"] += 1
    else:
        entry["last_failure"] = when
        entry["consecutive_failures"] += 1
        entry["failures_total"] += 1
    entry["ok"] = bool(ok)


def _label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = (
    ("mailmesh_cert_not_before_timestamp_seconds", "gauge",
     "Start of validity of the certificate on disk (Unix time)."),
    ("mailmesh_cert_not_after_timestamp_seconds", "gauge",
     "End of validity of the certificate on disk (Unix time); alert well before it."),
    ("mailmesh_cert_renew_success", "gauge",
     "1 if the last renewal run for this certificate succeeded (renewed or not due), else 0."),
    ("mailmesh_cert_last_success_timestamp_seconds", "gauge",
     "When a renewal run last succeeded for this certificate (Unix time, 0: never)."),
    ("mailmesh_cert_last_renewal_timestamp_seconds", "gauge",
     "When the renewal agent last issued this certificate (Unix time, 0: never)."),
    ("mailmesh_cert_last_failure_timestamp_seconds", "gauge",
     "When a renewal run last failed for this certificate (Unix time, 0: never)."),
    ("mailmesh_cert_consecutive_failures", "gauge",
     "Renewal runs that failed for this certificate since the last success."),
    ("mailmesh_cert_renewals_total", "counter",
     "Certificates the renewal agent issued (since its state directory was created)."),
    ("mailmesh_cert_failures_total", "counter",
     "Renewal runs that failed (since the state directory was created)."),
    ("mailmesh_cert_info", "gauge",
     "The certificate on disk: common name and serial number (value 1)."),
)


CRL_METRICS = (
    ("mailmesh_crl_checked", "gauge",
     "1 if the listener checks the CRL, 0 when it fails open (no CRL, or an expired one)."),
    ("mailmesh_crl_this_update_timestamp_seconds", "gauge",
     "When Vault built the CRL at hand (Unix time); its age is time() minus this."),
    ("mailmesh_crl_next_update_timestamp_seconds", "gauge",
     "When the CRL at hand expires (Unix time); the listener fails open before it."),
    ("mailmesh_crl_revoked_certificates", "gauge", "Revoked certificates the CRL at hand lists."),
    ("mailmesh_crl_last_fetch_success_timestamp_seconds", "gauge",
     "When the agent last fetched the CRLs from Vault (Unix time, 0: never)."),
    ("mailmesh_crl_consecutive_fetch_failures", "gauge",
     "CRL fetches that failed since the last success."),
)


def render_crl_metrics(state):
    """The CRL families: a sample per checking listener (and per CA for the CRL's own figures)."""
    samples = {name: [] for name, _kind, _help in CRL_METRICS}
    for name, entry in sorted((state.get("_crl") or {}).items()):
        label = 'cert="%s"' % _label(name)
        samples["mailmesh_crl_checked"].append((label, 1 if entry.get("checked") else 0))
        for fact in entry.get("facts") or []:
            ca = '%s,issuer="%s"' % (label, _label(fact.get("issuer", "")))
            samples["mailmesh_crl_this_update_timestamp_seconds"].append((ca, int(fact.get("this_update", 0))))
            samples["mailmesh_crl_next_update_timestamp_seconds"].append((ca, int(fact.get("next_update", 0))))
            samples["mailmesh_crl_revoked_certificates"].append((ca, int(fact.get("revoked", 0))))
        samples["mailmesh_crl_last_fetch_success_timestamp_seconds"].append(
            (label, int(entry.get("last_fetch_success", 0))))
        samples["mailmesh_crl_consecutive_fetch_failures"].append(
            (label, int(entry.get("consecutive_fetch_failures", 0))))
    lines = []
    for metric, kind, text in CRL_METRICS:
        if samples[metric]:
            lines += ["# HELP %s %s" % (metric, text), "# TYPE %s %s" % (metric, kind)]
            lines += ["%s{%s} %s" % (metric, label, value) for label, value in samples[metric]]
    return lines


def render_metrics(state, certs, skew, run_time):
    """The textfile: every metric family once, a sample per certificate."""
    samples = {name: [] for name, _kind, _help in METRICS}
    for name in sorted(certs):
        cert = certs[name]
        entry = state.get(name, {})
        label = 'cert="%s"' % _label(name)
        if cert is not None:
            samples["mailmesh_cert_not_before_timestamp_seconds"].append(
                (label, int(pki.not_before(cert).timestamp())))
            samples["mailmesh_cert_not_after_timestamp_seconds"].append(
                (label, int(pki.not_after(cert).timestamp())))
            info = pki.cert_metadata(cert)
            samples["mailmesh_cert_info"].append(
                ('%s,common_name="%s",serial="%s"' % (label, _label(info["common_name"] or ""),
                                                      _label(info["serial_number"])), 1))
        samples["mailmesh_cert_renew_success"].append((label, 1 if entry.get("ok") else 0))
        for metric, key in (("mailmesh_cert_last_success_timestamp_seconds", "last_success"),
                            ("mailmesh_cert_last_renewal_timestamp_seconds", "last_renewal"),
                            ("mailmesh_cert_last_failure_timestamp_seconds", "last_failure"),
                            ("mailmesh_cert_consecutive_failures", "consecutive_failures"),
                            ("mailmesh_cert_renewals_total", "renewals_total"),
                            ("mailmesh_cert_failures_total", "failures_total")):
            samples[metric].append((label, int(entry.get(key, 0))))
    lines = []
    for metric, kind, text in METRICS:
        if not samples[metric]:
            continue
        lines += ["# HELP %s %s" % (metric, text), "# TYPE %s %s" % (metric, kind)]
        lines += ["%s{%s} %s" % (metric, label, value) for label, value in samples[metric]]
    if skew is not None:
        lines += ["# HELP mailmesh_cert_clock_skew_seconds This host's clock minus Vault's, "
                  "from Vault's last answer.",
                  "# TYPE mailmesh_cert_clock_skew_seconds gauge",
                  "mailmesh_cert_clock_skew_seconds %d" % int(skew)]
    lines += render_crl_metrics(state)
    lines += ["# HELP mailmesh_cert_renew_last_run_timestamp_seconds When the renewal agent last ran (Unix time).",
              "# TYPE mailmesh_cert_renew_last_run_timestamp_seconds gauge",
              "mailmesh_cert_renew_last_run_timestamp_seconds %d" % int(run_time)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--config-dir", default=CONFIG_DIR)
    parser.add_argument("--state-dir", default=STATE_DIR)
    parser.add_argument("--textfile-dir", default=TEXTFILE_DIR,
                        help="node_exporter's textfile directory; empty: no metrics file")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only this certificate (repeatable)")
    parser.add_argument("--force", action="store_true", help="renew now even if not due")
    parser.add_argument("--check", action="store_true", help="say what would be done, change nothing")
    parser.add_argument("--crl-only", action="store_true",
                        help="only fetch the CRLs and write the checking listeners' settings")
    args = parser.parse_args(argv)
    out = Output()

    configs = load_configs(args.config_dir, set(args.only), out)
    if configs is None:
        return 1
    if not configs:
        out.line("no certificate is registered in %s: nothing to do" % args.config_dir)
        return 0
    os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    state_path = os.path.join(args.state_dir, "state.json")
    failed = False
    with directory_lock(args.state_dir):
        state = load_state(state_path)
        certs, units, skew = {}, [], None
        for name, config, problem in configs:
            when = time.time()
            if problem:
                out.line("%s: renewal FAILED: %s" % (name, problem), error=True)
                record(state, name, False, False, when)
                certs[name] = None
                failed = True
                continue
            if args.crl_only:
                certs[name] = current_cert(config)
                continue
            outcome, problem, clock_skew = renew_one(name, config, args, out)
            if clock_skew is not None:
                skew = clock_skew
            if outcome is None:
                out.line("%s: renewal of %s FAILED (%s); %s; the files are unchanged, the next "
                         "timer run tries again" % (name, config["cert_path"], problem,
                                                    describe_validity(current_cert(config), now_utc())),
                         error=True)
                record(state, name, False, False, when)
                failed = True
            else:
                cert = outcome["cert"]
                meta = pki.cert_metadata(cert) if cert is not None else {}
                node = "; Vault at %s answered" % outcome["vault_url"] if outcome.get("vault_url") else ""
                if outcome["reasons"]:
                    out.line("%s: %s (%s): serial %s, valid until %s%s%s" % (
                        name, "would renew" if args.check else "renewed", ", ".join(outcome["reasons"]),
                        meta.get("serial_number", "(new)"), meta.get("not_after", "?"),
                        ", new key" if outcome["key_generated"] else "", node))
                    for unit in config.get("reload_units") or []:
                        if unit not in units:
                            units.append(unit)
                else:
                    out.line("%s: nothing to do, %s%s" % (name, describe_validity(cert, now_utc()), node))
                record(state, name, True, bool(outcome["reasons"]) and not args.check, when)
            certs[name] = current_cert(config) if config else None
        for name, config, problem in configs:
            if config and isinstance(config.get("crl"), dict):
                crl_units, crl_failed = keep_crl(name, config, state, out, args.check)
                failed = failed or crl_failed
                units += [unit for unit in crl_units if unit not in units]
        if args.only:
            # The metrics file holds every certificate of the host, not only those of this run.
            for name, config, _problem in load_configs(args.config_dir, set(), Output(io.StringIO())) or []:
                if name not in certs:
                    certs[name] = current_cert(config) if config else None
        for problem in reload_units(units, out, args.check):
            out.line(problem, error=True)
            failed = True
        if not args.check:
            atomic_write(state_path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"), 0o600)
            if args.textfile_dir:
                try:
                    atomic_write(os.path.join(args.textfile_dir, METRICS_FILE),
                                 render_metrics(state, certs, skew, time.time()), 0o644)
                except (OSError, RenewalError) as exc:
                    out.line("cannot write the metrics to %s: %s" % (args.textfile_dir, exc), error=True)
                    failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
