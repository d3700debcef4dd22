#!/usr/bin/env bash
# Build the base image mailmesh/<image>-systemd:latest from tests/images/<image>/
# with debootstrap + docker import (no registry is reachable, nothing is pulled).
#
# A recipe directory holds image.env (SUITE, ARCH, VARIANT, MIRROR, SECURITY_MIRROR,
# PACKAGES) and optionally post-install.sh, run in the chroot after the shared
# tests/images/_common/post-install.sh. The image carries the label
# org.mailmesh.recipe=<sha256 over the recipe, the shared files and this script>;
# the build is skipped when an image with that label exists.
set -euo pipefail

usage() { echo "usage: $0 <image>   (a directory under tests/images/, e.g. debian12)" >&2; exit 2; }
[ $# -eq 1 ] || usage
image="$1"

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
images_dir="${repo_root}/tests/images"
recipe_dir="${images_dir}/${image}"
common_dir="${images_dir}/_common"
build_dir="${repo_root}/.build/images/${image}"
tag="mailmesh/${image}-systemd:latest"

say() { printf '==> image %s: %s\n' "${image}" "$*"; }
die() { printf '==> image %s: ERROR: %s\n' "${image}" "$*" >&2; exit 1; }

[ -f "${recipe_dir}/image.env" ] || die "no recipe ${recipe_dir}/image.env"

# Recipe hash: file names (relative) and contents, in a stable order.
recipe_sum="$(
  cd "${repo_root}"
  find "tests/images/${image}" "tests/images/_common" "tests/harness/build-image.sh" -type f -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
)"

existing="$(docker images --quiet --filter "label=org.mailmesh.recipe=${recipe_sum}" "${tag}")"
if [ -n "${existing}" ]; then
  say "up to date (${tag}, recipe ${recipe_sum:0:12})"
  exit 0
fi

# shellcheck disable=SC1091
. "${recipe_dir}/image.env"
: "${SUITE:?image.env must set SUITE}" "${ARCH:?image.env must set ARCH}"
VARIANT="${VARIANT:-minbase}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PACKAGES="${PACKAGES:-}"

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

host_arch="$(dpkg --print-architecture)"
needs_apt=()
command -v debootstrap >/dev/null 2>&1 || needs_apt+=(debootstrap)
if [ "${ARCH}" != "${host_arch}" ]; then
  command -v update-binfmts >/dev/null 2>&1 || needs_apt+=(binfmt-support)
  dpkg -s qemu-user-static >/dev/null 2>&1 || needs_apt+=(qemu-user-static)
fi
if [ ${#needs_apt[@]} -gt 0 ]; then
  say "installing ${needs_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${needs_apt[@]}" >/dev/null
fi

platform_args=()
if [ "${ARCH}" != "${host_arch}" ]; then
  say "foreign architecture ${ARCH} on ${host_arch}: enabling qemu-user-static through binfmt_misc"
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  case "${ARCH}" in
    arm64) qemu="qemu-aarch64" ;;
    armhf|armel) qemu="qemu-arm" ;;
    *) qemu="qemu-${ARCH}" ;;
  esac
  update-binfmts --enable "${qemu}" || true
  [ -e "/proc/sys/fs/binfmt_misc/${qemu}" ] || die "binfmt handler ${qemu} is not registered"
  case "${ARCH}" in
    arm64) platform_args=(--platform linux/arm64) ;;
    armhf) platform_args=(--platform linux/arm/v7) ;;
    *) platform_args=(--platform "linux/${ARCH}") ;;
  esac
fi

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
      --change 'ENV container=docker' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/lib/systemd/systemd"]' \
      - "${tag}" >/dev/null
rm -rf "${rootfs}"
# The previous build of this image lost its tag: drop it unless a container uses it.
docker image prune --force --filter "label=org.mailmesh.image=${image}" >/dev/null || true
say "built ${tag} (recipe ${recipe_sum:0:12}) in $((SECONDS - started))s"
