# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's template rendered to text, as ansible.builtin.template renders it, without
that lookup's copy of every variable on every call.

ansible.builtin.template deep-copies all of the task's variables (every role's defaults,
the inventory's, the registered results, with their origin tags) each time it is called,
so that it can add its own (template_path, ansible_managed, ...). The roles render their
systemd units with it on every host and run, to compare them by sha256: on a 25-device
fleet that copy was the largest single cost of an idempotent run on the controller
(docs/performance.md). This lookup layers the one variable the roles' templates use
(ansible_managed, unless the inventory sets it) over the task's variables instead.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: template_text
author:
  - mailmesh.imap maintainers (!UNKNOWN)
short_description: A role's template rendered to text, without copying every variable
version_added: "1.0.0"
description:
  - Renders each template file (searched in the role's C(templates/) as
    M(ansible.builtin.template) searches it) with the task's variables and returns its
    text.
  - The same text as C(lookup('ansible.builtin.template', ...)) for templates that use
    the task's variables and C(ansible_managed); C(ansible.builtin.template)'s other
    template variables (C(template_path), C(template_host), C(template_mtime),
    C(template_uid), C(template_run_date), C(template_fullpath)) are not set, and
    C(include) and C(import) inside the template are not supported.
  - Unlike C(ansible.builtin.template), it does not copy all of the task's variables
    on every call, which on a fleet costs the controller most of the lookup's time.
options:
  _terms:
    description: Template files, relative to the role's C(templates/) directory.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Compare a unit with what the role would write
  ansible.builtin.set_fact:
    unit_sha256: "{{ lookup('mailmesh.imap.template_text', 'etc/systemd/system/envoy.service.j2') | hash('sha256') }}"
"""

RETURN = r"""
_raw:
  description: The rendered text of each template, trailing newline kept.
  type: list
  elements: str
"""

import collections
import os
import pwd
import time

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template


def _ansible_managed(fullpath, term):
    """ansible_managed as ansible.builtin.template makes it from DEFAULT_MANAGED_STR: its
    {host}, {uid} and {file} fields (deprecated) and strftime fields filled in, and
    trusted as a template, so that Jinja in the setting is rendered as the builtin does."""
    stat = os.stat(fullpath)
    try:
        uid = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        uid = str(stat.st_uid)
    managed = C.config.get_config_value("DEFAULT_MANAGED_STR").format(host=os.uname()[1], uid=uid, file=term)
    return trust_as_template(time.strftime(managed, time.localtime(stat.st_mtime)))


class LookupModule(LookupBase):
    """Render role templates without ansible.builtin.template's copy of the variables."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        texts = []
        for term in terms:
            fullpath = self.find_file_in_search_path(variables, "templates", term)
            if not fullpath:
                raise AnsibleError("the template file %s could not be found for the lookup" % term)
            source = trust_as_template(self._loader.get_text_file_contents(fullpath))
            layer = {} if "ansible_managed" in variables else {"ansible_managed": _ansible_managed(fullpath, term)}
            templar = self._templar.copy_with_new_env(available_variables=collections.ChainMap(layer, variables))
            texts.append(templar.template(source, escape_backslashes=False))
        return texts
