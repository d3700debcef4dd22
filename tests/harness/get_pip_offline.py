"""Offline stand-in for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip in each of its sanity virtual environments with a
get-pip.py fetched from a host this machine cannot reach. This stand-in, placed in
ansible-test's cache by tests/harness/sanity.sh, bootstraps the pip bundled with
Python (ensurepip) and then installs the requested packages from the package index.
A Python without ensurepip (Debian's python3 without python3-venv, as in the newest
controller's container, tests/harness/controller.sh) bootstraps pip from the pip wheel
that sanity.sh puts in ansible-test's cache (ansible-test runs this script with an
environment of its own, so the cache is where it can be found).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

CACHE = os.path.expanduser("~/.ansible/test/cache")

# get-pip.py options that `pip install` does not know
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main() -> int:
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    # ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the install
    # below must see the machine's pip configuration (index, certificates) again.
    environment = dict(os.environ)
    try:
        import ensurepip  # pylint: disable=import-outside-toplevel
    except ImportError:
        wheels = sorted(glob.glob(os.path.join(CACHE, "pip-*.whl")))
        if not wheels:
            sys.stderr.write("No ensurepip in %s and no pip wheel in %s.\n" % (sys.executable, CACHE))
            return 1
        wheel = wheels[-1]
        # A wheel is a zip archive that Python can run pip from.
        done = subprocess.call([sys.executable, os.path.join(wheel, "pip"), "install", "-q", "--no-index", wheel],
                               env=environment)
        if done != 0:
            return done
    else:
        ensurepip.bootstrap(upgrade=True)
    return subprocess.call([sys.executable, "-m", "pip", "install"] + pip_args, env=environment)


if __name__ == "__main__":
    sys.exit(main())
