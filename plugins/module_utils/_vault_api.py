# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Small helpers shared by the Vault modules: raw API calls and value normalisation.

Only ``client.adapter.get/post/put/delete`` are used, so the modules work with
Debian 12's python3-hvac 1.0.2 as well as current hvac. The comparison helpers are
pure functions that unit tests call directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

__all__ = [
    "api_read",
    "api_write",
    "api_delete",
    "response_data",
    "duration_seconds",
    "normalize_like",
    "normalize_list",
    "diff_keys",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3,
    "s": 1, "m": 60, "h": 3600, "d": 86400,
}


def duration_seconds(value):
    """Seconds for a Vault duration: an int, ``"3600"``, ``"87600h"``, ``"1h30m"``, ``"7d"``.

    Raises ``ValueError`` for anything else. ``None`` stays ``None``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("%r is not a duration" % (value,))
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if re.match(r"^\d+$", text):
        return int(text)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            "%r is not a duration (expected seconds or a string such as 87600h, 1h30m, 7d)"
            % (value,)
        )
    return int(total)


def normalize_list(value):
    """A list of strings from a list or a comma-separated string, sorted."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return sorted(str(item).strip() for item in value if str(item).strip())


def normalize_like(value, live):
    """Bring a wanted value into the shape Vault returns (as in ``live``) for comparison.

    Durations become seconds when the live value is a number, comma-separated strings
    become sorted lists when the live value is a list, strings become bools when the
    live value is a bool.
    """
    if value is None:
        return None
    if isinstance(live, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(live, (int, float)) and not isinstance(value, bool):
        try:
            return duration_seconds(value)
        except ValueError:
            return value
    if isinstance(live, list) or (live is None and isinstance(value, list)):
        return normalize_list(value)
    return value


def _canon_live(live, wanted):
    if isinstance(live, list):
        return normalize_list(live)
    if live is None and isinstance(wanted, list):
        return []
    return live


def diff_keys(wanted, live):
    """Sorted keys of ``wanted`` whose value differs from ``live`` after normalisation."""
    return sorted(
        key for key, value in wanted.items()
        if normalize_like(value, live.get(key)) != _canon_live(live.get(key), value)
    )


def _path(path):
    return "/v1/" + path.strip("/")


def response_data(response):
    """The ``data`` of a JSON answer; ``None`` for an empty answer (204)."""
    if isinstance(response, dict):
        return response.get("data", response)
    return None


def api_read(client, path):
    """GET ``/v1/<path>``; the answer's ``data`` or ``None`` when there is nothing (404/204)."""
    import hvac.exceptions  # pylint: disable=import-outside-toplevel

    try:
        response = client.adapter.get(_path(path))
    except hvac.exceptions.InvalidPath:
        return None
    return response_data(response)


def api_write(client, path, body, method="post"):
    """POST/PUT ``/v1/<path>`` with a JSON body; the answer's ``data`` or ``None``."""
    response = getattr(client.adapter, method)(_path(path), json=body)
    return response_data(response)


def api_delete(client, path):
    client.adapter.delete(_path(path))
