# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Can this host run Envoy? The decision is a pure function; the probe is apart.

Envoy publishes amd64 and arm64 builds only, and its allocator (tcmalloc) crashes at
start when the kernel gives processes a small virtual address space, which is the case
on Raspberry Pi kernels built with 39-bit VA (CONFIG_ARM64_VA_BITS_39).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import struct

__all__ = ["ARCHES", "MIN_VA_BITS", "platform_problem", "probe_va_bits", "userland_bits"]

# Machine names (uname -m) Envoy has builds for, and the address-space size each needs.
# tcmalloc places its memory regions by the high bits of the address (up to 2**47 on
# arm64 with its 48-bit layout). Measured: Envoy 1.40 (aarch64) starts and serves with 47
# bits (qemu-user on an x86_64 kernel) and crashes at start with 39 (Raspberry Pi kernels
# built with CONFIG_ARM64_VA_BITS_39).
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MIN_VA_BITS = {"amd64": 47, "arm64": 47}

_FIX_OS = ("install a 64-bit OS (Debian or Raspberry Pi OS for arm64) on a 64-bit board "
           "(Raspberry Pi 3, 4, 5 or later)")
_FIX_KERNEL = ("boot a 64-bit OS whose kernel has a 48-bit virtual address space "
               "(CONFIG_ARM64_VA_BITS_48, as Debian's arm64 kernel and Raspberry Pi OS's "
               "64-bit kernel8/kernel_2712 are built)")


def platform_problem(machine, va_bits, userland_bits=64):
    """None when Envoy can run, else a message that names the problem and the fix.

    ``machine`` is ``uname -m``; ``va_bits`` the user address-space size in bits the
    kernel grants (None when it could not be measured, which is not held against the
    host); ``userland_bits`` the pointer size of the host's Python in bits: 32 on a
    Raspberry Pi OS 32-bit (armhf) that boots a 64-bit kernel, where ``uname -m`` says
    aarch64 but no arm64 program can run.
    """
    arch = ARCHES.get(str(machine).strip().lower())
    if arch is None:
        return ("Envoy has builds for amd64 (x86_64) and arm64 (aarch64) only; this host is "
                "%s. Fix: %s." % (machine, _FIX_OS))
    if userland_bits is not None and userland_bits < 64:
        return ("this host runs a %d-bit OS on a 64-bit %s kernel (a Raspberry Pi OS 32-bit "
                "image boots a 64-bit kernel on a Pi 4 or 5); Envoy's %s build needs a 64-bit "
                "OS. Fix: %s." % (userland_bits, machine, arch, _FIX_OS))
    if va_bits is not None and va_bits < MIN_VA_BITS[arch]:
        return ("this %s kernel gives processes a %d-bit virtual address space; Envoy's "
                "allocator needs at least %d bits and would crash at every start. Fix: %s."
                % (machine, va_bits, MIN_VA_BITS[arch], _FIX_KERNEL))
    return None


def userland_bits():
    """The pointer size of this Python in bits: 32 on a 32-bit OS whatever its kernel."""
    return struct.calcsize("P") * 8


def _mmap_at(libc, hint):
    """Map one page with an address hint; True when the kernel honoured the hint."""
    prot_none, map_private_anonymous = 0, 0x22
    addr = libc.mmap(ctypes.c_void_p(hint), ctypes.c_size_t(4096), prot_none,
                     map_private_anonymous, -1, ctypes.c_long(0))
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return False
    libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(4096))
    return addr == hint


def probe_va_bits(low=36, high=52):
    """The largest n for which the kernel maps a page at 2**(n-1): the VA size in bits.

    A hint above the address-space limit is ignored (the kernel picks a lower address),
    so this measures what a process really gets, also under qemu-user. None when the
    probe cannot run.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    best = None
    for bits in range(low, high + 1):
        # The page at 2**(bits-1) is the lowest one whose address needs `bits` bits.
        if _mmap_at(libc, 1 << (bits - 1)):
            best = bits
    return best
