#!/usr/bin/env bash
# `ansible-test sanity`, then `ansible-test units`, on the collection as a user gets it:
# build the tarball, install it under .build/sanity/ansible_collections/mailmesh/imap,
# run there. The units run proves that the tests the tarball ships pass from an
# installed copy (the checkout's own tests run in `make units`).
# Expects the venv's bin on PATH (the Makefile exports it).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${repo_root}/.build"
python_version="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

say() { printf '==> sanity: %s\n' "$*"; }

say "building the collection tarball"
rm -rf "${build}/dist" "${build}/sanity"
ansible-galaxy collection build --force --output-path "${build}/dist" "${repo_root}" >/dev/null
ansible-galaxy collection install --offline --force -p "${build}/sanity" \
  "${build}/dist"/mailmesh-imap-*.tar.gz >/dev/null 2>&1
collection="${build}/sanity/ansible_collections/mailmesh/imap"

# ansible-test lists files with git when it finds a repository above the collection;
# .build/ is ignored by this repository, so the copy gets a repository of its own.
git -C "${collection}" init -q
git -C "${collection}" add -A

# ansible-test downloads get-pip.py to bootstrap its virtual environments, from a
# host that is not reachable: give it an offline stand-in under the name it expects.
pip_version="$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" \
  "$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n1)"
if [ -n "${pip_version}" ]; then
  cache="${HOME}/.ansible/test/cache"
  mkdir -p "${cache}"
  install -m 0644 "${repo_root}/tests/harness/get_pip_offline.py" "${cache}/get_pip_${pip_version//./_}.py"
fi

say "ansible-test sanity --requirements --python ${python_version}"
cd "${collection}"
export ANSIBLE_COLLECTIONS_PATH="${build}/sanity"
ansible-test sanity --requirements --python "${python_version}" --color yes "$@"

# pytest, pytest-xdist and pytest-mock come from the venv (requirements/controller.txt).
say "ansible-test units --python ${python_version} (the tests the tarball ships)"
ansible-test units --python "${python_version}" --color yes
