#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_host_approles
short_description: Keep the policy, AppRole and secret ID of many hosts in one call
version_added: 0.1.0
description:
  - For every entry of O(hosts), in one module run and over one connection to Vault,
    what M(mailmesh.imap.vault_policy), M(mailmesh.imap.vault_approle_role) and
    M(mailmesh.imap.vault_approle_secret_id) do for one host. With O(approles=true),
    the ACL policy C(<policy_prefix><name>) and the AppRole role C(<name>) that carries
    it. With O(secret_ids=true), a secret ID Vault still accepts (the host's current one
    when valid, else a new one).
  - A fleet's run then costs one task on the Vault host instead of one task (or one
    loop item) per host and step; the calls to Vault are the same, each a few
    milliseconds on the Vault host.
  - Reads first and writes only what differs, so a second run changes nothing.
  - "B(Secrets in the result:) RV(hosts) holds every host's secret ID when O(secret_ids=true):
    set C(no_log: true) on the task."
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes and generates nothing.
  diff_mode:
    support: none
    description: The result's RV(changed_hosts) and each host's C(changed) list say what changed.
options:
  hosts:
    description: One entry per host.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The host's name, which is the AppRole role's name.
        type: str
        required: true
      policy:
        description:
          - The host's certificate policy (HCL), written as C(<policy_prefix><name>).
          - Required when O(approles=true).
          - The P(mailmesh.imap.vault_cert_policy#filter) filter renders it.
        type: str
      current_secret_id:
        description: The secret ID the host holds now, if any; kept when still valid (a secret, never logged).
        type: str
      bound_cidrs:
        description:
          - CIDRs (or single addresses) from which the host's secret ID may log in and its
            tokens may be used (the role's C(secret_id_bound_cidrs) and C(token_bound_cidrs)).
          - V([]) removes a binding; unset leaves the role's as it is.
        type: list
        elements: str
  approles:
    description: Write each host's policy and AppRole role.
    type: bool
    default: true
  secret_ids:
    description:
      - Return a valid secret ID for each host (generating one only when needed).
      - The host's AppRole role must exist (O(approles=true) in this or an earlier run).
    type: bool
    default: false
  mount_point:
    description: Mount path of the AppRole auth method.
    type: str
    default: approle
  auth_method_description:
    description:
      - When set, the AppRole auth method at O(mount_point) is enabled first if it is
        missing, with this description (kept when it differs), as
        M(mailmesh.imap.vault_auth_method) does; in the same call.
      - Fails, changing nothing, when another auth method is at O(mount_point).
    type: str
  stale:
    description:
      - The AppRole roles and certificate policies in Vault that belong to no host of
        O(hosts), after the hosts' own are written. C(ignore) does not look; C(report)
        returns them (RV(stale_approles), RV(stale_policies)); C(remove) returns and
        deletes them (a host left the inventory; its certificates are revoked by the
        revoke_host playbook, not here).
      - Only policies named C(<policy_prefix><name>) count; roles of O(stale_keep) never do.
    type: str
    choices: [ignore, report, remove]
    default: ignore
  stale_keep:
    description: AppRole roles of the mount that are no host's and are kept (the admin AppRole).
    type: list
    elements: str
    default: []
  policy_prefix:
    description: Prefix of each host's policy name.
    type: str
    default: mailmesh-cert-
  token_ttl:
    description: The AppRole tokens' TTL (seconds or a duration such as C(20m)).
    type: str
  token_max_ttl:
    description: The AppRole tokens' maximum TTL.
    type: str
  secret_id_ttl:
    description: How long a new secret ID lives (C(0) never expires).
    type: str
notes:
  - A new secret ID carries the metadata C(host=<name>).
seealso:
  - module: mailmesh.imap.vault_policy
  - module: mailmesh.imap.vault_approle_role
  - module: mailmesh.imap.vault_approle_secret_id
  - plugin: mailmesh.imap.vault_cert_policy
    plugin_type: filter
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Policies and AppRoles of every edge device, in one task
  mailmesh.imap.vault_host_approles:
    url: https://127.0.0.1:8200
    ca_cert: /etc/mailmesh/vault/ca.pem
    token: "{{ vault_admin_token }}"
    hosts:
      - name: pi001
        policy: "{{ 'pki_int' | mailmesh.imap.vault_cert_policy('edge_devices', 'pi001') }}"
      - name: pi002
        policy: "{{ 'pki_int' | mailmesh.imap.vault_cert_policy('edge_devices', 'pi002') }}"
    token_ttl: 20m
    token_max_ttl: 1h
    secret_id_ttl: "0"
  run_once: true

- name: A valid secret ID for each of them (current ones kept)
  mailmesh.imap.vault_host_approles:
    url: https://127.0.0.1:8200
    ca_cert: /etc/mailmesh/vault/ca.pem
    token: "{{ vault_admin_token }}"
    approles: false
    secret_ids: true
    hosts:
      - name: pi001
        current_secret_id: "{{ pi001_secret_id }}"
      - name: pi002
  register: secret_ids
  no_log: true
"""

RETURN = r"""
hosts:
  description:
    - Per host name, its C(role_id) (null in check mode for a role that would be created),
      C(changed) (what changed or would, among C(policy), C(role) and C(secret_id)) and,
      with O(secret_ids=true), C(secret_id) (secret; null in check mode when a new one
      would be generated) and C(secret_id_accessor).
  returned: always
  type: dict
  sample:
    pi001:
      role_id: 5a9e6f4c-63b1-0c8c-e0e2-3a8b0c2e8d11
      changed: [policy, role]
changed_hosts:
  description: The hosts where something changed (or would), in the order of O(hosts).
  returned: always
  type: list
  elements: str
  sample: [pi001]
stale_approles:
  description: The AppRole roles of no host of O(hosts) nor of O(stale_keep), sorted (removed, or would be, with O(stale=remove)).
  returned: when O(stale) is not C(ignore)
  type: list
  elements: str
  sample: [pi099]
stale_policies:
  description: The certificate policies of no host of O(hosts), sorted (removed, or would be, with O(stale=remove)).
  returned: when O(stale) is not C(ignore)
  type: list
  elements: str
  sample: [mailmesh-cert-pi099]
"""

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
    duration_seconds,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_mounts import (
    AUTH_METHODS,
    ensure_mount,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_approle import (
    bound_cidrs,
    ensure_policy,
    ensure_role,
    lookup_secret_id,
    new_secret_id,
    secret_id_valid,
)

MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
DURATIONS = ("token_ttl", "token_max_ttl", "secret_id_ttl")


def input_problems(params):
    """Sentences naming what is wrong with the options; empty when nothing is."""
    problems = []
    names = [entry["name"] for entry in params["hosts"]]
    seen = set()
    for name in names:
        if not name or "/" in name or name.strip() != name:
            problems.append("hosts: %r is not a usable AppRole name (no '/', no surrounding blanks)" % (name,))
        if name in seen:
            problems.append("hosts: %s is listed twice" % name)
        seen.add(name)
    if params["approles"]:
        missing = [entry["name"] for entry in params["hosts"] if not entry.get("policy")]
        if missing:
            problems.append("hosts: approles=true needs a policy for every host; none for %s"
                            % ", ".join(missing))
    for entry in params["hosts"]:
        try:
            bound_cidrs(entry.get("bound_cidrs"))
        except ValueError as exc:
            problems.append("hosts: %s: bound_cidrs: %s" % (entry["name"], exc))
    for key in DURATIONS:
        try:
            duration_seconds(params[key])
        except ValueError as exc:
            problems.append("%s: %s" % (key, exc))
    return problems


def wanted_role(params, policy_name):
    """The AppRole options a host's role should have, in Vault's shape."""
    wanted = {"token_policies": [policy_name]}
    for key in DURATIONS:
        if params[key] is not None:
            wanted[key] = duration_seconds(params[key])
    return wanted


def _approle(module, client, params, entry, role_path, changed):
    name = entry["name"]
    policy_name = params["policy_prefix"] + name
    try:
        policy_changed = ensure_policy(client, policy_name, entry["policy"], module.check_mode)[0]
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "writing policy %s" % policy_name)
    if policy_changed:
        changed.append("policy")
    wanted, written = wanted_role(params, policy_name), {}
    if entry.get("bound_cidrs") is not None:
        shown, as_written = bound_cidrs(entry["bound_cidrs"])  # checked by input_problems
        for key in ("secret_id_bound_cidrs", "token_bound_cidrs"):
            wanted[key], written[key] = shown, as_written
    try:
        live, changed_keys = ensure_role(client, role_path, wanted, module.check_mode, written)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "writing AppRole role %s" % role_path)
    if live is None or changed_keys:
        changed.append("role")


def _secret_id(module, client, entry, role_path, role_id, changed):
    """{secret_id, secret_id_accessor}: the current one when valid, else a new one."""
    current = entry.get("current_secret_id")
    lookup = None
    if current and role_id is not None:
        try:
            lookup = lookup_secret_id(client, role_path, current)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "looking up the current secret ID of %s" % entry["name"])
    try:
        valid = secret_id_valid(lookup)
    except ValueError as exc:
        module.fail_json(msg="looking up the current secret ID of %s: %s" % (entry["name"], exc))
    if valid:
        # Returned on purpose (the task is no_log): keep Ansible from replacing it with
        # the no_log placeholder in the result; the invocation stays masked.
        module.no_log_values.discard(current)
        return {"secret_id": current, "secret_id_accessor": lookup.get("secret_id_accessor")}
    changed.append("secret_id")
    if module.check_mode:
        return {"secret_id": None, "secret_id_accessor": None}
    try:
        new = new_secret_id(client, role_path, {"host": entry["name"]})
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "generating a secret ID for %s" % entry["name"])
    return {"secret_id": new["secret_id"], "secret_id_accessor": new.get("secret_id_accessor")}


def _listed(module, client, path):
    """The keys a LIST of ``path`` returns ([] when there is nothing)."""
    try:
        return list((api_read(client, path + "?list=true") or {}).get("keys") or [])
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "listing %s" % path)
    return []


def _stale(module, client, params, mount):
    """(stale AppRole roles, stale policies), removed with stale=remove outside check mode."""
    names = set(entry["name"] for entry in params["hosts"])
    prefix = params["policy_prefix"]
    roles = sorted(set(_listed(module, client, "auth/%s/role" % mount)) - names - set(params["stale_keep"]))
    policies = sorted(name for name in _listed(module, client, "sys/policies/acl")
                      if name.startswith(prefix) and name[len(prefix):] not in names)
    if params["stale"] == "remove" and not module.check_mode:
        for path in ["auth/%s/role/%s" % (mount, name) for name in roles] + ["sys/policies/acl/" + name for name in policies]:
            try:
                api_delete(client, path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "removing %s" % path)
    return roles, policies


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            hosts=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                policy=dict(type="str"),
                current_secret_id=dict(type="str", no_log=True),
                bound_cidrs=dict(type="list", elements="str"),
            )),
            approles=dict(type="bool", default=True),
            secret_ids=dict(type="bool", default=False),
            mount_point=dict(type="str", default="approle"),
            policy_prefix=dict(type="str", default="mailmesh-cert-"),
            token_ttl=dict(type="str", no_log=False),
            token_max_ttl=dict(type="str", no_log=False),
            secret_id_ttl=dict(type="str", no_log=False),
            auth_method_description=dict(type="str"),
            stale=dict(type="str", choices=["ignore", "report", "remove"], default="ignore"),
            stale_keep=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = input_problems(params)
    if problems:
        module.fail_json(msg="vault_host_approles: " + "; ".join(problems))

    client = module.client()
    mount = params["mount_point"].strip("/")
    mount_changed = False
    if params["auth_method_description"] is not None:
        mount_changed = ensure_mount(module, client, AUTH_METHODS, mount, "approle",
                                     {"description": params["auth_method_description"]}, "present")[0]
    results = {}
    for entry in params["hosts"]:
        role_path = "auth/%s/role/%s" % (mount, entry["name"])
        changed = []
        if params["approles"]:
            _approle(module, client, params, entry, role_path, changed)
        try:
            role_id = (api_read(client, role_path + "/role-id") or {}).get("role_id")
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "reading the role ID of %s" % role_path)
        result = {"role_id": role_id, "changed": changed}
        if params["secret_ids"]:
            if role_id is None and not module.check_mode:
                module.fail_json(msg="AppRole role %s does not exist on %s (run with approles=true, "
                                 "or the vault_server role, first)" % (role_path, module.url))
            result.update(_secret_id(module, client, entry, role_path, role_id, changed))
        results[entry["name"]] = result

    changed_hosts = [entry["name"] for entry in params["hosts"] if results[entry["name"]]["changed"]]
    module_args = dict(params, hosts=[dict(entry, current_secret_id=MASK if entry.get("current_secret_id") else None)
                                      for entry in params["hosts"]])
    extra = {}
    if params["stale"] != "ignore":
        extra["stale_approles"], extra["stale_policies"] = _stale(module, client, params, mount)
    removed = params["stale"] == "remove" and bool(extra["stale_approles"] + extra["stale_policies"])
    module.exit_json(changed=bool(changed_hosts) or mount_changed or removed, hosts=results,
                     changed_hosts=changed_hosts, invocation={"module_args": module_args}, **extra)


if __name__ == "__main__":
    main()
