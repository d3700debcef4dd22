"""What a container needs to use this machine's pip configuration as the machine does.

tests/harness/controller.sh runs the newest ansible-core's controller in a container; its
pip (the venv's packages, the roles' wheel downloads) must find packages where the
machine's pip does, with the same proxy and certificates, and no index may be named in
the repository. From ``pip config debug`` and the environment, this prints the
``docker run`` arguments, one per line:

- ``-v PATH:PATH:ro`` for every pip configuration file that exists, and for every file or
  local directory a setting names (a CA bundle, find-links, a ``file://`` index); a local
  index (PEP 503, ``.../simple``) is mounted from its root, where such indexes keep their
  files beside ``simple/``;
- ``-e NAME`` for every ``PIP_*`` variable and the proxy variables (passed by name: the
  values stay out of the command line).

Usage: pip_mounts.py [PYTHON]   (default: this Python; its ``-m pip config debug``)
"""

from __future__ import annotations

import os
import subprocess
import sys

EXISTS = ", exists: True"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


def config_debug(python: str) -> str:
    return subprocess.run([python, "-m", "pip", "config", "debug"],
                          capture_output=True, text=True, check=False).stdout


def parse(debug: str) -> tuple[list[str], list[str]]:
    """(configuration files that exist, every setting's value) from ``pip config debug``."""
    files, values = [], []
    for line in debug.splitlines():
        text = line.strip()
        if text.endswith(EXISTS):
            files.append(text[: -len(EXISTS)])
        elif ": " in text and not text.endswith(":"):
            values.append(text.split(": ", 1)[1])
    return files, values


def local_paths(value: str, exists=os.path.exists) -> list[str]:
    """The local files and directories a setting's value names (space-separated lists too)."""
    found = []
    for token in value.strip().strip("'\"").split():
        if token.startswith("file://"):
            token = token[len("file://"):].rstrip("/")
            if os.path.basename(token) == "simple":
                token = os.path.dirname(token)
        if token.startswith("/") and exists(token):
            found.append(token)
    return found


def docker_args(debug: str, environ, exists=os.path.exists, realpath=os.path.realpath) -> list[str]:
    files, values = parse(debug)
    values += [value for key, value in environ.items() if key.startswith("PIP_")]
    paths = {realpath(path) for path in files if exists(path)}
    for value in values:
        paths.update(realpath(path) for path in local_paths(value, exists))
    args = []
    for path in sorted(paths):
        args += ["-v", "%s:%s:ro" % (path, path)]
    for key in sorted(environ):
        if key.startswith("PIP_") or key.lower() in PROXY_VARIABLES:
            args += ["-e", key]
    return args


def main(argv: list[str]) -> int:
    python = argv[1] if len(argv) > 1 else sys.executable
    for arg in docker_args(config_debug(python), os.environ):
        print(arg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
