"""Runs inside a container: connect to a Dovecot proxy listener, send a PROXY v1
header, then CAPABILITY and LOGIN; prints one JSON line with what happened."""
import json
import socket
import sys

host, port, header, user, password = sys.argv[1:6]
result = {"greeting": "", "login": "", "error": ""}
try:
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(header.encode() + b"\r\n")
    reader = sock.makefile("rb")
    result["greeting"] = reader.readline().decode(errors="replace").strip()
    if result["greeting"]:
        sock.sendall(("a1 LOGIN %s %s\r\n" % (user, password)).encode())
        while True:
            line = reader.readline().decode(errors="replace").strip()
            if not line or line.startswith("a1 ") or line.startswith("* BAD"):
                result["login"] = line
                break
        sock.sendall(b"a2 LOGOUT\r\n")
except OSError as exc:
    result["error"] = repr(exc)
print(json.dumps(result))
