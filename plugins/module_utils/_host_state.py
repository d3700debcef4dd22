# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a host with the files, packages, accounts and units a role keeps: the
checks of the host_state module, also run by vault_pki_cert (its prerequisites option)
so that a certificate's idempotent run is one module call on the host.

Each check is two halves: ``observe*`` looks at the host and returns plain data (what
a module can return as JSON), ``compare*`` turns that and the expected values into
the differences, and needs nothing of the host. A module that runs anyway
(envoy_platform) can so look for a role whose expected values depend on its own answer,
and the host_state_differences filter compares on the controller, with this code."""

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


def observe_file(path, sha256=False, entries=False):
    """What the host has at path, not following a link: ``kind`` (file, directory, link,
    other; None when nothing is there), owner and group names, ``mode`` (octal string),
    a link's ``target``, a file's ``sha256`` (with sha256) and a directory's sorted
    ``entries`` (with entries)."""
    try:
        info = os.lstat(path)
    except OSError:
        return {"kind": None}
    kind = next((name for name, test in _KINDS.items() if test(info.st_mode)), "other")
    seen = {"kind": kind, "owner": _name(pwd.getpwuid, info.st_uid), "group": _name(grp.getgrgid, info.st_gid),
            "mode": "%04o" % stat.S_IMODE(info.st_mode)}
    if kind == "link":
        seen["target"] = os.readlink(path)
    elif kind == "file" and sha256:
        seen["sha256"] = _sha256(path)
    elif kind == "directory" and entries:
        seen["entries"] = sorted(os.listdir(path))
    return seen


def compare_file(spec, seen):
    """The differences of one path (a files entry) from what observe_file saw there; seen
    None: the path was not looked at (a difference, so that the tasks run)."""
    path, kind = spec["path"], spec.get("state") or "file"
    if seen is None:
        return ["%s: not looked at" % path]
    if kind == "absent":
        return ["%s: present, and should not be" % path] if seen["kind"] is not None else []
    if seen["kind"] is None:
        return ["%s: missing" % path]
    if seen["kind"] != kind:
        return ["%s: not a %s" % (path, kind)]
    found = []
    if kind == "link":
        if spec.get("target") is not None and seen["target"] != spec["target"]:
            found.append("%s: points at %s, not %s" % (path, seen["target"], spec["target"]))
        return found
    if spec.get("sha256") and seen.get("sha256") != spec["sha256"].lower():
        found.append("%s: content differs" % path)
    if kind == "directory" and spec.get("entries") is not None:
        if "entries" not in seen:
            found.append("%s: entries not looked at" % path)
        else:
            actual, expected = set(seen["entries"]), set(spec["entries"])
            if actual - expected:
                found.append("%s: holds %s, which it should not" % (path, ", ".join(sorted(actual - expected))))
            if expected - actual:
                found.append("%s: lacks %s" % (path, ", ".join(sorted(expected - actual))))
    if spec.get("owner") and seen["owner"] != spec["owner"]:
        found.append("%s: owner is %s, not %s" % (path, seen["owner"], spec["owner"]))
    if spec.get("group") and seen["group"] != spec["group"]:
        found.append("%s: group is %s, not %s" % (path, seen["group"], spec["group"]))
    if spec.get("mode") is not None and _mode(seen["mode"]) != _mode(spec["mode"]):
        found.append("%s: mode is %s, not %04o" % (path, seen["mode"], _mode(spec["mode"])))
    return found


_READ_LIMIT = 1 << 20


def read_files(paths):
    """{path: base64 content or None (missing)}; OSError for anything else, ValueError
    for a file over _READ_LIMIT or not a regular file."""
    contents = {}
    for path in paths:
        try:
            # Not open() first: opening a FIFO waits for a writer.
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise ValueError("%s is not a regular file" % path)
            handle = open(path, "rb")
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                contents[path] = None
                continue
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


def package_name(name):
    """A package's name without a version ("=...") or an architecture (":...")."""
    return name.split("=", 1)[0].split(":", 1)[0]


def _package_names(packages):
    return [package_name(p) for p in packages]


class NotObserved(Exception):
    """A command that looks at the host (dpkg-query, systemctl) failed or is missing."""


def _run(module, argv):
    try:
        return module.run_command(argv, handle_exceptions=False)
    except OSError as exc:
        raise NotObserved("%s: %s" % (argv[0], exc))


def observe_packages(module, packages):
    """The names among packages that are installed, sorted; NotObserved when dpkg-query
    fails."""
    if not packages:
        return []
    rc, out, err = _run(
        module, ["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Abbrev}\\n"] + _package_names(packages)
    )
    if rc not in (0, 1):
        raise NotObserved("dpkg-query failed (rc %s): %s" % (rc, err.strip()))
    return sorted(installed_packages(out))


def compare_packages(packages, installed):
    installed = set(installed)
    return ["package %s: not installed" % name for name in _package_names(packages) if name not in installed]


def observe_accounts(groups, users):
    """{"groups": the names among groups that exist, "users": {name: its group (primary
    group's name), shell, home, uid and gid, or None when there is no such user}}."""
    present = []
    for name in groups:
        try:
            grp.getgrnam(name)
            present.append(name)
        except KeyError:
            pass
    seen = {}
    for name in users:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            seen[name] = None
            continue
        seen[name] = {"group": _name(grp.getgrgid, entry.pw_gid), "shell": entry.pw_shell, "home": entry.pw_dir,
                      "uid": entry.pw_uid, "gid": entry.pw_gid}
    return {"groups": present, "users": seen}


def compare_accounts(groups, users, seen):
    found = ["group %s: missing" % name for name in groups if name not in seen["groups"]]
    for spec in users:
        if spec["name"] not in seen["users"]:
            found.append("user %s: not looked at" % spec["name"])
            continue
        entry = seen["users"][spec["name"]]
        if entry is None:
            found.append("user %s: missing" % spec["name"])
            continue
        for field in ("group", "shell", "home", "uid", "gid"):
            expected = spec.get(field)
            if expected not in (None, "") and entry[field] != expected:
                found.append("user %s: %s is %s, not %s" % (spec["name"], field, entry[field], expected))
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


def unit_name(name):
    """A unit's full name: ".service" added to a name without a suffix."""
    return name if "." in name else name + ".service"


def _unit_names(services):
    return [unit_name(s) for s in services]


def observe_services(module, services):
    """{unit name (".service" added where the name has no suffix): its LoadState,
    UnitFileState and ActiveState}; NotObserved when systemctl fails."""
    if not services:
        return {}
    names = _unit_names(services)
    rc, out, err = _run(module, ["systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState", "--"] + names)
    if rc != 0:
        raise NotObserved("systemctl show failed (rc %s): %s" % (rc, err.strip()))
    units = parse_units(out)
    if len(units) != len(names):
        raise NotObserved("systemctl show returned %d units for %d names" % (len(units), len(names)))
    return dict((name, dict((key, unit.get(key, "")) for key in ("LoadState", "UnitFileState", "ActiveState")))
                for name, unit in zip(names, units))


def compare_services(services, seen):
    found = []
    for name in _unit_names(services):
        unit = (seen or {}).get(name)
        if unit is None:
            found.append("%s: not looked at" % name)
            continue
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


# What observe() takes: the paths to look at (a file's sha256 and a directory's entries
# only where asked; follow: a link's target in the same directory is looked at too),
# and the names of packages, groups, users and units.
OBSERVE_OPTIONS = dict(
    files=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="path", required=True),
        sha256=dict(type="bool", default=False),
        entries=dict(type="bool", default=False),
        follow=dict(type="bool", default=False),
    )),
    packages=dict(type="list", elements="str", default=[]),
    groups=dict(type="list", elements="str", default=[]),
    users=dict(type="list", elements="str", default=[]),
    services=dict(type="list", elements="str", default=[]),
)


def observe(module, files=(), packages=(), groups=(), users=(), services=(), strict=False):
    """Everything compare() needs, as plain data: {"files": {path: observe_file()},
    "packages", "groups", "users", "services", "problems"}.

    A failure of dpkg-query or systemctl (a host without them, or without systemd as
    its init) does not fail the module that looks: the packages or units are null
    (compared as not looked at) and "problems" says why, so that the module's own checks
    (envoy_platform's) still speak first. With strict, NotObserved is raised instead."""
    problems = []
    asked = {}
    for entry in files:
        # A path listed twice: what either asks.
        flags = asked.setdefault(entry["path"], {"sha256": False, "entries": False, "follow": False})
        for key in flags:
            flags[key] = flags[key] or bool(entry.get(key))
    seen_files = {}
    for path, flags in asked.items():
        seen = observe_file(path, sha256=flags["sha256"], entries=flags["entries"])
        seen_files[path] = seen
        if flags["follow"] and seen["kind"] == "link" and "/" not in seen["target"]:
            beside = os.path.join(os.path.dirname(path), seen["target"])
            if beside not in asked:
                seen_files[beside] = observe_file(beside)
    accounts = observe_accounts(list(groups), list(users))
    seen = {"files": seen_files, "groups": accounts["groups"], "users": accounts["users"], "problems": problems}
    for key, look, names in (("packages", observe_packages, packages), ("services", observe_services, services)):
        try:
            seen[key] = look(module, list(names))
        except NotObserved as exc:
            if strict:
                raise
            seen[key] = None
            problems.append(str(exc))
    return seen


def compare(seen, files=(), packages=(), groups=(), users=(), services=()):
    """The differences, as differences() gives them, from what observe() saw: a path,
    user or unit it did not look at is a difference too."""
    found = []
    for spec in files:
        found.extend(compare_file(spec, seen["files"].get(spec["path"])))
    if seen["packages"] is None:
        found.extend("package %s: not looked at" % name for name in _package_names(packages))
    else:
        found.extend(compare_packages(list(packages), seen["packages"]))
    found.extend(compare_accounts(list(groups), list(users), seen))
    found.extend(compare_services(list(services), seen["services"]))
    # Why something was not looked at (observe()'s problems).
    found.extend("not looked at: %s" % problem for problem in seen.get("problems") or ())
    return found


def looks_at(files):
    """What observe() must read of each path for compare() to compare files (FILE_OPTIONS
    entries): a file's sha256 and a directory's entries only where they are compared."""
    return [{"path": spec["path"], "sha256": bool(spec.get("sha256")), "entries": spec.get("entries") is not None}
            for spec in files]


def differences(module, files=(), packages=(), groups=(), users=(), services=()):
    """Every difference from files (FILE_OPTIONS entries), packages, groups, users and
    services, files first: compare(observe()) on the host, in one walk. A dpkg-query or
    systemctl that fails, fails the module."""
    files, users = list(files), list(users)
    try:
        seen = observe(module, files=looks_at(files),
                       packages=packages, groups=groups, users=[spec["name"] for spec in users], services=services,
                       strict=True)
    except NotObserved as exc:
        module.fail_json(msg=str(exc))
    return compare(seen, files, packages, groups, users, services)
