# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""The one implementation of a host certificate's renewal rules.

``CertKeeper`` reads a host's key and certificate files, decides with
``_pki.renewal_reasons`` whether (and why) to issue, and if so generates the key on
the host, has Vault sign a CSR for exactly the wanted names, and writes the files
atomically, key first. Two callers run it, with the same options:

- the module ``vault_pki_cert`` (an Ansible run), and
- the on-host renewal agent ``mailmesh-cert-renew`` (a systemd timer), which the
  ``vault_cert`` role installs with this file and the module_utils it imports. Nothing
  here imports ``ansible``: the agent runs on hosts without it.

Both hold an exclusive lock on the key's directory from the first read to the last
write, so a timer firing during an Ansible run cannot mix two issuances' files.

Every exchange with Vault (the read of the issuing CA, the login, the signing) goes
through the connection's ``failover()``: with the nodes of a cluster (an AppRole file's
``urls``), a node that cannot answer is passed over, with a warning, for the next one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import errno
import fcntl
import grp
import json
import os
import pwd
import stat
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from ansible_collections.mailmesh.imap.plugins.module_utils import _pki as pki
from ansible_collections.mailmesh.imap.plugins.module_utils._names import join_names
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_client import MissingLibraryError

__all__ = [
    "APPROLE_FILE_KEYS",
    "CertKeeper",
    "LOCK_TIMEOUT",
    "RenewalError",
    "approle_options",
    "atomic_write",
    "directory_lock",
    "fix_attributes",
    "read_approle_file",
    "response_json",
    "span",
    "urls_problem",
]

# What an AppRole file (written by the vault_server role's client entry point) gives:
# the connection/auth option for each of the file's keys. It may also give ``urls``, every
# node of the Vault cluster in the order this host tries them (``url`` is the first, for
# older readers), and ``ca_cert``.
APPROLE_FILE_KEYS = dict(url="url", role_id="role_id", secret_id="secret_id",
                         approle_mount_point="approle_mount", engine_mount_point="mount",
                         role_name="pki_role")

# Seconds to wait for another renewal of the same certificate (module or agent).
LOCK_TIMEOUT = 300

# Vault backdates a certificate's start by 30 s: a certificate that starts later than
# this after the host's "now" means the host's clock is behind.
_NOT_YET_VALID_SLACK = 60


class RenewalError(Exception):
    """A failure phrased for the user; nothing was written."""


# ---- the AppRole file -------------------------------------------------------------------


def read_approle_file(path):
    # type: (str) -> Dict[str, Any]
    """The AppRole file's JSON object; RenewalError naming the file if it is not usable."""
    try:
        with open(path, "rb") as handle:
            _check_approle_file_access(path, os.fstat(handle.fileno()))
            data = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise RenewalError("approle_file %s: cannot read it as JSON (%s); the Vault tier "
                           "(the vault_server role's client entry point) writes it" % (path, exc))
    if not isinstance(data, dict):
        raise RenewalError("approle_file %s: expected a JSON object" % path)
    missing = sorted(key for key in APPROLE_FILE_KEYS.values() if not data.get(key))
    if missing:
        raise RenewalError("approle_file %s lacks %s" % (path, ", ".join(missing)))
    if "urls" in data:
        problem = urls_problem(data["urls"])
        if problem:
            raise RenewalError("approle_file %s: urls must be a non-empty list of the Vault nodes' "
                               "URLs (strings), but %s" % (path, problem))
    return data


def _check_approle_file_access(path, info):
    # type: (str, os.stat_result) -> None
    """Refuse an AppRole file other local users can read or change (as ssh refuses a
    private key): its secret ID logs in to Vault as this host."""
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if info.st_uid not in (0, os.geteuid()) or loose:
        raise RenewalError(
            "approle_file %s is %s (mode %04o, owner uid %d): other local users can read or "
            "replace its secret ID, so it is not used. Run the Vault tier for this host (it "
            "writes the file 0600 root again), or chmod 600 and chown root it; if others may "
            "have read it, treat the secret ID as leaked: delete the file and run the Vault tier "
            "(a new secret ID; docs/operations.md)"
            % (path, "open to group or others" if loose else "owned by another user",
               stat.S_IMODE(info.st_mode), info.st_uid))


def urls_problem(urls):
    # type: (Any) -> Optional[str]
    """What is wrong with an AppRole file's ``urls`` (None if nothing), without its content."""
    if not isinstance(urls, list):
        return "it is %s" % ("null" if urls is None else "a JSON %s" % _json_type(urls))
    if not urls:
        return "it is empty"
    for number, url in enumerate(urls, 1):
        if not isinstance(url, str):
            return "item %d is %s" % (number, "null" if url is None else "a JSON %s" % _json_type(url))
        if not url.strip():
            return "item %d is an empty string" % number
    return None


def _json_type(value):
    for kind, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"), (dict, "object"),
                       (list, "array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def approle_options(data):
    # type: (Dict[str, Any]) -> Dict[str, Any]
    """The connection and login options an AppRole file's data gives (ca_cert and urls if
    it has them)."""
    options = {option: str(data[key]) for option, key in APPROLE_FILE_KEYS.items()}  # type: Dict[str, Any]
    options["auth_method"] = "approle"
    if data.get("ca_cert"):
        options["ca_cert"] = str(data["ca_cert"])
    if data.get("urls"):
        options["urls"] = [str(url) for url in data["urls"]]
    return options


# ---- files --------------------------------------------------------------------------------


@contextlib.contextmanager
def directory_lock(path, timeout=LOCK_TIMEOUT):
    # type: (str, float) -> Iterator[None]
    """Hold an exclusive flock(2) on a directory (no lock file needed), waiting up to timeout."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise RenewalError(
                        "another renewal of the certificate in %s (an Ansible run or the "
                        "renewal timer) held its lock for more than %d s" % (path, timeout))
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


def fix_attributes(path, mode=None, uid=-1, gid=-1):
    # type: (str, Optional[int], int, int) -> bool
    """Set mode, owner and group where they differ; True if something changed."""
    info = os.lstat(path)
    changed = False
    if (uid != -1 and info.st_uid != uid) or (gid != -1 and info.st_gid != gid):
        os.chown(path, uid, gid)
        changed = True
    if mode is not None and stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def atomic_write(path, content, mode=None, uid=-1, gid=-1):
    # type: (str, bytes, Optional[int], int, int) -> bool
    """Write content to path unless it is already there; True if anything changed.

    A temporary file is created with mode 0600 in the target directory, given its owner,
    group and mode, synced, and renamed over the path: a reader sees the old file or the
    new one, never a part, and never a new key with looser permissions.
    """
    try:
        with open(path, "rb") as handle:
            same = handle.read() == content
    except OSError:
        same = False
    if same:
        return fix_attributes(path, mode, uid, gid)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".mailmesh-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            if uid != -1 or gid != -1:
                os.fchown(handle.fileno(), uid, gid)
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise RenewalError("could not write %s: %s" % (path, exc))
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def response_json(response):
    # type: (Any) -> Dict[str, Any]
    """hvac's JSONAdapter returns a dict for a 200 with JSON, else the Response."""
    if isinstance(response, dict):
        return response
    if hasattr(response, "json"):
        try:
            return response.json() or {}
        except ValueError:
            return {}
    return {}


def _read(path, parse):
    """Parsed content, or pki.MISSING / pki.UNREADABLE."""
    if not os.path.exists(path):
        return pki.MISSING
    try:
        with open(path, "rb") as handle:
            return parse(handle.read())
    except Exception:  # pylint: disable=broad-except
        return pki.UNREADABLE


def _first_certificate(data):
    return pki.load_certificates(data)[0]


def _metadata(cert):
    if isinstance(cert, str):
        return {}
    return pki.cert_metadata(cert)


def _account_id(what, name, lookup, field):
    """The ID of a user or group given by name (or as digits)."""
    try:
        return getattr(lookup(str(name)), field)
    except KeyError:
        if str(name).isdigit():
            return int(name)
    raise RenewalError("%s: there is no %s %r on this host" % (what, "user" if what == "owner" else "group", name))


def span(seconds):
    # type: (float) -> str
    """A duration in the largest whole units: 3d4h, 2h5m, 40s."""
    seconds = int(abs(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append("%d%s" % (seconds // size, unit))
            seconds %= size
        if len(parts) == 2:
            return "".join(parts)
    if seconds or not parts:
        parts.append("%ds" % seconds)
    return "".join(parts[:2])


# ---- the keeper -----------------------------------------------------------------------------


class CertKeeper:
    """Keep one certificate: read, decide, and (unless in check mode) issue and write.

    ``connection`` is a ``_vault_client.VaultConnection``; a missing hvac comes out as
    its ``MissingLibraryError``, every other failure as ``RenewalError``. ``options``:

    - what to ask for: ``engine_mount_point``, ``role_name``, ``common_name``,
      ``alt_names``, ``ip_sans``, ``ttl``;
    - when: ``renew_before`` (a duration; None for the last third of the lifetime),
      ``force``, ``rotate_key``, ``key_type``, ``key_bits``, ``max_clock_skew`` (a
      duration; 0 or None to skip the check);
    - where: ``cert_path``, ``key_path``, ``chain_path``, ``fullchain_path`` (None: not
      kept), ``owner``, ``group`` (names; None: unchanged), ``key_mode``, ``cert_mode``
      (ints; None: unchanged).
    """

    def __init__(self, connection, options, check_mode=False, warn=None, now=None):
        # type: (Any, Dict[str, Any], bool, Optional[Callable[[str], None]], Optional[Callable[[], datetime.datetime]]) -> None
        self.connection = connection
        self.options = options
        self.check_mode = check_mode
        self.warn = warn or (lambda message: None)
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.mount = str(options["engine_mount_point"]).strip("/")
        self.role = options["role_name"]
        self.changed = False
        self.renew_before = None  # type: Optional[int]
        self.max_clock_skew = None  # type: Optional[int]
        self.uid = -1
        self.gid = -1
        # This host's clock minus Vault's, once Vault answered (also when the check failed).
        self.clock_skew = None  # type: Optional[float]

    # ---- checks before anything happens ------------------------------------------------

    def validate(self):
        """RenewalError for options that cannot work; nothing is read or written yet."""
        options = self.options
        try:
            self.renew_before = pki.parse_duration(options.get("renew_before"))
        except pki.DurationError as exc:
            raise RenewalError("renew_before: %s" % exc)
        try:
            self.max_clock_skew = pki.parse_duration(options.get("max_clock_skew"))
        except pki.DurationError as exc:
            raise RenewalError("max_clock_skew: %s" % exc)
        try:
            pki.check_key_spec(options.get("key_type") or "ec", options.get("key_bits"))
        except ValueError as exc:
            raise RenewalError(str(exc))
        for name in ("key_path", "cert_path", "chain_path", "fullchain_path"):
            path = options.get(name)
            if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                raise RenewalError(
                    "%s: directory %s does not exist" % (name, os.path.dirname(os.path.abspath(path))))
        if options.get("owner") is not None:
            self.uid = _account_id("owner", options["owner"], pwd.getpwnam, "pw_uid")
        if options.get("group") is not None:
            self.gid = _account_id("group", options["group"], grp.getgrnam, "gr_gid")

    # ---- reading ---------------------------------------------------------------------------

    def read_files(self):
        options = self.options
        state = dict(
            cert=_read(options["cert_path"], _first_certificate),
            key=_read(options["key_path"], pki.load_private_key),
            chain=None,
            fullchain=None,
        )
        for name in ("chain", "fullchain"):
            path = options.get(name + "_path")
            if path:
                state[name] = _read(path, pki.load_certificates)
        return state

    def current_ca(self, cert):
        """The mount's current issuing CA (read unauthenticated), or None if it has none."""
        what = "reading the issuing CA of PKI mount '%s' (%s/cert/ca)" % (self.mount, self.mount)
        try:
            # Same TLS client certificate as the login would use, in case the listener
            # requires one; no token. The standard library only: hvac and requests are
            # imported just when a certificate must be issued.
            kwargs = self.connection.auth_method().client_kwargs()
            response = self.connection.failover(
                lambda: self.connection.unauthenticated_get("%s/cert/ca" % self.mount, **kwargs),
                what, self.warn)
        except Exception as exc:  # pylint: disable=broad-except
            message, hint = self.connection.vault_error(exc, what), self.clock_hint(cert)
            if hint and message.endswith("."):
                message = message[:-1]  # the hint starts a new sentence
            raise RenewalError(message + hint)
        data = response_json(response).get("data") or {}
        pem = data.get("certificate") or ""
        if not pem.strip():
            return None
        try:
            return pki.load_certificates(pem)[0]
        except ValueError as exc:
            raise RenewalError("%s: Vault returned no usable certificate (%s)" % (what, exc))

    def is_revoked(self, cert):
        """Whether Vault lists this certificate as revoked (unauthenticated read of
        ``<mount>/cert/<serial>``); False when Vault does not know it (another mount,
        tidied away): only a revocation Vault confirms counts."""
        if cert is None or isinstance(cert, str):
            return False
        what = "reading certificate %s of PKI mount '%s'" % (pki.serial_hex(cert), self.mount)
        try:
            kwargs = self.connection.auth_method().client_kwargs()
            response = self.connection.failover(
                lambda: self.connection.unauthenticated_get("%s/cert/%s" % (self.mount, pki.serial_hex(cert)),
                                                            **kwargs),
                what, self.warn)
        except Exception as exc:  # pylint: disable=broad-except
            if getattr(exc, "status", None) == 404 or getattr(exc, "code", None) == 404:
                return False
            raise RenewalError(self.connection.vault_error(exc, what))
        data = response_json(response).get("data") or {}
        try:
            return int(data.get("revocation_time") or 0) > 0
        except (TypeError, ValueError):
            return False

    def clock_hint(self, cert):
        """What a certificate that has not started yet says about this host's clock ('' if nothing)."""
        if isinstance(cert, str):
            return ""
        now = self.now()
        start = pki.not_before(cert)
        if (start - now).total_seconds() > _NOT_YET_VALID_SLACK:
            return (". The certificate on disk is not valid before %s, %s after this host's "
                    "clock (%s): the clock is probably wrong (check time synchronisation)"
                    % (pki.utc_iso(start), span((start - now).total_seconds()), pki.utc_iso(now)))
        return ""

    def check_clock(self):
        """This host's clock minus Vault's (its Date header) in seconds, or None when Vault's
        answer had no date; RenewalError when they differ by more than max_clock_skew."""
        server_time = getattr(self.connection, "server_time", None)
        if server_time is None:
            return None
        skew = (self.now() - server_time).total_seconds()
        self.clock_skew = skew
        if self.max_clock_skew and abs(skew) > self.max_clock_skew:
            raise RenewalError(
                "this host's clock (%s) is %s %s the clock of Vault at %s (%s), more than "
                "max_clock_skew (%ss): fix its time synchronisation (systemd-timesyncd, "
                "chrony); a certificate issued now would look %s to this host"
                % (pki.utc_iso(self.now()), span(skew), "ahead of" if skew > 0 else "behind",
                   self.connection.url, pki.utc_iso(server_time), self.max_clock_skew,
                   "expired or expiring" if skew > 0 else "not yet valid"))
        return skew

    # ---- issuing -----------------------------------------------------------------------------

    def sign(self, key):
        options = self.options
        alt_names = options.get("alt_names") or []
        ip_sans = options.get("ip_sans") or []
        csr = pki.build_csr(key, options["common_name"], alt_names, ip_sans)
        body = pki.sign_request_params(csr, options["common_name"], alt_names, ip_sans, options.get("ttl"))
        names = "common_name=%s" % options["common_name"]
        if body.get("alt_names"):
            names += ", alt_names=%s" % body["alt_names"]
        if body.get("ip_sans"):
            names += ", ip_sans=%s" % body["ip_sans"]
        what = "signing a CSR (%s) with PKI role '%s' at %s/sign/%s" % (names, self.role, self.mount, self.role)
        login = "logging in with auth_method=%s" % (self.connection.params.get("auth_method") or "token")
        try:
            self.connection.failover(self.connection.client, login, self.warn)
        except MissingLibraryError:
            raise  # the caller names the library its own way
        except Exception as exc:  # pylint: disable=broad-except
            raise RenewalError(self.connection.vault_error(exc, login))
        invalid_request = self.connection.hvac().exceptions.InvalidRequest
        path = "/v1/%s/sign/%s" % (self.mount, self.role)
        try:
            # After a move to another node, client() logs in there first.
            response = self.connection.failover(
                lambda: self.connection.client().adapter.post(path, json=body), what, self.warn)
        except invalid_request as exc:
            raise RenewalError(self.explain_bad_request(exc, names))
        except Exception as exc:  # pylint: disable=broad-except
            raise RenewalError(self.connection.vault_error(exc, what))
        data = response_json(response).get("data") or {}
        if not data.get("certificate"):
            raise RenewalError("Vault at %s returned no certificate while %s" % (self.connection.url, what))
        try:
            cert = pki.load_certificates(data["certificate"])[0]
            chain_pems = data.get("ca_chain") or ([data["issuing_ca"]] if data.get("issuing_ca") else [])
            chain = []  # type: List[Any]
            for pem in chain_pems:
                chain.extend(pki.load_certificates(pem))
        except (ValueError, TypeError, IndexError) as exc:
            # A truncated or garbled answer (a proxy, a broken connection): nothing is written.
            raise RenewalError("Vault at %s returned no usable certificate while %s: %s"
                               % (self.connection.url, what, " ".join(str(exc).split())[:200]))
        # The chain files hold what a server sends after its own certificate: the
        # intermediate(s), not the root (clients trust it from their CA bundle).
        return cert, pki.without_roots(chain)

    def explain_bad_request(self, exc, names):
        errors = "; ".join(" ".join(str(e).split()) for e in (getattr(exc, "errors", None) or [exc]))
        lowered = errors.lower()
        where = "Vault at %s" % self.connection.url
        if "unknown role" in lowered or "no role found" in lowered:
            return "PKI role '%s' does not exist in mount '%s' (%s): %s" % (self.role, self.mount, where, errors)
        if "not allowed" in lowered or "not permitted" in lowered:
            return ("PKI role '%s' in mount '%s' forbids the requested names (%s) (%s): %s"
                    % (self.role, self.mount, names, where, errors))
        return ("%s rejected the request to sign a CSR (%s) with PKI role '%s' in mount '%s': %s"
                % (where, names, self.role, self.mount, errors))

    # ---- writing ------------------------------------------------------------------------------

    def write(self, path, content, mode):
        if atomic_write(path, content, mode, self.uid, self.gid):
            self.changed = True

    def fix(self, path, mode):
        if path and os.path.exists(path) and fix_attributes(path, mode, self.uid, self.gid):
            self.changed = True

    # ---- main ----------------------------------------------------------------------------------

    def run(self):
        # type: () -> Dict[str, Any]
        """Keep the certificate; RenewalError if it cannot (then nothing was written).

        Returns ``changed``, ``reasons``, ``key_generated``, ``before`` and ``after``
        (metadata, never key material), ``clock_skew`` (seconds, this host minus Vault,
        when Vault's answer said) and ``cert`` (the certificate now on disk, or None).
        """
        self.validate()
        with directory_lock(os.path.dirname(os.path.abspath(self.options["key_path"]))):
            return self._run_locked()

    def _run_locked(self):
        options = self.options
        key_type = options.get("key_type") or "ec"
        key_bits = options.get("key_bits")
        key_mode, cert_mode = options.get("key_mode"), options.get("cert_mode")
        state = self.read_files()
        ca_cert = self.current_ca(state["cert"])
        skew = self.check_clock()
        revoked = self.is_revoked(state["cert"])
        reasons = pki.renewal_reasons(
            state["cert"], state["key"], options["common_name"],
            alt_names=options.get("alt_names") or [], ip_sans=options.get("ip_sans") or [],
            now=self.now(), renew_before=self.renew_before, ca_cert=ca_cert,
            chain=state["chain"], fullchain=state["fullchain"],
            key_type=key_type, key_bits=key_bits, force=bool(options.get("force")),
        )
        if revoked:
            reasons.append("revoked")
        before = _metadata(state["cert"])
        if self.renew_before is not None and before:
            lifetime = pki.not_after(state["cert"]) - pki.not_before(state["cert"])
            if self.renew_before >= lifetime.total_seconds():
                self.warn(
                    "renew_before (%ss) is not shorter than the certificate's lifetime (%ss): "
                    "it will be reissued on every run" % (self.renew_before, int(lifetime.total_seconds())))

        key = state["key"]
        # A revoked certificate's key is taken as compromised.
        key_generated = bool(reasons) and (
            bool(options.get("rotate_key")) or revoked or isinstance(key, str)
            or not pki.key_fits(key, key_type, key_bits)
        )
        after = before
        cert = None if isinstance(state["cert"], str) else state["cert"]
        if reasons and self.check_mode:
            self.changed = True
            after = {
                "serial_number": "(new)",
                "common_name": options["common_name"],
                "alt_names": join_names(list(options.get("alt_names") or []) + [options["common_name"]]).split(","),
                "ip_sans": [n for n in join_names(options.get("ip_sans") or []).split(",") if n],
                "issuer": ca_cert.subject.rfc4514_string() if ca_cert is not None else None,
            }
        elif reasons:
            if key_generated:
                key = pki.generate_private_key(key_type, key_bits)
            cert, chain = self.sign(key)
            # Key first: a reader that sees the new certificate finds its key in place.
            if key_generated:
                self.write(options["key_path"], pki.private_key_pem(key), key_mode)
            self.write(options["cert_path"], pki.certificate_pem(cert), cert_mode)
            chain_pem = b"".join(pki.certificate_pem(c) for c in chain)
            if options.get("chain_path"):
                self.write(options["chain_path"], chain_pem, cert_mode)
            if options.get("fullchain_path"):
                self.write(options["fullchain_path"], pki.certificate_pem(cert) + chain_pem, cert_mode)
            after = _metadata(cert)
        if not self.check_mode:
            # Attributes of the files that were not rewritten may still differ.
            self.fix(options["key_path"], key_mode)
            for name in ("cert_path", "chain_path", "fullchain_path"):
                self.fix(options.get(name), cert_mode)
        return dict(
            changed=self.changed,
            reasons=reasons,
            key_generated=key_generated,
            before=before,
            after=after,
            clock_skew=skew,
            cert=cert,
        )
