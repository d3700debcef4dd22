#!/usr/bin/env bash
# Make the collections the project uses visible to Ansible and Python, and only those:
#   .build/collections/ansible_collections/mailmesh/imap -> <repo root>
#   .build/collections/ansible_collections/<ns>/<name>   -> the venv's copy, for each
#     collection in DEPENDENCIES (from the `ansible` PyPI package; Galaxy is not used)
# The Makefile points ANSIBLE_COLLECTIONS_PATH at .build/collections alone and turns off
# the sys.path scan, so Ansible never lists the hundred other collections the `ansible`
# package brings: Mitogen lists every visible collection each time a worker runs a
# collection's module (see docs/performance.md).
#
# Usage: collection-link.sh [venv site-packages]   (default: .venv's)
set -euo pipefail

DEPENDENCIES=(
  community.docker                          # the lab's connection, molecule's driver
  community.library_inventory_filtering_v1  # community.docker's declared dependency
  ansible.posix                             # json and profile_* callbacks (tests, benchmarks)
)

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
root="${repo_root}/.build/collections/ansible_collections"
site="${1:-}"
if [ -z "${site}" ]; then
  for candidate in "${repo_root}"/.venv/lib/python3*/site-packages; do
    site="${candidate}"
    break
  done
fi

# link <target> <link path>: (re)point the symlink, say so only when it changed.
link() {
  local target="$1" path="$2"
  mkdir -p "$(dirname "${path}")"
  if [ -L "${path}" ] && [ "$(readlink "${path}")" = "${target}" ]; then
    return 0
  fi
  rm -rf "${path}"
  ln -s "${target}" "${path}"
  printf '==> collection: %s -> %s\n' "${path#"${repo_root}"/}" "${target}"
}

link "${repo_root}" "${root}/mailmesh/imap"

for fqcn in "${DEPENDENCIES[@]}"; do
  source_dir="${site}/ansible_collections/${fqcn%%.*}/${fqcn#*.}"
  if [ ! -f "${source_dir}/MANIFEST.json" ]; then
    printf 'collection-link.sh: %s is not in %s; run make venv (the ansible package brings it)\n' \
      "${fqcn}" "${site:-<no venv site-packages>}" >&2
    exit 1
  fi
  link "${source_dir}" "${root}/${fqcn%%.*}/${fqcn#*.}"
done
printf '==> collections: mailmesh.imap %s in .build/collections\n' "${DEPENDENCIES[*]}"
