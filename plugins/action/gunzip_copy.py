# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's half of mailmesh.imap.gunzip_copy: look whether dest is there, and
only when it is not, send src into Ansible's remote temporary directory and run the
module on it (which unpacks it under dest)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

_MODULE = "mailmesh.imap.gunzip_copy"


class ActionModule(ActionBase):

    # The remote temporary directory is made only when the file is sent.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        for option in ("src", "dest"):
            if not args.get(option):
                raise AnsibleActionFail("%s is required" % option)
        try:
            source = self._find_needle("files", args["src"])
        except AnsibleError as exc:
            raise AnsibleActionFail("src: %s" % exc)
        dest = args["dest"]
        try:
            if self._execute_remote_stat(dest, all_vars=task_vars, follow=False, checksum=False)["exists"]:
                result.update(changed=False, dest=dest)
                return result
            if self._task.check_mode:
                result.update(changed=True, dest=dest)
                return result
            if self._connection._shell.tmpdir is None:
                self._make_tmp_path()
            remote_src = self._connection._shell.join_path(self._connection._shell.tmpdir, "source.gz")
            self._transfer_file(source, remote_src)
            self._fixup_perms2((self._connection._shell.tmpdir, remote_src))
            module_args = dict(args, src=remote_src)
            result.update(self._execute_module(module_name=_MODULE, module_args=module_args, task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
