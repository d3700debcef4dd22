"""Unit tests for the mailmesh.imap.dpkg_missing filter, on real dpkg-query output."""

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailmesh.imap.plugins.filter.packages import FilterModule, dpkg_missing

FORMAT = "--showformat=${Package} ${db:Status-Abbrev}\\n"


def test_filter_is_registered():
    assert FilterModule().filters()["dpkg_missing"] is dpkg_missing


def test_installed_held_and_broken_states():
    output = "\n".join([
        "dovecot-core ii ",
        "dovecot-imapd hi ",   # held, installed
        "nginx rc ",           # removed, configuration files left
        "libnginx-mod-mail iU ",  # unpacked, not configured
        "python3-hvac iF ",    # half-configured
    ])
    packages = ["dovecot-core", "dovecot-imapd", "nginx", "libnginx-mod-mail", "python3-hvac"]
    assert dpkg_missing(packages, output) == ["nginx", "libnginx-mod-mail", "python3-hvac"]


def test_unknown_packages_and_empty_output_are_missing():
    assert dpkg_missing(["iproute2", "ca-certificates"], "") == ["iproute2", "ca-certificates"]
    assert dpkg_missing(["iproute2"], None) == ["iproute2"]


def test_pins_and_architectures_match_by_name_and_keep_their_form():
    output = "bao ii \nenvoy:arm64 ii \n"
    assert dpkg_missing(["bao=2.7*", "envoy", "curl=8*"], output) == ["curl=8*"]


def test_order_is_kept_and_duplicates_dropped():
    assert dpkg_missing(["b", "a", "b"], "c ii ") == ["b", "a"]


@pytest.mark.parametrize("bad", ["dovecot-core", None, 3])
def test_a_single_name_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="list of package names"):
        dpkg_missing(bad, "")


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query (Debian)")
def test_on_this_machines_dpkg():
    """The roles' own call, here: dpkg is installed on every Debian host, and a name no
    package has is missing (dpkg-query then exits 1, which the roles accept)."""
    proc = subprocess.run(["dpkg-query", "--show", FORMAT, "dpkg", "mailmesh-no-such-package"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert dpkg_missing(["dpkg", "mailmesh-no-such-package"], proc.stdout) == ["mailmesh-no-such-package"]
