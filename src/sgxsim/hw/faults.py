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
    """A fault raised by the CPU model. ``why`` tells which leaf and check.

    ``why`` is given as a ``Decision``, as a string (the detail of a ``hw:
    cpu`` decision), as a pair ``(rule, detail)`` (``Decision("hw", rule,
    outcome, detail)`` with the fault's own outcome: its mnemonic, for a #PF
    with the address and error code) or as another fault (its decision,
    reported again).  The decision and the message are built when they are
    read (``why``, ``str()``, ``args``): most faults are fixed or reported
    by the kernel without anyone reading them, and an enclave operation that
    faults raises several."""

    vector: int = -1
    mnemonic: str = "#?"

    def __init__(self, why: Decision | str | tuple[str, str] | HwFault = ""):
        # No BaseException.__init__(message): __str__ and args build it when read.
        self._why = why

    def _outcome(self) -> str:
        return self.mnemonic

    def _get_why(self) -> Decision:
        why = self._why
        if type(why) is not Decision:
            why = self._why = self._decide(why)
        return why

    def _set_why(self, why: Decision) -> None:
        self._why = why

    # (A property of underscored functions: `sgxsim explain` sees through them.)
    why = property(_get_why, _set_why)

    def _decide(self, why):
        if type(why) is tuple:
            return Decision("hw", why[0], self._outcome(), why[1])
        if isinstance(why, HwFault):
            return why.why
        if isinstance(why, str):
            return Decision("hw", "cpu", self._outcome(), why)
        return why

    @property
    def args(self) -> tuple:  # type: ignore[override]
        return (str(self.why),)

    def __str__(self) -> str:
        return str(self.why)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self):
        # The constructors' arguments differ per class: rebuild from the fields.
        return _rebuild, (type(self), self.__dict__.copy())


def _rebuild(cls: type, fields: dict) -> HwFault:
    fault = cls.__new__(cls)
    fault.__dict__.update(fields)
    return fault


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
        self._why = why

    def _outcome(self) -> str:
        return f"#PF({self.addr:#x}, {self.error_code:#x})"

    @property
    def sgx(self) -> bool:
        return bool(self.error_code & PF_SGX)
