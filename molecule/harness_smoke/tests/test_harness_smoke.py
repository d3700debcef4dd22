"""testinfra checks for the harness smoke container: what every scenario relies on."""

import re


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running --wait")
    if state.stdout.strip() not in ("running", "degraded"):
        failed = host.run("systemctl --failed --no-pager")
        raise AssertionError(f"system state {state.stdout.strip()!r}\n{failed.stdout}")


def test_python3_for_ansible(host):
    assert host.exists("python3")


def test_apt_sources_use_the_mirror(host):
    """The image's apt sources name the mirror it was built from (build-image.sh: MIRROR
    and SECURITY_MIRROR, else the build machine's own apt sources) for the release, its
    updates and its security archive, and nothing else."""
    sources = host.file("/etc/apt/sources.list").content_string
    entries = re.findall(r"^deb (\S+) (\S+) main$", sources, re.M)
    suite = host.system_info.codename
    assert [s for _, s in entries] == [suite, suite + "-updates", suite + "-security"], sources
    assert all(re.match(r"(https?|ftp)://[^/\s]+/|file:/", uri) for uri, _ in entries), sources
    assert entries[0][0] == entries[1][0], sources


def test_hostname_resolves_on_the_shared_network(host):
    assert host.run("getent hosts harness-smoke").rc == 0
