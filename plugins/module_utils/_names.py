# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""How certificate names are normalised, shared by the cert module and the policy filter.

A host's AppRole policy allows exactly the ``alt_names`` / ``ip_sans`` strings that
``vault_pki_cert`` sends, so both must build them the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["normalize_names", "join_names"]


def normalize_names(names):
    """Strip, de-duplicate and sort names (DNS names compared case-insensitively)."""
    cleaned = set()
    for name in names or []:
        name = str(name).strip()
        if name:
            cleaned.add(name.lower())
    return sorted(cleaned)


def join_names(names):
    """The request parameter for a list of names: sorted, unique, comma-joined ('' if none)."""
    return ",".join(normalize_names(names))
