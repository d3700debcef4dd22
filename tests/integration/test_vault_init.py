"""vault_init against a real, uninitialized OpenBao server (``bao_fresh``)."""

import os
import secrets
import subprocess
import time

import requests

from ansible_collections.mailmesh.imap.tests.integration._support import run_quietly


def _restart(server):
    """Stop the server process and start it again on the same config: it comes back sealed."""
    server.proc.terminate()
    server.proc.wait(timeout=10)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    server.proc = subprocess.Popen(  # pylint: disable=consider-using-with
        server.proc.args, stdout=server.log, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return requests.get(server.url + "/v1/sys/seal-status", timeout=2).json()
        except (requests.RequestException, ValueError):
            time.sleep(0.2)
    raise RuntimeError("bao did not come back")


def test_vault_init_lifecycle(bao_fresh, run_module, tmp_path):
    url = bao_fresh.url
    args = {"url": url, "secret_shares": 3, "secret_threshold": 2}

    # check mode: would initialize, does nothing
    result = run_module("vault_init", args, check=True)
    assert not result.failed, result
    assert result.changed
    assert result["initialized"] is False
    assert "unseal_keys" not in result and "root_token" not in result
    assert requests.get(url + "/v1/sys/init", timeout=5).json()["initialized"] is False

    # create, as a no_log task: the secrets reach the registered variable only
    init, stdout = run_quietly(tmp_path, "vault_init", args)
    assert init["changed"] is True
    assert init["initialized"] is True and init["sealed"] is False
    assert len(init["unseal_keys"]) == 3
    assert init["root_token"]
    for secret in init["unseal_keys"] + [init["root_token"]]:
        assert secret not in stdout
    status = requests.get(url + "/v1/sys/seal-status", timeout=5).json()
    assert status["initialized"] and not status["sealed"]

    # repeat: nothing to do, no secrets returned
    result = run_module("vault_init", args)
    assert not result.failed, result
    assert not result.changed
    assert "unseal_keys" not in result and "root_token" not in result
    result = run_module("vault_init", args, check=True)
    assert not result.changed

    # restart: sealed again
    assert _restart(bao_fresh)["sealed"] is True

    # missing keys: a clear error naming unseal_keys and the URL
    result = run_module("vault_init", args)
    assert result.failed
    assert "unseal_keys" in result["msg"] and url in result["msg"]

    # wrong keys: a clear error, still sealed
    wrong = [secrets.token_hex(33), secrets.token_hex(33)]
    result = run_module("vault_init", dict(args, unseal_keys=wrong))
    assert result.failed, result
    assert "unseal_keys" in result["msg"] and url in result["msg"]
    for key in wrong:
        assert key not in result["_stdout"]
    # too few keys
    result = run_module("vault_init", dict(args, unseal_keys=init["unseal_keys"][:1]))
    assert result.failed
    assert "unseal_keys" in result["msg"] and "still sealed" in result["msg"]
    assert requests.get(url + "/v1/sys/seal-status", timeout=5).json()["sealed"] is True

    # check mode: would unseal, does not
    result = run_module("vault_init", dict(args, unseal_keys=init["unseal_keys"]), check=True)
    assert not result.failed, result
    assert result.changed and result["sealed"] is True
    assert requests.get(url + "/v1/sys/seal-status", timeout=5).json()["sealed"] is True

    # unseal with the right keys (the progress left by the failures is reset first)
    result = run_module("vault_init", dict(args, unseal_keys=init["unseal_keys"]))
    assert not result.failed, result
    assert result.changed and result["sealed"] is False
    assert "unseal_keys" not in result and "root_token" not in result
    # the module masks the keys in its own invocation
    assert result["invocation"]["module_args"]["unseal_keys"] != init["unseal_keys"]
    for key in init["unseal_keys"]:
        assert key not in result["_stdout"]

    # repeat: unsealed, nothing to do
    result = run_module("vault_init", dict(args, unseal_keys=init["unseal_keys"]))
    assert not result.failed and not result.changed

    # wait_ready: the health check in the same call (not in check mode); an unseal that
    # fails is still that failure, an unseal that works is ready at once
    result = run_module("vault_init", dict(args, wait_ready=True))
    assert not result.failed and not result.changed and result["ready"] is True, result
    assert "ready" not in run_module("vault_init", dict(args, wait_ready=True), check=True)
    assert _restart(bao_fresh)["sealed"] is True
    result = run_module("vault_init", dict(args, wait_ready=True, unseal_keys=init["unseal_keys"][:1], wait_timeout=2))
    assert result.failed and "still sealed" in result["msg"]
    result = run_module("vault_init", dict(args, wait_ready=True, unseal_keys=init["unseal_keys"]))
    assert not result.failed and result.changed and result["ready"] is True, result
