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

import base64
import errno
import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

_KINDS = {"file": stat.S_ISREG, "directory": stat.S_ISDIR, "link": stat.S_ISLNK}


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mode(value):
    """Permission bits from '0640', '640' or an int that YAML already read as octal."""
    if isinstance(value, int):
        return value
    return int(str(value), 8)


def file_differences(spec):
    path, kind = spec["path"], spec["state"]
    if kind == "absent":
        return ["%s: present, and should not be" % path] if os.path.lexists(path) else []
    try:
        info = os.lstat(path)
    except OSError:
        return ["%s: missing" % path]
    if not _KINDS[kind](info.st_mode):
        return ["%s: not a %s" % (path, kind)]
    found = []
    if kind == "link":
        if spec.get("target") is not None and os.readlink(path) != spec["target"]:
            found.append("%s: points at %s, not %s" % (path, os.readlink(path), spec["target"]))
        return found
    if spec.get("sha256") and _sha256(path) != spec["sha256"].lower():
        found.append("%s: content differs" % path)
    if kind == "directory" and spec.get("entries") is not None:
        actual = set(os.listdir(path))
        expected = set(spec["entries"])
        if actual - expected:
            found.append("%s: holds %s, which it should not" % (path, ", ".join(sorted(actual - expected))))
        if expected - actual:
            found.append("%s: lacks %s" % (path, ", ".join(sorted(expected - actual))))
    owner = _name(pwd.getpwuid, info.st_uid)
    if spec.get("owner") and owner != spec["owner"]:
        found.append("%s: owner is %s, not %s" % (path, owner, spec["owner"]))
    group = _name(grp.getgrgid, info.st_gid)
    if spec.get("group") and group != spec["group"]:
        found.append("%s: group is %s, not %s" % (path, group, spec["group"]))
    if spec.get("mode") is not None and stat.S_IMODE(info.st_mode) != _mode(spec["mode"]):
        found.append("%s: mode is %04o, not %04o" % (path, stat.S_IMODE(info.st_mode), _mode(spec["mode"])))
    return found


_READ_LIMIT = 1 << 20


def read_files(paths):
    """{path: base64 content or None (missing)}; OSError for anything else, ValueError
    for a file over _READ_LIMIT or not a regular file."""
    contents = {}
    for path in paths:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                contents[path] = None
                continue
            if exc.errno == errno.EISDIR:
                raise ValueError("%s is not a regular file" % path)
            raise
        with handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ValueError("%s is not a regular file" % path)
            data = handle.read(_READ_LIMIT + 1)
        if len(data) > _READ_LIMIT:
            raise ValueError("%s is larger than %d bytes" % (path, _READ_LIMIT))
        contents[path] = base64.b64encode(data).decode("ascii")
    return contents


def installed_packages(output):
    """Names that dpkg-query shows installed: the status's second letter is 'i'.

    The same rule as _installed() in plugins/filter/packages.py (change both). It is
    not shared through module_utils on purpose: a module with the collection's
    module_utils runs in a forked process under Mitogen, this one in the host's
    interpreter.
    """
    names = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and len(fields[1]) >= 2 and fields[1][1] == "i":
            names.add(fields[0].split(":", 1)[0])
    return names


def package_differences(module, packages):
    if not packages:
        return []
    names = [p.split("=", 1)[0].split(":", 1)[0] for p in packages]
    rc, out, err = module.run_command(
        ["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Abbrev}\\n"] + names
    )
    if rc not in (0, 1):
        module.fail_json(msg="dpkg-query failed (rc %s): %s" % (rc, err.strip()))
    installed = installed_packages(out)
    return ["package %s: not installed" % name for name in names if name not in installed]


def account_differences(groups, users):
    found = []
    for name in groups:
        try:
            grp.getgrnam(name)
        except KeyError:
            found.append("group %s: missing" % name)
    for spec in users:
        try:
            entry = pwd.getpwnam(spec["name"])
        except KeyError:
            found.append("user %s: missing" % spec["name"])
            continue
        primary = _name(grp.getgrgid, entry.pw_gid)
        for field, actual in (("group", primary), ("shell", entry.pw_shell), ("home", entry.pw_dir),
                              ("uid", entry.pw_uid), ("gid", entry.pw_gid)):
            expected = spec.get(field)
            if expected not in (None, "") and actual != expected:
                found.append("user %s: %s is %s, not %s" % (spec["name"], field, actual, expected))
    return found


def parse_units(output):
    """The blocks of `systemctl show --property=Id,...`, one dict per unit, in order."""
    units, current = [], {}
    for line in output.splitlines():
        if not line.strip():
            if current:
                units.append(current)
            current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        current[key] = value
    if current:
        units.append(current)
    return units


def service_differences(module, services):
    if not services:
        return []
    names = [s if "." in s else s + ".service" for s in services]
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState", "--"] + names
    )
    if rc != 0:
        module.fail_json(msg="systemctl show failed (rc %s): %s" % (rc, err.strip()))
    units = parse_units(out)
    if len(units) != len(names):
        module.fail_json(msg="systemctl show returned %d units for %d names" % (len(units), len(names)))
    found = []
    for name, unit in zip(names, units):
        if unit.get("LoadState") != "loaded":
            found.append("%s: not loaded (%s)" % (name, unit.get("LoadState", "unknown")))
            continue
        if unit.get("UnitFileState") != "enabled":
            found.append("%s: not enabled (%s)" % (name, unit.get("UnitFileState") or "unknown"))
        if unit.get("ActiveState") != "active":
            found.append("%s: not active (%s)" % (name, unit.get("ActiveState") or "unknown"))
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(
                type="list", elements="dict", default=[],
                options=dict(
                    path=dict(type="path", required=True),
                    state=dict(type="str", choices=["file", "directory", "link", "absent"], default="file"),
                    sha256=dict(type="str"),
                    target=dict(type="str"),
                    entries=dict(type="list", elements="str"),
                    owner=dict(type="str"),
                    group=dict(type="str"),
                    mode=dict(type="raw"),
                ),
            ),
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
    for spec in params["files"]:
        if spec["mode"] is not None:
            try:
                _mode(spec["mode"])
            except ValueError:
                module.fail_json(msg="files: mode of %s must be octal, got %r" % (spec["path"], spec["mode"]))
    differences = []
    for spec in params["files"]:
        differences.extend(file_differences(spec))
    differences.extend(package_differences(module, params["packages"]))
    differences.extend(account_differences(params["groups"], params["users"]))
    differences.extend(service_differences(module, params["services"]))
    try:
        contents = read_files(params["read"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="read: %s" % exc)
    module.exit_json(changed=False, differences=differences, contents=contents)


if __name__ == "__main__":
    main()
