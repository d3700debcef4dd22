"""Prove a raft snapshot against an init file without touching the cluster
(playbooks/vault_restore.yml; runs on a Vault node, as root).

Reads one JSON object on stdin (never on the command line: it holds secrets):
binary, config (the node's server configuration), snapshot (path), user (the service
account the throwaway server runs as), keys (Shamir unseal shares of the init file),
static_key, admin {role_id, secret_id}, approle_mount, timeout (seconds).

Starts a throwaway server of the node's own binary in a new private directory: raft
storage there, a TLS-less listener on a free loopback port, the node's seal stanza (with
the static seal, pointed at a copy of the init file's key). Initializes it with one
throwaway share, restores the snapshot into it with snapshot-force, then checks that it
unseals with the init file's material and that the init file's admin AppRole logs in.
The server is stopped and its directory removed whatever happens.

Prints one JSON line, never a secret: {"verdict": "sound" | "wrong_unseal_material" |
"another_cluster" | "error", "seal": ..., "message": ...}; exit status 0 only when sound.
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

__all__ = ["seal_stanza", "throwaway_config", "main"]


def seal_stanza(config_text):
    """The node's `seal "<type>" { ... }` block, as text, and its type; ("", "shamir")
    when the configuration has none (the role writes it with `}` alone at the start of
    its closing line)."""
    lines = config_text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith('seal "'):
            seal_type = line.split('"')[1]
            block = [line]
            for rest in lines[index + 1:]:
                block.append(rest)
                if rest.startswith("}"):
                    return "\n".join(block) + "\n", seal_type
            raise ValueError("the seal stanza of the configuration does not end")
    return "", "shamir"


def throwaway_config(directory, port, cluster_port, stanza, static_key_file=None):
    """The throwaway server's configuration: raft in `directory`, loopback only, no TLS
    (nothing leaves the host), no audit device, the given seal stanza; with the static
    seal, current_key points at static_key_file."""
    if static_key_file:
        stanza = "\n".join(
            '  current_key    = "file://%s"' % static_key_file if line.strip().startswith("current_key ")
            or line.strip().startswith("current_key=") else line
            for line in stanza.splitlines()) + "\n"
    return (
        'storage "raft" {\n  path    = "%(dir)s/raft"\n  node_id = "mailmesh-restore-proof"\n}\n\n'
        'listener "tcp" {\n  address         = "127.0.0.1:%(port)d"\n'
        '  cluster_address = "127.0.0.1:%(cport)d"\n  tls_disable     = true\n}\n\n'
        'api_addr      = "http://127.0.0.1:%(port)d"\ncluster_addr  = "https://127.0.0.1:%(cport)d"\n'
        'disable_mlock = true\nui            = false\n\n%(seal)s'
    ) % {"dir": directory, "port": port, "cport": cluster_port, "seal": stanza}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """The throwaway server's HTTP API on loopback."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d/v1/" % port

    def call(self, method, path, token=None, body=None, data=None, timeout=30):
        """(status, JSON answer); status 0 when nothing answered."""
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except OSError as exc:
            return 0, {"errors": [str(exc)]}
        try:
            return status, json.loads(text) if text.strip() else {}
        except ValueError:
            return status, {"errors": [text[:200].decode(errors="replace")]}


def _errors(answer):
    return "; ".join(str(error) for error in answer.get("errors", [])) or "no error given"


def _until(deadline, check, pause=0.5):
    """check() until it returns something true or the deadline passed (then None)."""
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            return None
        time.sleep(pause)


def prove(request, workdir):
    """The verdict for the snapshot (a dict without secrets); starts and stops the server."""
    with open(request["config"], encoding="utf-8") as handle:
        stanza, seal = seal_stanza(handle.read())
    account = pwd.getpwnam(request.get("user") or "root")
    static_key_file = None
    if seal == "static" and request.get("static_key"):
        static_key_file = os.path.join(workdir, "static-seal.key")
        with open(os.open(static_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "w") as handle:
            handle.write(request["static_key"])
    os.mkdir(os.path.join(workdir, "raft"), 0o700)
    port, cluster_port = _free_port(), _free_port()
    config_file = os.path.join(workdir, "server.hcl")
    with open(os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(throwaway_config(workdir, port, cluster_port, stanza, static_key_file))
    for path in [workdir, os.path.join(workdir, "raft"), config_file] + ([static_key_file] if static_key_file else []):
        os.chown(path, account.pw_uid, account.pw_gid)
    result = {"verdict": "error", "seal": seal}
    deadline = time.monotonic() + int(request.get("timeout", 60))
    argv = [request["binary"], "server", "-config", config_file]
    with open(os.path.join(workdir, "server.log"), "wb") as log:
        processes = []

        def start():
            processes.append(subprocess.Popen(  # pylint: disable=consider-using-with
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, user=account.pw_uid,
                group=account.pw_gid, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": workdir}, cwd=workdir))

        def restart():
            _stop(processes[-1])
            start()

        start()
        try:
            result.update(_prove_with(_Server(port), seal, request, deadline, restart))
        finally:
            _stop(processes[-1])
    return result


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _prove_with(server, seal, request, deadline, restart):
    if not _until(deadline, lambda: server.call("GET", "sys/seal-status")[0] == 200):
        return {"message": "the throwaway server did not start within the timeout"}
    shares = {"recovery_shares": 1, "recovery_threshold": 1} if seal != "shamir" else \
        {"secret_shares": 1, "secret_threshold": 1}
    status, init = server.call("POST", "sys/init", body=shares)
    if status != 200:
        return {"message": "the throwaway server did not initialize: HTTP %d: %s" % (status, _errors(init))}
    if seal == "shamir":
        server.call("POST", "sys/unseal", body={"key": init["keys"][0]})
    root = init["root_token"]
    if not _until(deadline, lambda: server.call("GET", "sys/health")[0] == 200):
        return {"message": "the throwaway server did not become active within the timeout"}
    with open(request["snapshot"], "rb") as handle:
        status, answer = server.call("POST", "sys/storage/raft/snapshot-force", root, data=handle.read(),
                                     timeout=max(30, int(deadline - time.monotonic())))
    if status not in (200, 204):
        return {"message": "the server refused the snapshot: HTTP %d: %s" % (status, _errors(answer))}

    # Applied once the throwaway token store is gone (its root token refused) or the
    # server sealed itself (the snapshot's keyring does not open with this seal).
    def applied():
        sealed = server.call("GET", "sys/seal-status")[1].get("sealed")
        if sealed:
            return "sealed"
        return "open" if server.call("GET", "auth/token/lookup-self", root)[0] == 403 else None
    state = _until(deadline, applied)
    if state is None:
        return {"message": "the restored snapshot was not applied within the timeout"}
    if state == "sealed":
        if seal != "shamir":
            return {"verdict": "wrong_unseal_material",
                    "message": "the snapshot's data does not open with the %s seal's key of the init file" % seal}
        # The server still holds the throwaway seal configuration (one share, which
        # takes a share for a whole key): a restart reads the snapshot's.
        restart()
        if not _until(deadline, lambda: server.call("GET", "sys/seal-status")[0] == 200):
            return {"message": "the throwaway server did not start again within the timeout"}
        for key in request.get("keys") or []:
            status, answer = server.call("POST", "sys/unseal", body={"key": key})
            if status != 200:
                return {"verdict": "wrong_unseal_material",
                        "message": "the init file's unseal shares do not open the snapshot's data: %s" % _errors(answer)}
            if not answer.get("sealed", True):
                break
        else:
            return {"verdict": "wrong_unseal_material",
                    "message": "the init file's %d unseal shares do not unseal the snapshot's data"
                               % len(request.get("keys") or [])}
    login = "auth/%s/login" % request.get("approle_mount", "approle")
    admin = request.get("admin") or {}

    def logged_in():
        credentials = {"role_id": admin.get("role_id", ""), "secret_id": admin.get("secret_id", "")}
        status, answer = server.call("POST", login, body=credentials)
        # 3xx (a standby's redirect), 5xx (sealed, no leader yet), 0: not yet.
        return (status, answer) if status == 200 or 400 <= status < 500 else None
    answer = _until(deadline, logged_in)
    if answer is None:
        return {"message": "the restored server did not answer the admin login within the timeout"}
    if answer[0] != 200:
        return {"verdict": "another_cluster",
                "message": "the init file's admin AppRole is refused by the snapshot's data (HTTP %d: %s)"
                           % (answer[0], _errors(answer[1]))}
    return {"verdict": "sound", "message": "the snapshot unseals with the init file's material and its admin AppRole logs in"}


def main():
    try:
        request = json.load(sys.stdin)
    except ValueError as exc:
        print(json.dumps({"verdict": "error", "message": "no request on stdin: %s" % exc}))
        return 2
    workdir = tempfile.mkdtemp(prefix="mailmesh-restore-proof-")
    try:
        result = prove(request, workdir)
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        result = {"verdict": "error", "message": "%s: %s" % (type(exc).__name__, exc)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, sort_keys=True))
    return 0 if result["verdict"] == "sound" else 1


if __name__ == "__main__":
    sys.exit(main())
