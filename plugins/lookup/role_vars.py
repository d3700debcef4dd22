# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Variables of another role of this collection, as that role would see them when
included from the calling task, without including it.

The envoy role checks its certificate in its first module call on the host: it needs the
arguments the vault_cert role would pass to its certificate module, which are computed
by vault_cert's own variables from its defaults, the inventory and the include's vars.
An include_role for that would cost every host of a fleet the role's checks on every
run (docs/performance.md); this lookup renders them in the calling task's worker,
from the same files, so that the two cannot disagree.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: role_vars
author:
  - mailmesh.imap maintainers (!UNKNOWN)
short_description: Variables of a role of this collection, as an include of it would see them
version_added: "1.0.0"
description:
  - Returns the value of each variable named, templated as a task of role O(role)
    would template it when that role is included from the calling task with O(with_vars) as
    the include's C(vars).
  - The layers, highest first, as C(ansible.builtin.include_role) stacks them for
    these variables - the extra vars (C(-e)); O(with_vars); the role's C(role_path) and its
    search path (so that
    lookups such as P(mailmesh.imap.template_text#lookup) find the role's templates);
    the role's C(vars/main.yml); the calling task's variables (inventory, play, facts,
    registered results); the role's C(defaults/main.yml).
  - The role's C(meta/argument_specs.yml) is not checked, and its tasks do not run.
  - One difference from an include - a variable the play sets with
    C(ansible.builtin.set_fact) or C(ansible.builtin.include_vars) does not win over
    O(with_vars) here, as it would over an include's C(vars).
  - Each variable of the role's two files is templated once per call, however often
    other variables refer to it (an include templates it at each reference; the value is
    the same unless the template gives a different value each time, such as
    C(random)). Where ansible-core's lazy containers cannot be used so, each reference
    templates it again, with the same result.
options:
  _terms:
    description: Names of variables.
    required: true
    type: list
    elements: str
  role:
    description: A role of this collection (its short name, such as C(vault_cert)).
    type: str
    required: true
  with_vars:
    description:
      - Variables set for the role, as the C(vars) of an include of it.
      - Not called C(vars), a name Ansible's configuration of plugins takes for itself.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The certificate module's arguments that vault_cert would use for the envoy service
  ansible.builtin.debug:
    msg: "{{ lookup('mailmesh.imap.role_vars', '__vault_cert_module_args', role='vault_cert',
                    with_vars={'vault_cert_service': 'envoy'}) }}"
"""

RETURN = r"""
_raw:
  description: The value of each variable, templated.
  type: list
  elements: raw
"""

import collections
import os
import re

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template
from ansible.utils.vars import load_extra_vars

try:  # ansible-core's lazy containers, for _rendered_once(); none: the plain layers
    from ansible._internal._templating._engine import TemplateOptions
    from ansible._internal._templating._lazy_containers import _AnsibleLazyTemplateMixin
    from ansible._internal._templating._utils import TemplateContext
except ImportError:  # pragma: no cover - another ansible-core
    _AnsibleLazyTemplateMixin = None

_ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _rendered_once(templar, layer):
    """``layer`` (a role file's variables) as ansible-core's lazy dict, bound to
    ``templar``: it keeps each value once templated, for the rest of the call. A plain
    dict layer is wrapped anew for every template that reads it, so that each reference
    to a variable (vault_cert's certificate directory: eleven) templates and compiles it
    again. The plain layer where these internals are not there or not as expected."""
    if _AnsibleLazyTemplateMixin is None or not layer:
        return layer
    try:
        with TemplateContext(template_value=None, templar=templar._engine, options=TemplateOptions.DEFAULT):
            return _AnsibleLazyTemplateMixin._try_create(layer)
    except Exception:  # pylint: disable=broad-except  # pragma: no cover - another ansible-core
        # Only wraps the dict (nothing is templated yet): a failure here is an
        # ansible-core whose internals differ, and the plain layer is as correct.
        return layer


class LookupModule(LookupBase):
    """Template another role's variables in the calling task's context."""

    def _role_file(self, role_dir, name):
        path = os.path.join(role_dir, name, "main.yml")
        if not os.path.exists(path):
            return {}
        # Not copied (unsafe=True): only read here. A copy of the two files' data cost
        # each call a fifth of its time.
        data = self._loader.load_from_file(path, unsafe=True, trusted_as_template=True)
        return data or {}

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        role = self.get_option("role")
        if not _NAME.match(str(role)) or not os.path.isdir(os.path.join(_ROLES_DIR, role)):
            raise AnsibleError("role_vars: role must be a role of mailmesh.imap, got %r" % (role,))
        role_dir = os.path.join(_ROLES_DIR, role)
        variables = variables or {}
        # Extra vars (-e) win over everything, the include's vars among them.
        extra = {name: variables[name] for name in load_extra_vars(self._loader) if name in variables}
        layers = collections.ChainMap()
        templar = self._templar.copy_with_new_env(available_variables=layers)
        layers.maps[:] = [
            extra,
            dict(self.get_option("with_vars") or {}),
            {"role_path": role_dir, "ansible_search_path": [role_dir]},
            _rendered_once(templar, self._role_file(role_dir, "vars")),
            variables,
            _rendered_once(templar, self._role_file(role_dir, "defaults")),
        ]
        values = []
        for term in terms:
            if not _NAME.match(str(term)):
                raise AnsibleError("role_vars: %r is not a variable name" % (term,))
            if term not in layers:
                raise AnsibleError("role_vars: the role %s has no variable %s" % (role, term))
            values.append(templar.template(trust_as_template("{{ %s }}" % term)))
        return values
