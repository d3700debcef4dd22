# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Internal, may change: what the roles' filters (nginx_mail, vault_server, dovecot,
host_state_files) share. Each helper does what the Jinja filter or test named in its
docstring does, so that a value a role's vars computed with Jinja before comes out the
same from Python."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible.module_utils.common.text.converters import to_bytes, to_text

__all__ = ["jinja_int", "jinja_text", "json_text", "matches", "sentences", "text_sha256"]

_BLANKS = re.compile(r"\s+")


def jinja_int(value):
    """``value | int``: 0 when it is not a number; "42.7" gives 42."""
    try:
        if isinstance(value, str):
            return int(value, 10)
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def jinja_text(value):
    """``{{ value }}`` inside a text: nothing for None, else the value as text."""
    if value is None:
        return ""
    return to_text(value, errors="surrogate_or_strict", nonstring="simplerepr")


def matches(value, pattern):
    """``value is match(pattern)``: re.match on the value as text."""
    return re.match(pattern, to_text(value, errors="surrogate_or_strict")) is not None


def json_text(value):
    """``value | string | to_json``."""
    return json.dumps(to_text(value, errors="surrogate_or_strict", nonstring="simplerepr"))


def text_sha256(text):
    """``text | hash('sha256')``."""
    return hashlib.sha256(to_bytes(text, errors="surrogate_or_strict")).hexdigest()


def sentences(parts):
    """One message from its sentences, every run of white space one blank, as the
    roles' ``{% filter regex_replace('\\s+', ' ') | trim %}`` blocks made it; empty when
    there are none."""
    return _BLANKS.sub(" ", " ".join(parts)).strip()
