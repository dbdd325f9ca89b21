"""Logical processors and their enclave-mode context (SDM §38-40)."""

from __future__ import annotations

# Kinds of access.
READ = 0
WRITE = 1
FETCH = 2

GPRS = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)
ENCLU_LEN = 3  # 0F 01 D7: the return RIP EENTER puts in RCX is the next instruction


def canonical(addr: int) -> bool:
    """48-bit canonical linear address."""
    return 0 <= addr < (1 << 47) or (1 << 64) - (1 << 47) <= addr < (1 << 64)


class EnclaveContext:
    """What a logical processor holds while in enclave mode: CR_ACTIVE_SECS,
    CR_ELRANGE, the TCS it entered through, its AEP and the physical place
    of the current SSA frame's GPR area (the SDM caches these at entry)."""

    __slots__ = ("secs", "base", "limit", "tcs", "tcs_la", "aep", "cssa", "ssa_gpr",
                 "ssa_gpr_off")

    def __init__(self, secs: int, base: int, size: int, tcs: int, tcs_la: int, aep: int,
                 cssa: int, ssa_gpr: int, ssa_gpr_off: int) -> None:
        self.secs = secs  # EPC index of the SECS
        self.base = base
        self.limit = base + size  # ELRANGE = [base, limit)
        self.tcs = tcs  # EPC index of the TCS
        self.tcs_la = tcs_la
        self.aep = aep
        self.cssa = cssa  # the SSA frame in use (EENTER: CSSA; ERESUME: CSSA-1)
        self.ssa_gpr = ssa_gpr  # EPC index of the page holding GPRSGX
        self.ssa_gpr_off = ssa_gpr_off


class LogicalProcessor:
    """One hardware thread: CR3 (the running task's page table), CR2, the
    enclave-mode context, a small register file, and the last exception
    reported (vector, error code, address) for a vDSO model to read."""

    __slots__ = ("index", "cr3", "cr2", "enclave", "regs", "exception")

    def __init__(self, index: int) -> None:
        self.index = index
        self.cr3 = None  # PageTable, set by the kernel at context switch
        self.cr2 = 0
        self.enclave: EnclaveContext | None = None
        self.regs: dict[str, int] = dict.fromkeys((*GPRS, "rip", "rflags"), 0)
        self.exception: tuple[int, int, int] | None = None
