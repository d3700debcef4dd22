"""Unit tests for plugins/module_utils/_envoy_platform.py: the decision and the real probe."""

import os

import pytest

from ansible_collections.mailmesh.imap.plugins.module_utils._envoy_platform import (
    platform_problem,
    probe_va_bits,
    userland_bits,
)


@pytest.mark.parametrize("machine, va_bits", [
    ("aarch64", 48),
    ("arm64", 48),
    ("aarch64", 52),
    ("x86_64", 47),
    ("x86_64", 48),
    ("amd64", 57),
    ("AARCH64", 48),
    (" x86_64\n", 47),
    # Not measured: not held against the host.
    ("aarch64", None),
    ("arm64", None),
    ("x86_64", None),
])
def test_envoy_can_run(machine, va_bits):
    assert platform_problem(machine, va_bits) is None


@pytest.mark.parametrize("machine", ["aarch64", "arm64"])
def test_arm64_with_39_bit_va_names_the_48_bit_fix(machine):
    problem = platform_problem(machine, 39)
    assert problem is not None
    assert "39-bit virtual address space" in problem
    assert "needs at least 47 bits" in problem
    assert "48-bit virtual address space" in problem
    assert "CONFIG_ARM64_VA_BITS_48" in problem
    assert "Fix:" in problem


def test_arm64_with_47_bits_runs():
    # Measured: Envoy 1.40 for aarch64 starts under qemu-user on an x86_64 kernel (47 bits).
    assert platform_problem("aarch64", 47) is None


def test_arm64_with_42_bits_is_too_small():
    assert "needs at least 47 bits" in platform_problem("aarch64", 42)


def test_x86_64_below_47_bits():
    problem = platform_problem("x86_64", 39)
    assert problem is not None and "needs at least 47 bits" in problem


@pytest.mark.parametrize("machine", ["armv7l", "armv6l", "i686", "riscv64"])
def test_unsupported_machine_names_a_64_bit_os(machine):
    for va_bits in (None, 32, 48):
        problem = platform_problem(machine, va_bits)
        assert problem is not None
        assert machine in problem
        assert "amd64 (x86_64) and arm64 (aarch64) only" in problem
        assert "64-bit OS" in problem
        assert "Fix:" in problem


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "x86_64"])
def test_a_32_bit_os_on_a_64_bit_kernel_is_refused(machine):
    """Raspberry Pi OS 32-bit boots a 64-bit kernel on a Pi 4 or 5: uname -m says aarch64,
    but the OS (and its Python) is armhf, and Envoy's arm64 build cannot run there."""
    problem = platform_problem(machine, None, 32)
    assert problem is not None
    assert "32-bit OS on a 64-bit %s kernel" % machine in problem
    assert "install a 64-bit OS" in problem and "Fix:" in problem
    assert platform_problem(machine, 48, 64) is None


def test_this_hosts_userland_is_64_bit():
    assert userland_bits() == 64


def test_probe_on_this_host():
    bits = probe_va_bits()
    if os.uname().machine != "x86_64":  # pragma: no cover - the controllers are x86_64
        pytest.skip("the expected address-space size is known for x86_64 only")
    # 47 with 4-level page tables (57 where the kernel has 5-level paging).
    assert bits is not None and bits >= 47
    assert platform_problem("x86_64", bits) is None


def test_probe_stops_at_high():
    bits = probe_va_bits(low=36, high=40)
    assert bits is not None and 36 <= bits <= 40
