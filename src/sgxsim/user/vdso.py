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
import struct
from collections.abc import Callable
from typing import Any

from sgxsim.hw.consts import Enclu
from sgxsim.hw.faults import HwFault, PageFault
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.kernel.errors import SI_KERNEL, Oops, Signal
from sgxsim.kernel.process import U32, U64, _s32
from sgxsim.trace import Decision
from sgxsim.user.enclave import EnclaveLibrary

VDSO_ENCLU = 0x7FFF_F7FF_E000  # where the vDSO's ENCLU instruction is
EENTER, ERESUME, EEXIT = int(Enclu.EENTER), int(Enclu.ERESUME), int(Enclu.EEXIT)
_U64 = struct.Struct("<Q")
_RESERVED = SgxEnclaveRun.OFF_RESERVED
_EXIT_LEAF = struct.pack("<I", EEXIT)  # the function field: the exit reason
_EXCEPTION = struct.Struct("<IHHQ")  # function, exception_vector, _error_code, _addr

UserHandler = Callable[[int, int, int, int, int, int, int], int]

# The signals of the user-mode exception paths that call fixup_vdso_exception()
# before they would send it: __bad_area_nosemaphore() and do_sigbus() (#PF),
# exc_general_protection() (#GP), do_trap() and math_error() (#DE, #UD, #MF,
# #XM, ...), the #DB/#BP handlers.  Nothing else is reported in struct
# sgx_enclave_run: not the SIGKILL of an oops (make_task_dead()) or of
# pagefault_out_of_memory(), not a signal another process sent.
FIXUP_SIGNALS = frozenset((signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                           signal.SIGTRAP))


def vdso_fixup_applies(sig: Signal) -> bool:
    """Whether fixup_vdso_exception() turns ``sig`` into a report (an
    exception signal of a fault at the vDSO's ENCLU), or it goes on."""
    return sig.signo in FIXUP_SIGNALS and not isinstance(sig, Oops)


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

    __slots__ = ("proc", "library", "handlers", "_next_handler")

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
            # vsgx.S: the reserved area must be zero, then the TCS is loaded.
            raw = proc.peek(run_addr, SgxEnclaveRun.SIZE)
            if raw.count(0, _RESERVED) != SgxEnclaveRun.SIZE - _RESERVED:
                return -errno.EINVAL
            tcs = _U64.unpack_from(raw, SgxEnclaveRun.OFF_TCS)[0]
            lp.cr3 = proc.mm.pgtable
            regs = lp.regs
            regs["rdi"], regs["rsi"], regs["rdx"], regs["r8"], regs["r9"] = rdi, rsi, rdx, r8, r9
            regs["rip"], regs["rax"] = VDSO_ENCLU, function
            leaf = function
            try:
                while True:
                    try:
                        if leaf == EENTER:
                            cpu.eenter(lp, tcs, VDSO_ENCLU)
                        else:
                            cpu.eresume(lp, tcs, VDSO_ENCLU)
                        self.library.run(cpu, lp)
                        break  # EEXIT
                    except HwFault as fault:
                        # The fault reached the kernel (after the CPU's AEX when
                        # it was taken inside).  The ENCLU at the AEP runs the
                        # leaf in EAX: ERESUME after an AEX (synthetic RAX = 3),
                        # the same leaf again for a fault on EENTER/ERESUME itself.
                        leaf = regs.get("rax", leaf) & 0xFFFFFFFF
                        deliver_fault(proc, fault)
                # vsgx.S: after EEXIT only the exit reason is written; the
                # exception fields keep what they held.
                report = _EXIT_LEAF
            except Signal as sig:
                if not vdso_fixup_applies(sig):
                    raise  # the task dies or takes the signal: nothing is reported
                # fixup_vdso_exception(), then vsgx.S .Lhandle_exception:
                # report instead of signalling (leaf, vector, error code, address).
                report = _EXCEPTION.pack(leaf, sig.trapno & 0xFFFF, sig.error_code & 0xFFFF,
                                         sig.addr & U64)
                if k.trace.enabled:  # (the decision's text only for a log that keeps it)
                    # The exception reached user space (reported, not signalled):
                    # what made the enclave's access fail.
                    k.trace.refuse(sig.why)
                    k.trace.add(Decision("vdso", "fixup_vdso_exception", "reported",
                                         f"vector {sig.trapno}, error code {sig.error_code:#x}, "
                                         f"address {sig.addr:#x}: {sig.why}"))
            proc.poke(run_addr + SgxEnclaveRun.OFF_FUNCTION, report)
            # vsgx.S .Lhandle_exit reads user_handler from the struct after the exit.
            user_handler = _U64.unpack(proc.peek(run_addr + SgxEnclaveRun.OFF_USER_HANDLER, 8))[0]
            if not user_handler:
                return 0
            handler = self.handlers.get(user_handler)
            if handler is None:
                raise Signal(signal.SIGSEGV, 1, user_handler,
                             Decision("vdso", "user_handler", "SIGSEGV", "not a function"))
            # The handler returns an int in EAX: <= 0 is returned, > 0 is the
            # next leaf (the run struct is read again, as the vDSO does).
            ret = handler(rdi, rsi, rdx, regs.get("rsp", 0), r8, r9, run_addr)
            ret = _s32(int(ret))
            if ret <= 0:
                return ret
            function = ret
