#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_state
short_description: Compare a host with the files, packages, accounts and services a role keeps
version_added: 0.1.0
description:
  - "Checks in one call what a role's tasks would otherwise check one task at a time:
    files (content by sha256, owner, group, mode), directories, symbolic links, Debian
    packages, groups, users and systemd units. Returns every difference it finds."
  - A role runs its tasks only on hosts with differences, and skips them where the host
    is as the role left it. The role builds the expected values from the same variables
    its tasks write, so the two cannot disagree.
  - Changes nothing, ever. Uses only the standard library, C(dpkg-query) and
    C(systemctl).
  - With O(read), also returns the content of small files the role needs on the
    controller (as M(ansible.builtin.slurp) would, in the same call). Register such a
    task with C(no_log) when a file holds a secret.
attributes:
  check_mode:
    support: full
    description: Runs the same read-only checks in check mode.
  diff_mode:
    support: none
    description: Nothing to show; the module never changes anything.
options:
  files:
    description: Paths to compare.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path. Links are not followed.
        type: path
        required: true
      state:
        description:
          - What the path must be; V(absent) - nothing may be there (a file a role
            removes when a feature is off). The other suboptions do not apply to it.
        type: str
        choices: [file, directory, link, absent]
        default: file
      sha256:
        description: sha256 (hex) of the file's content; not compared when omitted.
        type: str
      target:
        description: The link's target, as C(readlink) prints it (O(files[].state=link) only);
          not compared when omitted (then only that the path is a link).
        type: str
      entries:
        description: The names the directory holds, and nothing else (O(files[].state=directory)
          only); a name more or less is a difference. Not compared when omitted.
        type: list
        elements: str
      owner:
        description: Owner's user name; not compared when omitted.
        type: str
      group:
        description: Group name; not compared when omitted.
        type: str
      mode:
        description: Permission bits as an octal string (V('0640')); not compared when omitted.
        type: raw
  packages:
    description: Debian packages that must be installed (C(dpkg-query)); a version pin or an
      architecture suffix names the same package.
    type: list
    elements: str
    default: []
  groups:
    description: Groups that must exist.
    type: list
    elements: str
    default: []
  users:
    description: Users that must exist, with their primary group, shell, home and IDs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      group:
        description: Primary group's name; not compared when omitted.
        type: str
      shell:
        description: Login shell; not compared when omitted.
        type: str
      home:
        description: Home directory; not compared when omitted.
        type: str
      uid:
        description: User ID; not compared when omitted.
        type: int
      gid:
        description: Primary group's ID (a group renumbered under the same name shows here);
          not compared when omitted.
        type: int
  services:
    description: systemd units that must be enabled and active (C(systemctl show)). A name
      without a suffix is a C(.service).
    type: list
    elements: str
    default: []
  read:
    description:
      - Regular files to return the content of (RV(contents)), at most 1 MiB each. A
        missing file is not an error (its content is V(null)); anything else that
        cannot be read is.
    type: list
    elements: path
    default: []
seealso:
  - module: ansible.builtin.stat
  - module: ansible.builtin.service_facts
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Compare the host with the sidecar's files, account and unit
  mailmesh.imap.host_state:
    files:
      - path: /etc/mailmesh/envoy
        state: directory
        owner: root
        group: envoy
        mode: "0750"
      - path: /etc/mailmesh/envoy/envoy.yaml
        sha256: "{{ bootstrap_text | hash('sha256') }}"
        owner: root
        group: envoy
        mode: "0640"
      - path: /usr/local/bin/envoy
        state: link
        target: envoy-1.40.0-a88a3ed5b48b
    packages: [ca-certificates]
    groups: [envoy]
    users:
      - name: envoy
        group: envoy
        shell: /usr/sbin/nologin
    services: [envoy]
  register: sidecar_state

- name: Configure the sidecar where the host differs
  ansible.builtin.include_tasks: configure.yml
  when: sidecar_state.differences | length > 0
"""

RETURN = r"""
differences:
  description: One sentence per difference; empty when the host is as expected.
  returned: always
  type: list
  elements: str
  sample:
    - "/etc/mailmesh/envoy/envoy.yaml: content differs"
    - "user envoy: shell is /bin/sh, not /usr/sbin/nologin"
    - "envoy.service: not active (failed)"
contents:
  description: The content of each file of O(read), base64-encoded, keyed by its path as
    given; V(null) for a missing file.
  returned: always
  type: dict
  sample:
    /etc/mailmesh/vault/approle.json: eyJ1cmwiOiAiaHR0cHM6Ly92YXVsdDEuZXhhbXBsZS5uZXQ6ODIwMCJ9
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import (
    FILE_OPTIONS,
    differences,
    mode_problem,
    read_files,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", default=[], options=FILE_OPTIONS),
            packages=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            users=dict(
                type="list", elements="dict", default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    group=dict(type="str"),
                    shell=dict(type="str"),
                    home=dict(type="str"),
                    uid=dict(type="int"),
                    gid=dict(type="int"),
                ),
            ),
            services=dict(type="list", elements="str", default=[]),
            read=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problem = mode_problem(params["files"])
    if problem:
        module.fail_json(msg=problem)
    found = differences(module, params["files"], params["packages"], params["groups"], params["users"],
                        params["services"])
    try:
        contents = read_files(params["read"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="read: %s" % exc)
    module.exit_json(changed=False, differences=found, contents=contents)


if __name__ == "__main__":
    main()
