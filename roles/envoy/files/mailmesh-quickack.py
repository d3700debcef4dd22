# Managed by Ansible (mailmesh.imap, role envoy).
"""Turn on TCP quick ACKs on the routes where Envoy receives NGINX's data.

NGINX's mail proxy never sets TCP_NODELAY and Envoy delays its ACKs, so every FETCH or
APPEND larger than NGINX's buffer would stall about 40 ms. `quickack 1` on the route
the receiving side uses removes the stall.

  python3 mailmesh-quickack.py [--loopback] [PEER ...]

--loopback   the local table's 127.0.0.0/8 and 127.0.0.1 (gateway: NGINX -> Envoy)
PEER         a host name or address: a /32 route to each of its IPv4 addresses, copied
             from the route the kernel uses now, plus quickack (edge: -> gateways)
"""

import json
import socket
import subprocess
import sys
import time


def ip(*args):
    return subprocess.run(["ip"] + list(args), check=True, capture_output=True,
                          text=True).stdout


def loopback():
    for dst in ("127.0.0.0/8", "127.0.0.1"):
        ip("route", "change", "local", dst, "dev", "lo", "table", "local", "proto", "kernel",
           "scope", "host", "src", "127.0.0.1", "quickack", "1")
        print("quickack on local %s" % dst)


def addresses(peer, attempts=30):
    for attempt in range(attempts):
        try:
            infos = socket.getaddrinfo(peer, None, socket.AF_INET, socket.SOCK_STREAM)
            return sorted(set(info[4][0] for info in infos))
        except socket.gaierror as exc:
            if attempt == attempts - 1:
                raise SystemExit("mailmesh-quickack: cannot resolve %s: %s" % (peer, exc))
            time.sleep(1)
    return []


def peer_route(address):
    route = json.loads(ip("-j", "route", "get", address))[0]
    if route.get("dev") == "lo":
        return  # this host: the loopback routes cover it
    cmd = ["route", "replace", address + "/32"]
    if route.get("gateway"):
        cmd += ["via", route["gateway"]]
    cmd += ["dev", route["dev"]]
    if route.get("prefsrc"):
        cmd += ["src", route["prefsrc"]]
    ip(*(cmd + ["quickack", "1"]))
    print("quickack on %s dev %s" % (address, route["dev"]))


def main(argv):
    peers = [arg for arg in argv if arg != "--loopback"]
    if "--loopback" in argv:
        loopback()
    for peer in peers:
        for address in addresses(peer):
            peer_route(address)


if __name__ == "__main__":
    main(sys.argv[1:])
