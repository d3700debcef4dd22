#!/bin/sh
# Runs in the debootstrap chroot after tests/images/_common/post-install.sh.
#
# Under qemu-user, clone() with a namespace flag fails with EINVAL (fork-like clones may
# carry no CLONE_NEW*; unshare() works). systemd 252 forks its credential helper that
# way, so every unit with LoadCredential= or SetCredential= fails at step CREDENTIALS,
# and PrivateNetwork= fails likewise (EIO). A container never passes these credentials:
# drop them from the units that boot needs, so `systemctl is-system-running` reaches
# "running" as on amd64. Roles must not rely on LoadCredential=/PrivateNetwork= here.
set -eu

for unit in systemd-sysusers systemd-tmpfiles-setup systemd-tmpfiles-setup-dev systemd-tmpfiles-clean; do
  mkdir -p "/etc/systemd/system/${unit}.service.d"
  printf '[Service]\nLoadCredential=\n' > "/etc/systemd/system/${unit}.service.d/10-qemu-no-credentials.conf"
done
