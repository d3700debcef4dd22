# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""A pinned wheel, as pip sees it: the name of the file says what to ask pip for.

A wheel's file name (``name-version[-build]-python-abi-platform.whl``) names its
package, its version and the tags pip matches against; with its sha256 it pins one
file. ``pip_download_argv`` turns such a pin into the ``pip download`` command that
fetches exactly that file through pip's own configuration (index, proxy, trusted hosts,
certificates): no index is named here. Pure functions, for the ``wheel_download``
module and its unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

__all__ = ["parse_wheel_filename", "pin_problems", "pip_download_argv", "requirement"]

# PEP 427: {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl,
# where the distribution's name is escaped (runs of -_. as one _) and a tag may hold
# several values joined by dots (py2.py3, manylinux_2_17_x86_64.manylinux2014_x86_64).
_WHEEL_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)"
    r"-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-(?P<build>\d[A-Za-z0-9_]*))?"
    r"-(?P<python>[A-Za-z0-9_.]+)"
    r"-(?P<abi>[A-Za-z0-9_.]+)"
    r"-(?P<platform>[A-Za-z0-9_.]+)\.whl$"
)
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# A Python tag that names a minor version: cp311, py312 (not py3, which fits every 3.x).
_PYTHON_MINOR_RE = re.compile(r"^[a-z]{2}(\d)(\d+)$")


def parse_wheel_filename(filename):
    """The parts of a wheel's file name: a dict with name (normalised as pip and the
    index spell it: lower case, ``-``), version, build (or None), and the lists
    python_tags, abi_tags, platform_tags. Raises ValueError for any other name."""
    match = _WHEEL_RE.match(str(filename))
    if match is None or "/" in str(filename):
        raise ValueError(
            "%r is not a wheel file name (name-version[-build]-python-abi-platform.whl)" % (filename,))
    parts = match.groupdict()
    return {
        "name": re.sub(r"[-_.]+", "-", parts["name"]).lower(),
        "version": parts["version"],
        "build": parts["build"],
        "python_tags": parts["python"].split("."),
        "abi_tags": parts["abi"].split("."),
        "platform_tags": parts["platform"].split("."),
    }


def requirement(filename):
    """The requirement pip gets for the wheel: ``name==version``."""
    wheel = parse_wheel_filename(filename)
    return "%s==%s" % (wheel["name"], wheel["version"])


def pin_problems(filename, sha256, pin_variable=""):
    """What is wrong with a pin (a wheel's file name and its sha256), one sentence per
    problem naming pin_variable when given; empty when nothing is."""
    where = " in %s" % pin_variable if pin_variable else ""
    problems = []
    try:
        parse_wheel_filename(filename)
    except ValueError as exc:
        problems.append("filename%s: %s." % (where, exc))
    if not _SHA256_RE.match(str(sha256 or "")):
        problems.append("sha256%s must be 64 hexadecimal digits, got %r." % (where, sha256))
    return problems


def pip_download_argv(python, filename, dest):
    """The command that has ``python``'s pip download the wheel ``filename`` into dest.

    Only that file can match: ``--no-deps --only-binary=:all:`` and, read from the file
    name, the platform tags (``--platform``, each one), the ABI tags (``--abi``), the
    implementation when every Python tag has the same one (``--implementation``: ``py``
    for ``py3``, which forces implementation-agnostic wheels) and ``--python-version`` when
    the tag names a minor version (``cp311``: 3.11). A tag such as ``py3`` gives no
    version: pip then checks the package's Requires-Python against the interpreter that
    runs it (``--python-version 3`` would mean 3.0). Nothing names an index, a proxy or
    a certificate: pip takes them from its configuration (pip.conf, ``PIP_*``)."""
    wheel = parse_wheel_filename(filename)
    argv = [str(python), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
            "--dest", str(dest)]
    for tag in wheel["platform_tags"]:
        argv += ["--platform", tag]
    implementations = sorted(set(tag[:2] for tag in wheel["python_tags"]))
    if len(implementations) == 1:
        argv += ["--implementation", implementations[0]]
    if len(wheel["python_tags"]) == 1:
        minor = _PYTHON_MINOR_RE.match(wheel["python_tags"][0])
        if minor:
            argv += ["--python-version", "%s.%s" % minor.groups()]
    for tag in wheel["abi_tags"]:
        argv += ["--abi", tag]
    argv.append("%s==%s" % (wheel["name"], wheel["version"]))
    return argv
