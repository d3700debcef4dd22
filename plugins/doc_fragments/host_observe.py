# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors OBSERVE_OPTIONS in plugins/module_utils/_host_state.py: the observe option
    # of envoy_platform and envoy_ready.
    DOCUMENTATION = r"""
options:
  observe:
    description:
      - Also look at these paths, packages, accounts and units, as
        M(mailmesh.imap.host_state) would, and return what is there in C(observed); the
        P(mailmesh.imap.host_state_differences#filter) filter compares that with what a
        role keeps, on the controller, with the same code.
    type: dict
    suboptions:
      files:
        description: The paths, each with what to read of it.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path; a link is not followed.
            type: path
            required: true
          sha256:
            description: Also the sha256 of a regular file's content.
            type: bool
            default: false
          entries:
            description: Also the names a directory holds.
            type: bool
            default: false
          follow:
            description: A link whose target is a name in the same directory - that
              file too (its kind, owner, group and mode).
            type: bool
            default: false
      packages:
        description: Package names; C(observed.packages) lists those installed.
        type: list
        elements: str
        default: []
      groups:
        description: Group names; C(observed.groups) lists those that exist.
        type: list
        elements: str
        default: []
      users:
        description: User names; C(observed.users) gives each one's primary group, shell, home, uid and gid.
        type: list
        elements: str
        default: []
      services:
        description: Unit names (C(.service) added where there is no suffix).
        type: list
        elements: str
        default: []
"""
