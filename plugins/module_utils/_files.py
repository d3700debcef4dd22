# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""A file's new content put in place whole, shared by host_files and gunzip_copy."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def replace_file(path, write, prepare=None, suffix=""):
    """Give path a new content through a temporary file in its directory (named after it,
    ending in suffix): write(handle) writes the content; the file is synced, then
    prepare(temporary) gives it its owner, group and mode (and may check it), and it is
    renamed to path; then the directory is synced. A reader sees the old file or the new
    one, never a part. On any error the temporary file is removed and the error raised."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if prepare is not None:
            prepare(temporary)
        os.rename(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
