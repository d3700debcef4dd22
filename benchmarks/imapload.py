"""imapload: a small, bounded IMAP load generator (asyncio, standard library only).

Runs with any Python >= 3.11 and nothing else, so it can be copied into a lab container
and run there with Debian's python3::

    python3 imapload.py --host lab-store1 --port 993 --tls --cafile /etc/mailmesh/vault/ca.pem \
        --user alice@example.test --password-env IMAPLOAD_PASSWORD --prepare
    python3 imapload.py --host 127.0.0.1 --port 143 --user alice@example.test \
        --password-env IMAPLOAD_PASSWORD --mix fetch --concurrency 20 --duration 15

Mixes (one operation each, timed from start to end):

* ``login`` - connect, TLS (if ``--tls``), greeting, LOGIN, SELECT INBOX, LOGOUT.
* ``fetch`` - long sessions (login once, SELECT the bench mailbox), then one
  ``FETCH n (BODY.PEEK[])`` of a corpus message (``--sizes``) per operation.
* ``hold``  - log in ``--concurrency`` sessions, keep them open until ``--duration``
  ends, one NOOP per session every ``--noop-interval`` seconds (an operation each):
  for measuring a proxy's memory under N open sessions. ``--hold-state greeting``
  keeps them at the greeting instead (not logged in). A session that breaks is logged
  in again (every 0.5 s until it works): the JSON line's ``outages`` give, per break,
  when it was noticed, when the session was back (``time.time()``, so a harness can
  compare them with an event of its own) and the failed attempts in between, by kind.

``--rate R`` paces login and fetch operations to R per second in total (an open-loop
schedule) instead of running them back to back: for CPU cost per operation below a
rate limit.

``--prepare`` APPENDs the fetch corpus (``--copies`` messages of each size, marked
``[mailmesh-bench size=N n=I]`` in the Subject) to ``--mailbox`` once: messages already
there are not appended again. APPEND uses non-synchronizing literals when the server
announces LITERAL+ (or LITERAL- for small ones), else synchronizing literals.

Bounds: at most 500 sessions, 600 s of load and 10,000,000 operations; every operation
has a timeout; fetch and hold sessions get at most ``--setup-timeout`` s to log in before
the load starts, and the run ends ``--grace`` s after the load's end at the latest. Targets
must be loopback or private (RFC 1918 / ULA, i.e. the Docker bridge networks) unless
named with ``--allow-host``.

Output: one JSON line per run on stdout (and per user for ``--prepare``). Exit status 0
when no operation failed, 1 when some did, 2 on bad usage or a refused target.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import ipaddress
import json
import math
import os
import random
import re
import socket
import ssl
import string
import sys
import time

__all__ = [
    "Budget",
    "ImapClient",
    "ImapError",
    "Target",
    "TargetError",
    "check_target",
    "main",
    "make_message",
    "parse_sizes",
    "percentile",
    "prepare",
    "run_load",
]

MAX_CONCURRENCY = 500
MAX_DURATION = 600.0
MAX_OPS = 10_000_000
MAX_GRACE = 30.0
MAX_SETUP = 120.0
LINE_LIMIT = 1 << 20
MIN_MESSAGE_SIZE = 512
MAX_MESSAGE_SIZE = 16 << 20
ERROR_SAMPLES = 5
MARKER_RE = re.compile(rb"\[mailmesh-bench size=(\d+) n=(\d+)\]")

# Loopback and the private ranges Docker takes its bridge networks from.
ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)

LITERAL_RE = re.compile(rb"\{(\d+)\+?\}\r\n$")
EXISTS_RE = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
SIZE_RE = re.compile(rb"^\* (\d+) FETCH \(.*RFC822\.SIZE (\d+)", re.IGNORECASE)
FETCH_SEQ_RE = re.compile(rb"^\* (\d+) FETCH ", re.IGNORECASE)
CAPABILITY_RE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
SIZE_ARG_RE = re.compile(r"^(\d+)([kKmM]?)$")


# --------------------------------------------------------------------------- helpers


class TargetError(ValueError):
    """The target is not loopback or a private (lab) address."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and how (TLS or plain)."""

    host: str
    port: int
    address: str
    ssl_context: ssl.SSLContext | None = None
    servername: str | None = None


def address_allowed(address: str) -> bool:
    """True for loopback and private (Docker bridge) addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in ALLOWED_NETWORKS)


def check_target(host: str, port: int, allow_hosts: tuple[str, ...] = ()) -> str:
    """Resolve ``host`` and return the address to connect to.

    Every address the name resolves to must be loopback or private, unless ``host`` is
    named in ``allow_hosts``; the returned address is the one connections use, so a
    second lookup cannot lead elsewhere.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if host not in allow_hosts:
        refused = [addr for addr in addresses if not address_allowed(addr)]
        if refused:
            raise TargetError(
                f"refusing {host} ({', '.join(refused)}): not loopback or a private lab address; "
                "name it with --allow-host to load it anyway"
            )
    return addresses[0]


def parse_sizes(text: str) -> list[int]:
    """'2k,64k,1m' -> [2048, 65536, 1048576] (binary units)."""
    sizes = []
    for item in text.split(","):
        match = SIZE_ARG_RE.match(item.strip())
        if not match:
            raise ValueError(f"bad size {item!r}: expected a number with an optional k or m suffix")
        value = int(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20}[match.group(2).lower()]
        if not MIN_MESSAGE_SIZE <= value <= MAX_MESSAGE_SIZE:
            raise ValueError(f"size {item!r} out of range {MIN_MESSAGE_SIZE}..{MAX_MESSAGE_SIZE} bytes")
        sizes.append(value)
    return sorted(set(sizes))


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def make_message(size: int, index: int, seed: int = 0) -> bytes:
    """A valid RFC 5322 message of exactly ``size`` bytes (CRLF lines), deterministic."""
    header = (
        "From: mailmesh bench <bench@example.test>\r\n"
        "To: bench@example.test\r\n"
        f"Subject: [mailmesh-bench size={size} n={index}]\r\n"
        f"Message-ID: <bench-{size}-{index}-{seed}@example.test>\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    remaining = size - len(header)
    if remaining < 2:
        raise ValueError(f"size {size} is smaller than the message header")
    rng = random.Random(f"{seed}-{size}-{index}")
    alphabet = string.ascii_letters + string.digits + "+/"
    lines = [header]
    while remaining > 0:
        length = min(78, remaining)
        if remaining - length == 1:  # never leave a single byte for the last line
            length -= 1
        lines.append("".join(rng.choices(alphabet, k=length - 2)).encode("ascii") + b"\r\n")
        remaining -= length
    return b"".join(lines)


def imap_quote(value: str) -> bytes:
    """An IMAP quoted string (no CR/LF, ASCII only: enough for lab users and mailboxes)."""
    if any(ch in value for ch in "\r\n") or not value.isascii():
        raise ValueError("only ASCII values without CR/LF can be sent as quoted strings")
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


# --------------------------------------------------------------------------- client


class ImapError(Exception):
    """A command failed or the server answered something unexpected."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass
class Response:
    """A tagged response with the untagged responses (and their literals) before it."""

    status: bytes
    text: bytes
    untagged: list[tuple[bytes, list[bytes]]]

    @property
    def ok(self) -> bool:
        return self.status == b"OK"


class ImapClient:
    """Just enough IMAP4rev1 for load: tagged commands, literals both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, literal_mode: str = "auto"):
        self.reader = reader
        self.writer = writer
        self.literal_mode = literal_mode
        self.capabilities: set[bytes] = set()
        self.rx = 0
        self.tx = 0
        self._tag = 0

    @classmethod
    async def open(cls, target: Target, literal_mode: str = "auto") -> "ImapClient":
        try:
            reader, writer = await asyncio.open_connection(
                target.address,
                target.port,
                ssl=target.ssl_context,
                server_hostname=(target.servername or target.host) if target.ssl_context else None,
                limit=LINE_LIMIT,
            )
        except ssl.SSLError as exc:
            raise ImapError("tls", f"TLS handshake with {target.host}:{target.port}: {exc}") from exc
        except OSError as exc:
            raise ImapError("connect", f"connect to {target.host}:{target.port}: {exc}") from exc
        client = cls(reader, writer, literal_mode)
        try:
            greeting = (await client._read_response())[0]
            if not greeting.upper().startswith((b"* OK", b"* PREAUTH")):
                raise ImapError("greeting", f"unexpected greeting {greeting[:80]!r}")
            client._note_capabilities(greeting)
        except BaseException:
            await client.close()
            raise
        return client

    # -- wire

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        self.tx += len(data)
        await self.writer.drain()

    async def _read_line(self) -> bytes:
        line = await self.reader.readuntil(b"\r\n")
        self.rx += len(line)
        return line

    async def _read_response(self) -> tuple[bytes, list[bytes]]:
        """One response line, following any literals it announces."""
        line = await self._read_line()
        parts, literals = [line], []
        while (match := LITERAL_RE.search(line)) is not None:
            size = int(match.group(1))
            literals.append(await self.reader.readexactly(size))
            self.rx += size
            line = await self._read_line()
            parts.append(line)
        return b"".join(parts), literals

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"A%04d" % self._tag

    def _note_capabilities(self, text: bytes) -> None:
        match = CAPABILITY_RE.search(text)
        if match:
            self.capabilities = set(match.group(1).upper().split())

    def _nonsync(self, size: int) -> bool:
        if self.literal_mode == "sync":
            return False
        if self.literal_mode == "nonsync":
            return True
        return b"LITERAL+" in self.capabilities or (b"LITERAL-" in self.capabilities and size <= 4096)

    async def command(self, text: bytes, literal: bytes | None = None) -> Response:
        """Send one tagged command (with at most one trailing literal), read to its end."""
        tag = self._next_tag()
        untagged: list[tuple[bytes, list[bytes]]] = []
        if literal is None:
            await self._send(tag + b" " + text + b"\r\n")
        elif self._nonsync(len(literal)):
            await self._send(b"%s %s {%d+}\r\n" % (tag, text, len(literal)) + literal + b"\r\n")
        else:
            await self._send(b"%s %s {%d}\r\n" % (tag, text, len(literal)))
            while True:
                line, lits = await self._read_response()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    return self._tagged(line, untagged)
                untagged.append((line, lits))
            await self._send(literal + b"\r\n")
        while True:
            line, lits = await self._read_response()
            if line.startswith(tag + b" "):
                return self._tagged(line, untagged)
            untagged.append((line, lits))

    @staticmethod
    def _tagged(line: bytes, untagged: list[tuple[bytes, list[bytes]]]) -> Response:
        fields = line.split(b" ", 2)
        status = fields[1].upper() if len(fields) > 1 else b""
        return Response(status, line, untagged)

    # -- commands

    async def capability(self) -> set[bytes]:
        resp = await self.command(b"CAPABILITY")
        for line, _literals in resp.untagged:
            if line.upper().startswith(b"* CAPABILITY "):
                self.capabilities = set(line[13:].strip().upper().split())
        return self.capabilities

    async def login(self, user: str, password: str) -> None:
        resp = await self.command(b"LOGIN " + imap_quote(user) + b" " + imap_quote(password))
        if not resp.ok:
            raise ImapError("login", f"LOGIN {user}: {resp.text.strip()[:120]!r}")
        self._note_capabilities(resp.text)

    async def select(self, mailbox: str) -> int:
        resp = await self.command(b"SELECT " + imap_quote(mailbox))
        if not resp.ok:
            raise ImapError("select", f"SELECT {mailbox}: {resp.text.strip()[:120]!r}")
        exists = 0
        for line, _literals in resp.untagged:
            match = EXISTS_RE.match(line)
            if match:
                exists = int(match.group(1))
        return exists

    async def create(self, mailbox: str) -> bool:
        """CREATE; False when it failed (typically: it exists already)."""
        return (await self.command(b"CREATE " + imap_quote(mailbox))).ok

    async def append(self, mailbox: str, message: bytes) -> None:
        resp = await self.command(b"APPEND " + imap_quote(mailbox) + b" (\\Seen)", literal=message)
        if not resp.ok:
            raise ImapError("append", f"APPEND to {mailbox}: {resp.text.strip()[:120]!r}")

    async def fetch_sizes(self, count: int) -> dict[int, int]:
        """Sequence number -> RFC822.SIZE of every message in the selected mailbox."""
        if count == 0:
            return {}
        resp = await self.command(b"FETCH 1:* (RFC822.SIZE)")
        if not resp.ok:
            raise ImapError("fetch", f"FETCH RFC822.SIZE: {resp.text.strip()[:120]!r}")
        sizes = {}
        for line, _literals in resp.untagged:
            match = SIZE_RE.match(line)
            if match:
                sizes[int(match.group(1))] = int(match.group(2))
        return sizes

    async def fetch_subjects(self, count: int) -> dict[int, bytes]:
        """Sequence number -> Subject header block of every message in the mailbox."""
        if count == 0:
            return {}
        resp = await self.command(b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if not resp.ok:
            raise ImapError("fetch", f"FETCH subjects: {resp.text.strip()[:120]!r}")
        subjects = {}
        for line, lits in resp.untagged:
            match = FETCH_SEQ_RE.match(line)
            if match and lits:
                subjects[int(match.group(1))] = lits[0]
        return subjects

    async def fetch_body(self, seq: int, expected_size: int | None = None) -> int:
        """FETCH one whole message; returns its size."""
        resp = await self.command(b"FETCH %d (BODY.PEEK[])" % seq)
        if not resp.ok:
            raise ImapError("fetch", f"FETCH {seq}: {resp.text.strip()[:120]!r}")
        bodies = [lits[0] for line, lits in resp.untagged if lits and FETCH_SEQ_RE.match(line)]
        if len(bodies) != 1:
            raise ImapError("fetch", f"FETCH {seq}: expected one body literal, got {len(bodies)}")
        if expected_size is not None and len(bodies[0]) != expected_size:
            raise ImapError("fetch", f"FETCH {seq}: {len(bodies[0])} bytes, expected {expected_size}")
        return len(bodies[0])

    async def noop(self) -> None:
        resp = await self.command(b"NOOP")
        if not resp.ok:
            raise ImapError("noop", f"NOOP: {resp.text.strip()[:120]!r}")

    async def logout(self) -> None:
        resp = await self.command(b"LOGOUT")
        if not resp.ok:
            raise ImapError("logout", f"LOGOUT: {resp.text.strip()[:120]!r}")

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass


# --------------------------------------------------------------------------- load


class Budget:
    """The run's two hard caps (operations attempted, time to start one) and the pace."""

    def __init__(self, max_ops: int, duration: float, rate: float | None = None):
        self.max_ops = max_ops
        self.deadline = time.monotonic() + duration
        self.taken = 0
        self.rate = rate
        self.paced_from = time.monotonic()
        self.paced = 0

    def take(self) -> bool:
        """Claim one operation; False once either cap is reached."""
        if self.taken >= self.max_ops or time.monotonic() >= self.deadline:
            return False
        self.taken += 1
        return True

    async def acquire(self) -> bool:
        """take(), then with a rate wait for this operation's slot (an open-loop pace)."""
        if not self.take():
            return False
        if self.rate:
            slot = self.paced_from + self.paced / self.rate
            self.paced += 1
            if slot >= self.deadline:
                return False
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return True

    def exhausted(self) -> bool:
        return self.taken >= self.max_ops or time.monotonic() >= self.deadline

    def capped_by(self) -> str:
        return "ops" if self.taken >= self.max_ops else "time"


@dataclasses.dataclass
class Stats:
    """What the workers measured."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    error_samples: list[str] = dataclasses.field(default_factory=list)
    rx: int = 0
    tx: int = 0
    sessions: int = 0
    # Hold mix: one entry per broken session (see _Run.hold_worker).
    outages: list[dict] = dataclasses.field(default_factory=list)
    first_start: float | None = None
    last_end: float | None = None

    def ok(self, started: float, ended: float, rx: int, tx: int) -> None:
        self.latencies.append(ended - started)
        self.rx += rx
        self.tx += tx
        self.last_end = ended if self.last_end is None else max(self.last_end, ended)

    def error(self, kind: str, exc: BaseException) -> None:
        self.errors[kind] += 1
        text = f"{kind}: {type(exc).__name__}: {exc}"[:200]
        if len(self.error_samples) < ERROR_SAMPLES and text not in self.error_samples:
            self.error_samples.append(text)


@dataclasses.dataclass
class LoadConfig:
    """One run's settings (validated by the caller)."""

    mix: str
    target: Target
    users: list[tuple[str, str]]
    concurrency: int
    duration: float
    max_ops: int
    sizes: list[int]
    mailbox: str = "bench"
    seed: int = 0
    op_timeout: float = 30.0
    setup_timeout: float = 30.0
    grace: float = 5.0
    noop_interval: float = 1.0
    backoff: float = 0.05
    label: str = ""
    literal_mode: str = "auto"
    rate: float | None = None
    hold_state: str = "authenticated"


class _Stage:
    """Which step of an operation is running, so an error is named after it."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "connect"


def _classify(stage: _Stage, exc: BaseException) -> str:
    if isinstance(exc, ImapError):
        return exc.kind
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"{stage.name}-timeout"
    return stage.name


RECOVERABLE = (ImapError, OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
               asyncio.TimeoutError, TimeoutError, ValueError)


class _Run:
    def __init__(self, cfg: LoadConfig):
        self.cfg = cfg
        self.stats = Stats()
        # Sessions of the fetch and hold mixes are set up before the measured window.
        self.budget = Budget(cfg.max_ops, cfg.duration + (0 if cfg.mix == "login" else cfg.setup_timeout), cfg.rate)
        self.started = time.monotonic()
        self.measure_from = self.started
        self.ready = asyncio.Event()
        self.pending_setup = cfg.concurrency
        self.fatal: str | None = None

    def _setup_done(self) -> None:
        self.pending_setup -= 1
        if self.pending_setup == 0 and not self.ready.is_set():
            # Every path gets the same measured window, however long its logins took.
            self.measure_from = time.monotonic()
            self.budget.deadline = min(self.budget.deadline, self.measure_from + self.cfg.duration)
            self.budget.paced_from = self.measure_from
            self.ready.set()

    async def login_worker(self, index: int) -> None:
        cfg = self.cfg
        user, password = cfg.users[index % len(cfg.users)]
        while await self.budget.acquire():
            stage = _Stage()
            t0 = time.monotonic()
            client = None
            try:
                async with asyncio.timeout(cfg.op_timeout):
                    client = await ImapClient.open(cfg.target, cfg.literal_mode)
                    stage.name = "login"
                    await client.login(user, password)
                    stage.name = "select"
                    await client.select("INBOX")
                    stage.name = "logout"
                    await client.logout()
                self.stats.ok(t0, time.monotonic(), client.rx, client.tx)
            except RECOVERABLE as exc:
                self.stats.error(_classify(stage, exc), exc)
                await asyncio.sleep(cfg.backoff)
            finally:
                if client is not None:
                    await client.close()

    async def _session(self, index: int, stage: _Stage, mailbox: str) -> tuple[ImapClient, int]:
        cfg = self.cfg
        user, password = cfg.users[index % len(cfg.users)]
        async with asyncio.timeout(cfg.op_timeout):
            client = await ImapClient.open(cfg.target, cfg.literal_mode)
            try:
                stage.name = "login"
                await client.login(user, password)
                stage.name = "select"
                exists = await client.select(mailbox)
            except BaseException:
                await client.close()
                raise
        self.stats.sessions += 1
        return client, exists

    async def fetch_worker(self, index: int) -> None:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}-{index}")
        first = True
        while not self.budget.exhausted() and self.fatal is None:
            stage = _Stage()
            client = candidates = None
            try:
                try:
                    client, exists = await self._session(index, stage, cfg.mailbox)
                    stage.name = "fetch"
                    async with asyncio.timeout(cfg.op_timeout):
                        sizes = await client.fetch_sizes(exists)
                    found = [(seq, size) for seq, size in sorted(sizes.items()) if size in cfg.sizes]
                    missing = sorted(set(cfg.sizes) - {size for _seq, size in found})
                    if missing:
                        self.fatal = (f"mailbox {cfg.mailbox!r} holds no message of {missing} bytes: "
                                      "run with --prepare first")
                        return
                    candidates = found
                finally:
                    if first:
                        first = False
                        self._setup_done()
                await self.ready.wait()
                while await self.budget.acquire():
                    seq, size = rng.choice(candidates)
                    rx0, tx0 = client.rx, client.tx
                    t0 = time.monotonic()
                    async with asyncio.timeout(cfg.op_timeout):
                        await client.fetch_body(seq, size)
                    self.stats.ok(t0, time.monotonic(), client.rx - rx0, client.tx - tx0)
                stage.name = "logout"
                async with asyncio.timeout(cfg.op_timeout):
                    await client.logout()
            except RECOVERABLE as exc:
                self._session_failed(stage, exc, candidates is None)
                await asyncio.sleep(cfg.backoff)
            finally:
                if client is not None:
                    await client.close()

    def _session_failed(self, stage: _Stage, exc: BaseException, in_setup: bool) -> None:
        # A session that could not be set up costs one operation of the budget, so a
        # wrong password cannot spin until the time cap alone stops it.
        if in_setup:
            self.budget.take()
        self.stats.error(_classify(stage, exc), exc)

    async def hold_worker(self, index: int) -> None:
        cfg = self.cfg
        first = True
        outage = None
        while not self.budget.exhausted():
            stage = _Stage()
            client = None
            in_setup = True
            try:
                try:
                    if cfg.hold_state == "greeting":
                        async with asyncio.timeout(cfg.op_timeout):
                            client = await ImapClient.open(cfg.target, cfg.literal_mode)
                        self.stats.sessions += 1
                    else:
                        client = (await self._session(index, stage, "INBOX"))[0]
                    in_setup = False
                    if outage is not None:
                        outage["back"] = round(time.time(), 3)
                        outage = None
                except RECOVERABLE as exc:
                    if outage is not None:
                        outage["failed"] += 1
                        kind = _classify(stage, exc)
                        outage["kinds"][kind] = outage["kinds"].get(kind, 0) + 1
                    raise
                finally:
                    if first:
                        first = False
                        self._setup_done()
                await self.ready.wait()
                stage.name = "noop"
                while True:
                    pause = min(cfg.noop_interval, self.budget.deadline - time.monotonic())
                    if pause <= 0:
                        break
                    await asyncio.sleep(pause)
                    if not self.budget.take():
                        break
                    rx0, tx0 = client.rx, client.tx
                    t0 = time.monotonic()
                    async with asyncio.timeout(cfg.op_timeout):
                        await client.noop()
                    self.stats.ok(t0, time.monotonic(), client.rx - rx0, client.tx - tx0)
                stage.name = "logout"
                async with asyncio.timeout(cfg.op_timeout):
                    await client.logout()
            except RECOVERABLE as exc:
                if not in_setup and outage is None and not self.budget.exhausted():
                    outage = {"session": index, "lost": round(time.time(), 3), "stage": _classify(stage, exc),
                              "back": None, "failed": 0, "kinds": {}}
                    self.stats.outages.append(outage)
                self._session_failed(stage, exc, in_setup)
                await asyncio.sleep(max(cfg.backoff, 0.5))
            finally:
                if client is not None:
                    await client.close()

    async def run(self) -> dict:
        cfg = self.cfg
        worker = {"login": self.login_worker, "fetch": self.fetch_worker, "hold": self.hold_worker}[cfg.mix]
        if cfg.mix == "login":
            self.ready.set()
        tasks = [asyncio.create_task(worker(i)) for i in range(cfg.concurrency)]
        hard_stop = max(0.0, self.budget.deadline - time.monotonic()) + cfg.grace
        still_running = (await asyncio.wait(tasks, timeout=hard_stop))[1]
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=5.0)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
        ended = time.monotonic()
        return self.report(ended, len(still_running))

    def report(self, ended: float, cancelled: int) -> dict:
        cfg, stats = self.cfg, self.stats
        window_end = stats.last_end if stats.last_end is not None else ended
        window = max(window_end - self.measure_from, 1e-9)
        lat = sorted(stats.latencies)
        ops = len(lat)
        errors = sum(stats.errors.values())

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000.0, 3)

        return {
            "tool": "imapload",
            "mix": cfg.mix,
            "path": cfg.label or f"{cfg.target.host}:{cfg.target.port}",
            "target": f"{cfg.target.host}:{cfg.target.port}",
            "tls": cfg.target.ssl_context is not None,
            "concurrency": cfg.concurrency,
            "rate": cfg.rate,
            "hold_state": cfg.hold_state if cfg.mix == "hold" else None,
            "sizes": cfg.sizes if cfg.mix == "fetch" else None,
            "seed": cfg.seed,
            "ops": ops,
            "errors": errors,
            "error_kinds": dict(sorted(stats.errors.items())),
            "error_samples": stats.error_samples,
            "fatal": self.fatal,
            "sessions": stats.sessions,
            "outages": stats.outages if cfg.mix == "hold" else None,
            "cancelled": cancelled,
            "capped_by": self.budget.capped_by(),
            "setup_s": round(self.measure_from - self.started, 3),
            "duration_s": round(window, 3),
            "wall_s": round(ended - self.started, 3),
            "ops_per_s": round(ops / window, 2),
            "p50_ms": ms(percentile(lat, 50)),
            "p99_ms": ms(percentile(lat, 99)),
            "mean_ms": ms(sum(lat) / ops if ops else None),
            "max_ms": ms(lat[-1] if lat else None),
            "bytes_rx": stats.rx,
            "bytes_tx": stats.tx,
            "bytes_per_s": round((stats.rx + stats.tx) / window, 1),
        }


async def run_load(cfg: LoadConfig) -> dict:
    """Run one mix and return its report (the JSON line's content)."""
    return await _Run(cfg).run()


async def prepare(target: Target, user: str, password: str, mailbox: str, sizes: list[int], copies: int,
                  seed: int = 0, literal_mode: str = "auto", op_timeout: float = 60.0) -> dict:
    """Create ``mailbox`` and APPEND the corpus messages it lacks (idempotent)."""
    client = await ImapClient.open(target, literal_mode)
    try:
        async with asyncio.timeout(op_timeout):
            await client.login(user, password)
            if not client.capabilities:
                await client.capability()
            created = await client.create(mailbox)
            exists = await client.select(mailbox)
            present = set()
            for header in (await client.fetch_subjects(exists)).values():
                match = MARKER_RE.search(header)
                if match:
                    present.add((int(match.group(1)), int(match.group(2))))
        appended = appended_bytes = 0
        for size in sizes:
            for index in range(copies):
                if (size, index) in present:
                    continue
                message = make_message(size, index, seed)
                async with asyncio.timeout(op_timeout):
                    await client.append(mailbox, message)
                appended += 1
                appended_bytes += len(message)
        async with asyncio.timeout(op_timeout):
            await client.logout()
    finally:
        await client.close()
    return {
        "tool": "imapload",
        "prepare": True,
        "user": user,
        "mailbox": mailbox,
        "created": created,
        "present": len(present),
        "appended": appended,
        "appended_bytes": appended_bytes,
        "literal_plus": b"LITERAL+" in client.capabilities,
    }


# --------------------------------------------------------------------------- CLI


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imapload",
        description="Bounded asyncio IMAP load generator (login, fetch and hold mixes).",
    )
    target = parser.add_argument_group("target")
    target.add_argument("--host", required=True)
    target.add_argument("--port", type=int, default=None, help="default 993 with --tls, else 143")
    target.add_argument("--tls", action="store_true", help="implicit TLS (IMAPS)")
    target.add_argument("--cafile", help="CA bundle to verify the server with (default: system store)")
    target.add_argument("--servername", help="TLS server name (SNI and verification); default --host")
    target.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                        help="load HOST even though it is not loopback or private (repeatable)")
    target.add_argument("--label", default="", help="path label in the JSON line (direct, gateway, chain...)")
    auth = parser.add_argument_group("users")
    auth.add_argument("--user")
    auth.add_argument("--password", help="visible in ps: prefer --password-env")
    auth.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    auth.add_argument("--users-file", help="lines of 'user password' (# comments); sessions take them in turn")
    load = parser.add_argument_group("load")
    load.add_argument("--mix", choices=("login", "fetch", "hold"))
    load.add_argument("--concurrency", type=int, default=10)
    load.add_argument("--duration", type=_positive_float, default=15.0,
                      help="seconds of load, at most 600 (fetch and hold: after their sessions are set up)")
    load.add_argument("--max-ops", type=int, default=1_000_000, help="operations; hard cap")
    load.add_argument("--sizes", default="2k,64k,1m", help="corpus message sizes (fetch mix and --prepare)")
    load.add_argument("--mailbox", default="bench", help="mailbox that holds the fetch corpus")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--op-timeout", type=_positive_float, default=30.0)
    load.add_argument("--setup-timeout", type=_positive_float, default=30.0,
                      help="fetch and hold: seconds the sessions may take to log in before the load (at most 120)")
    load.add_argument("--grace", type=float, default=5.0,
                      help="seconds in-flight operations may take past --duration (at most 30)")
    load.add_argument("--rate", type=_positive_float, default=None,
                      help="login and fetch: pace operations to this many per second in total (default: as fast as"
                           " the sessions go)")
    load.add_argument("--noop-interval", type=_positive_float, default=1.0, help="hold mix: seconds between NOOPs")
    load.add_argument("--hold-state", choices=("authenticated", "greeting"), default="authenticated",
                      help="hold mix: log the sessions in (default), or keep them at the greeting (not authenticated)")
    load.add_argument("--literal", choices=("auto", "sync", "nonsync"), default="auto",
                      help="APPEND literals: as the server's capabilities allow, or forced")
    load.add_argument("--prepare", action="store_true", help="APPEND the fetch corpus first (idempotent)")
    load.add_argument("--copies", type=int, default=4, help="--prepare: messages per size")
    return parser


def _users(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    if args.users_file:
        users = []
        with open(args.users_file, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    user, password = (line.split(None, 1) + [""])[:2]
                    users.append((user, password.strip()))
        if not users:
            parser.error(f"{args.users_file}: no users")
        return users
    if not args.user:
        parser.error("--user or --users-file is required")
    password = args.password
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            parser.error(f"environment variable {args.password_env} is not set")
    if password is None:
        parser.error("--password or --password-env is required with --user")
    return [(args.user, password)]


def _check_bounds(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be 1..{MAX_CONCURRENCY}, got {args.concurrency}")
    if args.duration > MAX_DURATION:
        parser.error(f"--duration must be at most {MAX_DURATION:g} s, got {args.duration:g}")
    if not 1 <= args.max_ops <= MAX_OPS:
        parser.error(f"--max-ops must be 1..{MAX_OPS}, got {args.max_ops}")
    if args.setup_timeout > MAX_SETUP or args.op_timeout > MAX_SETUP:
        parser.error(f"--setup-timeout and --op-timeout must be at most {MAX_SETUP:g} s")
    if not 0 <= args.grace <= MAX_GRACE:
        parser.error(f"--grace must be 0..{MAX_GRACE:g} s, got {args.grace:g}")
    if not 1 <= args.copies <= 100:
        parser.error(f"--copies must be 1..100, got {args.copies}")
    if not args.mix and not args.prepare:
        parser.error("nothing to do: give --mix and/or --prepare")


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        return None
    context = ssl.create_default_context(cafile=args.cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _amain(args: argparse.Namespace, users: list[tuple[str, str]], target: Target) -> int:
    failed = False
    if args.prepare:
        for user, password in dict(users).items():
            try:
                result = await prepare(target, user, password, args.mailbox, parse_sizes(args.sizes),
                                       args.copies, args.seed, args.literal, args.op_timeout)
            except RECOVERABLE as exc:
                result = {"tool": "imapload", "prepare": True, "user": user, "error": f"{type(exc).__name__}: {exc}"}
                failed = True
            print(json.dumps(result), flush=True)
    if args.mix:
        cfg = LoadConfig(
            mix=args.mix, target=target, users=users, concurrency=args.concurrency,
            duration=args.duration, max_ops=args.max_ops, sizes=parse_sizes(args.sizes),
            mailbox=args.mailbox, seed=args.seed, op_timeout=args.op_timeout,
            setup_timeout=args.setup_timeout, grace=args.grace,
            noop_interval=args.noop_interval, label=args.label, literal_mode=args.literal,
            rate=args.rate, hold_state=args.hold_state,
        )
        report = await run_load(cfg)
        print(json.dumps(report), flush=True)
        failed = failed or bool(report["errors"]) or report["fatal"] is not None
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_bounds(args, parser)
    try:
        parse_sizes(args.sizes)
    except ValueError as exc:
        parser.error(f"--sizes: {exc}")
    users = _users(args, parser)
    port = args.port if args.port is not None else (993 if args.tls else 143)
    try:
        address = check_target(args.host, port, tuple(args.allow_host))
    except TargetError as exc:
        print(f"imapload: {exc}", file=sys.stderr)
        return 2
    target = Target(args.host, port, address, _ssl_context(args), args.servername)
    return asyncio.run(_amain(args, users, target))


if __name__ == "__main__":
    sys.exit(main())
