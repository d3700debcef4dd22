#!/usr/bin/env bash
# Make the repository visible to Ansible and Python as the collection mailmesh.imap:
# .build/collections/ansible_collections/mailmesh/imap -> <repo root>
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
ns_dir="${repo_root}/.build/collections/ansible_collections/mailmesh"
link="${ns_dir}/imap"

mkdir -p "${ns_dir}"
if [ -L "${link}" ] && [ "$(readlink "${link}")" = "${repo_root}" ]; then
  printf '==> collection: %s -> %s (up to date)\n' "${link#"${repo_root}"/}" "${repo_root}"
  exit 0
fi
rm -rf "${link}"
ln -s "${repo_root}" "${link}"
printf '==> collection: %s -> %s\n' "${link#"${repo_root}"/}" "${repo_root}"
