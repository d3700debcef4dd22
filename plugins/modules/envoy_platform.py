#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: envoy_platform
short_description: Check that a host can run Envoy before anything is installed
version_added: 0.1.0
description:
  - Reads the machine type (C(uname -m)) and measures the virtual address space the
    kernel gives a process, by asking for a page at C(2**(n-1)) for growing C(n) and
    keeping the largest C(n) the kernel honours.
  - Also reports the number of CPUs, which the role sizes Envoy's workers by, so that
    the role needs only the C(min) subset of facts (the C(hardware) subset takes half a
    second on a Raspberry Pi), the time synchronisation clients installed, and whether
    the host is a container.
  - Envoy publishes amd64 and arm64 builds only, for 64-bit OSes; a 32-bit OS on a
    64-bit kernel (Raspberry Pi OS 32-bit on a Pi 4 or 5, where C(uname -m) says
    C(aarch64)) is refused too. Its allocator needs a 48-bit address
    space on arm64 and crashes at every start on kernels built with 39-bit VA, as some
    Raspberry Pi kernels are. This module fails with a message that names the fix
    instead of leaving a crash-looping unit behind.
  - Changes nothing, ever.
attributes:
  check_mode:
    support: full
    description: Runs the same read-only checks in check mode.
  diff_mode:
    support: none
    description: Nothing to show; the module never changes anything.
options:
  fail_on_problem:
    description: Fail when Envoy cannot run here; otherwise only report it in RV(problem).
    type: bool
    default: true
  admin_address:
    description:
      - Also ask the Envoy that runs on the host, once and without waiting, whether it is
        ready and serves a certificate chain, on its admin interface (a Unix socket's
        path or C(host:port)), as M(mailmesh.imap.envoy_ready) does; the answer is in
        RV(envoy). An Envoy that does not answer is no failure of this module.
      - The envoy role asks here, in the call it makes anyway, so that a run that changes
        nothing need not call M(mailmesh.imap.envoy_ready) as well.
    type: str
  certificate:
    description:
      - Also look at a certificate as M(mailmesh.imap.vault_pki_cert) would with these
        arguments (the envoy role passes those the C(vault_cert) role would pass to that
        module's first call), changing nothing, and say in RV(certificate) whether that
        call would find anything to do.
      - Takes that module's options for a call with C(approle_file) - C(approle_file),
        C(ca_cert), C(common_name), C(alt_names), C(ip_sans), C(ttl), C(renew_before),
        C(max_clock_skew), C(cert_path), C(key_path), C(chain_path), C(fullchain_path),
        C(owner), C(group), C(mode), C(cert_mode), C(key_type), C(key_bits),
        C(rotate_key), C(force), C(prerequisites), and C(units) and C(daemon_reload)
        empty - with the same types and defaults. A wrong one fails the module and is
        named.
      - As that module, it compares the host with C(prerequisites) first, then the four
        files' owner, group and mode, then reads Vault's issuing CA and the certificate's
        revocation (unauthenticated) and compares the certificate with what is asked.
        It reads the AppRole file on the host and never returns its content.
      - With O(observe), the packages and units of both are looked at in one
        C(dpkg-query) and one C(systemctl show); RV(observed) holds only those
        O(observe) asked for.
    type: dict
notes:
  - The envoy role looks at its files, packages, accounts and units here (O(observe)), in
    the call it makes anyway, because what it expects depends on this module's answer
    (the architecture, the CPU count, the time synchronisation clients); a run that
    changes nothing then needs no M(mailmesh.imap.host_state) call.
extends_documentation_fragment:
  - mailmesh.imap.host_observe
seealso:
  - name: Envoy on arm64 and the address-space size
    description: Why tcmalloc needs a 48-bit virtual address space.
    link: https://github.com/envoyproxy/envoy/issues/23339
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Refuse a Raspberry Pi that cannot run Envoy
  mailmesh.imap.envoy_platform:

- name: Only look
  mailmesh.imap.envoy_platform:
    fail_on_problem: false
  register: envoy_platform

- name: Look, and ask the running Envoy whether it is ready
  mailmesh.imap.envoy_platform:
    admin_address: /run/envoy/admin.sock
  register: envoy_platform

- name: Look at the sidecar's files and units in the same call
  mailmesh.imap.envoy_platform:
    observe:
      files:
        - path: /usr/local/bin/envoy
          follow: true
        - path: /etc/mailmesh/envoy/envoy.yaml
          sha256: true
      services: [envoy]
  register: envoy_platform

- name: Compare them with what the host should have
  ansible.builtin.set_fact:
    envoy_differences: >-
      {{ envoy_platform.observed | mailmesh.imap.host_state_differences(
         files=[{'path': '/etc/mailmesh/envoy/envoy.yaml', 'sha256': expected_sha256, 'mode': '0640'}],
         services=['envoy']) }}
"""

RETURN = r"""
machine:
  description: The machine type as C(uname -m) prints it.
  returned: always
  type: str
  sample: aarch64
arch:
  description: Envoy's name for the architecture (C(amd64), C(arm64)); empty when Envoy has no build for it.
  returned: always
  type: str
  sample: arm64
va_bits:
  description: Size in bits of the virtual address space a process gets; null when it could not be measured.
  returned: always
  type: int
  sample: 48
cpus:
  description: Number of CPUs the host has (as C(ansible_facts.processor_vcpus) counts them).
  returned: always
  type: int
  sample: 4
time_sync:
  description:
    - "The time synchronisation clients installed on the host, by their programs:
      C(chrony), C(ntpsec) (C(ntpd), also the older C(ntp)), C(openntpd),
      C(systemd-timesyncd)."
    - The role installs
      C(systemd-timesyncd) on edge devices only when none of the others is there.
  returned: always
  type: list
  elements: str
  sample: [systemd-timesyncd]
certificate:
  description:
    - What M(mailmesh.imap.vault_pki_cert) would find with O(certificate) as its arguments.
    - C(keep) is true only when that call would change nothing. C(differences) lists what
      differs from its prerequisites and the certificate files' owner, group and mode (as
      that module words them); C(reasons) why it would issue a certificate (its
      RV(mailmesh.imap.vault_pki_cert#module:reasons)); C(problem) why the look could not
      be finished (the AppRole file, Vault, the library), for that call to report.
  returned: when O(certificate) is set
  type: dict
  sample: {"keep": true, "differences": [], "reasons": [], "problem": ""}
container:
  description:
    - Whether the host is a container (systemd's C(/run/systemd/container), or
      C(/.dockerenv)). A container has its host's clock; C(systemd-timesyncd) does not
      run there.
  returned: always
  type: bool
  sample: false
problem:
  description: Why Envoy cannot run here and how to fix it; empty when it can.
  returned: always
  type: str
  sample: ""
envoy:
  description:
    - What the running Envoy answered (O(admin_address)), asked once with a timeout of
      half a second.
  returned: when O(admin_address) is set
  type: dict
  contains:
    state:
      description: C(/ready)'s answer (C(LIVE) when ready); empty when Envoy did not answer.
      type: str
      sample: LIVE
    certificate_chains:
      description: The certificate chains C(/certs) lists.
      type: int
      sample: 1
    problem:
      description: Why Envoy is not ready or serves no certificate; empty when it is and does.
      type: str
      sample: ""
observed:
  description:
    - What is at the paths and which packages, accounts and units there are
      (O(observe)), for P(mailmesh.imap.host_state_differences#filter).
  returned: when O(observe) is set
  type: dict
  contains:
    files:
      description:
        - "Per path: C(kind) (C(file), C(directory), C(link), C(other); null when nothing
          is there), C(owner), C(group), C(mode), and C(target) (a link), C(sha256) (a
          file, when asked) or C(entries) (a directory, when asked)."
      type: dict
      sample: {"/etc/mailmesh/envoy/envoy.yaml": {"kind": "file", "owner": "root", "group": "envoy",
               "mode": "0640", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}
    packages:
      description: The packages asked for that are installed; null when C(dpkg-query) failed (RV(observed.problems)).
      type: list
      elements: str
      sample: [iproute2]
    groups:
      description: The groups asked for that exist.
      type: list
      elements: str
      sample: [envoy]
    users:
      description: Per user asked for, its C(group), C(shell), C(home), C(uid) and C(gid); null when there is no such user.
      type: dict
      sample: {"envoy": {"group": "envoy", "shell": "/usr/sbin/nologin", "home": "/nonexistent", "uid": 998, "gid": 998}}
    services:
      description:
        - Per unit, its C(LoadState), C(UnitFileState) and C(ActiveState) as systemd shows
          them; null when C(systemctl show) failed (RV(observed.problems)).
      type: dict
      sample: {"envoy.service": {"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active"}}
    problems:
      description:
        - Why packages or units were not looked at (C(dpkg-query) or C(systemctl) failed,
          for example on a host without systemd as its init). Not a failure of this module,
          so that its own checks, and the role's, speak first; the filter reports them as
          differences.
      type: list
      elements: str
      sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailmesh.imap.plugins.module_utils import _cert_check as cert_check
from ansible_collections.mailmesh.imap.plugins.module_utils._envoy_admin import wait
from ansible_collections.mailmesh.imap.plugins.module_utils._envoy_platform import (
    ARCHES,
    platform_problem,
    probe_va_bits,
    userland_bits,
)
from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import OBSERVE_OPTIONS, observe, package_name, unit_name


# The programs that tell which time synchronisation client a host has.
TIME_SYNC_PROGRAMS = (
    ("chrony", ("/usr/sbin/chronyd",)),
    ("ntpsec", ("/usr/sbin/ntpd", "/usr/sbin/ntpsec")),
    ("openntpd", ("/usr/sbin/openntpd",)),
    ("systemd-timesyncd", ("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd")),
)


def time_sync_clients(exists=os.path.exists):
    """The time synchronisation clients whose program is on the host."""
    return [name for name, paths in TIME_SYNC_PROGRAMS if any(exists(path) for path in paths)]


def in_container(exists=os.path.exists):
    return exists("/run/systemd/container") or exists("/.dockerenv")


def _union(first, second):
    return list(first) + [name for name in second if name not in first]


def _only(seen, names):
    """What observe() saw of packages (a list) or units (a dict), restricted to names;
    None (not looked at) stays None."""
    if seen is None:
        return None
    if isinstance(seen, dict):
        return dict((name, value) for name, value in seen.items() if name in names)
    return [name for name in seen if name in names]


# Seconds for the one look at the running Envoy (admin_address).
ADMIN_TIMEOUT = 0.5


def main():
    module = AnsibleModule(
        argument_spec=dict(fail_on_problem=dict(type="bool", default=True), admin_address=dict(type="str"),
                           observe=dict(type="dict", options=OBSERVE_OPTIONS), certificate=dict(type="dict")),
        supports_check_mode=True,
    )
    machine = os.uname()[4]
    bits = userland_bits()
    # A 32-bit process cannot measure a 64-bit address space: not probed then.
    va_bits = probe_va_bits() if bits >= 64 else None
    problem = platform_problem(machine, va_bits, bits) or ""
    result = dict(changed=False, machine=machine, arch=ARCHES.get(machine.lower(), ""),
                  va_bits=va_bits, cpus=os.cpu_count() or 1, time_sync=time_sync_clients(),
                  container=in_container(), problem=problem)
    if problem and module.params["fail_on_problem"]:
        module.fail_json(msg="Envoy cannot run on this host: " + problem, **result)
    if module.params["admin_address"]:
        # One question each to /ready and /certs (a timeout below the retry delay).
        answer, envoy_problem = wait(module.params["admin_address"], ADMIN_TIMEOUT, True)
        result["envoy"] = dict(answer, problem=envoy_problem or "")
    certificate = None
    if module.params["certificate"] is not None:
        certificate = cert_check.arguments(module, module.params["certificate"])
    looks = module.params["observe"]
    if looks is not None:
        asked = dict(looks)
        if certificate is not None:
            # One dpkg-query and one systemctl for both looks: the certificate's packages
            # and units too, left out of what is returned for observe.
            wanted = cert_check.compared(certificate)
            asked["packages"] = _union(looks["packages"], wanted["packages"])
            asked["services"] = _union(looks["services"], wanted["services"])
        seen = observe(module, **asked)
        result["observed"] = dict(
            seen, packages=_only(seen["packages"], [package_name(name) for name in looks["packages"]]),
            services=_only(seen["services"], [unit_name(name) for name in looks["services"]]))
        if certificate is not None:
            result["certificate"] = cert_check.check(module, certificate, seen=seen)
    elif certificate is not None:
        result["certificate"] = cert_check.check(module, certificate)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
