"""The CPU: EPC, EPCM, MSRs, CPUID facts and logical processors.

:class:`Cpu` combines the access check (:mod:`sgxsim.hw.access`), the ENCLS
leaves (:mod:`sgxsim.hw.encls`) and the ENCLU leaves (:mod:`sgxsim.hw.enclu`).
The kernel drives it with ENCLS leaves (physical addresses) and by setting
``lp.cr3``; user code drives it with loads, stores, fetches and ENCLU leaves
on a logical processor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sgxsim.hw.access import AccessMixin
from sgxsim.hw.consts import LEPUBKEYHASH_RESET, MISC_EXINFO, MSR_IA32_SGXLEPUBKEYHASH0, Attribute
from sgxsim.hw.encls import EnclsMixin
from sgxsim.hw.enclu import EncluMixin
from sgxsim.hw.epc import Epc
from sgxsim.hw.memory import PhysMem
from sgxsim.hw.paging import PageTable
from sgxsim.trace import Trace

GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


@dataclass(slots=True)
class EnclaveContext:
    """What an LP holds while in enclave mode (CR_ACTIVE_SECS, CR_ELRANGE,
    CR_TCS_PA, the cached SSA frame pages)."""

    secs: int  # EPC index of the SECS
    base: int
    size: int
    tcs: int  # linear address of the TCS
    tcs_epc: int  # EPC index of the TCS page
    aep: int
    ssa_pages: list[int]  # EPC indexes of the current SSA frame's pages
    ssa_la: int  # linear address of the current SSA frame

    def in_elrange(self, la: int) -> bool:
        return self.base <= la < self.base + self.size


@dataclass(slots=True)
class LogicalProcessor:
    """A hardware thread: its page-table root, mode and registers."""

    id: int
    cr3: PageTable | None = None
    enclave: EnclaveContext | None = None
    regs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GPRS + ("rip", "rflags"), 0))


class Cpu(AccessMixin, EnclsMixin, EncluMixin):
    """An SGX-capable package: EPC of ``epc_pages`` pages and ``nr_cpus`` LPs."""

    # CPUID.12H facts of a typical SGX2 part (sub-leaf 0 EBX, sub-leaf 1).
    MISCSELECT_VALID = MISC_EXINFO
    ATTRIBUTES_VALID = (Attribute.DEBUG | Attribute.MODE64BIT | Attribute.PROVISIONKEY
                        | Attribute.EINITTOKENKEY | Attribute.KSS)
    XFRM_VALID = 0x7  # x87, SSE, AVX
    MAX_ENCLAVE_SIZE_64 = 36  # CPUID.12H.0:EDX[15:8]
    MAX_ENCLAVE_SIZE_32 = 31  # CPUID.12H.0:EDX[7:0]

    def __init__(self, epc_pages: int, *, sgx2: bool = True, flc: bool = True,
                 nr_cpus: int = 2, trace: Trace | None = None, seed: int = 0, pku: bool = True,
                 aexnotify: bool = True):
        if epc_pages < 1:
            raise ValueError("the EPC needs at least one page")
        self.phys = PhysMem(epc_pages)
        self.epc = Epc(epc_pages)
        self.epc_pages = epc_pages
        self.sgx1 = True
        self.sgx2 = sgx2
        self.flc = flc
        self.pku = pku  # protection keys (CPUID.7:ECX.PKU, OSPKE)
        self.miscselect_valid = self.MISCSELECT_VALID
        self.attributes_valid = int(self.ATTRIBUTES_VALID)
        # AEX-Notify (CPUID.12H.1:EAX[10]; microcode on Ice Lake, native on
        # Sapphire Rapids): SECS.ATTRIBUTES bit 10 may be set at ECREATE.
        self.aexnotify = aexnotify
        if aexnotify:
            self.attributes_valid |= Attribute.AEXNOTIFY
        self.xfrm_valid = self.XFRM_VALID
        self.lps = [LogicalProcessor(i) for i in range(nr_cpus)]
        self.trace = trace if trace is not None else Trace()
        # IA32_SGXLEPUBKEYHASH0..3 reset to Intel's launch-enclave key hash.
        self.msrs: dict[int, int] = {
            MSR_IA32_SGXLEPUBKEYHASH0 + i: int.from_bytes(LEPUBKEYHASH_RESET[8 * i : 8 * i + 8],
                                                          "little")
            for i in range(4)
        }
        # Platform secrets (deterministic per seed, so runs replay exactly).
        secret = hashlib.sha256(b"sgxsim-cpu-secret" + seed.to_bytes(8, "little")).digest()
        self.secret = secret
        self.next_eid = 1
        self.next_version = 1  # EWB version counter (TMP_VER)
        self.pending_unmasked_events = 0
        self.evicted_secs: dict[int, object] = {}  # hidden SECS state by EWB version
        self.stats: dict[str, int] = {}

    # -- MSRs ------------------------------------------------------------------
    def wrmsr(self, msr: int, value: int) -> None:
        if msr in self.msrs and not self.flc and MSR_IA32_SGXLEPUBKEYHASH0 <= msr < \
                MSR_IA32_SGXLEPUBKEYHASH0 + 4:
            from sgxsim.hw.faults import GeneralProtection

            raise GeneralProtection("WRMSR: LEPUBKEYHASH is read-only without FLC")
        self.msrs[msr] = value & ((1 << 64) - 1)

    def rdmsr(self, msr: int) -> int:
        return self.msrs.get(msr, 0)

    def lepubkeyhash(self) -> bytes:
        return b"".join(self.msrs[MSR_IA32_SGXLEPUBKEYHASH0 + i].to_bytes(8, "little")
                        for i in range(4))

    # -- events ----------------------------------------------------------------
    def inject_unmasked_events(self, n: int) -> None:
        """The next ``n`` EINITs see a pending interrupt (SGX_UNMASKED_EVENT)."""
        self.pending_unmasked_events += n

    def ipi(self, lp_ids: set[int] | list[int]) -> None:
        """An interrupt on each LP: those in enclave mode take an AEX."""
        for i in lp_ids:
            lp = self.lps[i]
            if lp.enclave is not None:
                self.aex(lp, vector=None)

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
