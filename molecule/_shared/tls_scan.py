"""A small TLS scanner for the scenarios' verifiers (molecule/conftest.py puts this
directory on sys.path): what one TLS port of the mesh offers, seen from a client.

For a port it finds the protocol versions the server accepts (TLS 1.0 to 1.3), every
TLS 1.2 cipher suite it accepts (by iterative removal: offer all OpenSSL knows, drop
the one the server picked, again until it refuses; one handshake per accepted suite
plus one), the certificates it sends (and whether one is self-signed: a root CA), and
whether it resumes a session under TLS 1.2 and TLS 1.3. Implicit TLS, or IMAP STARTTLS;
with a client certificate for ports that require one.

It uses the standard library's ssl module at OpenSSL security level 0 so that the
client offers everything, including what a server must refuse (SSLyze, the usual
scanner, pins a cryptography release older than the one this project pins).
"""

import socket
import ssl
import warnings

# Mozilla's "intermediate" profile (version 5.7), TLS 1.2 suites, in OpenSSL's names.
MOZILLA_INTERMEDIATE_TLS12 = frozenset((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
))

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
EVERYTHING = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"

# What to send after the handshake so that the server talks (and a TLS 1.3 server's
# session tickets, which follow the handshake, are read): an IMAP command, or HTTP.
IMAP_PROBE = b"a0 NOOP\r\n"
HTTP_PROBE = b"GET /v1/sys/health HTTP/1.0\r\n\r\n"


class Target:
    """One TLS port: where, how TLS starts, and what the client presents."""

    def __init__(self, address, port, server_hostname, starttls=False, client_cert=None, client_key=None,
                 probe=IMAP_PROBE, timeout=10):
        self.address, self.port, self.server_hostname = address, port, server_hostname
        self.starttls, self.probe, self.timeout = starttls, probe, timeout
        self.client_cert, self.client_key = client_cert, client_key

    def __repr__(self):
        return "%s:%s%s" % (self.address, self.port, " (STARTTLS)" if self.starttls else "")

    def context(self, version_min, version_max, ciphers=EVERYTHING):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers(ciphers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 and 1.1: asked on purpose
            context.minimum_version, context.maximum_version = version_min, version_max
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def _plain(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        if self.starttls:
            reader = sock.makefile("rb")
            reader.readline()  # greeting
            sock.sendall(b"s0 STARTTLS\r\n")
            while True:
                line = reader.readline()
                if not line or line.startswith(b"s0 "):
                    break
            if not line.startswith(b"s0 OK"):
                sock.close()
                raise OSError("STARTTLS refused: %r" % line)
        return sock

    def handshake(self, context, session=None):
        """The TLS socket, or None when the server refused the handshake."""
        sock = self._plain()
        try:
            return context.wrap_socket(sock, server_hostname=self.server_hostname, session=session)
        except (ssl.SSLError, OSError):
            sock.close()
            return None


def _exchange(target, tls):
    # The target's own timeout, not less: on a loaded machine (CI runs scenarios side by
    # side) a TLS 1.3 server's session ticket may come later than a short wait, and the
    # port would look as if it resumed nothing.
    try:
        tls.settimeout(target.timeout)
        if not target.starttls and target.probe == IMAP_PROBE:
            tls.recv(4096)  # the IMAP greeting
        tls.sendall(target.probe)
        tls.recv(4096)
    except (OSError, ssl.SSLError):
        pass


def _close(tls):
    try:
        tls.close()
    except OSError:
        pass


def accepted_versions(target):
    result = {}
    for name, version in VERSIONS.items():
        tls = target.handshake(target.context(version, version))
        result[name] = tls is not None and tls.version() == name
        if tls is not None:
            _close(tls)
    return result


def tls12_cipher_suites(target):
    """Every TLS 1.2 suite the server accepts (OpenSSL names), by iterative removal."""
    probe = target.context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    offered = [cipher["name"] for cipher in probe.get_ciphers() if cipher["protocol"] != "TLSv1.3"]
    accepted = []
    while offered:
        try:
            context = target.context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
                                     ":".join(offered) + ":@SECLEVEL=0")
        except ssl.SSLError:
            break
        tls = target.handshake(context)
        if tls is None:
            break
        chosen = tls.cipher()[0]
        _close(tls)
        if chosen not in offered:  # cannot happen with a compliant server; never loop
            break
        accepted.append(chosen)
        offered.remove(chosen)
    return sorted(accepted)


def _der_chain(tls):
    """The certificates the server sent, DER, its own first (Python 3.10+)."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(tls._sslobj, "get_unverified_chain")
    chain = []
    for cert in getter() or []:
        chain.append(cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER))
    return chain


def sent_chain(target):
    """[(subject, issuer), ...] of the certificates the server sends, its own first."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    tls = target.handshake(target.context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3))
    if tls is None:
        return None
    try:
        certs = [x509.load_der_x509_certificate(der) for der in _der_chain(tls)]
    finally:
        _close(tls)
    return [(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()) for cert in certs]


def resumes(target, version):
    """True when a second connection resumes the first one's session under version."""
    context = target.context(version, version)
    first = target.handshake(context)
    if first is None:
        return False
    _exchange(target, first)
    session = first.session
    _close(first)
    if session is None:
        return False
    second = target.handshake(context, session=session)
    if second is None:
        return False
    reused = second.session_reused
    _close(second)
    return bool(reused)


def scan(target):
    """What the port offers: versions, TLS 1.2 suites, the chain it sends, resumption."""
    versions = accepted_versions(target)
    result = {
        "target": repr(target),
        "versions": versions,
        "tls12_cipher_suites": tls12_cipher_suites(target) if versions["TLSv1.2"] else [],
        "chain": sent_chain(target),
        "resumption": {name: resumes(target, VERSIONS[name]) if versions[name] else None
                       for name in ("TLSv1.2", "TLSv1.3")},
    }
    return result


def problems(result, resumption=None):
    """What the scan shows against the project's TLS policy, one sentence each: TLS 1.0
    or 1.1 accepted, a TLS 1.2 suite outside Mozilla's intermediate profile, a
    self-signed (root) certificate in the chain sent, and (when ``resumption`` gives the
    expected {version: bool}) a resumption that differs from what is documented."""
    found = []
    target = result["target"]
    for name in ("TLSv1", "TLSv1.1"):
        if result["versions"][name]:
            found.append("%s accepts %s." % (target, name))
    outside = sorted(set(result["tls12_cipher_suites"]) - MOZILLA_INTERMEDIATE_TLS12)
    if outside:
        found.append("%s offers TLS 1.2 suites outside Mozilla's intermediate profile: %s."
                     % (target, ", ".join(outside)))
    chain = result["chain"] or []
    roots = [subject for subject, issuer in chain[1:] if subject == issuer]
    if roots:
        found.append("%s sends a root CA in its chain: %s." % (target, "; ".join(roots)))
    if not chain:
        found.append("%s sent no certificate." % target)
    for name, expected in (resumption or {}).items():
        if result["resumption"].get(name) != expected:
            found.append("%s: session resumption under %s is %s, documented as %s."
                         % (target, name, result["resumption"].get(name), expected))
    return found
