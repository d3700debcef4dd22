#!/usr/bin/env bash
# Let this host run binaries of a foreign Debian architecture (e.g. arm64 on amd64),
# in chroots and in Docker containers, through qemu-user-static and binfmt_misc.
#
#   tests/harness/qemu-binfmt.sh <debian-arch>      e.g. arm64, armhf
#
# Installs qemu-user-static and binfmt-support when missing, mounts binfmt_misc, enables
# the qemu handler and checks it carries the F (fix-binary) flag: the kernel then opens
# the host's static qemu once, at registration, and a chroot or container needs no qemu
# of its own. Registrations live in the kernel and are lost on reboot while the images
# stay, so build-image.sh runs this on every call, also when the image is up to date.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <debian-arch>   (e.g. arm64)" >&2; exit 2; }
arch="$1"

say() { printf '==> binfmt %s: %s\n' "${arch}" "$*"; }
die() { printf '==> binfmt %s: ERROR: %s\n' "${arch}" "$*" >&2; exit 1; }

case "${arch}" in
  arm64) handler=qemu-aarch64 ;;
  armhf|armel) handler=qemu-arm ;;
  ppc64el) handler=qemu-ppc64le ;;
  i386|amd64) die "no qemu handler for ${arch}: an x86 kernel runs it natively" ;;
  *) handler="qemu-${arch}" ;;
esac

[ "$(id -u)" -eq 0 ] || die "binfmt_misc and apt need root"

binfmt_dir=/proc/sys/fs/binfmt_misc
# Mounted before apt runs: binfmt-support's postinst registers the formats it installs.
if [ ! -e "${binfmt_dir}/register" ]; then
  say "mounting binfmt_misc on ${binfmt_dir}"
  mount -t binfmt_misc binfmt_misc "${binfmt_dir}" || die "cannot mount binfmt_misc (kernel without CONFIG_BINFMT_MISC?)"
fi

missing=()
for pkg in qemu-user-static binfmt-support; do
  dpkg-query -W -f '${Status}' "${pkg}" 2>/dev/null | grep -q 'ok installed' || missing+=("${pkg}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$(cat "${binfmt_dir}/status")" = enabled ] || echo 1 > "${binfmt_dir}/status"
entry="${binfmt_dir}/${handler}"
if [ ! -e "${entry}" ]; then
  say "registering ${handler}"
  update-binfmts --enable "${handler}" || die "update-binfmts --enable ${handler} failed"
elif [ "$(head -n1 "${entry}")" != enabled ]; then
  # Registered but switched off: update-binfmts --enable calls that "already enabled".
  say "enabling ${handler}"
  echo 1 > "${entry}"
fi
[ "$(head -n1 "${entry}" 2>/dev/null)" = enabled ] || die "${handler} is not enabled in ${entry}"

# F: without it the interpreter path is looked up inside each chroot or container.
flags="$(sed -n 's/^flags: *//p' "${entry}")"
interpreter="$(sed -n 's/^interpreter //p' "${entry}")"
case "${flags}" in
  *F*) ;;
  *) die "${handler} lacks the F (fix-binary) flag (flags: ${flags:-none}, interpreter ${interpreter});" \
         "chroots and containers would look for ${interpreter} inside themselves." \
         "Re-register it with fix_binary yes (Debian's qemu-user-static does), or remove the" \
         "other registration (qemu-user-binfmt, a multiarch/qemu-user-static container) first." ;;
esac
say "${handler} enabled (interpreter ${interpreter}, flags ${flags})"
