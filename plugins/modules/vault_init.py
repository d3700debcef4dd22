#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_init
short_description: Initialize and unseal a Vault or OpenBao server
version_added: 0.1.0
description:
  - Initializes a Vault/OpenBao server with Shamir unseal keys when it is not
    initialized yet, then unseals it with the new keys.
  - With an auto-unseal seal (OpenBao's C(static) seal, C(transit), a cloud KMS; the
    server reports C(recovery_seal)), initializes it with Shamir I(recovery) keys and
    waits until the seal has unsealed it.
  - Unseals an initialized but sealed server with O(unseal_keys); an auto-unseal server
    is waited for instead.
  - With O(initialize=false) (a node joining a raft cluster through C(retry_join)), never
    initializes; waits until the node learned the cluster's seal from its leader, then
    unseals it as above.
  - Does nothing to an initialized, unsealed server.
  - No authentication is needed (the init and unseal endpoints are unauthenticated);
    the shared auth options are accepted and ignored.
  - "B(Secrets in the result:) set C(no_log: true) on the task. The module returns the unseal keys and the
    root token once, right after it initialized the server; it never writes them
    anywhere. Storing them safely is the playbook's job."
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reports whether it would initialize or unseal, and does neither.
  diff_mode:
    support: none
    description: Nothing to compare; secrets are never shown in a diff.
options:
  secret_shares:
    description:
      - Number of unseal key shares to create when initializing.
    type: int
    default: 5
  secret_threshold:
    description:
      - Number of key shares needed to unseal.
    type: int
    default: 3
  unseal_keys:
    description:
      - Unseal keys (hex or base64) used when the server is initialized but sealed.
      - Ignored when the server is not initialized (the new keys are used) or unsealed,
        and with an auto-unseal seal.
    type: list
    elements: str
  recovery_shares:
    description:
      - Number of recovery key shares to create when initializing a server with an
        auto-unseal seal (they authorize C(operator generate-root), not unsealing).
    type: int
    default: 5
  recovery_threshold:
    description:
      - Number of recovery key shares needed.
    type: int
    default: 3
  initialize:
    description:
      - Whether to initialize an uninitialized server. V(false) for the other nodes of a
        raft cluster, which join the first one and must never start a cluster of their own.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for a joining node to learn the seal (O(initialize=false)), for
        an auto-unseal seal to unseal the server, and for a joining node to finish its
        unseal once it took the unseal keys.
    type: int
    default: 90
  wait_ready:
    description:
      - After the rest (also when there was nothing to do), wait until the server answers
        C(sys/health?standbyok=true) with HTTP 200, unsealed and active or a standby, for at
        most O(wait_timeout) seconds; in the same call. Not in check mode.
      - The wait never fails the task (the result may hold new keys, which the play must
        keep); RV(ready) tells whether the server became ready.
    type: bool
    default: false
seealso:
  - module: mailmesh.imap.vault_secrets_engine
  - module: mailmesh.imap.vault_auth_method
  - name: OpenBao seal/unseal concepts
    description: How Shamir unseal keys work.
    link: https://openbao.org/docs/concepts/seal/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Initialize and unseal the Vault server
  mailmesh.imap.vault_init:
    url: https://vault1:8200
    ca_cert: /etc/ssl/mailmesh/vault-ca.pem
    secret_shares: 5
    secret_threshold: 3
  register: __vault_server_init
  no_log: true

- name: Unseal after a restart
  mailmesh.imap.vault_init:
    url: https://vault1:8200
    unseal_keys: "{{ vault_server_unseal_keys }}"
  no_log: true
"""

RETURN = r"""
initialized:
  description: Whether the server is initialized after the task (in check mode, as found).
  returned: always
  type: bool
  sample: true
sealed:
  description: Whether the server is sealed after the task (in check mode, as found).
  returned: always
  type: bool
  sample: false
unseal_keys:
  description:
    - The new unseal key shares (hex). Secret; the task must use C(no_log).
  returned: when the module initialized a server with the Shamir seal
  type: list
  elements: str
  sample: ["d2f1...", "8a9c..."]
recovery_keys:
  description:
    - The new recovery key shares (hex). Secret; the task must use C(no_log).
  returned: when the module initialized a server with an auto-unseal seal
  type: list
  elements: str
  sample: ["d2f1...", "8a9c..."]
seal_type:
  description: The server's seal (C(shamir), C(static), C(transit), ...).
  returned: always
  type: str
  sample: static
root_token:
  description: The initial root token. Secret; the task must use C(no_log).
  returned: when the module initialized the server
  type: str
  sample: s.XXXXXXXXXXXXXXXXXXXXXXXX
ready:
  description: Whether the server answered its health check with HTTP 200 within O(wait_timeout) (O(wait_ready)).
  returned: when O(wait_ready=true), not in check mode
  type: bool
  sample: true
msg:
  description: What the module did (or would do in check mode).
  returned: always
  type: str
  sample: initialized and unsealed
"""

import time

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule


def _seal_status(module, client):
    try:
        return client.adapter.get("/v1/sys/seal-status")
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading the seal status")


def _unseal(module, client, keys, source):
    """Submit keys until the server is unsealed; fail naming ``source`` otherwise."""
    try:
        client.adapter.put("/v1/sys/unseal", json={"reset": True})
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "resetting the unseal progress")
    status = None
    for key in keys:
        try:
            status = client.adapter.put("/v1/sys/unseal", json={"key": key})
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(
                msg="%s not accepted: %s"
                % (source, module.vault_error(exc, "unsealing with %s" % source))
            )
        if not status.get("sealed", True):
            return status
        if status.get("progress", 0) == 0:
            # The threshold was reached and the server took the keys, yet answers
            # "sealed": a node joining a raft cluster finishes its unseal in the
            # background (it answers the leader's challenge, then takes a snapshot).
            return _wait_for(module, client, "took %s but did not unseal (a node joining a raft "
                             "cluster: check that it reaches its leader and that the keys are "
                             "the cluster's)" % source, lambda answer: not answer.get("sealed", True))
    module.fail_json(
        msg="Vault at %s is still sealed after all %d of %s were submitted "
        "(threshold %s): too few keys, or keys of another server"
        % (module.url, len(keys), source, (status or {}).get("t", "?"))
    )
    return None


def _wait_for(module, client, what, done):
    """Poll the seal status until ``done(status)`` or wait_timeout; return the last status."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    status = _seal_status(module, client)
    while not done(status) and time.monotonic() < deadline:
        time.sleep(1)
        status = _seal_status(module, client)
    if not done(status):
        module.fail_json(msg="Vault at %s %s within %d s (wait_timeout)"
                         % (module.url, what, module.params["wait_timeout"]))
    return status


def _exit(module, **result):
    """exit_json, after waiting for the server's health with wait_ready (not in check
    mode). The wait never fails the module: a result that holds new keys must reach the
    play, which keeps them; ``ready`` says whether the server became ready."""
    if module.params["wait_ready"] and not module.check_mode:
        deadline = time.monotonic() + module.params["wait_timeout"]
        result["ready"] = False
        while not result["ready"]:
            try:
                module.unauthenticated_get("sys/health?standbyok=true")
                result["ready"] = True
            except Exception:  # pylint: disable=broad-except
                if time.monotonic() >= deadline:
                    break
                time.sleep(1)
    module.exit_json(**result)


def _check_counts(module, shares, threshold):
    params = module.params
    if params[threshold] < 1 or params[threshold] > params[shares]:
        module.fail_json(msg="%s must be between 1 and %s (%d), got %d"
                         % (threshold, shares, params[shares], params[threshold]))


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            secret_shares=dict(type="int", default=5, no_log=False),
            secret_threshold=dict(type="int", default=3, no_log=False),
            unseal_keys=dict(type="list", elements="str", no_log=True),
            recovery_shares=dict(type="int", default=5, no_log=False),
            recovery_threshold=dict(type="int", default=3, no_log=False),
            initialize=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=90),
            wait_ready=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    _check_counts(module, "secret_shares", "secret_threshold")
    _check_counts(module, "recovery_shares", "recovery_threshold")
    client = module.unauthenticated_client()

    status = _seal_status(module, client)
    if not status.get("initialized", False) and not params["initialize"]:
        if module.check_mode:
            _exit(module, changed=True, initialized=False, sealed=True, seal_type=status.get("type", ""),
                  msg="would wait for the node to join its cluster, then unseal it")
        # A node with retry_join learns the seal from the leader once that is initialized.
        status = _wait_for(module, client, "did not join its cluster (it is not initialized; check its "
                           "retry_join addresses and that the first node is initialized and unsealed)",
                           lambda answer: answer.get("initialized", False))
    seal_type = status.get("type", "")
    auto_unseal = bool(status.get("recovery_seal", False))

    if not status.get("initialized", False):
        if module.check_mode:
            _exit(module, changed=True, initialized=False, sealed=True, seal_type=seal_type,
                  msg="would initialize and unseal")
        if auto_unseal:
            request = {"recovery_shares": params["recovery_shares"],
                       "recovery_threshold": params["recovery_threshold"]}
        else:
            request = {"secret_shares": params["secret_shares"],
                       "secret_threshold": params["secret_threshold"]}
        try:
            answer = client.adapter.put("/v1/sys/init", json=request)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "initializing")
        if auto_unseal:
            final = _wait_for(module, client, "was initialized but its %s seal did not unseal it" % seal_type,
                              lambda answer: not answer.get("sealed", True))
            _exit(module, changed=True, initialized=True, sealed=final.get("sealed", False),
                  seal_type=seal_type, recovery_keys=answer["recovery_keys"],
                  root_token=answer["root_token"], msg="initialized; unsealed by the %s seal" % seal_type)
        keys = answer["keys"]
        final = _unseal(module, client, keys[:params["secret_threshold"]], "the new keys")
        _exit(module, changed=True, initialized=True, sealed=final.get("sealed", False),
              seal_type=seal_type, unseal_keys=keys, root_token=answer["root_token"],
              msg="initialized and unsealed")

    if not status.get("sealed", True):
        _exit(module, changed=False, initialized=True, sealed=False, seal_type=seal_type,
              msg="already initialized and unsealed")

    if auto_unseal:
        if module.check_mode:
            _exit(module, changed=False, initialized=True, sealed=True, seal_type=seal_type,
                  msg="would wait for the %s seal to unseal it" % seal_type)
        _wait_for(module, client, "is still sealed: its %s seal did not unseal it (check the seal's key "
                  "and the server's log)" % seal_type, lambda answer: not answer.get("sealed", True))
        _exit(module, changed=False, initialized=True, sealed=False, seal_type=seal_type,
              msg="unsealed by the %s seal" % seal_type)

    if not params["unseal_keys"]:
        module.fail_json(
            msg="Vault at %s is initialized and sealed; unseal_keys is required to unseal it"
            % module.url
        )
    if module.check_mode:
        _exit(module, changed=True, initialized=True, sealed=True, seal_type=seal_type, msg="would unseal")
    final = _unseal(module, client, params["unseal_keys"], "unseal_keys")
    _exit(module, changed=True, initialized=True, sealed=final.get("sealed", False),
          seal_type=seal_type, msg="unsealed")


if __name__ == "__main__":
    main()
