"""__vdso_sgx_enter_enclave (arch/x86/entry/vdso/vsgx.S) and the kernel's
fixup_vdso_exception() that reports enclave faults in struct sgx_enclave_run.

The vDSO's ENCLU sits at ``VDSO_ENCLU``; it is both where EENTER/ERESUME run
and the AEP, so every exception taken in the enclave arrives at that ENCLU
and, when the kernel cannot fix it, is turned into a synchronous report with
return value 0 instead of a signal.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable
from typing import Any

from sgxsim.hw.consts import Enclu
from sgxsim.hw.faults import HwFault, PageFault
from sgxsim.hw.structs import nonzero
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.kernel.errors import Signal
from sgxsim.kernel.process import U32, U64, _s32
from sgxsim.trace import Decision
from sgxsim.user.enclave import EnclaveLibrary

VDSO_ENCLU = 0x7FFF_F7FF_E000  # where the vDSO's ENCLU instruction is
EENTER, ERESUME, EEXIT = int(Enclu.EENTER), int(Enclu.ERESUME), int(Enclu.EEXIT)
SI_KERNEL = 0x80

UserHandler = Callable[[int, int, int, int, int, int, int], int]


def deliver_fault(proc: Any, fault: HwFault) -> None:
    """The kernel's exception path for a user fault at an ENCLU: fix it
    (return) or raise the Signal it would send."""
    if isinstance(fault, PageFault):
        proc.kernel.do_user_addr_fault(proc, fault)
        return
    signo = signal.SIGILL if fault.vector == 6 else signal.SIGSEGV
    raise Signal(signo, SI_KERNEL, 0, fault.why, trapno=fault.vector, error_code=0)


class Vdso:
    """The vDSO of one process, with the user handlers it may call."""

    def __init__(self, proc: Any, library: EnclaveLibrary):
        self.proc = proc
        self.library = library
        self.handlers: dict[int, UserHandler] = {}
        self._next_handler = 0x7FFF_F7F0_0000

    def register_handler(self, fn: UserHandler) -> int:
        """A user function's address, for run.user_handler."""
        addr = self._next_handler
        self._next_handler += 0x40
        self.handlers[addr] = fn
        return addr

    def _deliver(self, fault: HwFault) -> None:
        deliver_fault(self.proc, fault)

    def sgx_enter_enclave(self, rdi: int, rsi: int, rdx: int, function: int, r8: int, r9: int,
                          run_addr: int) -> int:
        """__vdso_sgx_enter_enclave(rdi, rsi, rdx, function, r8, r9, run)."""
        proc = self.proc
        k = proc._enter()
        cpu = k.cpu
        lp = proc.lp
        # The arguments arrive in 64-bit registers; function is an unsigned int (ECX).
        rdi, rsi, rdx, r8, r9 = rdi & U64, rsi & U64, rdx & U64, r8 & U64, r9 & U64
        function, run_addr = function & U32, run_addr & U64
        while True:
            if function not in (EENTER, ERESUME):  # before the run struct is read
                return -errno.EINVAL
            run = SgxEnclaveRun.unpack(proc.peek(run_addr, SgxEnclaveRun.SIZE))
            if nonzero(run.reserved):
                return -errno.EINVAL
            lp.cr3 = proc.mm.pgtable
            lp.regs.update(rdi=rdi, rsi=rsi, rdx=rdx, r8=r8, r9=r9, rip=VDSO_ENCLU,
                           rax=function)
            leaf = function
            try:
                while True:
                    try:
                        if leaf == EENTER:
                            cpu.eenter(lp, run.tcs, VDSO_ENCLU)
                        else:
                            cpu.eresume(lp, run.tcs, VDSO_ENCLU)
                        self.library.run(cpu, lp)
                        break  # EEXIT
                    except HwFault as fault:
                        # The fault reached the kernel (after the CPU's AEX when
                        # it was taken inside).  The ENCLU at the AEP runs the
                        # leaf in EAX: ERESUME after an AEX (synthetic RAX = 3),
                        # the same leaf again for a fault on EENTER/ERESUME itself.
                        leaf = lp.regs.get("rax", leaf) & 0xFFFFFFFF
                        self._deliver(fault)
                run.function = EEXIT
                run.exception_vector = run.exception_error_code = run.exception_addr = 0
            except Signal as sig:
                # fixup_vdso_exception(): report instead of signalling
                run.function = leaf
                run.exception_vector = sig.trapno & 0xFFFF
                run.exception_error_code = sig.error_code & 0xFFFF
                run.exception_addr = sig.addr
                k.trace.add(Decision("vdso", "fixup_vdso_exception", "reported",
                                     f"vector {sig.trapno}, error code {sig.error_code:#x}, "
                                     f"address {sig.addr:#x}: {sig.why}"))
            proc.poke(run_addr, run.pack())
            if not run.user_handler:
                return 0
            handler = self.handlers.get(run.user_handler)
            if handler is None:
                raise Signal(signal.SIGSEGV, 1, run.user_handler,
                             Decision("vdso", "user_handler", "SIGSEGV", "not a function"))
            # The handler returns an int in EAX: <= 0 is returned, > 0 is the
            # next leaf (the run struct is read again, as the vDSO does).
            ret = handler(rdi, rsi, rdx, lp.regs.get("rsp", 0), r8, r9, run_addr)
            ret = _s32(int(ret))
            if ret <= 0:
                return ret
            function = ret
