"""Code that runs inside an enclave, and the interpreter that runs it.

An enclave program is a table from code offsets (RIP relative to the
enclave base) to *instructions*: functions that perform one architectural
step through the in-enclave CPU interface (loads, stores, ENCLU leaves) and
return the next RIP, or ``None`` after EEXIT.  All state lives in the
logical processor's registers and in memory, so an AEX saves it in the SSA
and ERESUME restores it exactly as hardware does: the faulting instruction is
simply executed again.  An instruction must therefore have no side effect
before its last possibly-faulting access.

The program an enclave runs is chosen by the enclave's identity (MRENCLAVE):
change a measured page and the enclave is another enclave, whose code the
library does not know: fetching it raises #UD.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sgxsim.hw.consts import PAGE_SHIFT
from sgxsim.hw.faults import InvalidOpcode
from sgxsim.trace import Decision

Instruction = Callable[["EnclaveCpu"], "int | None"]


@dataclass
class EnclaveProgram:
    """A named program: code offset -> instruction; entry points by name."""

    name: str
    code: dict[int, Instruction]
    symbols: dict[str, int] = field(default_factory=dict)


class EnclaveCpu:
    """The in-enclave CPU interface an instruction uses (one LP, enclave
    mode): ``regs``, ``base`` (the enclave's ELRANGE base), loads, stores
    and the ENCLU leaves."""

    __slots__ = ("cpu", "lp", "regs", "base", "load", "eexit", "itlb")

    def __init__(self, cpu: Any, lp: Any):
        self.cpu = cpu
        self.lp = lp
        self.regs: dict[str, int] = lp.regs  # the LP's register file (one dict for its life)
        # The enclave an LP is in changes only through an entry:
        # EnclaveLibrary.run() sets the base with the code it looks up.
        self.base = lp.enclave.base if lp.enclave is not None else 0
        # load(la, n) and eexit(target): the CPU's own on this LP (no wrapper
        # frame: a program's commonest access, and its every exit).
        self.load: Callable[[int, int], bytes] = functools.partial(cpu.load, lp)
        self.eexit: Callable[[int], None] = functools.partial(cpu.eexit, lp)
        # The code page whose instruction fetch check passed since the last
        # ENCLU leaf (EnclaveLibrary.run()); None: none.
        self.itlb: int | None = None

    def load_u64(self, la: int) -> int:
        return int.from_bytes(self.cpu.load(self.lp, la, 8), "little")

    def store(self, la: int, data: bytes) -> None:
        self.cpu.store(self.lp, la, data)

    def store_u64(self, la: int, value: int) -> None:
        self.cpu.store(self.lp, la, (value & ((1 << 64) - 1)).to_bytes(8, "little"))

    def eaccept(self, secinfo: int, page: int) -> int:
        self.itlb = None  # every leaf ends the reuse (conservative: docs/internals.md)
        return self.cpu.eaccept(self.lp, secinfo, page)

    def eacceptcopy(self, secinfo: int, dst: int, src: int) -> int:
        self.itlb = None  # every leaf ends the reuse (conservative: docs/internals.md)
        return self.cpu.eacceptcopy(self.lp, secinfo, dst, src)

    def emodpe(self, secinfo: int, page: int) -> None:
        self.itlb = None  # every leaf ends the reuse (conservative: docs/internals.md)
        self.cpu.emodpe(self.lp, secinfo, page)

    def ereport(self, targetinfo: int, reportdata: int, out: int) -> None:
        self.itlb = None  # every leaf ends the reuse (conservative: docs/internals.md)
        self.cpu.ereport(self.lp, targetinfo, reportdata, out)

    def egetkey(self, keyrequest: int, out: int) -> int:
        self.itlb = None  # every leaf ends the reuse (conservative: docs/internals.md)
        return self.cpu.egetkey(self.lp, keyrequest, out)


class EnclaveLibrary:
    """Which program each enclave identity runs (per Machine)."""

    MAX_STEPS = 100_000
    ITLB = True  # reuse a code page's fetch check (run()); False: check every fetch

    def __init__(self) -> None:
        self.programs: dict[bytes, EnclaveProgram] = {}

    def bind(self, mrenclave: bytes, program: EnclaveProgram) -> None:
        self.programs[bytes(mrenclave)] = program

    def run(self, cpu: Any, lp: Any) -> None:
        """Execute from lp.regs["rip"] until EEXIT; faults propagate (after
        the AEX the CPU performed) to the caller, i.e. the kernel."""
        ecpu = EnclaveCpu(cpu, lp)
        regs = lp.regs
        entered = code = None
        itlb = self.ITLB
        for _ in range(self.MAX_STEPS):
            ctx = lp.enclave
            if ctx is None:
                return
            rip = regs["rip"]
            if rip >> PAGE_SHIFT != ecpu.itlb or ctx is not entered or not itlb:
                # The instruction bytes must be executable here: the fetch's
                # access check (paging, then the EPCM).  Its pass is reused,
                # as a TLB entry is, for the next instructions of the page
                # while nothing that could change the outcome runs: inside
                # one run the kernel does not (a fault ends the run), loads
                # and stores change no PTE or EPCM entry (the walk set the
                # page's A bit already), and an ENCLU leaf drops the entry.
                cpu.fetch(lp, rip)
                ecpu.itlb = rip >> PAGE_SHIFT
            if ctx is not entered:
                # The identity is fixed from EINIT on, and the enclave an LP
                # is in changes only through an entry: look the code up once.
                program = self.programs.get(cpu.enclave_identity(lp))
                entered, code = ctx, (program.code if program is not None else {})
                ecpu.base = ctx.base
            insn = code.get(rip - ctx.base)
            if insn is None:
                fault = InvalidOpcode(Decision("hw", "decode", "#UD",
                                               f"no instruction known at {rip:#x} for this enclave"))
                raise cpu.aex(lp, fault=fault)
            nxt = insn(ecpu)
            if nxt is None:
                return
            regs["rip"] = nxt
        raise RuntimeError("enclave program did not exit")
