# Managed by Ansible (mailmesh.imap, role envoy).
"""Reclaim the pages of the envoy binary that Envoy touched only while starting.

Envoy's release build registers every extension it carries when it starts, and so maps
in about 50 MiB of the binary's code and read-only data; a sidecar runs less than half
of that afterwards. They are clean file pages: the kernel drops them when memory runs
short, but until then they count in Envoy's resident memory and hold the page cache. Once Envoy is ready, this
asks the kernel to reclaim them now (process_madvise with MADV_PAGEOUT, Linux 5.10 or
later). A page Envoy still uses comes back on its next touch, from the page cache or the
disk; the binary's writable data and Envoy's own memory are left alone.

  python3 mailmesh-envoy-reclaim.py --pid PID --binary PATH
                                    [--admin-socket PATH | --ready-url URL]
                                    [--timeout SECONDS]

It runs as the unit's ExecStartPost, as root (CAP_SYS_NICE and CAP_SYS_PTRACE). It prints
one line and exits 0 even when the kernel refuses: a memory saving must not stop the
service.
"""

import argparse
import ctypes
import errno
import http.client
import os
import platform
import socket
import sys
import time
import urllib.error
import urllib.request

MADV_PAGEOUT = 21
# process_madvise has the same number in the generic table (arm64) and on x86_64.
SYSCALL_NUMBERS = {"x86_64": 440, "aarch64": 440}
IOV_MAX = 1024


class IoVec(ctypes.Structure):  # pylint: disable=too-few-public-methods
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def read_only_mappings(maps_text, binary):
    """[(start, length)] of the mappings of `binary` that are not writable."""
    ranges = []
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[5].strip() != binary or "w" in fields[1]:
            continue
        start, end = (int(value, 16) for value in fields[0].split("-"))
        ranges.append((start, end - start))
    return ranges


def memory_mib(status_text):
    """VmRSS and RssFile of /proc/PID/status, in MiB (rounded down)."""
    values = {}
    for line in status_text.splitlines():
        key, _sep, rest = line.partition(":")
        if key in ("VmRSS", "RssFile"):
            values[key] = int(rest.split()[0]) // 1024
    return values


def batches(ranges, size=IOV_MAX):
    for index in range(0, len(ranges), size):
        yield ranges[index:index + size]


def refusal(code):
    """What to say when the kernel refuses; code is an errno value."""
    hints = {
        errno.ENOSYS: "no process_madvise here (Linux 5.10 or later needed; qemu-user has none)",
        errno.EPERM: "not permitted (needs CAP_SYS_NICE and CAP_SYS_PTRACE)",
        errno.EINVAL: "the kernel does not know MADV_PAGEOUT (Linux 5.4 or later needed)",
        errno.ESRCH: "the process is gone",
    }
    return hints.get(code, os.strerror(code))


def page_out(pid, ranges):
    """Ask the kernel to reclaim `ranges` of `pid`; raises OSError when it refuses."""
    number = SYSCALL_NUMBERS.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, "no process_madvise number for %s" % platform.machine())
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for batch in batches(ranges):
            vectors = (IoVec * len(batch))(*[IoVec(start, length) for start, length in batch])
            done = libc.syscall(ctypes.c_long(number), ctypes.c_int(pidfd), vectors,
                                ctypes.c_size_t(len(batch)), ctypes.c_int(MADV_PAGEOUT),
                                ctypes.c_uint(0))
            if done < 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
    finally:
        os.close(pidfd)


def ready_on_socket(path, timeout):
    """(status, body) of GET /ready on Envoy's admin Unix socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    connection = http.client.HTTPConnection("localhost", timeout=timeout)
    try:
        sock.connect(path)
        connection.sock = sock
        connection.request("GET", "/ready")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
        sock.close()


def ready_on_url(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def wait_ready(url, timeout, admin_socket=""):
    """True once Envoy's admin /ready (on the Unix socket `admin_socket`, else at `url`)
    answers 200 LIVE, False after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if admin_socket:
                status, body = ready_on_socket(admin_socket, 2)
            else:
                status, body = ready_on_url(url, 2)
            if status == 200 and body.strip() == b"LIVE":
                return True
        except (OSError, http.client.HTTPException, urllib.error.URLError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def read(path):
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pid", type=int, required=True, help="Envoy's PID ($MAINPID)")
    parser.add_argument("--binary", required=True, help="the envoy binary's path")
    parser.add_argument("--admin-socket", default="",
                        help="Envoy's admin Unix socket: wait until its /ready answers LIVE")
    parser.add_argument("--ready-url", default="", help="wait until this answers LIVE")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    args = parser.parse_args(argv)
    prefix = "envoy pid %d:" % args.pid

    waiting = args.admin_socket or args.ready_url
    if waiting and not wait_ready(args.ready_url, args.timeout, args.admin_socket):
        print("%s not ready within %gs; nothing reclaimed" % (prefix, args.timeout))
        return 0
    try:
        binary = os.path.realpath(args.binary)
        before = memory_mib(read("/proc/%d/status" % args.pid))
        ranges = read_only_mappings(read("/proc/%d/maps" % args.pid), binary)
        if not ranges:
            print("%s no read-only mapping of %s; nothing reclaimed" % (prefix, binary))
            return 0
        page_out(args.pid, ranges)
        after = memory_mib(read("/proc/%d/status" % args.pid))
    except OSError as exc:
        print("%s start-up pages not reclaimed: %s" % (prefix, refusal(exc.errno or 0)))
        return 0
    print("%s reclaimed the binary's start-up pages: RSS %d -> %d MiB (file-backed %d -> %d MiB)"
          % (prefix, before.get("VmRSS", 0), after.get("VmRSS", 0),
             before.get("RssFile", 0), after.get("RssFile", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
