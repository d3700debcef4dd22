#!/usr/bin/env python3
"""The Debian mirror this machine's apt uses, for tests/harness/build-image.sh.

Prints two lines: the Debian archive (MIRROR) and the security archive
(SECURITY_MIRROR), as this machine's apt sources name them; a line is empty when no
source names it (build-image.sh then asks for the variable). Reads, in apt's order,
``etc/apt/sources.list`` and ``etc/apt/sources.list.d/*.list`` (one-line format) and
``etc/apt/sources.list.d/*.sources`` (deb822), under --root (default /).

Which entry is the Debian archive: a ``deb`` entry, enabled, over http, https, ftp or
file, with component ``main``, for this machine's release (VERSION_CODENAME in
etc/os-release, or --codename) or one of its aliases (stable, testing...), whose
Signed-By, if any, is Debian's archive keyring (a vendor's repository has a key of its
own). The security archive: the same for the suite ``<release>-security``. The first
such entry wins, as apt reads them. No mirror is assumed: without an entry, the line
is empty.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Iterator
from typing import NamedTuple

SCHEMES = ("http://", "https://", "ftp://", "file:")
SUITE_ALIASES = ("stable", "oldstable", "testing", "unstable", "sid")


class Source(NamedTuple):
    """One apt source entry (a one-line `deb` line, or one URI × suite of a deb822 stanza)."""

    types: tuple[str, ...]
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str
    enabled: bool
    origin: str  # file name, for messages


def parse_one_line(text: str, origin: str = "") -> Iterator[Source]:
    """Entries of a sources.list-style file: ``deb [opt=value ...] uri suite comp...``."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        kind, rest = tokens[0], tokens[1:]
        options: dict[str, str] = {}
        if rest and rest[0].startswith("["):
            joined = " ".join(rest)
            end = joined.find("]")
            if end < 0:
                continue
            for option in joined[1:end].split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
            rest = joined[end + 1:].split()
        if len(rest) < 2:
            continue
        yield Source((kind,), rest[0], rest[1], tuple(rest[2:]), options.get("signed-by", ""), True, origin)


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif raw[0] in " \t" and key is not None:
            fields[key] += "\n" + raw.strip()
        elif ":" in raw:
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def parse_deb822(text: str, origin: str = "") -> Iterator[Source]:
    """Entries of a ``.sources`` file (deb822: Types, URIs, Suites, Components,
    Enabled, Signed-By), one per URI and suite."""
    for fields in _stanzas(text):
        enabled = fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        types = tuple(fields.get("types", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield Source(types, uri, suite, components, fields.get("signed-by", ""), enabled, origin)


def read_sources(root: pathlib.Path) -> list[Source]:
    """Every entry of root's apt sources, in the order apt reads the files."""
    etc = root / "etc" / "apt"
    entries: list[Source] = []
    main = etc / "sources.list"
    if main.is_file():
        entries += parse_one_line(main.read_text(encoding="utf-8", errors="replace"), str(main))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                entries += parse_one_line(path.read_text(encoding="utf-8", errors="replace"), str(path))
            elif path.suffix == ".sources" and path.is_file():
                entries += parse_deb822(path.read_text(encoding="utf-8", errors="replace"), str(path))
    return entries


def codename(root: pathlib.Path) -> str:
    """VERSION_CODENAME of root's etc/os-release (empty when there is none)."""
    for name in ("etc/os-release", "usr/lib/os-release"):
        path = root / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "VERSION_CODENAME":
                    return value.strip().strip("\"'")
    return ""


def _debian_archive(entry: Source, suites: set[str]) -> bool:
    signed_by = entry.signed_by.strip()
    return (
        entry.enabled
        and "deb" in entry.types
        and entry.uri.startswith(SCHEMES)
        and entry.suite in suites
        and "main" in entry.components
        # A key inline (deb822) or another keyring: a vendor's repository.
        and (not signed_by or ("\n" not in signed_by and "debian-archive" in signed_by))
    )


def mirrors(entries: list[Source], release: str) -> tuple[str, str]:
    """(Debian archive, security archive) URIs, without a trailing slash; "" if none."""
    names = {release, *SUITE_ALIASES} - {""}
    archive = next((e.uri for e in entries if _debian_archive(e, names)), "")
    security = next((e.uri for e in entries if _debian_archive(e, {n + "-security" for n in names})), "")
    return archive.rstrip("/"), security.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--root", default="/", help="read etc/apt and etc/os-release under this directory")
    parser.add_argument("--codename", default="", help="the release (default: VERSION_CODENAME of os-release)")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root)
    release = args.codename or codename(root)
    archive, security = mirrors(read_sources(root), release)
    missing = [what for what, uri in (("the Debian archive (MIRROR)", archive),
                                      ("the security archive (SECURITY_MIRROR)", security)) if not uri]
    if missing:
        print("apt_mirror: %s names no entry for %s of %s (deb, component main)" % (
            root / "etc" / "apt", " nor for ".join(missing), release or "this release"), file=sys.stderr)
    print(archive)
    print(security)
    return 0


if __name__ == "__main__":
    sys.exit(main())
