#!/bin/sh
# Runs inside the debootstrap chroot (as /post-install.sh) after the base system is
# installed; SUITE comes from the recipe's image.env, MIRROR and SECURITY_MIRROR from
# build-image.sh (the environment, else this machine's apt sources).
# Shared by every recipe; a recipe may add its own post-install.sh, run after this one.
set -eu

# apt sources for the plain-http mirror, so containers can apt-get at test time.
cat > /etc/apt/sources.list <<SOURCES
deb ${MIRROR} ${SUITE} main
deb ${MIRROR} ${SUITE}-updates main
deb ${SECURITY_MIRROR} ${SUITE}-security main
SOURCES
rm -f /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list

# Small, non-interactive apt.
cat > /etc/apt/apt.conf.d/90mailmesh <<'APT'
APT::Install-Suggests "false";
Acquire::Retries "3";
APT

# Empty machine-id: systemd generates one on each container start.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# No consoles, no hardware: mask what cannot work in a container so that
# `systemctl is-system-running` can reach "running".
for unit in \
    getty@.service getty@tty1.service serial-getty@.service console-getty.service \
    getty.target getty-static.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
    systemd-binfmt.service systemd-sysctl.service systemd-hwdb-update.service \
    systemd-pstore.service systemd-journald-audit.socket \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    ; do
  ln -sf /dev/null "/etc/systemd/system/${unit}"
done
systemctl set-default multi-user.target 2>/dev/null

# Root logs in (docker exec) with a usable shell; no password login.
passwd -l root >/dev/null
echo 'root ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-root
chmod 0440 /etc/sudoers.d/90-root

# Keep the image small.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /tmp/* /var/tmp/*
# No package lists, so say the last update was never: Ansible's apt module judges
# cache_valid_time by this directory's mtime and would otherwise trust the empty cache
# for an hour after the build ("No package matching ... is available").
touch -d @0 /var/lib/apt/lists
