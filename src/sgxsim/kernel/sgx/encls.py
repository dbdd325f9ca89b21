"""ENCLS wrappers as the kernel sees them (arch/x86/kernel/cpu/sgx/encls.h).

The CPU model raises a fault or returns an SGX code; the kernel's
``__encls_ret_*`` macros turn a fault into ``trapnr | SGX_ENCLS_FAULT_FLAG``
through the exception table.  :func:`encls` does the same, so driver code
tests results with :func:`encls_faulted` / :func:`encls_failed` as in C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sgxsim.hw.consts import SgxReturn
from sgxsim.hw.faults import VEC_PF, HwFault

# encls.h: SGX_ENCLS_FAULT_FLAG and the trap-number mask.
SGX_ENCLS_FAULT_FLAG = 0x40000000
ENCLS_TRAPNR_MASK = 0xFFFF


class EnclsFault(int):
    """The fault encoding (``trapnr | SGX_ENCLS_FAULT_FLAG``) of a leaf that
    faulted, an int as in C, that also keeps the fault: the driver's error
    says which check of the CPU refused (:func:`encls_why`), and nothing is
    kept in the machine for it."""

    fault: HwFault

    def __new__(cls, fault: HwFault) -> EnclsFault:
        ret = super().__new__(cls, fault.vector | SGX_ENCLS_FAULT_FLAG)
        ret.fault = fault
        return ret

    def __reduce__(self):
        return EnclsFault, (self.fault,)


def encls(leaf: Callable[..., Any], *operands: Any) -> int:
    """Run one ENCLS leaf; return 0, the SGX code, or the fault encoding."""
    try:
        ret = leaf(*operands)
    except HwFault as fault:
        return EnclsFault(fault)
    if ret is None:  # the leaves without a status (EADD, EEXTEND, EPA, ...)
        return 0
    if isinstance(ret, tuple):  # EDBGRD returns (code, value); callers use edbgrd()
        ret = ret[0]
    return int(ret or 0)


def encls_why(ret: int) -> str:
    """What the CPU said of a failed leaf: the fault's reason, or the SGX
    code's name (the kernel itself prints only the number)."""
    fault = getattr(ret, "fault", None)
    return str(fault) if fault is not None else sgx_code_name(ret)


def sgx_code_name(code: int) -> str:
    try:
        return SgxReturn(code).name
    except ValueError:
        return hex(code)


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
