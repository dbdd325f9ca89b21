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
from sgxsim.hw.epc import MODEL_EPC_PAGES_LIMIT, Epc
from sgxsim.hw.memory import EPC_BASE, PhysMem
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
    ufsbase: int = 0  # the untrusted FS/GS bases EENTER/ERESUME saved for EEXIT/AEX
    ugsbase: int = 0

    def in_elrange(self, la: int) -> bool:
        return self.base <= la < self.base + self.size


@dataclass(slots=True)
class LogicalProcessor:
    """A hardware thread: its page-table root, mode and registers."""

    id: int
    cr3: PageTable | None = None
    enclave: EnclaveContext | None = None
    regs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GPRS + ("rip", "rflags", "fsbase",
                                                                             "gsbase"), 0))


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
                 aexnotify: bool | None = None):
        for name, v in (("epc_pages", epc_pages), ("nr_cpus", nr_cpus), ("seed", seed)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, not {type(v).__name__}")
        if epc_pages < 1:
            raise ValueError("the EPC needs at least one page")
        if epc_pages > MODEL_EPC_PAGES_LIMIT:
            raise ValueError(f"epc_pages: at most {MODEL_EPC_PAGES_LIMIT} (4 GiB of EPC, the model's limit: "
                             f"its per-page state is dense), not {epc_pages}")
        if nr_cpus < 1:
            raise ValueError(f"nr_cpus: at least one logical processor, not {nr_cpus}")
        if not 0 <= seed < 1 << 64:  # the platform secrets hash it as 8 bytes
            raise ValueError(f"seed: from 0 to 2**64 - 1, not {seed}")
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
        # Sapphire Rapids): SECS.ATTRIBUTES bit 10 may be set at ECREATE.  By
        # default a CPU has it when it has SGX2: no SGX1-only part got it.
        self.aexnotify = aexnotify = sgx2 if aexnotify is None else aexnotify
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
        # A plain dict (read with .get): the checker's snapshot saves and puts
        # back plain dicts; a Counter would not be restored.
        self.stats: dict[str, int] = {}

    # -- CPUID -------------------------------------------------------------------
    # The leaf 7 bits this model owns (sub-leaf 0 EBX, ECX, EDX); a front end
    # answering CPUID for a real program merges them into the host's answer.
    CPUID7_SGX = 1 << 2  # EBX: SGX
    CPUID7_PKU, CPUID7_OSPKE = 1 << 3, 1 << 4  # ECX
    CPUID7_SGX_LC = 1 << 30  # ECX: SGX launch control (FLC)
    CPUID7_MASK = (CPUID7_SGX, CPUID7_PKU | CPUID7_OSPKE | CPUID7_SGX_LC, 0)
    CPUID_SGX_LEAF = 0x12
    _EPC_SECTION, _EPC_CONF_INTEG = 0x1, 0x1  # sub-leaf >= 2: EAX[3:0], ECX[3:0]

    def cpuid(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        """CPUID (EAX, EBX, ECX, EDX) for the leaves whose SGX facts this CPU
        owns: leaf 7 sub-leaf 0 (only the bits in ``CPUID7_MASK``) and leaf
        12H (SDM Vol. 3D, "CPUID leaf 12H"): sub-leaf 0 the SGX1/SGX2 bits,
        MISCSELECT and the maximum enclave sizes; sub-leaf 1 the ATTRIBUTES and
        XFRM an enclave may set; sub-leaves 2.. the EPC sections (one section,
        the whole EPC, then an invalid entry that ends the list, which is where
        the kernel's sgx_page_cache_init() and the selftests stop).  Other
        leaves raise ValueError: the model does not define them."""
        if leaf == 7:
            if subleaf:
                return 0, 0, 0, 0
            ecx = (self.CPUID7_SGX_LC if self.flc else 0) | (
                self.CPUID7_PKU | self.CPUID7_OSPKE if self.pku else 0)
            return 0, self.CPUID7_SGX if self.sgx1 else 0, ecx, 0
        if leaf != self.CPUID_SGX_LEAF:
            raise ValueError(f"CPUID leaf {leaf:#x} is not modelled")
        if subleaf == 0:
            eax = (1 if self.sgx1 else 0) | (2 if self.sgx2 else 0)
            edx = self.MAX_ENCLAVE_SIZE_32 | self.MAX_ENCLAVE_SIZE_64 << 8
            return eax, self.miscselect_valid, 0, edx
        if subleaf == 1:
            a, x = self.attributes_valid, self.xfrm_valid
            return a & 0xFFFFFFFF, a >> 32, x & 0xFFFFFFFF, x >> 32
        if subleaf == 2:
            base, size = EPC_BASE, self.epc_pages << 12
            # Bits 31:12 in EAX/ECX, bits 51:32 in EBX/EDX.
            return ((base & 0xFFFFF000) | self._EPC_SECTION, (base >> 32) & 0xFFFFF,
                    (size & 0xFFFFF000) | self._EPC_CONF_INTEG, (size >> 32) & 0xFFFFF)
        return 0, 0, 0, 0

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
