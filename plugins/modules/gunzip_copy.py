#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gunzip_copy
short_description: Send a gzip file from the controller and write it on the host unpacked
version_added: 0.1.0
description:
  - "Copies a gzip-compressed file from the controller to the host, unpacks it there
    and puts it under O(dest) with its owner, group and mode: what
    M(ansible.builtin.copy) with C(force=false) does for the unpacked file, with the
    compressed bytes on the wire (a third of a release binary such as Envoy's)."
  - "When O(dest) is already there (any file, link or directory, not followed), nothing
    is sent and nothing changes, as with M(ansible.builtin.copy)'s C(force=false): meant
    for a file whose name says its content (a release and its checksum)."
  - The file is unpacked into a temporary file in O(dest)'s directory, given its owner,
    group and mode there, synced to disk and renamed to O(dest), so that O(dest) is
    the whole file or nothing, never a part. gzip's own check (the CRC-32 and length of
    the unpacked data) refuses a copy that was cut short or damaged on the way; the
    temporary file is then removed and O(dest) stays absent.
  - An action plugin sends the file; the module runs on the host with the copy in
    Ansible's remote temporary directory, which Ansible removes after the task.
attributes:
  check_mode:
    support: full
    description: Reports whether it would write O(dest), and sends nothing.
  diff_mode:
    support: none
    description: A binary file has no text to show.
  action:
    support: full
    description: The action plugin sends O(src) after it found that O(dest) is missing.
options:
  src:
    description: The gzip file on the controller, absolute or found as
      M(ansible.builtin.copy) finds its C(src) (a role's C(files/)).
    type: path
    required: true
  dest:
    description: The unpacked file's absolute path on the host; its directory must exist.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.files
seealso:
  - module: ansible.builtin.copy
notes:
  - The host needs nothing but the Python that runs Ansible's modules (its C(gzip) module).
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Copy the release binary, sent compressed
  mailmesh.imap.gunzip_copy:
    src: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/mailmesh/envoy/envoy-1.40.0-x86_64.gz"
    dest: /usr/local/bin/envoy-1.40.0-a88a3ed5b48b
    owner: root
    group: root
    mode: "0755"
"""

RETURN = r"""
dest:
  description: O(dest).
  returned: always
  type: str
  sample: /usr/local/bin/envoy-1.40.0-a88a3ed5b48b
size:
  description: The unpacked file's size in bytes, when this task wrote it.
  returned: when changed and not in check mode
  type: int
  sample: 106905560
"""

import gzip
import os
import shutil
import zlib

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mailmesh.imap.plugins.module_utils._files import replace_file

_BLOCK = 1 << 20
# What gzip raises for a copy cut short or damaged (BadGzipFile, an OSError, since
# Python 3.8).
_DAMAGED = (EOFError, zlib.error) + ((gzip.BadGzipFile,) if hasattr(gzip, "BadGzipFile") else ())


def unpack(src, dest, attributes):
    """Unpack the gzip file src to dest (missing) through a temporary file beside it
    (replace_file); attributes(path) gives that file its owner, group and mode before the
    rename. The unpacked size; OSError, EOFError or zlib.error (the partial file removed)."""
    def write(out):
        with gzip.open(src, "rb") as packed:
            shutil.copyfileobj(packed, out, _BLOCK)

    replace_file(dest, write, attributes, suffix=".part")
    return os.path.getsize(dest)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    src, dest = module.params["src"], module.params["dest"]
    if not os.path.isabs(dest):
        module.fail_json(msg="dest must be an absolute path, got %r" % dest)
    if os.path.lexists(dest):
        module.exit_json(changed=False, dest=dest)
    if not os.path.isdir(os.path.dirname(dest)):
        module.fail_json(msg="dest: the directory %s does not exist" % os.path.dirname(dest), dest=dest)
    if module.check_mode:
        module.exit_json(changed=True, dest=dest)

    def attributes(path):
        file_args = module.load_file_common_arguments(module.params, path=path)
        module.set_fs_attributes_if_different(file_args, False)

    try:
        size = unpack(src, dest, attributes)
    except _DAMAGED as exc:
        module.fail_json(msg="dest: %s was not written: the copy of src is not a whole gzip file (%s)"
                         % (dest, to_native(exc)), dest=dest)
    except OSError as exc:
        module.fail_json(msg="dest: %s was not written: %s" % (dest, to_native(exc)), dest=dest)
    module.exit_json(changed=True, dest=dest, size=size)


if __name__ == "__main__":
    main()
