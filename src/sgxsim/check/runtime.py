"""The checker's enclave runtime: a small enclave program and the untrusted
side that runs one operation through ``__vdso_sgx_enter_enclave``
(:mod:`sgxsim.user.vdso`), as an SDK's untrusted runtime does.

The runtime's pages sit behind the explored pages (offsets from the first of
them): the TCS (NSSA 2, OENTRY = the code page), SSA frames 0 and 1, a data
page holding the SECINFO the enclave passes to EACCEPT/EACCEPTCOPY/EMODPE,
and the code page, added RX from the enclave image.

One operation: EENTER with RDI = operation, RSI = target address, RDX =
SECINFO flags, R8 = an untrusted result slot, R9 = EACCEPTCOPY's source.
The program runs the operation and EEXITs.  When an exception ends it, the
vDSO reports it in ``struct sgx_enclave_run`` (the kernel could not fix
it); the runtime then EENTERs the enclave's exception handler on SSA frame 1,
which moves SSA frame 0's RIP to the exit instruction (skipping the faulting
one) and EEXITs, and ERESUMEs frame 0, which EEXITs: the TCS is back at
CSSA 0 for the next operation.

A ``fetch`` jumps to the target page; what the enclave finds there is a
return to the runtime (the program's code table has one at every explored
page), so a fetch that the page tables and the EPCM allow comes back.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, NamedTuple

from sgxsim.hw.consts import PAGE_SIZE, Enclu
from sgxsim.hw.structs import Secinfo, SsaGpr
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.user.enclave import EnclaveCpu, EnclaveLibrary, EnclaveProgram
from sgxsim.user.vdso import Vdso

EENTER, ERESUME, EEXIT = int(Enclu.EENTER), int(Enclu.ERESUME), int(Enclu.EEXIT)
VEC_PF = 14

# Runtime page indices (after the explored pages).
TCS, SSA0, SSA1, DATA, CODE = range(5)
RUNTIME_PAGES = 5
# Operations (RDI at EENTER).
OPS = {"load": 1, "store": 2, "fetch": 3, "eaccept": 4, "eacceptcopy": 5, "emodpe": 6}
# Instruction offsets inside the code page.
I_ENTRY, I_EXIT, I_HANDLER, I_LOAD, I_STORE, I_FETCH, I_SECINFO, I_EACCEPT, I_EACCEPTCOPY, \
    I_EMODPE, I_REPORT = (0x40 * i for i in range(11))
# Registers the program keeps across instructions (saved in the SSA on AEX).
R_RET, R_OP, R_TARGET, R_FLAGS, R_SLOT, R_SRC = "r15", "r14", "r13", "r12", "r11", "r10"
_GPR_RIP = PAGE_SIZE - SsaGpr.SIZE + 136  # SSA frame: GPRSGX.RIP


class Layout(NamedTuple):
    """Where the runtime lives: ``rt`` is its first page's enclave offset,
    ``pages`` the number of explored pages below it."""

    rt: int
    pages: int

    def page(self, i: int) -> int:
        return self.rt + i * PAGE_SIZE

    def code(self, insn: int) -> int:
        return self.page(CODE) + insn


class RuntimeProgram(EnclaveProgram):
    """The runtime's program; pickles as its layout (its instructions are
    closures over it) and unpickles to the one cached program."""

    layout: Layout

    def __reduce__(self):
        return (program, (self.layout,))


@functools.cache
def program(lay: Layout) -> RuntimeProgram:
    """The runtime's enclave program for this layout (one per layout)."""
    # Every address an instruction forms, as an enclave offset (the base is
    # added at run time: the enclave's ELRANGE, from the LP).
    o_exit, o_handler, o_eaccept, o_eacceptcopy, o_emodpe, o_report = (
        lay.code(i) for i in (I_EXIT, I_HANDLER, I_EACCEPT, I_EACCEPTCOPY, I_EMODPE, I_REPORT))
    o_ssa0_rip, o_data = lay.page(SSA0) + _GPR_RIP, lay.page(DATA)
    first = {op: lay.code(i) for op, i in
             ((1, I_LOAD), (2, I_STORE), (3, I_FETCH), (4, I_SECINFO), (5, I_SECINFO), (6, I_SECINFO))}
    after_secinfo = {4: o_eaccept, 5: o_eacceptcopy}

    def entry(c: EnclaveCpu) -> int:
        # EENTER leaves CSSA in RAX and the return address in RCX.
        regs = c.regs
        regs[R_RET] = regs["rcx"]
        if regs["rax"]:
            return c.base + o_handler
        op = regs["rdi"]
        regs[R_OP], regs[R_TARGET], regs[R_FLAGS], regs[R_SLOT], regs[R_SRC], regs["rax"] = (
            op, regs["rsi"], regs["rdx"], regs["r8"], regs["r9"], 0)
        return c.base + first.get(op, o_exit)

    def exit_(c: EnclaveCpu) -> None:
        c.eexit(c.regs[R_RET])
        return None

    def handler(c: EnclaveCpu) -> int:
        # The exception handler (SSA frame 1): skip the faulting instruction
        # by resuming frame 0 at the exit.
        base = c.base
        c.store_u64(base + o_ssa0_rip, base + o_exit)
        return base + o_exit

    def load(c: EnclaveCpu) -> int:
        c.load(c.regs[R_TARGET], 8)
        return c.base + o_exit

    def store(c: EnclaveCpu) -> int:
        c.store(c.regs[R_TARGET], b"\xcc" * 8)
        return c.base + o_exit

    def fetch(c: EnclaveCpu) -> int:
        return c.regs[R_TARGET]  # jmp *target

    def landing(c: EnclaveCpu) -> int:
        return c.base + o_exit  # jmp back to the runtime

    def secinfo(c: EnclaveCpu) -> int:
        base = c.base
        c.store(base + o_data, Secinfo(flags=c.regs[R_FLAGS]).pack())
        return base + after_secinfo.get(c.regs[R_OP], o_emodpe)

    def eaccept(c: EnclaveCpu) -> int:
        base = c.base
        c.regs["rax"] = c.eaccept(base + o_data, c.regs[R_TARGET])
        return base + o_report

    def eacceptcopy(c: EnclaveCpu) -> int:
        base = c.base
        c.regs["rax"] = c.eacceptcopy(base + o_data, c.regs[R_TARGET], c.regs[R_SRC])
        return base + o_report

    def emodpe(c: EnclaveCpu) -> int:
        base = c.base
        c.emodpe(base + o_data, c.regs[R_TARGET])
        return base + o_exit

    def report(c: EnclaveCpu) -> int:
        # The leaf's return value to the untrusted result slot.
        c.store_u64(c.regs[R_SLOT], c.regs["rax"])
        return c.base + o_exit

    code = {lay.code(off): fn for off, fn in (
        (I_ENTRY, entry), (I_EXIT, exit_), (I_HANDLER, handler), (I_LOAD, load), (I_STORE, store),
        (I_FETCH, fetch), (I_SECINFO, secinfo), (I_EACCEPT, eaccept),
        (I_EACCEPTCOPY, eacceptcopy), (I_EMODPE, emodpe), (I_REPORT, report))}
    code.update({i * PAGE_SIZE: landing for i in range(lay.pages)})
    prog = RuntimeProgram("sgxsim-check-runtime", code, {"entry": lay.code(I_ENTRY)})
    prog.layout = lay
    return prog


class Outcome(NamedTuple):
    """What the untrusted side learnt: ``exited`` (EEXIT reached), the leaf's
    return value (EACCEPT/EACCEPTCOPY) or the reported exception."""

    exited: bool
    result: int = 0
    vector: int | None = None
    error_code: int = 0


_outcome = functools.partial(tuple.__new__, Outcome)  # Outcome(...) without its __new__ frame


@functools.lru_cache(maxsize=16)
def _fresh_run(tcs: int) -> bytes:
    """A zeroed ``struct sgx_enclave_run`` for ``tcs`` and, right behind it,
    a zeroed result slot (the runtime writes both with one store)."""
    return SgxEnclaveRun(tcs=tcs).pack() + bytes(8)


_RUN_SIZE = SgxEnclaveRun.SIZE
# What the untrusted side reads back: the exit reason and the exception
# fields of struct sgx_enclave_run, then the result slot behind it.
_R = SgxEnclaveRun
_RUN_REPORT = struct.Struct(f"<{_R.OFF_FUNCTION}xIHH{_RUN_SIZE - _R.OFF_EXCEPTION_ADDR}xQ")
if (_R.OFF_EXCEPTION_VECTOR, _R.OFF_EXCEPTION_ERROR_CODE, _R.OFF_EXCEPTION_ADDR) != tuple(
        _R.OFF_FUNCTION + d for d in (4, 6, 8)) or _RUN_REPORT.size != _RUN_SIZE + 8:
    raise ImportError("struct sgx_enclave_run's layout is not the one _RUN_REPORT reads")


def enter(proc: Any, vdso: Vdso, run_addr: int, run: bytes, function: int,
          rdi: int = 0, rsi: int = 0, rdx: int = 0, r8: int = 0, r9: int = 0) -> tuple[int, int, int, int]:
    """One entry (a step of ``sgxsim explain``'s chain): write ``run``
    (struct sgx_enclave_run, with the result slot when it is that long),
    call the vDSO, read back (function, vector, error code, result slot)."""
    proc.poke(run_addr, run)
    rc = vdso.sgx_enter_enclave(rdi, rsi, rdx, function, r8, r9, run_addr)
    if rc:
        raise RuntimeError(f"__vdso_sgx_enter_enclave returned {rc}")
    return _RUN_REPORT.unpack(proc.peek(run_addr, _RUN_SIZE + 8))


def run(proc: Any, library: EnclaveLibrary, tcs: int, op: str, target: int, *, flags: int = 0,
        src: int = 0, scratch: int) -> Outcome:
    """Run one operation; ``scratch`` is 512 bytes of untrusted RW memory
    (struct sgx_enclave_run and, behind it, the result slot)."""
    vdso = Vdso(proc, library)
    fresh = _fresh_run(tcs)
    # The first entry also clears the result slot.
    function, vector, error_code, slot = enter(proc, vdso, scratch, fresh, EENTER, OPS[op], target, flags,
                                                scratch + _RUN_SIZE, src)
    if function == EEXIT:
        return _outcome((True, slot, None, 0))
    out = Outcome(False, 0, vector, error_code)
    if function == ERESUME:
        # The exception happened inside: CSSA is 1.  Handler, then resume.
        for function in (EENTER, ERESUME):
            function, vector, _, _ = enter(proc, vdso, scratch, fresh[:_RUN_SIZE], function)
            if function != EEXIT:
                raise RuntimeError(f"the runtime's exception path faulted: vector {vector}")
    return out
