"""The CPU: logical processors, MSRs, CPUID facts, and the access check that
every user memory access passes through (SDM §38.5; reference
sgx-hardware.md §5), with the AEX that a fault in enclave mode performs
(SDM §40.4; reference §4.17).

The ENCLS leaves are in :mod:`sgxsim.hw.encls`, the ENCLU leaves in
:mod:`sgxsim.hw.enclu`; :class:`Cpu` combines them.
"""

from __future__ import annotations

import os
import struct

from sgxsim.hw.consts import (
    LEPUBKEYHASH_RESET,
    MISC_EXINFO,
    MSR_IA32_SGXLEPUBKEYHASH0,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    SSA_GPRSGX_SIZE,
    Attribute,
    Enclu,
    PageType,
)
from sgxsim.hw.encls import EnclsLeaves
from sgxsim.hw.enclu import EncluLeaves
from sgxsim.hw.epc import (
    EPCM_BLOCKED,
    EPCM_MODIFIED,
    EPCM_PENDING,
    EPCM_R,
    EPCM_VALID,
    EPCM_W,
    EPCM_X,
    Epc,
)
from sgxsim.hw.faults import (
    PF_INSTR,
    PF_PROT,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    VEC_PF,
    VEC_UD,
    GeneralProtection,
    HwFault,
    PageFault,
)
from sgxsim.hw.lp import (
    FETCH,
    GPRS,
    READ,
    WRITE,
    EnclaveContext,
    LogicalProcessor,
    canonical,
)
from sgxsim.hw.memory import EPC_BASE_PFN, PhysMem
from sgxsim.hw.paging import PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_RW, PTE_USER
from sgxsim.hw.structs import SsaGpr
from sgxsim.trace import Decision, Trace

_EPCM_NEED = (EPCM_R, EPCM_W, EPCM_X)
_EPCM_DENY = EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED
_ABORT_PAGE = b"\xff" * PAGE_SIZE  # reads of EPC outside enclave mode (abort-page semantics)
_EXINFO = struct.Struct("<QI4x")  # SSA MISC EXINFO: MADDR, ERRCD


class Cpu(EnclsLeaves, EncluLeaves):
    """The SGX-capable CPU package: physical memory map, EPC/EPCM, MSRs,
    CPUID facts and ``nr_cpus`` logical processors."""

    def __init__(self, epc_pages: int, *, sgx2: bool = True, flc: bool = True, nr_cpus: int = 2,
                 trace: Trace | None = None) -> None:
        self.phys = PhysMem(epc_pages)
        self.epc = Epc(epc_pages)
        self.lps = [LogicalProcessor(i) for i in range(nr_cpus)]
        self.trace = trace if trace is not None else Trace()
        # CPUID.12H facts.
        self.sgx1 = True
        self.sgx2 = sgx2
        self.flc = flc
        self.miscselect_allowed = MISC_EXINFO  # CPUID.12H.0:EBX
        self.attributes_allowed = int(  # CPUID.12H.1:EAX/EBX (INIT is never allowed in)
            Attribute.DEBUG | Attribute.MODE64BIT | Attribute.PROVISIONKEY
            | Attribute.EINITTOKENKEY | Attribute.KSS
        )
        self.xfrm_allowed = 0x7  # CPUID.12H.1:ECX/EDX: x87, SSE, AVX
        self.max_enclave_size_64 = 36  # CPUID.12H.0:EDX[15:8]
        self.max_enclave_size_32 = 31  # CPUID.12H.0:EDX[7:0]
        # IA32_SGXLEPUBKEYHASH0..3 at reset hold Intel's LE key hash.
        self.lepubkeyhash = bytearray(LEPUBKEYHASH_RESET)
        # Hardware secrets: sealing/report/EWB keys are derived from it.
        self.secret = os.urandom(32)
        self.next_eid = 1
        self.next_version = 1
        self.evicted_secs: dict[int, object] = {}  # version -> SecsState (inside the EWB blob)
        # Pending unmasked events: EINIT returns SGX_UNMASKED_EVENT while > 0.
        self.unmasked_events = 0

    # -- MSRs ------------------------------------------------------------------
    def wrmsr(self, msr: int, value: int) -> None:
        """WRMSR to IA32_SGXLEPUBKEYHASH0..3; they are writable only with
        flexible launch control (else #GP, as a locked MSR)."""
        n = msr - MSR_IA32_SGXLEPUBKEYHASH0
        if not 0 <= n < 4 or not self.flc or not 0 <= value < (1 << 64):
            raise GeneralProtection(Decision("hw", "WRMSR", "#GP(0)", f"msr {msr:#x}"))
        self.lepubkeyhash[8 * n : 8 * n + 8] = value.to_bytes(8, "little")

    def rdmsr(self, msr: int) -> int:
        n = msr - MSR_IA32_SGXLEPUBKEYHASH0
        if not 0 <= n < 4:
            raise GeneralProtection(Decision("hw", "RDMSR", "#GP(0)", f"msr {msr:#x}"))
        return int.from_bytes(self.lepubkeyhash[8 * n : 8 * n + 8], "little")

    # -- paging ----------------------------------------------------------------
    def walk(self, lp: LogicalProcessor, la: int, acc: int, user: bool) -> int:
        """Translate ``la`` through ``lp.cr3`` (SDM Vol. 3A §4.6): returns the
        physical address or raises an ordinary #PF (SGX bit clear).  Sets the
        accessed bit, and the dirty bit on a write."""
        bits = (PF_USER if user else 0) | (PF_WRITE if acc == WRITE else 0) | (
            PF_INSTR if acc == FETCH else 0)
        if not 0 <= la < (1 << 64) or not canonical(la):
            raise GeneralProtection(Decision("hw", "paging", "#GP(0)", f"non-canonical {la:#x}"))
        vpn = la >> PAGE_SHIFT
        ptes = lp.cr3.ptes if lp.cr3 is not None else {}
        pte = ptes.get(vpn, 0)
        if not pte & PTE_PRESENT:
            raise PageFault(la, bits, Decision("hw", "paging", "#PF", "PTE not present"))
        if user and not pte & PTE_USER:
            raise PageFault(la, bits | PF_PROT, Decision("hw", "paging", "#PF", "supervisor page"))
        if acc == WRITE and not pte & PTE_RW:
            raise PageFault(la, bits | PF_PROT, Decision("hw", "paging", "#PF", "read-only PTE"))
        if acc == FETCH and pte & PTE_NX:
            raise PageFault(la, bits | PF_PROT, Decision("hw", "paging", "#PF", "NX PTE"))
        new = pte | PTE_ACCESSED | (PTE_DIRTY if acc == WRITE else 0)
        if new != pte:
            ptes[vpn] = new
        return ((pte >> PAGE_SHIFT) & ((1 << 40) - 1)) << PAGE_SHIFT | (la & ~PAGE_MASK)

    # -- the access check --------------------------------------------------------
    def check(self, lp: LogicalProcessor, la: int, acc: int, user: bool = True) -> int:
        """The access check (SDM §38.5, reference §5).  Returns the physical
        address, or -1 for an abort-page access (EPC outside enclave mode).
        Raises the fault; the caller performs the AEX."""
        ctx = lp.enclave
        if ctx is not None and acc == FETCH and not ctx.base <= la < ctx.limit:
            # SDM §38.5: code fetch outside ELRANGE in enclave mode.
            raise GeneralProtection(Decision("hw", "SDM 38.5", "#GP(0)",
                                             f"fetch at {la:#x} outside ELRANGE"))
        pa = self.walk(lp, la, acc, user)
        pfn = pa >> PAGE_SHIFT
        i = pfn - EPC_BASE_PFN
        in_epc = 0 <= i < self.epc.npages
        if ctx is None:
            return -1 if in_epc else pa  # outside enclave mode: abort page for EPC
        bits = PF_PROT | PF_SGX | (PF_USER if user else 0) | (PF_WRITE if acc == WRITE else 0) | (
            PF_INSTR if acc == FETCH else 0)
        if not ctx.base <= la < ctx.limit:
            if not in_epc:
                return pa  # enclave data access to untrusted memory
            # Reference §13 item 1 (open): EPC reached from outside ELRANGE
            # cannot match ENCLAVEADDRESS, so the EPCM check fails: #PF(SGX).
            raise PageFault(la, bits, Decision("hw", "SDM 38.5", "#PF",
                                               "EPC page mapped outside ELRANGE"))
        if not in_epc:
            # Reference §13 item 2 (open): ELRANGE mapped to non-EPC memory;
            # paging allowed the access, so it is reported as an SGX #PF.
            raise PageFault(la, bits, Decision("hw", "SDM 38.5", "#PF",
                                               "ELRANGE address maps to non-EPC memory"))
        epc = self.epc
        f = epc.flags[i]
        why = None
        if not f & EPCM_VALID:
            why = "EPCM.VALID=0"
        elif epc.secs[i] != ctx.secs:
            why = "EPCM.ENCLAVESECS is another enclave"
        elif epc.addr[i] != la & PAGE_MASK:
            why = "EPCM.ENCLAVEADDRESS mismatch"
        elif epc.pt[i] != PageType.PT_REG:
            why = f"EPCM.PT={PageType(epc.pt[i]).name}"
        elif f & _EPCM_DENY:
            why = "EPCM BLOCKED/PENDING/MODIFIED"
        elif not f & _EPCM_NEED[acc]:
            why = "EPCM permissions"
        if why is not None:
            raise PageFault(la, bits, Decision("hw", "SDM 38.5 EPCM", "#PF", why))
        return pa

    def _fault(self, lp: LogicalProcessor, fault: HwFault) -> HwFault:
        """Deliver a fault: in enclave mode an AEX happens first."""
        if lp.enclave is not None:
            self.aex(lp, fault)
        elif isinstance(fault, PageFault):
            lp.cr2 = fault.addr
        self.trace.add(fault.why)
        return fault

    def load(self, lp: LogicalProcessor, la: int, n: int, user: bool = True) -> bytes:
        """A data read of ``n`` bytes that does not cross a page."""
        try:
            pa = self.check(lp, la, READ, user)
        except HwFault as f:
            raise self._fault(lp, f) from None
        if pa < 0:
            return _ABORT_PAGE[:n]
        return self._phys_read(pa, n)

    def store(self, lp: LogicalProcessor, la: int, data: bytes, user: bool = True) -> None:
        """A data write that does not cross a page."""
        try:
            pa = self.check(lp, la, WRITE, user)
        except HwFault as f:
            raise self._fault(lp, f) from None
        if pa >= 0:
            self._phys_write(pa, data)

    def fetch(self, lp: LogicalProcessor, la: int, n: int = 1, user: bool = True) -> bytes:
        """An instruction fetch."""
        try:
            pa = self.check(lp, la, FETCH, user)
        except HwFault as f:
            raise self._fault(lp, f) from None
        if pa < 0:
            return _ABORT_PAGE[:n]
        return self._phys_read(pa, n)

    def _phys_read(self, pa: int, n: int) -> bytes:
        pfn, off = pa >> PAGE_SHIFT, pa & ~PAGE_MASK
        i = pfn - EPC_BASE_PFN
        if 0 <= i < self.epc.npages:
            page = self.epc.pages.get(i)
        else:
            page = self.phys.frames.get(pfn)
        if page is None:  # no memory there: reads float to all ones
            return _ABORT_PAGE[:n]
        return bytes(page[off : off + n])

    def _phys_write(self, pa: int, data: bytes) -> None:
        pfn, off = pa >> PAGE_SHIFT, pa & ~PAGE_MASK
        i = pfn - EPC_BASE_PFN
        page = self.epc.pages.get(i) if 0 <= i < self.epc.npages else self.phys.frames.get(pfn)
        if page is not None:  # writes to no memory are dropped
            page[off : off + len(data)] = data

    # -- AEX (SDM §40.4) ---------------------------------------------------------
    def aex(self, lp: LogicalProcessor, fault: HwFault) -> None:
        """Asynchronous exit: save the state into SSA[CSSA], write EXITINFO
        (and EXINFO with MISCSELECT.EXINFO), CSSA += 1, load the synthetic
        state (RAX=ERESUME, RBX=TCS, RCX=AEP, RIP=AEP, RSP/RBP from URSP/URBP),
        leave enclave mode and the tracking set; a #PF's CR2 has its low 12
        bits cleared."""
        ctx = lp.enclave
        epc = self.epc
        secs = epc.secs_state.get(ctx.secs)
        regs = lp.regs
        vector = fault.vector
        gpr_page = epc.pages.get(ctx.ssa_gpr)
        ssa = SsaGpr.unpack(gpr_page[ctx.ssa_gpr_off : ctx.ssa_gpr_off + SSA_GPRSGX_SIZE])
        for r in GPRS:
            setattr(ssa, r, regs[r] & 0xFFFFFFFFFFFFFFFF)
        ssa.rip = regs["rip"] & 0xFFFFFFFFFFFFFFFF
        ssa.rflags = regs["rflags"] & 0xFFFFFFFFFFFFFFFF
        exinfo = secs is not None and secs.miscselect & MISC_EXINFO
        if vector == VEC_UD or exinfo:
            ssa.exitinfo = SsaGpr.EXITINFO_VALID | (SsaGpr.EXIT_TYPE_HW << 8) | vector
        else:
            ssa.exitinfo = 0
        gpr_page[ctx.ssa_gpr_off : ctx.ssa_gpr_off + SSA_GPRSGX_SIZE] = ssa.pack()
        if exinfo and isinstance(fault, PageFault):
            _EXINFO.pack_into(gpr_page, ctx.ssa_gpr_off - _EXINFO.size, fault.addr,
                              fault.error_code)
        tcs = epc.pages[ctx.tcs]
        cssa = struct.unpack_from("<I", tcs, 24)[0]
        struct.pack_into("<I", tcs, 24, (cssa + 1) & 0xFFFFFFFF)
        struct.pack_into("<Q", tcs, 0, 0)  # TCS.STATE := INACTIVE
        ursp, urbp = ssa.ursp, ssa.urbp
        for r in GPRS:
            regs[r] = 0
        regs.update(rax=int(Enclu.ERESUME), rbx=ctx.tcs_la, rcx=ctx.aep, rip=ctx.aep,
                    rsp=ursp, rbp=urbp)
        self._leave(lp)
        addr = 0
        code = 0
        if isinstance(fault, PageFault):
            fault.addr &= PAGE_MASK  # SDM §40.4: CR2 low 12 bits cleared
            lp.cr2 = fault.addr
            addr, code = fault.addr, fault.error_code
        lp.exception = (vector, code, addr)

    def _leave(self, lp: LogicalProcessor) -> None:
        """Leave enclave mode: drop out of the active and tracking sets."""
        ctx = lp.enclave
        secs = self.epc.secs_state.get(ctx.secs)
        if secs is not None:
            secs.active.discard(lp.index)
            secs.tracking_set.discard(lp.index)
        lp.enclave = None


__all__ = ["Cpu", "LogicalProcessor", "EnclaveContext", "READ", "WRITE", "FETCH", "VEC_PF",
           "canonical"]
