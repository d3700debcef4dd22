# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a host with the files, packages, accounts and units a role keeps: the
checks of the host_state module, also run by vault_pki_cert (its prerequisites option)
so that a certificate's idempotent run is one module call on the host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import grp
import hashlib
import os
import pwd
import stat

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

    The same rule as _installed() in plugins/filter/packages.py (change both).
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


# The options of a path to compare (host_state's files, vault_pki_cert's
# prerequisites.files).
FILE_OPTIONS = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["file", "directory", "link", "absent"], default="file"),
    sha256=dict(type="str"),
    target=dict(type="str"),
    entries=dict(type="list", elements="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
)


def mode_problem(files, option="files"):
    """The message for the first entry whose mode is not octal, or None."""
    for spec in files:
        if spec["mode"] is not None:
            try:
                _mode(spec["mode"])
            except ValueError:
                return "%s: mode of %s must be octal, got %r" % (option, spec["path"], spec["mode"])
    return None


def differences(module, files=(), packages=(), groups=(), users=(), services=()):
    """Every difference, files first, then packages, accounts and units."""
    found = []
    for spec in files:
        found.extend(file_differences(spec))
    found.extend(package_differences(module, list(packages)))
    found.extend(account_differences(groups, users))
    found.extend(service_differences(module, list(services)))
    return found
