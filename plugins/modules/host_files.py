#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_files
short_description: Keep several directories, text files and links on a host in one call
version_added: 0.1.0
description:
  - "Creates the directories, writes the text files and points the links it is given, with
    their owner, group and mode, where the host differs: what a loop of
    M(ansible.builtin.file) and M(ansible.builtin.copy) tasks would do, in one module call
    instead of one or two per path."
  - A file whose content differs is written to a temporary file in its directory, given
    its owner, group and mode there, and renamed over the old one, so that a reader sees
    the old content or the new one, never a part.
  - The writing side of M(mailmesh.imap.host_state), which compares a host with the same
    list (with each text's sha256 in place of the text).
  - A file with O(files[].validate) is checked by that command on the temporary file,
    and replaces the old one only when the command succeeds, as M(ansible.builtin.copy)'s
    C(validate) does; the module then stops at that entry, and the entries before it are
    kept.
  - Wrong input (a relative path, a file without its text, a directory with one, a
    validate command without C(%s)) is refused, naming each entry, before anything on
    the host changes. A path of the other kind already on the host (a directory where a
    file belongs, or the reverse) stops the module at that entry; the entries before it
    are kept.
attributes:
  check_mode:
    support: full
    description: Reports what it would change and changes nothing.
  diff_mode:
    support: full
    description: Shows each changed file's text before and after, and a new directory.
options:
  files:
    description: Directories and files, in order (a directory before what it holds).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path. A link there is replaced, not followed.
        type: path
        required: true
      state:
        description:
          - A directory (created with its missing parents), a regular file, or a symbolic
            link to O(files[].src).
          - A link replaces a file or another link at its path (atomically, by a rename),
            as M(ansible.builtin.file) with C(state=link) and C(force=true) does; its
            target need not exist. O(files[].owner), O(files[].group) and O(files[].mode)
            do not apply to it.
        type: str
        choices: [file, directory, link]
        default: file
      src:
        description: Where a link points (O(files[].state=link), required there), as given.
        type: str
      text:
        description: The file's content (O(files[].state=file), required there), written
          as UTF-8 exactly as given.
        type: str
      owner:
        description: Owner's user name; left as it is when omitted (a new path then
          belongs to the user the module runs as).
        type: str
      group:
        description: Group name; left as it is when omitted.
        type: str
      mode:
        description: Permission bits as an octal string (V('0644')); when omitted, a new
          file gets V(0644) and a new directory V(0755), and an existing one keeps its own.
        type: raw
      validate:
        description:
          - A command that checks a file's new content before it replaces the old one;
            C(%s) stands for the temporary file, which has the same extension as the
            path (for programs that read a file's format from its name). Run without a
            shell, only where the content differs, and not in check mode.
          - When it fails, the module fails with its C(rc), C(stdout) and C(stderr), and
            the old file stays.
        type: str
seealso:
  - module: mailmesh.imap.host_state
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the renewal agent's directories, program and units
  mailmesh.imap.host_files:
    files:
      - path: /usr/local/lib/mailmesh-cert-renew
        state: directory
        owner: root
        group: root
        mode: "0755"
      - path: /usr/local/lib/mailmesh-cert-renew/mailmesh-cert-renew.py
        text: "{{ lookup('ansible.builtin.file', 'mailmesh-cert-renew.py', rstrip=false) }}"
        owner: root
        group: root
        mode: "0644"
  register: agent_files

- name: Read the units again where one changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: agent_files.paths | select('match', '/etc/systemd/') | list | length > 0
"""

RETURN = r"""
paths:
  description: The paths created or changed (content, owner, group or mode), in the
    order given; in check mode, those that would be.
  returned: always
  type: list
  elements: str
  sample:
    - /usr/local/lib/mailmesh-cert-renew
    - /usr/local/lib/mailmesh-cert-renew/mailmesh-cert-renew.py
rc:
  description: The exit status of the O(files[].validate) command that failed.
  returned: failure of a validate command
  type: int
stdout:
  description: What the O(files[].validate) command that failed wrote to its standard output.
  returned: failure of a validate command
  type: str
stderr:
  description: What the O(files[].validate) command that failed wrote to its standard error.
  returned: failure of a validate command
  type: str
"""

import os
import shlex
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.mailmesh.imap.plugins.module_utils._files import replace_file

DEFAULT_MODES = {"file": "0644", "directory": "0755"}


class ValidationFailed(Exception):
    """A file's validate command refused its new content."""

    def __init__(self, path, rc, stdout, stderr):
        super(ValidationFailed, self).__init__(path)
        self.path, self.rc, self.stdout, self.stderr = path, rc, stdout, stderr


def entry_problems(number, entry):
    """What is wrong with one entry, one sentence each (nothing is changed when any is)."""
    where = "files[%d] (%s)" % (number, entry["path"])
    problems = []
    if not os.path.isabs(entry["path"]):
        problems.append("%s: path must be absolute" % where)
    if entry["state"] == "file" and entry["text"] is None:
        problems.append("%s: text is required for a file" % where)
    if entry["state"] == "directory" and entry["text"] is not None:
        problems.append("%s: a directory takes no text" % where)
    if entry["state"] == "link" and not entry["src"]:
        problems.append("%s: src is required for a link" % where)
    if entry["state"] != "link" and entry["src"] is not None:
        problems.append("%s: only a link takes src" % where)
    if entry["state"] == "link" and any(entry[key] is not None for key in ("text", "owner", "group", "mode", "validate")):
        problems.append("%s: a link takes no text, owner, group, mode or validate" % where)
    if entry["validate"] is not None and entry["state"] == "directory":
        problems.append("%s: a directory takes no validate command" % where)
    elif entry["validate"] is not None and "%s" not in entry["validate"]:
        problems.append("%s: validate must contain %%s (the file to check)" % where)
    return problems


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _kind(path):
    found = _lstat(path)
    return None if found is None else stat.S_IFMT(found.st_mode)


def _attributes(module, path, entry, mode):
    file_args = module.load_file_common_arguments(dict(path=path, owner=entry["owner"], group=entry["group"],
                                                       mode=mode))
    return module.set_fs_attributes_if_different(file_args, False, expand=False)


def keep_directory(module, entry, diff):
    path = entry["path"]
    kind = _kind(path)
    if kind is not None and kind != stat.S_IFDIR:
        module.fail_json(msg="%s: exists and is not a directory; remove it first" % path)
    if kind is None:
        diff.append(dict(before_header=path, after_header=path, before="(absent)\n", after="(directory)\n"))
        if not module.check_mode:
            os.makedirs(path)
            _attributes(module, path, entry, entry["mode"] or DEFAULT_MODES["directory"])
        return True
    return _attributes(module, path, entry, entry["mode"])


def keep_link(module, entry, diff):
    path, src = entry["path"], entry["src"]
    kind = _kind(path)
    if kind == stat.S_IFDIR:
        module.fail_json(msg="%s: is a directory, not a link; remove it first" % path)
    current = os.readlink(path) if kind == stat.S_IFLNK else None
    if current == src:
        return False
    diff.append(dict(before_header=path, after_header=path,
                     before="(link to %s)\n" % current if current is not None else
                     ("(absent)\n" if kind is None else "(a file)\n"),
                     after="(link to %s)\n" % src))
    if not module.check_mode:
        temporary = os.path.join(os.path.dirname(path), ".%s.link-%d" % (os.path.basename(path), os.getpid()))
        if _lstat(temporary) is not None:
            os.unlink(temporary)
        os.symlink(src, temporary)
        try:
            os.rename(temporary, path)
        except OSError:
            os.unlink(temporary)
            raise
    return True


def keep_file(module, entry, diff):
    path = entry["path"]
    data = to_bytes(entry["text"], errors="surrogate_or_strict")
    old = _lstat(path)
    kind = None if old is None else stat.S_IFMT(old.st_mode)
    if kind == stat.S_IFDIR:
        module.fail_json(msg="%s: is a directory, not a file" % path)
    current = None
    if kind == stat.S_IFREG:
        with open(path, "rb") as handle:
            current = handle.read()
    if current == data:
        return _attributes(module, path, entry, entry["mode"])
    diff.append(dict(before_header=path, after_header=path,
                     before=to_native(current, errors="surrogate_then_replace") if current is not None else "",
                     after=entry["text"]))
    if module.check_mode:
        return True

    def prepare(temporary):
        mode = entry["mode"]
        if kind == stat.S_IFREG:
            # What is not given stays as the old file had it, as copy keeps it.
            mode = mode or "%04o" % stat.S_IMODE(old.st_mode)
            try:
                os.chown(temporary, old.st_uid, old.st_gid)
            except PermissionError:
                pass  # not root: the new file is the user's, as copy leaves it
        _attributes(module, temporary, entry, mode or DEFAULT_MODES["file"])
        if entry["validate"] is not None:
            rc, out, err = module.run_command(entry["validate"] % shlex.quote(temporary))
            if rc != 0:
                raise ValidationFailed(path, rc, out, err)

    replace_file(path, lambda handle: handle.write(data), prepare, suffix=os.path.splitext(path)[1])
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(
                type="list", elements="dict", required=True,
                options=dict(
                    path=dict(type="path", required=True),
                    state=dict(type="str", choices=["file", "directory", "link"], default="file"),
                    src=dict(type="str"),
                    text=dict(type="str", no_log=False),
                    owner=dict(type="str"),
                    group=dict(type="str"),
                    mode=dict(type="raw"),
                    validate=dict(type="str"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    entries = module.params["files"]
    problems = [p for number, entry in enumerate(entries) for p in entry_problems(number, entry)]
    if problems:
        module.fail_json(msg=" ".join(problems), problems=problems)

    changed_paths = []
    diff = []
    for entry in entries:
        try:
            if entry["state"] == "directory":
                changed = keep_directory(module, entry, diff)
            elif entry["state"] == "link":
                changed = keep_link(module, entry, diff)
            else:
                changed = keep_file(module, entry, diff)
        except ValidationFailed as exc:
            module.fail_json(msg="%s: the validate command refused the new content (rc %d); the old file stays: %s"
                             % (exc.path, exc.rc, (exc.stderr or exc.stdout).strip()),
                             rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, paths=changed_paths)
        except OSError as exc:
            module.fail_json(msg="%s: %s" % (entry["path"], exc.strerror or exc), paths=changed_paths)
        if changed:
            changed_paths.append(entry["path"])
    result = dict(changed=bool(changed_paths), paths=changed_paths)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
