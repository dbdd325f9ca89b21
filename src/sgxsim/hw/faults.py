"""Faults the CPU model raises, as exception types.

The CPU talks back to the kernel only the way a CPU does: by raising an
exception (vector, error code, faulting address).  ENCLS/ENCLU leaves that
*return* a status do not raise; they return the SDM's code (see
:class:`sgxsim.hw.consts.SgxReturn`).
"""

from __future__ import annotations

from sgxsim.trace import Decision

# Page-fault error-code bits (SDM Vol. 3A 4.7; arch/x86/include/asm/trap_pf.h).
PF_PROT = 1 << 0  # P: 0 = not-present page, 1 = protection violation
PF_WRITE = 1 << 1  # W/R: the access was a write
PF_USER = 1 << 2  # U/S: the access was from CPL 3
PF_RSVD = 1 << 3  # reserved bit set in a paging-structure entry
PF_INSTR = 1 << 4  # I/D: instruction fetch
PF_PK = 1 << 5  # protection key
PF_SHSTK = 1 << 6  # shadow-stack access
PF_SGX = 1 << 15  # SGX: the EPCM, not paging, denied the access

# Exception vectors.
VEC_UD = 6
VEC_GP = 13
VEC_PF = 14


class HwFault(Exception):
    """A fault raised by the CPU model. ``why`` tells which leaf and check."""

    vector: int = -1
    mnemonic: str = "#?"

    def __init__(self, why: Decision | str = ""):
        if isinstance(why, str):
            why = Decision("hw", "cpu", self.mnemonic, why)
        self.why = why
        super().__init__(str(why))


class CpuException(HwFault):
    """Any other exception an instruction raises (#DE, #DB, #BP, #MF, ...),
    by vector."""

    mnemonic = "#EXC"

    def __init__(self, vector: int, why: Decision | str = ""):
        self.vector = vector
        self.mnemonic = f"#{_VECTOR_NAMES.get(vector, vector)}"
        super().__init__(why)


_VECTOR_NAMES = {0: "DE", 1: "DB", 3: "BP", 4: "OF", 5: "BR", 7: "NM", 8: "DF", 10: "TS",
                 11: "NP", 12: "SS", 16: "MF", 17: "AC", 18: "MC", 19: "XM", 21: "CP"}


class InvalidOpcode(HwFault):
    """#UD."""

    vector = VEC_UD
    mnemonic = "#UD"


class GeneralProtection(HwFault):
    """#GP(0)."""

    vector = VEC_GP
    mnemonic = "#GP(0)"


class PageFault(HwFault):
    """#PF with the faulting linear address (CR2) and the error code."""

    vector = VEC_PF
    mnemonic = "#PF"

    def __init__(self, addr: int, error_code: int, why: Decision | str = ""):
        self.addr = addr
        self.error_code = error_code
        if isinstance(why, str):
            why = Decision("hw", "cpu", f"#PF({addr:#x}, {error_code:#x})", why)
        super().__init__(why)

    @property
    def sgx(self) -> bool:
        return bool(self.error_code & PF_SGX)
