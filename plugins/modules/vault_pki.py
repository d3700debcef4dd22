#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vault_pki
short_description: Keep a Vault PKI (root CA, issuing CA, CRL settings and roles) in one call
version_added: 0.1.0
description:
  - In one module run and over one connection to Vault, what
    M(mailmesh.imap.vault_secrets_engine), M(mailmesh.imap.vault_pki_ca) and
    M(mailmesh.imap.vault_pki_role) do for a PKI of a root CA, an optional issuing
    (intermediate) CA signed by it, and the roles of the issuing CA; and each CA mount's
    CRL settings (C(<mount>/config/crl)).
  - Each part reads first and writes only what differs, so a second run changes nothing
    and makes no write. A CA is created when its mount has none and never replaced.
  - The roles live in the issuing CA's mount (O(intermediate), or O(root) without one).
  - The vault_server role keeps its PKI with this module; on a re-run that is one task
    on the Vault host instead of one per mount, CA, CRL setting and role.
extends_documentation_fragment:
  - mailmesh.imap.vault_connection
  - mailmesh.imap.vault_auth
attributes:
  check_mode:
    support: full
    description: Reads the live state and reports what would change; writes nothing.
  diff_mode:
    support: none
    description: Each part of the result says what changed (RV(root), RV(intermediate), RV(roles)).
options:
  root:
    description:
      - The root CA and its mount. Takes the options of M(mailmesh.imap.vault_pki_ca)
        (C(common_name), C(ttl), C(key_type), C(key_bits), C(issuing_certificates),
        C(crl_distribution_points); not C(ca_type) nor C(issuer_mount_point)), and
        C(mount_point) (required; mounted as a C(pki) secrets engine when missing),
        C(description) and C(max_lease_ttl) of the mount, as
        M(mailmesh.imap.vault_secrets_engine) takes them.
      - C(crl), a dict of the mount's CRL settings (C(<mount>/config/crl)) with any of
        C(expiry) and C(auto_rebuild_grace_period) (durations such as C(72h)),
        C(auto_rebuild) and C(disable) (booleans); those set are compared (durations in
        seconds) and written when one differs. Left alone when omitted.
      - Each value is checked as those modules check it, and a wrong one is named by its
        place (V(root.crl.expiry)) before anything is read from Vault.
    type: dict
    required: true
  intermediate:
    description:
      - The issuing CA, whose key is generated in its mount and whose certificate the
        root CA signs; the same options as O(root).
    type: dict
  roles:
    description:
      - The roles of the issuing CA's mount (O(intermediate), or O(root) without one).
      - Each takes C(name) (required) and the options of M(mailmesh.imap.vault_pki_role)
        (not C(mount_point) nor C(state)), compared as that module compares them.
    type: list
    elements: dict
    default: []
notes:
  - Roles of the mount that O(roles) does not list are left as they are.
seealso:
  - module: mailmesh.imap.vault_secrets_engine
  - module: mailmesh.imap.vault_pki_ca
  - module: mailmesh.imap.vault_pki_role
  - name: OpenBao PKI API
    description: Root generation, intermediate signing, URL and CRL configuration, roles.
    link: https://openbao.org/api-docs/secret/pki/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: A root CA, an issuing CA signed by it, their CRL settings and two roles
  mailmesh.imap.vault_pki:
    url: https://vault1:8200
    token: "{{ vault_admin_token }}"
    root:
      mount_point: pki
      description: mailmesh root CA
      max_lease_ttl: 87600h
      common_name: mailmesh root CA
      ttl: 87600h
      key_bits: 384
      crl: {expiry: 72h, auto_rebuild: true, auto_rebuild_grace_period: 12h, disable: false}
    intermediate:
      mount_point: pki_int
      description: mailmesh issuing CA
      max_lease_ttl: 43800h
      common_name: mailmesh issuing CA
      ttl: 43800h
      issuing_certificates: [https://vault1:8200/v1/pki_int/ca]
      crl_distribution_points: [https://vault1:8200/v1/pki_int/crl]
      crl: {expiry: 72h, auto_rebuild: true, auto_rebuild_grace_period: 12h, disable: false}
    roles:
      - name: gateways
        allowed_domains: [gw1.example.test, gw2.example.test]
        allow_bare_domains: true
        server_flag: true
        client_flag: true
        ttl: 72h
      - name: edge_devices
        allowed_domains: [pi001.example.test]
        allow_bare_domains: true
        server_flag: false
        client_flag: true
        ttl: 72h
  run_once: true
  register: pki
"""

RETURN = r"""
root:
  description:
    - The root CA after the task, C(certificate) (PEM, public; null in check mode when it
      would be created), C(serial_number), C(issuing_certificates),
      C(crl_distribution_points), and C(changed), the parts that changed or would
      (among C(mount), C(ca), C(urls), C(crl)).
  returned: always
  type: dict
  sample:
    certificate: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"
    serial_number: "66:85:e0:ab:93:a1"
    issuing_certificates: []
    crl_distribution_points: []
    changed: []
intermediate:
  description: The issuing CA after the task, as RV(root); null without O(intermediate).
  returned: always
  type: dict
roles:
  description: Per role name, C(changed_keys), the options that differed (all of them for a new role).
  returned: always
  type: dict
  sample:
    gateways:
      changed_keys: [ttl]
changed_parts:
  description: What changed or would, C(<part>:<what>), in the order the module keeps them.
  returned: always
  type: list
  elements: str
  sample: ["root:crl", "role:gateways"]
"""

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.mailmesh.imap.plugins.module_utils._vault import VaultModule
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import duration_seconds
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_mounts import (
    SECRETS_ENGINES,
    ensure_mount,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_pki_ca import (
    CA_OPTIONS,
    CRL_DURATIONS,
    CRL_OPTIONS,
    URL_KEYS,
    ensure_ca,
    ensure_crl,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._vault_pki_role import (
    ROLE_OPTIONS,
    ensure_pki_role,
    wanted_role,
)

# Each CA and each role is checked against these (ArgumentSpecValidator), not by
# AnsibleModule: their options are those of vault_pki_ca and vault_pki_role, documented
# there once.
CA_SPEC = dict(
    mount_point=dict(type="str", required=True),
    description=dict(type="str"),
    max_lease_ttl=dict(type="str"),
    crl=dict(type="dict", options=CRL_OPTIONS),
    **CA_OPTIONS
)
ROLE_SPEC = dict(
    name=dict(type="str", required=True),
    extra=dict(type="dict", default={}),
    **ROLE_OPTIONS
)


def _checked(spec, value, where, problems):
    """``value`` with its defaults and types as ``spec`` gives them; each error goes to
    problems, named by ``where``."""
    if not isinstance(value, dict):
        problems.append("%s: must be a dict, not %s" % (where, type(value).__name__))
        return None
    result = ArgumentSpecValidator(spec).validate(value)
    problems.extend("%s: %s" % (where, message) for message in result.error_messages)
    return result.validated_parameters


def checked_params(params):
    """(params with root, intermediate and roles checked and completed, problems)."""
    problems = []
    checked = dict(params)
    checked["root"] = _checked(CA_SPEC, params["root"], "root", problems)
    if params["intermediate"] is not None:
        checked["intermediate"] = _checked(CA_SPEC, params["intermediate"], "intermediate", problems)
    checked["roles"] = [_checked(ROLE_SPEC, role, "roles[%d]" % index, problems)
                        for index, role in enumerate(params["roles"])]
    if problems:
        return checked, problems
    return checked, input_problems(checked)


def input_problems(params):
    """Sentences naming each wrong value by its option; empty when nothing is wrong."""
    problems = []
    cas = [(part, params[part]) for part in ("root", "intermediate") if params[part]]
    for part, ca in cas:
        for key in ("max_lease_ttl", "ttl"):
            if ca[key] is not None:
                try:
                    duration_seconds(ca[key])
                except ValueError as exc:
                    problems.append("%s.%s: %s" % (part, key, exc))
        for key in CRL_DURATIONS:
            value = (ca["crl"] or {}).get(key)
            if value is not None:
                try:
                    duration_seconds(value)
                except ValueError as exc:
                    problems.append("%s.crl.%s: %s" % (part, key, exc))
    mounts = [ca["mount_point"].strip("/") for _part, ca in cas]
    if len(set(mounts)) != len(mounts):
        problems.append("root.mount_point and intermediate.mount_point are the same mount (%s)" % mounts[0])
    seen = set()
    for index, role in enumerate(params["roles"]):
        if role["name"] in seen:
            problems.append("roles[%d].name: %s is listed twice" % (index, role["name"]))
        seen.add(role["name"])
        try:
            wanted_role(role)
        except ValueError as exc:
            problems.append("roles[%d] (%s).%s" % (index, role["name"], exc))
    return problems


def _keep_ca(module, client, part, ca, ca_type, issuer, changed_parts):
    """Mount, CA, URLs and CRL settings of one CA; its part of the result."""
    mount = ca["mount_point"].strip("/")
    wanted_mount = {key: ca[key] for key in ("description",) if ca[key] is not None}
    if ca["max_lease_ttl"] is not None:
        wanted_mount["max_lease_ttl"] = duration_seconds(ca["max_lease_ttl"])
    changed = []
    mount_changed, before_mount, _after = ensure_mount(module, client, SECRETS_ENGINES, mount, "pki",
                                                       wanted_mount, "present")
    if mount_changed:
        changed.append("mount")
    # In check mode a mount that would be made is not there to read.
    mounted = before_mount is not None or not module.check_mode
    ca_changed, before, after = ensure_ca(module, client, ca, mount, ca_type, issuer, mounted,
                                          name="%s.common_name" % part)
    if ca_changed:
        if before["serial_number"] is None:
            changed.append("ca")
        if any(after[key] != before[key] for key in URL_KEYS):
            changed.append("urls")
    if ca["crl"]:
        if ensure_crl(module, client, mount, ca["crl"], mounted):
            changed.append("crl")
    changed_parts.extend("%s:%s" % (part, what) for what in changed)
    return dict(after, changed=changed)


def main():
    module = VaultModule(
        argument_spec=VaultModule.generate_argspec(
            root=dict(type="dict", required=True),
            intermediate=dict(type="dict"),
            roles=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    params, problems = checked_params(module.params)
    if problems:
        module.fail_json(msg="vault_pki: " + "; ".join(problems))

    client = module.client()
    changed_parts = []
    root = _keep_ca(module, client, "root", params["root"], "root", None, changed_parts)
    intermediate = None
    issuing = root
    if params["intermediate"]:
        # In check mode with a root CA still to be made nothing is signed: it reports.
        intermediate = issuing = _keep_ca(module, client, "intermediate", params["intermediate"], "intermediate",
                                          params["root"]["mount_point"].strip("/"), changed_parts)
    issuing_mount = (params["intermediate"] or params["root"])["mount_point"].strip("/")
    # In check mode a mount that would be made has no roles to read.
    mounted = not module.check_mode or "mount" not in issuing["changed"]

    roles = {}
    for role in params["roles"]:
        path = "%s/roles/%s" % (issuing_mount, role["name"])
        changed, changed_keys, _before, _after = ensure_pki_role(module, client, path, wanted_role(role),
                                                                 mounted=mounted)
        roles[role["name"]] = dict(changed_keys=changed_keys)
        if changed:
            changed_parts.append("role:%s" % role["name"])

    module.exit_json(changed=bool(changed_parts), root=root, intermediate=intermediate, roles=roles,
                     changed_parts=changed_parts)


if __name__ == "__main__":
    main()
