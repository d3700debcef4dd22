"""benchmarks/imapload.py against a tiny in-process IMAP server on 127.0.0.1.

The fake server speaks just enough IMAP4rev1 (greeting, CAPABILITY, LOGIN, CREATE,
SELECT, APPEND with synchronizing or LITERAL+ literals, FETCH of sizes, subjects and
whole bodies as literals, NOOP, LOGOUT) to prove that both mixes run without errors,
that the count and time caps hold, that a wrong password is an error and that the
target guard refuses public addresses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import pathlib
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time

import pytest

MODULE_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "imapload.py"
_SPEC = importlib.util.spec_from_file_location("imapload", MODULE_PATH)
imapload = importlib.util.module_from_spec(_SPEC)
sys.modules["imapload"] = imapload  # dataclasses look their module up by name
_SPEC.loader.exec_module(imapload)

USER, PASSWORD = "alice@example.test", "alice-secret"
SIZES = [2048, 65536]
QUOTED_RE = re.compile(rb'"((?:[^"\\]|\\.)*)"')
LITERAL_RE = re.compile(rb"\{(\d+)(\+?)\}\r\n$")


class FakeImapServer:
    """IMAP just deep enough for imapload, in a thread of its own (own event loop)."""

    def __init__(self, literal_plus: bool = True, delay: float = 0.0, ssl_context: ssl.SSLContext | None = None):
        self.literal_plus = literal_plus
        self.delay = delay
        self.ssl_context = ssl_context
        self.mailboxes: dict[str, list[bytes]] = {"INBOX": [b"Subject: hello\r\n\r\nhi\r\n"]}
        self.literals = {"sync": 0, "nonsync": 0}
        self.connections = 0
        self.logins = 0
        self.refuse_logins = 0  # answer this many next LOGINs with NO, whatever the password
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def caps(self) -> bytes:
        return b"IMAP4rev1 LITERAL+" if self.literal_plus else b"IMAP4rev1"

    def __enter__(self) -> "FakeImapServer":
        self._thread.start()
        self._started.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        self._server.close()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def drop_all(self) -> None:
        """Close every open connection, as a gateway that goes away does."""
        async def close():
            for writer in list(self._writers):
                writer.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        state = {"user": None, "selected": None}
        try:
            writer.write(b"* OK [CAPABILITY " + self.caps + b"] fake ready\r\n")
            while True:
                line = await reader.readuntil(b"\r\n")
                literal = None
                match = LITERAL_RE.search(line)
                if match:
                    if match.group(2):
                        self.literals["nonsync"] += 1
                    else:
                        self.literals["sync"] += 1
                        writer.write(b"+ go ahead\r\n")
                        await writer.drain()
                    literal = await reader.readexactly(int(match.group(1)))
                    await reader.readuntil(b"\r\n")
                    line = line[: match.start()]
                if self.delay:
                    await asyncio.sleep(self.delay)
                tag, _sep, rest = line.strip().partition(b" ")
                command, _sep, args = rest.partition(b" ")
                if not await self._command(writer, tag, command.upper(), args, literal, state):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _command(self, writer, tag, command, args, literal, state) -> bool:  # noqa: C901
        def quoted():
            return [re.sub(rb"\\(.)", rb"\1", q).decode() for q in QUOTED_RE.findall(args)]

        def reply(text: bytes) -> None:
            writer.write(tag + b" " + text + b"\r\n")

        box = self.mailboxes.get(state["selected"])
        if command == b"CAPABILITY":
            writer.write(b"* CAPABILITY " + self.caps + b"\r\n")
            reply(b"OK done")
        elif command == b"LOGIN":
            self.logins += 1
            if self.refuse_logins:
                self.refuse_logins -= 1
                reply(b"NO [UNAVAILABLE] try again")
            elif quoted() == [USER, PASSWORD]:
                state["user"] = USER
                reply(b"OK [CAPABILITY " + self.caps + b"] logged in")
            else:
                reply(b"NO [AUTHENTICATIONFAILED] wrong")
        elif command == b"LOGOUT":
            writer.write(b"* BYE bye\r\n")
            reply(b"OK bye")
            await writer.drain()
            return False
        elif command == b"NOOP":
            reply(b"OK noop")
        elif state["user"] is None:
            reply(b"BAD log in first")
        elif command == b"CREATE":
            name = quoted()[0]
            if name in self.mailboxes:
                reply(b"NO [ALREADYEXISTS] exists")
            else:
                self.mailboxes[name] = []
                reply(b"OK created")
        elif command == b"SELECT":
            name = quoted()[0]
            if name not in self.mailboxes:
                reply(b"NO [NONEXISTENT] no such mailbox")
            else:
                state["selected"] = name
                writer.write(b"* %d EXISTS\r\n" % len(self.mailboxes[name]))
                reply(b"OK [READ-WRITE] selected")
        elif command == b"APPEND":
            self.mailboxes[quoted()[0]].append(literal)
            reply(b"OK appended")
        elif command == b"FETCH" and box is not None:
            seqs, _sep, items = args.partition(b" ")
            numbers = range(1, len(box) + 1) if seqs == b"1:*" else [int(seqs)]
            for seq in numbers:
                message = box[seq - 1]
                if b"RFC822.SIZE" in items:
                    writer.write(b"* %d FETCH (RFC822.SIZE %d)\r\n" % (seq, len(message)))
                elif b"HEADER.FIELDS" in items:
                    subject = next(h for h in message.split(b"\r\n") if h.startswith(b"Subject:")) + b"\r\n\r\n"
                    writer.write(b"* %d FETCH (BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n%s)\r\n"
                                 % (seq, len(subject), subject))
                else:
                    writer.write(b"* %d FETCH (BODY[] {%d}\r\n" % (seq, len(message)) + message + b")\r\n")
            reply(b"OK fetched")
        else:
            reply(b"BAD unknown")
        return True


def _target(server: FakeImapServer) -> "imapload.Target":
    return imapload.Target("127.0.0.1", server.port, "127.0.0.1")


def _config(server, mix, password=PASSWORD, **overrides):
    settings = {
        "mix": mix, "target": _target(server), "users": [(USER, password)], "concurrency": 4,
        "duration": 0.3, "max_ops": 100_000, "sizes": SIZES, "grace": 1.0, "noop_interval": 0.05,
    }
    settings.update(overrides)
    return imapload.LoadConfig(**settings)


def _prepare(server, **kwargs):
    return asyncio.run(imapload.prepare(_target(server), USER, PASSWORD, "bench", SIZES, 2, **kwargs))


@pytest.fixture(name="server")
def fixture_server():
    with FakeImapServer() as server:
        yield server


def test_make_message_has_exact_size_and_marker():
    for size in (512, 513, 2048, 65536, 100_001):
        message = imapload.make_message(size, 3)
        assert len(message) == size
        assert b"[mailmesh-bench size=%d n=3]" % size in message
        assert message.endswith(b"\r\n") and b"\r\n\r\n" in message
    assert imapload.make_message(2048, 0) == imapload.make_message(2048, 0)


def test_parse_sizes_and_percentile():
    assert imapload.parse_sizes("2k,64k,1m") == [2048, 65536, 1 << 20]
    with pytest.raises(ValueError):
        imapload.parse_sizes("64g")
    assert imapload.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert imapload.percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert imapload.percentile([], 50) is None


@pytest.mark.parametrize("literal_plus", [False, True], ids=["synchronizing", "literal-plus"])
def test_prepare_appends_corpus_once(literal_plus):
    with FakeImapServer(literal_plus=literal_plus) as server:
        first = _prepare(server)
        second = _prepare(server)
        assert (first["appended"], first["created"]) == (4, True)
        assert (second["appended"], second["present"], second["created"]) == (0, 4, False)
        assert sorted(len(m) for m in server.mailboxes["bench"]) == [2048, 2048, 65536, 65536]
        used = "nonsync" if literal_plus else "sync"
        assert server.literals[used] == 4 and sum(server.literals.values()) == 4


def test_login_mix_runs_without_errors(server):
    report = asyncio.run(imapload.run_load(_config(server, "login")))
    assert report["ops"] > 0 and report["errors"] == 0, report
    assert report["ops_per_s"] > 0 and report["p50_ms"] <= report["p99_ms"]
    assert report["bytes_per_s"] > 0 and report["capped_by"] == "time"
    assert server.connections >= report["ops"]


def test_fetch_mix_runs_without_errors(server):
    _prepare(server)
    connections_before = server.connections
    report = asyncio.run(imapload.run_load(_config(server, "fetch")))
    assert report["ops"] > 0 and report["errors"] == 0, report
    assert report["sessions"] == 4 and server.connections - connections_before == 4  # long sessions
    assert report["bytes_rx"] >= report["ops"] * min(SIZES)
    assert json.loads(json.dumps(report)) == report


def test_fetch_mix_without_corpus_is_fatal(server):
    report = asyncio.run(imapload.run_load(_config(server, "fetch", mailbox="INBOX")))
    assert report["ops"] == 0 and "--prepare" in report["fatal"]


@pytest.mark.parametrize("state", ["authenticated", "greeting"])
def test_hold_mix_keeps_sessions_open(server, state):
    report = asyncio.run(imapload.run_load(_config(server, "hold", concurrency=5, hold_state=state)))
    assert report["sessions"] == 5 and report["errors"] == 0 and report["ops"] >= 5, report
    assert server.connections == 5 and server.logins == (5 if state == "authenticated" else 0)


def test_hold_mix_logs_broken_sessions_in_again_and_records_the_outage(server):
    cfg = _config(server, "hold", concurrency=2, duration=2.5)

    def break_sessions():
        time.sleep(0.4)
        server.refuse_logins = 3
        started = time.time()
        server.drop_all()
        return started

    result = {}
    breaker = threading.Thread(target=lambda: result.update(dropped=break_sessions()))
    breaker.start()
    report = asyncio.run(imapload.run_load(cfg))
    breaker.join()
    outages = report["outages"]
    assert sorted(o["session"] for o in outages) == [0, 1], report
    assert sum(o["failed"] for o in outages) == 3 and report["errors"] == 2 + 3, report
    for outage in outages:
        assert result["dropped"] <= outage["lost"] <= outage["back"] < result["dropped"] + 2.0, outage
        assert set(outage["kinds"]) <= {"login"} and outage["stage"] == "noop", outage
    assert report["sessions"] == 4 and server.logins == 2 + 3 + 2


def test_rate_paces_operations(server):
    report = asyncio.run(imapload.run_load(_config(server, "login", rate=20.0, duration=0.5)))
    assert 8 <= report["ops"] <= 11 and report["errors"] == 0, report


def test_operation_cap_holds(server):
    _prepare(server)
    for mix in ("login", "fetch"):
        report = asyncio.run(imapload.run_load(_config(server, mix, max_ops=7, duration=5.0)))
        assert (report["ops"], report["errors"], report["capped_by"]) == (7, 0, "ops"), report
        assert report["wall_s"] < 2.0


def test_time_cap_holds_with_a_slow_server():
    with FakeImapServer(delay=0.05) as server:
        started = time.monotonic()
        report = asyncio.run(imapload.run_load(_config(server, "login", duration=0.3, grace=0.2)))
        elapsed = time.monotonic() - started
    assert report["capped_by"] == "time" and report["errors"] == 0
    assert elapsed < 0.3 + 0.2 + 0.3, elapsed  # duration + grace + closing
    assert report["ops"] > 0


@pytest.mark.parametrize("mix", ["login", "fetch"])
def test_wrong_password_is_an_error(server, mix):
    report = asyncio.run(imapload.run_load(_config(server, mix, password="wrong", duration=0.3, max_ops=20)))
    assert report["ops"] == 0 and report["errors"] > 0, report
    assert set(report["error_kinds"]) == {"login"}
    assert report["errors"] <= 20  # failed logins count against the operation cap


def test_cli_prints_one_json_line_and_fails_on_errors(server, capsys, monkeypatch):
    monkeypatch.setenv("IMAPLOAD_TEST_PASSWORD", PASSWORD)
    common = ["--host", "127.0.0.1", "--port", str(server.port), "--user", USER, "--duration", "0.3",
              "--concurrency", "2", "--sizes", "2k,64k", "--copies", "1", "--label", "direct"]
    assert imapload.main(common + ["--password-env", "IMAPLOAD_TEST_PASSWORD", "--prepare", "--mix", "fetch"]) == 0
    prepared, report = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert prepared["appended"] == 2 and report["path"] == "direct" and report["ops"] > 0
    assert imapload.main(common + ["--password", "nope", "--mix", "login"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] > 0


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "172.18.0.5", "192.168.1.2", "10.1.2.3"])
def test_guard_allows_loopback_and_private(address):
    assert imapload.check_target(address, 143) == address


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "169.254.1.1"])
def test_guard_refuses_public_addresses(address):
    with pytest.raises(imapload.TargetError, match="refusing"):
        imapload.check_target(address, 993)
    assert imapload.check_target(address, 993, allow_hosts=(address,)) == address


def test_cli_refuses_public_target_before_connecting(capsys):
    assert imapload.main(["--host", "8.8.8.8", "--tls", "--user", USER, "--password", "x", "--mix", "login"]) == 2
    assert "refusing 8.8.8.8" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--concurrency", "501"], ["--duration", "601"], ["--max-ops", "0"]])
def test_cli_refuses_unbounded_runs(option):
    with pytest.raises(SystemExit) as excinfo:
        imapload.main(["--host", "127.0.0.1", "--user", USER, "--password", "x", "--mix", "login"] + option)
    assert excinfo.value.code == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_cafile_and_servername(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=fake-store", "-addext", "subjectAltName=DNS:fake-store",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with FakeImapServer(ssl_context=server_context) as server:
        target = imapload.Target("127.0.0.1", server.port, "127.0.0.1", client_context, "fake-store")
        report = asyncio.run(imapload.run_load(_config(server, "login", target=target, concurrency=2, duration=0.3)))
        assert report["ops"] > 0 and report["errors"] == 0 and report["tls"], report
        wrong = imapload.Target("127.0.0.1", server.port, "127.0.0.1", client_context, "other-name")
        report = asyncio.run(imapload.run_load(_config(server, "login", target=wrong, max_ops=3, duration=1.0)))
        assert report["ops"] == 0 and set(report["error_kinds"]) == {"tls"}, report
