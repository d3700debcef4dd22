"""testinfra checks for the harness smoke container: what every scenario relies on."""


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
    sources = host.file("/etc/apt/sources.list").content_string
    assert "http://deb.debian.org/debian " in sources


def test_hostname_resolves_on_the_shared_network(host):
    assert host.run("getent hosts harness-smoke").rc == 0
