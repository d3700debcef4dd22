"""Offline stand-in for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip in each of its sanity virtual environments with a
get-pip.py fetched from a host this machine cannot reach. This stand-in, placed in
ansible-test's cache by tests/harness/sanity.sh, bootstraps the pip bundled with
Python (ensurepip) and then installs the requested packages from the package index.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

# get-pip.py options that `pip install` does not know
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main() -> int:
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    # ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the install
    # below must see the machine's pip configuration (index, certificates) again.
    environment = dict(os.environ)
    ensurepip.bootstrap(upgrade=True)
    return subprocess.call([sys.executable, "-m", "pip", "install"] + pip_args, env=environment)


if __name__ == "__main__":
    sys.exit(main())
