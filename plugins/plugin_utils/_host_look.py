# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Internal, may change: mailmesh.imap.host_state's look at files and its reads, done by
a POSIX shell script (``ansible.builtin.raw``, no Python on the host) instead of a module
call. A module call costs a host about 0.2 s of CPU (Python and Ansible's module code,
compiled from the module's zip on every call); the script costs it a few milliseconds.

``look_script(files, read)`` writes the script; ``parse_look(output)`` turns its output
into what host_state's code compares (``observe_file()``'s values, per path) and what
its ``read`` returns (``contents``: base64, or None for a missing file). The output
names each path (base64), so it is read without the list that made it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import shlex

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import _READ_LIMIT

__all__ = ["LookError", "look_script", "parse_look"]

# One function per kind of line. Each prints the path (base64) first, so that no path,
# whatever it holds, can break a line. stat: %F (the kind), owner and group names and
# numbers (a name the host cannot resolve prints as UNKNOWN: the number is used, as
# host_state does), %a (the permission bits), %s (the size). The script itself never
# fails: a path it cannot look at is reported as such.
_FUNCTIONS = r"""_p() { printf %s "$1" | base64 -w0; }
_f() {
  _s=$(stat -c '%F|%U|%u|%G|%g|%a' -- "$1" 2>/dev/null) || { echo "F $(_p "$1") -"; return; }
  case $_s in
    'symbolic link|'*) echo "F $(_p "$1") $_s|$(_p "$(readlink -- "$1")")" ;;
    regular*) if [ "$2" = 1 ]; then _h=$(sha256sum < "$1" 2>/dev/null) || _h=!; echo "F $(_p "$1") $_s|${_h%% *}";
              else echo "F $(_p "$1") $_s|"; fi ;;
    *) echo "F $(_p "$1") $_s|" ;;
  esac
}
_r() {
  _s=$(stat -L -c '%F|%s' -- "$1" 2>/dev/null) || { echo "R $(_p "$1") -"; return; }
  case $_s in
    regular*) if [ "${_s#*|}" -le %(limit)d ] && _c=$(base64 -w0 -- "$1" 2>/dev/null); then echo "R $(_p "$1") =$_c";
              else echo "R $(_p "$1") !"; fi ;;
    *) echo "R $(_p "$1") !" ;;
  esac
}
"""

_KINDS = {"regular file": "file", "regular empty file": "file", "directory": "directory", "symbolic link": "link"}


class LookError(ValueError):
    """The output is not the script's, or a read found no regular file it could read."""


def _quoted(path):
    return shlex.quote(to_text(path, errors="surrogate_or_strict"))


def look_script(files=(), read=()):
    """The script that looks at ``files`` (what _host_state.looks_at() gives: each path,
    with sha256 where a file's content is compared and entries where a directory's are)
    and reads ``read`` (paths). A directory's entries are not looked at (ValueError)."""
    lines = [_FUNCTIONS.replace("%(limit)d", str(_READ_LIMIT))]
    for entry in files:
        if entry.get("entries"):
            raise ValueError("%s: a directory's entries are not looked at by the script" % entry["path"])
        lines.append("_f %s %d" % (_quoted(entry["path"]), 1 if entry.get("sha256") else 0))
    lines.extend("_r %s" % _quoted(path) for path in read)
    return "\n".join(lines) + "\n"


def _unb64(text, what):
    try:
        return base64.b64decode(to_bytes(text), validate=True)
    except (binascii.Error, ValueError):
        raise LookError("the look's output is not the script's: %s is not base64" % what)


def _seen(value):
    """observe_file()'s values from one F line's value."""
    if value == "-":
        return {"kind": None}
    fields = value.split("|", 7)
    if len(fields) != 7:
        raise LookError("the look's output is not the script's: %r" % value)
    kind, owner, uid, group, gid, mode, extra = fields
    try:
        mode = "%04o" % int(mode, 8)
    except ValueError:
        raise LookError("the look's output is not the script's: %r is not a mode" % mode)
    seen = {"kind": _KINDS.get(kind, "other"),
            "owner": uid if owner == "UNKNOWN" else owner,
            "group": gid if group == "UNKNOWN" else group,
            "mode": mode}
    if seen["kind"] == "link":
        seen["target"] = to_text(_unb64(extra, "a link's target"), errors="surrogate_or_strict")
    elif seen["kind"] == "file" and extra:
        # "!": the file could not be read; a sha256 that matches nothing.
        seen["sha256"] = extra.lower()
    return seen


def parse_look(output):
    """{"files": {path: what observe_file() would see}, "contents": {path: base64 or
    None}} from the script's output. LookError for output that is not the script's, or
    for a read path that is not a regular file, is larger than host_state reads or could
    not be read (host_state fails there too)."""
    files, contents = {}, {}
    for line in to_text(output, errors="surrogate_or_strict").splitlines():
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[0] not in ("F", "R"):
            raise LookError("the look's output is not the script's: %r" % line[:80])
        kind, path, value = parts[0], to_text(_unb64(parts[1], "a path"), errors="surrogate_or_strict"), parts[2]
        if kind == "F":
            files[path] = _seen(value)
        elif value == "-":
            contents[path] = None
        elif value.startswith("="):
            _unb64(value[1:], "the content of %s" % path)
            contents[path] = value[1:]
        else:
            raise LookError("%s is not a regular file, is larger than %d bytes, or could not be read"
                            % (path, _READ_LIMIT))
    return {"files": files, "contents": contents}
