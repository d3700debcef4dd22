"""Runs inside a container: connect to a Dovecot proxy listener, send a PROXY v1
header, then LOGIN; prints one JSON line with what happened (and how many seconds the
LOGIN's answer took). An optional sixth argument repeats it that many times, one
connection after the other, and prints a JSON list."""
import json
import socket
import sys
import time

host, port, header, user, password = sys.argv[1:6]
count = int(sys.argv[6]) if len(sys.argv) > 6 else 0


def probe():
    result = {"greeting": "", "login": "", "error": "", "login_seconds": None}
    try:
        sock = socket.create_connection((host, int(port)), timeout=20)
        sock.sendall(header.encode() + b"\r\n")
        reader = sock.makefile("rb")
        result["greeting"] = reader.readline().decode(errors="replace").strip()
        if result["greeting"]:
            started = time.monotonic()
            sock.sendall(("a1 LOGIN %s %s\r\n" % (user, password)).encode())
            while True:
                line = reader.readline().decode(errors="replace").strip()
                if not line or line.startswith("a1 ") or line.startswith("* BAD"):
                    result["login"] = line
                    result["login_seconds"] = round(time.monotonic() - started, 3)
                    break
            sock.sendall(b"a2 LOGOUT\r\n")
        sock.close()
    except OSError as exc:
        result["error"] = repr(exc)
    return result


print(json.dumps([probe() for _ in range(count)] if count else probe()))
