"""A small enclave runtime for the checker: enter the enclave, do ONE access
or ENCLU leaf, leave.

It stands in for ``__vdso_sgx_enter_enclave`` and an enclave program (the
checker's enclave runs one instruction per entry, so it does not build an
``sgxsim.user`` program bound to MRENCLAVE; moving onto ``sgxsim.user.vdso``
is still to do), and drives only the real mechanisms: EENTER on the
process's logical processor, the CPU's load/store/fetch/EACCEPT/EACCEPTCOPY/
EMODPE, and on a #PF (the CPU has already done the AEX) the kernel's
``do_user_addr_fault``: if the kernel fixes the fault the runtime ERESUMEs and
retries; if it raises a ``Signal`` the operation ends with that fault.

After a signalled fault the thread's CSSA is 1; the runtime then does what an
SDK's exception path does: EENTER the handler on SSA frame 1 (which skips the
faulting instruction), EEXIT, ERESUME frame 0 and EEXIT, so the TCS is back at
CSSA 0 for the next operation (the TCS therefore has NSSA = 2).
"""

from __future__ import annotations

from typing import Any

from sgxsim.hw.faults import HwFault, PageFault
from sgxsim.kernel.errors import Signal

MAX_RETRIES = 8


class EnclaveFault(Exception):
    """The operation ended with a signal (SIGSEGV/SIGBUS) for a #PF."""

    def __init__(self, sig: Signal, error_code: int):
        super().__init__(str(sig))
        self.sig = sig
        self.error_code = error_code


def _outside(kernel: Any, proc: Any, fn: Any, *args: Any) -> Any:
    """An ENCLU leaf issued outside the enclave (EENTER/ERESUME): a #PF on the
    TCS or SSA goes to the fault handler and the leaf is retried."""
    for _ in range(MAX_RETRIES):
        try:
            return fn(*args)
        except PageFault as pf:
            kernel.do_user_addr_fault(proc, pf)
    raise RuntimeError("enclave entry made no progress")


def run(proc: Any, tcs: int, aep: int, op: Any) -> Any:
    """Enter through ``tcs``, run ``op(cpu, lp)`` inside, leave; return its
    result.  Raises :class:`EnclaveFault` when a fault ends the operation."""
    kernel = proc.kernel
    cpu, lp = kernel.cpu, proc.lp
    kernel.current = proc
    lp.cr3 = proc.mm.pgtable
    try:
        _outside(kernel, proc, cpu.eenter, lp, tcs, aep)
    except Signal as sig:
        # The TCS or SSA could not be faulted in: the vDSO reports the
        # exception without having entered.
        raise EnclaveFault(sig, sig.error_code) from None
    for _ in range(MAX_RETRIES):
        try:
            out = op(cpu, lp)
        except PageFault as pf:
            # The CPU did the AEX; the kernel sees the #PF at the AEP.
            try:
                kernel.do_user_addr_fault(proc, pf)
            except Signal as sig:
                _recover(kernel, proc, tcs, aep)
                raise EnclaveFault(sig, pf.error_code) from None
            _outside(kernel, proc, cpu.eresume, lp, tcs, aep)
            continue
        except HwFault:
            # #GP and other exceptions inside: the AEX happened; recover.
            _recover(kernel, proc, tcs, aep)
            raise
        cpu.eexit(lp, aep)
        return out
    _recover(kernel, proc, tcs, aep)
    raise RuntimeError("enclave operation made no progress")


def _recover(kernel: Any, proc: Any, tcs: int, aep: int) -> None:
    # The SDK exception path: handler on SSA frame 1 skips the instruction,
    # EEXIT; ERESUME frame 0; EEXIT.
    cpu, lp = kernel.cpu, proc.lp
    _outside(kernel, proc, cpu.eenter, lp, tcs, aep)
    cpu.eexit(lp, aep)
    _outside(kernel, proc, cpu.eresume, lp, tcs, aep)
    cpu.eexit(lp, aep)
