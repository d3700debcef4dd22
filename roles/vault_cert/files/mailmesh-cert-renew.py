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

  python3 -I mailmesh-cert-renew.py [--config-dir DIR] [--state-dir DIR]
      [--textfile-dir DIR] [--only NAME ...] [--force] [--check]

Nothing is resident: the process ends when the certificates are done. No secret ID,
token or key is ever printed or written to the metrics.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

# The collection's module_utils sit beside this file, under ansible_collections/.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
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
