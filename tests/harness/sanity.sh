#!/usr/bin/env bash
# `ansible-test sanity`, then `ansible-test units`, on the collection as a user gets it,
# with the ansible-core on PATH (make sanity: the venv's; make newest: the newest release's):
# build the tarball, install it under .build/sanity/ansible_collections/mailmesh/imap,
# run there. The units run proves that the tests the tarball ships pass from an
# installed copy (the checkout's own tests run in `make units`).
# Expects the venv's bin on PATH (the Makefile exports it).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${repo_root}/.build"
python_version="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

say() { printf '==> sanity: %s\n' "$*"; }

core="$(ansible --version | sed -n 's/.*\[core \([0-9.]*\)\].*/\1/p')"
# ansible-test lists files with git when it finds a repository above the collection;
# .build/ is ignored by this repository, so the copy gets a repository of its own. Where
# there is no git (the newest controller's container: tests/harness/controller.sh), the
# copy goes outside the checkout, where ansible-test lists the files itself.
if command -v git >/dev/null; then
  dist="${build}/dist" install_root="${build}/sanity"
else
  scratch="$(mktemp -d)"
  trap 'rm -rf "${scratch}"' EXIT
  dist="${scratch}/dist" install_root="${scratch}/sanity"
fi

say "building the collection tarball (ansible-core ${core}, Python ${python_version})"
rm -rf "${dist}" "${install_root}"
ansible-galaxy collection build --force --output-path "${dist}" "${repo_root}" >/dev/null
ansible-galaxy collection install --offline --force -p "${install_root}" \
  "${dist}"/mailmesh-imap-*.tar.gz >/dev/null 2>&1
collection="${install_root}/ansible_collections/mailmesh/imap"

if command -v git >/dev/null; then
  git -C "${collection}" init -q
  git -C "${collection}" add -A
fi

# ansible-test downloads get-pip.py to bootstrap its virtual environments, from a
# host that is not reachable: give it an offline stand-in under the name it expects.
pip_version="$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" \
  "$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n1)"
if [ -n "${pip_version}" ]; then
  cache="${HOME}/.ansible/test/cache"
  mkdir -p "${cache}"
  # Written only when it differs, and by a rename: make test runs this script for two
  # ansible-core releases at once (make sanity, make newest), with the same cache.
  get_pip="${cache}/get_pip_${pip_version//./_}.py"
  if ! cmp -s "${repo_root}/tests/harness/get_pip_offline.py" "${get_pip}"; then
    install -m 0644 "${repo_root}/tests/harness/get_pip_offline.py" "${get_pip}.$$"
    mv -f "${get_pip}.$$" "${get_pip}"
  fi
  # A Python without ensurepip: the stand-in installs pip from this wheel.
  if [ -n "${MAILMESH_PIP_WHEEL:-}" ]; then
    rm -f "${cache}"/pip-*.whl
    install -m 0644 "${MAILMESH_PIP_WHEEL}" "${cache}/"
  fi
fi

say "ansible-test sanity --requirements --python ${python_version}"
cd "${collection}"
export ANSIBLE_COLLECTIONS_PATH="${install_root}"
ansible-test sanity --requirements --python "${python_version}" --color yes "$@"

# pytest, pytest-xdist and pytest-mock come from the venv (requirements/controller.txt).
say "ansible-test units --python ${python_version} (the tests the tarball ships)"
ansible-test units --python "${python_version}" --color yes
