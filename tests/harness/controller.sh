#!/usr/bin/env bash
# controller.sh COMMAND [ARG...]: run COMMAND on the newest ansible-core release
# (requirements/controller-newest.txt).
#
# ansible-core 2.20 and later need Python >= 3.12, which Debian 12 does not have. So this
# controller is a Debian 13 container (mailmesh/debian13-systemd, built by `make images`;
# Python 3.13). It shares with this machine what a controller running on it would share:
#   - this checkout, at the same path; the working directory is the caller's;
#   - $HOME: molecule's state (~/.ansible/tmp), the roles' download cache (~/.cache/mailmesh),
#     the user's pip configuration;
#   - the Docker engine (its socket, and this machine's docker CLI, which needs only libc);
#   - the network namespace: containers' addresses, loopback;
#   - the machine's pip configuration: its files, the PIP_* variables, and the files and
#     local directories they name (CA bundle, find-links, a local index's root), read-only.
#     No index is named here: the roles' wheel downloads and the venv use the same pip
#     configuration as on the host.
# The venv (.build/newest/venv) is built on first use, and again when the requirements
# file changes. NEWEST_IMAGE overrides the image.
#
# Usage: controller.sh --prepare        build the venv only
#        controller.sh COMMAND [ARG...]
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
requirements="${repo_root}/requirements/controller-newest.txt"
newest="${repo_root}/.build/newest"
venv="${newest}/venv"
image="${NEWEST_IMAGE:-mailmesh/debian13-systemd:latest}"
# pip, bootstrapped into the venv from its wheel (the image has no python3-venv/ensurepip).
pip_pin="pip==25.3"

say() { printf '==> newest: %s\n' "$*" >&2; }
die() { printf '==> newest: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$#" -gt 0 ] || die "usage: controller.sh --prepare | COMMAND [ARG...]"
command -v docker >/dev/null || die "no docker CLI on PATH (make docker installs the engine)"
docker image inspect "${image}" >/dev/null 2>&1 || die "image ${image} is missing: run make images"
# The host's pip: the venv's (make venv), else the system's.
host_python="${repo_root}/.venv/bin/python"
[ -x "${host_python}" ] || host_python="$(command -v python3)"

# Environment the command sees: the caller's Ansible, molecule, pytest and colour settings.
env_args() {
  local key
  while IFS= read -r key; do
    case "${key}" in
      ANSIBLE_STRATEGY_PLUGINS) ;;  # the venv's own Mitogen, below
      ANSIBLE_*|MOLECULE_*|PYTEST_*|PY_COLORS|CI|TERM|NO_COLOR|FORCE_COLOR|SSL_CERT_FILE|REQUESTS_CA_BUNDLE)
        printf -- '-e\n%s\n' "${key}" ;;
    esac
  done < <(compgen -e)
}

# The machine's pip configuration, as the host's pip reads it (tests/harness/pip_mounts.py).
mapfile -t PIP_ARGS < <("${host_python}" "${repo_root}/tests/harness/pip_mounts.py")
mapfile -t ENV_ARGS < <(env_args)
site="${venv}/lib/python3.13/site-packages"
common=(
  --rm --init --network host
  -v "${repo_root}:${repo_root}"
  -v "${HOME}:${HOME}" -e "HOME=${HOME}"
  -v /var/run/docker.sock:/var/run/docker.sock
  -v "$(command -v docker):/usr/bin/docker:ro"
  "${PIP_ARGS[@]}"
)

stamp="${venv}/.requirements-$(cat "${requirements}" | sha256sum | cut -c1-12)"
if [ ! -e "${stamp}" ]; then
  say "venv ${venv} from ${requirements#"${repo_root}/"} (Python 3.13, ${image})"
  rm -rf "${venv}" "${newest}/bootstrap"
  mkdir -p "${newest}/bootstrap"
  # The pip wheel, with this machine's pip; everything else with the venv's own pip.
  "${host_python}" -m pip download -q --no-deps --only-binary=:all: -d "${newest}/bootstrap" "${pip_pin}"
  docker run "${common[@]}" -w "${repo_root}" "${image}" bash -ec '
    python3 -m venv --without-pip "$1"
    wheel="$(ls "$2"/pip-*.whl)"
    "$1/bin/python" "${wheel}/pip" install -q --no-index "${wheel}"
    "$1/bin/pip" install -q -r "$3"
  ' bash "${venv}" "${newest}/bootstrap" "${requirements}"
  touch "${stamp}"
  say "$(docker run "${common[@]}" "${image}" "${venv}/bin/ansible" --version | sed -n 1p)"
fi
[ "$1" = "--prepare" ] && exit 0

name="mailmesh-newest-$$"
tty=()
[ -t 0 ] && [ -t 1 ] && tty=(-t)
# A signal to this script stops the container too (the docker CLI alone would leave it).
trap 'docker kill "${name}" >/dev/null 2>&1 || true' TERM INT HUP
# In the background (so that the trap runs at once), with the caller's stdin.
exec 3<&0
rc=0
docker run "${common[@]}" -i "${tty[@]}" --name "${name}" "${ENV_ARGS[@]}" \
  -e "PATH=${venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  -e "VIRTUAL_ENV=${venv}" \
  -e "MAILMESH_PIP_WHEEL=$(ls "${newest}"/bootstrap/pip-*.whl)" \
  -e "ANSIBLE_STRATEGY_PLUGINS=${site}/ansible_mitogen/plugins/strategy" \
  -w "${PWD}" "${image}" "$@" <&3 &
wait $! || rc=$?
exit "${rc}"
