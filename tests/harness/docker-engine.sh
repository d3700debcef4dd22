#!/usr/bin/env bash
# Make sure a Docker engine answers. On a fresh Debian 12 machine (as root) this
# installs docker.io from the Debian mirror and starts dockerd in the background,
# because the host may not run systemd as PID 1.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
log_dir="${repo_root}/.build/log"
log_file="${log_dir}/dockerd.log"
wait_seconds="${DOCKER_WAIT_SECONDS:-60}"

say() { printf '==> docker: %s\n' "$*"; }
die() { printf '==> docker: ERROR: %s\n' "$*" >&2; exit 1; }

# Every systemd container takes several inotify instances (systemd, journald, udev...;
# Envoy's watched directory one more), and the default limit of 128 per user runs out
# at about 25 containers: units fail and boots end `degraded`. The e2e scenario runs
# beside the others (tests/molecule/conftest.py) and the fleet benchmark starts dozens.
min_instances=1024
min_watches=524288
raise_limit() {
  local key=$1 wanted=$2 current
  current=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$current" -lt "$wanted" ]; then
    if [ "$(id -u)" -eq 0 ] && sysctl -q -w "$key=$wanted" >/dev/null 2>&1; then
      say "raised $key from $current to $wanted"
    else
      say "WARNING: $key is $current (fewer than $wanted): many containers at once may fail to boot"
    fi
  fi
}
raise_limit fs.inotify.max_user_instances "$min_instances"
raise_limit fs.inotify.max_user_watches "$min_watches"

if docker info >/dev/null 2>&1; then
  say "engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  die "no Docker engine answers and we are not root: start dockerd yourself or run as root"
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io from the Debian mirror"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

# A service manager may bring the engine up on its own (systemd as PID 1).
if [ "$(cat /proc/1/comm 2>/dev/null)" = "systemd" ] && command -v systemctl >/dev/null 2>&1; then
  say "starting docker.service through systemd"
  systemctl start docker.service || true
fi

if ! docker info >/dev/null 2>&1; then
  mkdir -p "${log_dir}"
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd in the background (log: ${log_file})"
    # setsid: a session of its own, so it outlives the shell and job that started it.
    setsid nohup dockerd >"${log_file}" 2>&1 </dev/null &
    disown || true
  else
    say "dockerd is running but does not answer yet; waiting"
  fi
fi

for _ in $(seq 1 "${wait_seconds}"); do
  if docker info >/dev/null 2>&1; then
    say "engine answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done

[ -f "${log_file}" ] && tail -n 30 "${log_file}" >&2
die "dockerd did not answer within ${wait_seconds}s"
