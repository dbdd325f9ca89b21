"""ENCLS wrappers as the kernel sees them (arch/x86/kernel/cpu/sgx/encls.h).

The CPU model raises a fault or returns an SGX code; the kernel's
``__encls_ret_*`` macros turn a fault into ``trapnr | SGX_ENCLS_FAULT_FLAG``
through the exception table.  :func:`encls` does the same, so driver code
tests results with :func:`encls_faulted` / :func:`encls_failed` as in C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sgxsim.hw.faults import VEC_PF, HwFault

# encls.h: SGX_ENCLS_FAULT_FLAG and the trap-number mask.
SGX_ENCLS_FAULT_FLAG = 0x40000000
ENCLS_TRAPNR_MASK = 0xFFFF


def encls(leaf: Callable[..., Any], *operands: Any) -> int:
    """Run one ENCLS leaf; return 0, the SGX code, or the fault encoding."""
    try:
        ret = leaf(*operands)
    except HwFault as fault:
        return fault.vector | SGX_ENCLS_FAULT_FLAG
    if ret is None:  # the leaves without a status (EADD, EEXTEND, EPA, ...)
        return 0
    if isinstance(ret, tuple):  # EDBGRD returns (code, value); callers use edbgrd()
        ret = ret[0]
    return int(ret or 0)


def encls_faulted(ret: int) -> bool:
    # encls_faulted()
    return bool(ret & SGX_ENCLS_FAULT_FLAG)


def encls_trapnr(ret: int) -> int:
    # ENCLS_TRAPNR()
    return ret & ENCLS_TRAPNR_MASK


def encls_failed(ret: int) -> bool:
    # encls_failed(): a fault other than #PF, or any SGX error code.
    if encls_faulted(ret):
        return encls_trapnr(ret) != VEC_PF
    return ret != 0
