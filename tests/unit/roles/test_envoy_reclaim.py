"""roles/envoy/files/mailmesh-envoy-reclaim.py: which pages it asks for, what it says.

The kernel call itself is exercised by tests/integration/test_envoy_config.py against a
running Envoy; here it is replaced, so these tests run anywhere.
"""

from __future__ import annotations

import errno
import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "roles/envoy/files/mailmesh-envoy-reclaim.py"
BINARY = "/usr/local/bin/envoy"

MAPS = """\
55d0c0000000-55d0c1000000 r--p 00000000 fd:01 1234 /usr/local/bin/envoy
55d0c1000000-55d0c3400000 r-xp 01000000 fd:01 1234 /usr/local/bin/envoy
55d0c3400000-55d0c3600000 r--p 03400000 fd:01 1234 /usr/local/bin/envoy
55d0c3600000-55d0c3700000 rw-p 03600000 fd:01 1234 /usr/local/bin/envoy
55d0c3700000-55d0c3800000 rw-p 00000000 00:00 0
7f0000000000-7f0000200000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000400000-7f0000500000 r--p 00000000 fd:01 77 /usr/local/bin/envoy.old (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
"""

STATUS = """\
Name:\tenvoy
VmPeak:\t 2310120 kB
VmRSS:\t   69720 kB
RssAnon:\t   17204 kB
RssFile:\t   52428 kB
RssShmem:\t      88 kB
Threads:\t9
"""


@pytest.fixture(scope="module")
def reclaim():
    spec = importlib.util.spec_from_file_location("mailmesh_envoy_reclaim", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_the_binarys_read_only_mappings_are_chosen(reclaim):
    assert reclaim.read_only_mappings(MAPS, BINARY) == [
        (0x55D0C0000000, 0x1000000),
        (0x55D0C1000000, 0x2400000),
        (0x55D0C3400000, 0x200000),
    ]


def test_no_mapping_of_another_path(reclaim):
    assert reclaim.read_only_mappings(MAPS, "/usr/bin/envoy") == []


def test_memory_in_mib(reclaim):
    assert reclaim.memory_mib(STATUS) == {"VmRSS": 68, "RssFile": 51}


def test_batches_respect_the_kernels_vector_limit(reclaim):
    ranges = [(index * 4096, 4096) for index in range(2500)]
    sizes = [len(batch) for batch in reclaim.batches(ranges)]
    assert sizes == [1024, 1024, 452]
    assert [r for batch in reclaim.batches(ranges) for r in batch] == ranges


@pytest.mark.parametrize("code, words", [
    (errno.ENOSYS, "Linux 5.10"),
    (errno.EPERM, "CAP_SYS_NICE and CAP_SYS_PTRACE"),
    (errno.EINVAL, "MADV_PAGEOUT"),
    (errno.ESRCH, "gone"),
])
def test_refusals_say_why(reclaim, code, words):
    assert words in reclaim.refusal(code)


def _fake_proc(monkeypatch, reclaim, statuses):
    files = {"/proc/42/maps": [MAPS], "/proc/42/status": list(statuses)}
    monkeypatch.setattr(reclaim, "read", lambda path: files[path].pop(0))
    monkeypatch.setattr(reclaim.os.path, "realpath", lambda path: path)


def test_main_reports_before_and_after(monkeypatch, capsys, reclaim):
    after = STATUS.replace("69720", "20480").replace("52428", "3072")
    _fake_proc(monkeypatch, reclaim, [STATUS, after])
    asked = []
    monkeypatch.setattr(reclaim, "page_out", lambda pid, ranges: asked.append((pid, ranges)))
    assert reclaim.main(["--pid", "42", "--binary", BINARY]) == 0
    assert asked == [(42, reclaim.read_only_mappings(MAPS, BINARY))]
    assert capsys.readouterr().out == (
        "envoy pid 42: reclaimed the binary's start-up pages: "
        "RSS 68 -> 20 MiB (file-backed 51 -> 3 MiB)\n")


def test_a_refusal_is_reported_and_does_not_fail_the_unit(monkeypatch, capsys, reclaim):
    _fake_proc(monkeypatch, reclaim, [STATUS])

    def refuse(_pid, _ranges):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(reclaim, "page_out", refuse)
    assert reclaim.main(["--pid", "42", "--binary", BINARY]) == 0
    out = capsys.readouterr().out
    assert out.startswith("envoy pid 42: start-up pages not reclaimed: not permitted")


def test_not_ready_reclaims_nothing(monkeypatch, capsys, reclaim):
    monkeypatch.setattr(reclaim, "wait_ready", lambda url, timeout, admin_socket="": False)
    monkeypatch.setattr(reclaim, "page_out", lambda pid, ranges: pytest.fail("paged out"))
    assert reclaim.main(["--pid", "42", "--binary", BINARY,
                         "--ready-url", "http://127.0.0.1:9901/ready", "--timeout", "1"]) == 0
    assert capsys.readouterr().out == "envoy pid 42: not ready within 1s; nothing reclaimed\n"


def test_a_process_without_the_binary_is_left_alone(monkeypatch, capsys, reclaim):
    _fake_proc(monkeypatch, reclaim, [STATUS])
    monkeypatch.setattr(reclaim, "page_out", lambda pid, ranges: pytest.fail("paged out"))
    assert reclaim.main(["--pid", "42", "--binary", "/opt/other/envoy"]) == 0
    assert "no read-only mapping of /opt/other/envoy" in capsys.readouterr().out
