#!/usr/bin/env bash
# Build the base image mailmesh/<image>-systemd:latest from tests/images/<image>/
# with debootstrap + docker import (no registry is reachable, nothing is pulled).
#
# A recipe directory holds image.env (SUITE, ARCH, VARIANT, PACKAGES) and optionally
# post-install.sh, run in the chroot after the shared tests/images/_common/post-install.sh.
# The image carries the label org.mailmesh.recipe=<sha256 over the recipe, the shared
# files, this script and apt_mirror.py>; the build is skipped when an image with that
# label exists.
#
# The Debian mirror is this machine's: MIRROR and SECURITY_MIRROR from the environment,
# else the archives this machine's apt sources name (tests/harness/apt_mirror.py reads
# /etc/apt/sources.list and sources.list.d/*.list and *.sources). No recipe names a
# mirror, and the mirror is not part of the recipe hash: the same packages from another
# mirror make the same image, so moving to another mirror rebuilds nothing. The image
# records its mirror in the labels org.mailmesh.mirror and org.mailmesh.security-mirror
# (and in its /etc/apt/sources.list); to rebuild with another one, remove the image.
#
# IMAGE_TAG builds under another tag (default mailmesh/<image>-systemd:latest), leaving
# the default image and earlier builds alone; DRY_RUN=1 prints the settings and the
# recipe hash and stops before anything needs Docker or root.
#
# A foreign ARCH (arm64 on an amd64 host) runs under qemu-user-static through
# binfmt_misc: tests/harness/qemu-binfmt.sh registers the handler on every call, because
# a reboot drops the registration while the image stays; debootstrap then runs the
# foreign binaries in its chroot directly (handler flag F, no qemu copied in); the image
# records that architecture and must answer `uname -m` in a container of its platform.
set -euo pipefail

usage() { echo "usage: $0 <image>   (a directory under tests/images/, e.g. debian12)" >&2; exit 2; }
[ $# -eq 1 ] || usage
image="$1"

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
images_dir="${repo_root}/tests/images"
recipe_dir="${images_dir}/${image}"
common_dir="${images_dir}/_common"
build_dir="${repo_root}/.build/images/${image}"
tag="${IMAGE_TAG:-mailmesh/${image}-systemd:latest}"

say() { printf '==> image %s: %s\n' "${image}" "$*"; }
die() { printf '==> image %s: ERROR: %s\n' "${image}" "$*" >&2; exit 1; }

[ -f "${recipe_dir}/image.env" ] || die "no recipe ${recipe_dir}/image.env"

# The environment's mirror wins over anything the recipe sets.
env_mirror="${MIRROR:-}" env_security_mirror="${SECURITY_MIRROR:-}"
# shellcheck disable=SC1091
. "${recipe_dir}/image.env"
: "${SUITE:?image.env must set SUITE}" "${ARCH:?image.env must set ARCH}"
VARIANT="${VARIANT:-minbase}"
MIRROR="${env_mirror:-${MIRROR:-}}"
SECURITY_MIRROR="${env_security_mirror:-${SECURITY_MIRROR:-}}"
PACKAGES="${PACKAGES:-}"
if [ -z "${MIRROR}" ] || [ -z "${SECURITY_MIRROR}" ]; then
  # APT_ROOT: read another tree's etc/apt (the unit tests' sample sources).
  detected="$(python3 "${repo_root}/tests/harness/apt_mirror.py" --root "${APT_ROOT:-/}")" \
    || die "could not read this machine's apt sources (tests/harness/apt_mirror.py)"
  MIRROR="${MIRROR:-$(sed -n 1p <<<"${detected}")}"
  SECURITY_MIRROR="${SECURITY_MIRROR:-$(sed -n 2p <<<"${detected}")}"
  [ -n "${MIRROR}" ] || die "this machine's apt sources name no Debian archive for its release: set MIRROR (e.g. MIRROR=http://<your mirror>/debian)"
  [ -n "${SECURITY_MIRROR}" ] || die "this machine's apt sources name no security archive (<release>-security): set SECURITY_MIRROR"
fi

# Recipe hash: file names (relative) and contents, in a stable order. The mirror is not
# in it (see the top of this file).
recipe_sum="$(
  cd "${repo_root}"
  find "tests/images/${image}" "tests/images/_common" "tests/harness/build-image.sh" "tests/harness/apt_mirror.py" \
    -type f ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
)"

if [ -n "${DRY_RUN:-}" ]; then
  printf '%s=%s\n' TAG "${tag}" SUITE "${SUITE}" ARCH "${ARCH}" VARIANT "${VARIANT}" MIRROR "${MIRROR}" \
    SECURITY_MIRROR "${SECURITY_MIRROR}" RECIPE "${recipe_sum}"
  exit 0
fi

host_arch="$(dpkg --print-architecture)"
platform_args=()
expected_machine=""
if [ "${ARCH}" != "${host_arch}" ]; then
  case "${ARCH}" in
    arm64) platform=linux/arm64 docker_arch=arm64 expected_machine=aarch64 ;;
    *) die "ARCH=${ARCH} on ${host_arch}: only arm64 is known here (add its Docker platform and uname -m)" ;;
  esac
  platform_args=(--platform "${platform}")
  # Every time, also when the image is up to date: the registration does not survive a reboot.
  bash "${repo_root}/tests/harness/qemu-binfmt.sh" "${ARCH}"
fi

# A container of a foreign image runs its binaries (binfmt works inside containers).
check_foreign() {
  [ -n "${expected_machine}" ] || return 0
  local machine
  machine="$(docker run --rm "${platform_args[@]}" --entrypoint /bin/uname "${tag}" -m 2>&1)" \
    || die "a ${platform} container of ${tag} does not run: ${machine}"
  [ "${machine}" = "${expected_machine}" ] \
    || die "uname -m in a ${platform} container of ${tag} says ${machine}, expected ${expected_machine}"
}

# Docker 20.10's import records the daemon's architecture whatever --platform says (newer
# engines honour it), and `docker run --platform` then finds no such image: rewrite the
# architecture in the image config, through docker save and docker load.
set_architecture() {
  [ -n "${expected_machine}" ] || return 0
  [ "$(docker image inspect --format '{{.Architecture}}' "${tag}")" != "${docker_arch}" ] || return 0
  say "setting the image architecture to ${docker_arch} (save, edit config, load)"
  docker save "${tag}" | python3 -c '
import io, json, sys, tarfile
src = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
dst = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
for member in src:
    data = src.extractfile(member) if member.isfile() else None
    # The image config: the only top-level JSON file but manifest.json.
    if data and "/" not in member.name and member.name.endswith(".json") and member.name != "manifest.json":
        config = json.load(data)
        config["architecture"] = sys.argv[1]
        raw = json.dumps(config, separators=(",", ":")).encode()
        member.size, data = len(raw), io.BytesIO(raw)
    dst.addfile(member, data)
dst.close()
' "${docker_arch}" | docker load >/dev/null
  [ "$(docker image inspect --format '{{.Architecture}}' "${tag}")" = "${docker_arch}" ] \
    || die "${tag} still records architecture $(docker image inspect --format '{{.Architecture}}' "${tag}")"
}

existing="$(docker images --quiet --filter "label=org.mailmesh.recipe=${recipe_sum}" "${tag}")"
if [ -n "${existing}" ]; then
  set_architecture
  check_foreign
  say "up to date (${tag}, recipe ${recipe_sum:0:12})"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# One stage, also for a foreign ARCH: debootstrap unpacks with the host's tools and only
# the package scripts run emulated. --foreign + --second-stage unpacks emulated too and
# was slower for arm64 on 2 cores: 209 s against 132 s (172 s against 240 s, warm cache).
rootfs="${build_dir}/rootfs"
say "debootstrap ${SUITE}/${ARCH} (${VARIANT}) from ${MIRROR} into ${rootfs}"
rm -rf "${rootfs}"
mkdir -p "${build_dir}"
include="$(printf '%s' "${PACKAGES}" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')"
started=${SECONDS}
if ! debootstrap --variant="${VARIANT}" --arch="${ARCH}" ${include:+--include="${include}"} \
    "${SUITE}" "${rootfs}" "${MIRROR}" >"${build_dir}/debootstrap.log" 2>&1; then
  tail -n 40 "${build_dir}/debootstrap.log" >&2
  [ -f "${rootfs}/debootstrap/debootstrap.log" ] && tail -n 40 "${rootfs}/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (log: ${build_dir}/debootstrap.log)"
fi
say "debootstrap done in $((SECONDS - started))s"

say "post-install"
install -m 0755 "${common_dir}/post-install.sh" "${rootfs}/post-install.sh"
[ -f "${recipe_dir}/post-install.sh" ] && install -m 0755 "${recipe_dir}/post-install.sh" "${rootfs}/post-install.local.sh"
for script in /post-install.sh /post-install.local.sh; do
  [ -e "${rootfs}${script}" ] || continue
  chroot "${rootfs}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    SUITE="${SUITE}" MIRROR="${MIRROR}" SECURITY_MIRROR="${SECURITY_MIRROR}" \
    /bin/sh "${script}"
done
rm -f "${rootfs}/post-install.sh" "${rootfs}/post-install.local.sh"

say "docker import as ${tag}"
tar --numeric-owner --xattrs -C "${rootfs}" -c . \
  | docker import "${platform_args[@]}" \
      --change "LABEL org.mailmesh.recipe=${recipe_sum}" \
      --change "LABEL org.mailmesh.image=${image}" \
      --change "LABEL org.mailmesh.mirror=${MIRROR}" \
      --change "LABEL org.mailmesh.security-mirror=${SECURITY_MIRROR}" \
      --change 'ENV container=docker' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/lib/systemd/systemd"]' \
      - "${tag}" >/dev/null
rm -rf "${rootfs}"
set_architecture
check_foreign
# The previous build of this image lost its tag: drop it unless a container uses it
# (not for IMAGE_TAG builds, which must leave the default image's builds alone).
if [ -z "${IMAGE_TAG:-}" ]; then
  docker image prune --force --filter "label=org.mailmesh.image=${image}" >/dev/null || true
fi
say "built ${tag} (recipe ${recipe_sum:0:12}) in $((SECONDS - started))s"
