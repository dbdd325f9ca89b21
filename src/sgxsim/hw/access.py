"""The access check: paging first, then the EPCM (SDM 38.5 and 39.5; reference
sgx-hardware.md §5), and the asynchronous exit that a fault in enclave mode
causes (SDM 40.4).

Every error code is composed from the ``PF_*`` bits here, so the values the
kernel selftests observe (0x7, 0x8005, 0x8007, 0x6, 0x4) come out of the
mechanism.
"""

from __future__ import annotations

import operator
import struct
from typing import TYPE_CHECKING

from sgxsim.hw.consts import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PageType
from sgxsim.hw.epc import (
    EPCM_BLOCKED,
    EPCM_MODIFIED,
    EPCM_PENDING,
    EPCM_R,
    EPCM_VALID,
    EPCM_W,
    EPCM_X,
    epcm_to_perms,
)
from sgxsim.hw.faults import (
    PF_INSTR,
    PF_PROT,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    VEC_GP,
    VEC_PF,
    GeneralProtection,
    HwFault,
    PageFault,
)
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import _CANONICAL_TOP, PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_RW, PTE_USER
from sgxsim.hw.structs import SsaExinfo, SsaGpr, Tcs

if TYPE_CHECKING:
    from sgxsim.hw.cpu import Cpu, LogicalProcessor

READ, WRITE, FETCH = 0, 1, 2
# Rights admitted for a whole page by translate() (the values of UC_PROT_* and PROT_*).
PERM_R, PERM_W, PERM_X = 1, 2, 4
_ACCESS_BITS = (0, PF_WRITE, PF_INSTR)
_EPCM_NEEDS = (EPCM_R, EPCM_W, EPCM_X)
_ACCESS_NAME = ("read", "write", "fetch")
_ABORT_PAGE = b"\xff" * PAGE_SIZE
_GPR_OFF = PAGE_SIZE - SsaGpr.SIZE  # GPRSGX sits at the end of the frame's last page
# Runs of GPRSGX's fields (offsets within it), for AEX to write in place.
_GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10",
              "r11", "r12", "r13", "r14", "r15", "rflags", "rip")
_GPR_REGS_AT, _GPR_REGS = SsaGpr.span("rax", "rip")
_GPR_USTACK_AT, _GPR_USTACK = SsaGpr.span("ursp", "urbp")
_GPR_TAIL_AT, _GPR_TAIL = SsaGpr.span("exitinfo", "gsbase")
_TCS_CSSA_AT, _TCS_CSSA = Tcs.span("cssa", "cssa")
_TCS_STATE_AT, _TCS_STATE = Tcs.span("state", "state")
if tuple(f[0] for f in SsaGpr.FIELDS[:len(_GPR_NAMES)]) != _GPR_NAMES or \
        _GPR_TAIL_AT + _GPR_TAIL.size != SsaGpr.SIZE:
    raise ImportError("GPRSGX's layout is not the one aex() writes")
_gpr_items = operator.itemgetter(*_GPR_NAMES)
_ZERO_REGS = dict.fromkeys(_GPR_NAMES + ("fsbase", "gsbase"), 0)  # an LP's register file, zeroed
_EXINFO_OFF = _GPR_OFF - SsaExinfo.SIZE
_EXINFO = SsaExinfo._codec  # MADDR, ERRCD, reserved
_EXIT_TYPE_HW = 3
_PT_REG = int(PageType.PT_REG)  # a plain int: comparisons with an IntEnum member cost more
# The fast path of _page(): the PTE bits an access needs (user adds PTE_USER)
# and the A/D bits its walk sets; the EPCM flags that must read VALID, not
# BLOCKED, PENDING or MODIFIED, with the access's right.
_PTE_NEEDS = (PTE_PRESENT, PTE_PRESENT | PTE_RW, PTE_PRESENT)
_PTE_SETS = (PTE_ACCESSED, PTE_ACCESSED | PTE_DIRTY, PTE_ACCESSED)
# By ``access + 3 * user``: (the PTE bits looked at, the values that pass):
# the bits the access needs, and for a fetch NX clear.
_PTE_CHECK = tuple((need | (PTE_USER if user else 0) | (PTE_NX if access == FETCH else 0),
                    need | (PTE_USER if user else 0))
                   for user in (False, True) for access, need in enumerate(_PTE_NEEDS))
_PFN_MASK = (1 << 40) - 1
_EPCM_FAST_MASK = tuple(EPCM_VALID | EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED | r
                        for r in (EPCM_R, EPCM_W, EPCM_X))
_EPCM_FAST_OK = tuple(EPCM_VALID | r for r in (EPCM_R, EPCM_W, EPCM_X))


def _gpr_values(regs: dict[str, int]) -> tuple[int, ...]:
    """RAX..RIP from the register file (0 for one it does not hold)."""
    try:
        return _gpr_items(regs)
    except KeyError:
        return tuple(regs.get(k, 0) for k in _GPR_NAMES)


def _pf(la: int, ec: int, rule: str, detail: str) -> PageFault:
    # Decision("hw", rule, "#PF(la, ec)", detail), built when read (HwFault).
    return PageFault(la, ec, (rule, detail))


class AccessMixin:
    """Loads, stores and fetches by a logical processor."""

    # -- paging ---------------------------------------------------------------
    def walk(self: Cpu, lp: LogicalProcessor, la: int, access: int, user: bool = True) -> int:
        """Translate ``la`` through ``lp.cr3`` for an access; return the PFN.

        Raises #GP(0) for a non-canonical address (before paging), else an
        ordinary #PF (SGX bit clear) as the page walker would, and sets the
        accessed/dirty bits of the PTE it used."""
        if la >> 47 not in _CANONICAL_TOP:  # canonical(la), inline
            # SDM Vol 3A 3.3.7.1: a non-canonical address faults before paging
            # (every access and every ENCLU/ENCLS memory operand walks here).
            raise GeneralProtection(("SDM: canonical address check", f"non-canonical address {la:#x}"))
        pt = lp.cr3
        vpn = la >> PAGE_SHIFT
        pte = pt.ptes.get(vpn, 0) if pt is not None else 0
        mask, need = _PTE_CHECK[access + 3 * user]
        if pte & mask != need:
            # The checks in the walker's order: the first failing one decides the code.
            ec = _ACCESS_BITS[access] | (PF_USER if user else 0)
            if not pte & PTE_PRESENT:
                raise _pf(la, ec, "paging", f"{_ACCESS_NAME[access]} of a not-present page")
            if user and not pte & PTE_USER:
                raise _pf(la, ec | PF_PROT, "paging", "user access to a supervisor page")
            if access == WRITE and not pte & PTE_RW:
                raise _pf(la, ec | PF_PROT, "paging", "write to a read-only PTE")
            raise _pf(la, ec | PF_PROT, "paging", "fetch from an NX PTE")
        new = pte | _PTE_SETS[access]
        if new != pte:
            pt.ptes[vpn] = new
        return (pte >> PAGE_SHIFT) & _PFN_MASK

    # -- the check --------------------------------------------------------------
    def _frame(self: Cpu, lp: LogicalProcessor, la: int, access: int, user: bool):
        """Return (kind, index) for an access: kind "ram" (PFN) or "epc" (EPC
        index, enclave access granted) or "abort" (EPC seen from outside)."""
        pfn = self.walk(lp, la, access, user)  # the canonical check first, then paging
        ctx = lp.enclave
        epc_i = pfn - EPC_BASE_PFN
        is_epc = 0 <= epc_i < self.epc_pages
        if ctx is None:
            # Outside enclave mode the EPC is an abort page (SDM 38.5, A).
            return ("abort", 0) if is_epc else ("ram", pfn)
        ec = _ACCESS_BITS[access] | (PF_USER if user else 0) | PF_PROT | PF_SGX
        if ctx.base <= la < ctx.base + ctx.size:
            # SDM 38.5, B: inside ELRANGE only an accessible EPC page of this
            # enclave at this address will do.
            if not is_epc:
                raise _pf(la, ec, "SDM: EPCM access check", "ELRANGE address maps to non-EPC memory")
            self._epcm_check(ctx, la, epc_i, access, ec)
            return ("epc", epc_i)
        # SDM 38.5, C: outside ELRANGE, fetches fault and data goes to memory.
        if access == FETCH:
            raise GeneralProtection(("SDM: EPCM access check", f"enclave fetch outside ELRANGE at {la:#x}"))
        if is_epc:
            # ENCLAVEADDRESS can never match an address outside ELRANGE
            # (reference §13 item 1: read as an EPCM #PF).
            raise _pf(la, ec, "SDM: EPCM access check", "EPC page reached outside ELRANGE")
        return ("ram", pfn)

    def _epcm_check(self: Cpu, ctx, la: int, i: int, access: int, ec: int) -> None:
        epc = self.epc
        f = epc.flags[i]
        why = None
        if not f & EPCM_VALID:
            why = "EPCM.VALID=0"
        elif epc.secs[i] != ctx.secs:
            why = "page belongs to another enclave"
        elif epc.addr[i] != la & PAGE_MASK:
            why = f"EPCM.ENCLAVEADDRESS {epc.addr[i]:#x} != {la & PAGE_MASK:#x}"
        elif epc.pt[i] != _PT_REG:
            why = f"EPCM.PT={PageType(epc.pt[i]).name}, not PT_REG"
        elif f & EPCM_BLOCKED:
            why = "EPCM.BLOCKED=1"
        elif f & EPCM_PENDING:
            why = "EPCM.PENDING=1"
        elif f & EPCM_MODIFIED:
            why = "EPCM.MODIFIED=1"
        elif not f & _EPCM_NEEDS[access]:
            why = f"EPCM denies {_ACCESS_NAME[access]}"
        if why is not None:
            raise _pf(la, ec, "SDM: EPCM access check", why)

    # -- the accesses -------------------------------------------------------------
    def _admit(self: Cpu, lp, la: int, access: int, user: bool):
        """The access check for one access; a fault in enclave mode goes
        through an AEX before it is raised (SDM 40.4)."""
        try:
            return self._frame(lp, la, access, user)
        except HwFault as fault:
            if lp.enclave is not None:
                raise self.aex(lp, fault) from None  # (positional: a keyword costs in a call this hot)
            raise

    def translate(self: Cpu, lp: LogicalProcessor, la: int, access: int,
                  user: bool = True) -> tuple[bytearray, int]:
        """A TLB fill: the access check of ``load``/``store``/``fetch`` for one
        ``access`` (READ, WRITE or FETCH) at ``la``, then the page's backing
        storage and the rights (``PERM_R|PERM_W|PERM_X``) a TLB entry may hold
        for the whole page: those the check would admit without touching the
        paging structures again (W only once the PTE is dirty, as a TLB entry
        filled by a read must walk again to set D).  The storage is the RAM
        frame or EPC page itself (zero-copy); it stays valid until the kernel
        or an ENCLS/ENCLU leaf runs, i.e. until the next flush.  Raises the
        same faults as the accesses, after the same AEX."""
        kind, idx = self._admit(lp, la, access, user)
        pte = lp.cr3.ptes[la >> PAGE_SHIFT]
        perms = PERM_R | (PERM_W if pte & PTE_RW and pte & PTE_DIRTY else 0) | (
            0 if pte & PTE_NX else PERM_X)
        if kind == "abort":
            # Reads see 0xFF, writes are dropped: a scratch copy of the abort page.
            return bytearray(_ABORT_PAGE), perms
        if kind == "epc":
            return self.epc.page(idx), perms & epcm_to_perms(self.epc.flags[idx])
        if lp.enclave is not None:
            perms &= ~PERM_X  # SDM 38.5, C: an enclave never fetches outside ELRANGE
        return self.phys.frames[idx], perms

    def _page(self: Cpu, lp, la: int, access: int, user: bool):
        """The storage an access reaches (``None``: the abort page), by the
        same check as :meth:`_admit`, written straight through for the case
        where every step passes: a present PTE that allows the access, then
        outside enclave mode the frame, inside ELRANGE an EPC page whose
        EPCM entry admits it, outside ELRANGE a data access to RAM.
        Anything else, and every fault, goes through :meth:`_admit`, which
        checks again from the start in the real order (the A/D bits set
        here are those its walk sets), so the errors are its own."""
        pt = lp.cr3
        # No PTE maps a non-canonical page (user mappings end below TASK_SIZE),
        # so such an address always falls through to _admit(), whose walk
        # checks it first.
        if pt is not None:
            vpn = la >> PAGE_SHIFT
            ptes = pt.ptes
            pte = ptes.get(vpn, 0)
            mask, need = _PTE_CHECK[access + 3 * user]
            if pte & mask == need:
                sets = _PTE_SETS[access]
                if pte & sets != sets:
                    ptes[vpn] = pte | sets  # the walk's A/D update (walk())
                # The EPC page number (negative: a frame below the EPC, i.e. RAM).
                i = ((pte >> PAGE_SHIFT) & _PFN_MASK) - EPC_BASE_PFN
                ctx = lp.enclave
                if ctx is None:
                    if i < 0:
                        return self.phys.frames[i + EPC_BASE_PFN]
                    if i < self.epc_pages:
                        return None  # the abort page (SDM 38.5, A)
                else:
                    base = ctx.base
                    if base <= la < base + ctx.size:
                        if 0 <= i < self.epc_pages:
                            # SDM 38.5, B: the EPCM access check of _epcm_check(), all passing.
                            epc = self.epc
                            if (epc.flags[i] & _EPCM_FAST_MASK[access] == _EPCM_FAST_OK[access]
                                    and epc.secs[i] == ctx.secs and epc.addr[i] == la & PAGE_MASK
                                    and epc.pt[i] == _PT_REG):
                                # epc.page(i), without its frame once allocated
                                return epc.data.get(i) or epc.page(i)
                    elif access != FETCH and i < 0:
                        return self.phys.frames[i + EPC_BASE_PFN]  # SDM 38.5, C: data goes to memory
        kind, idx = self._admit(lp, la, access, user)
        if kind == "abort":
            return None
        return self.epc.page(idx) if kind == "epc" else self.phys.frames[idx]

    def _access(self: Cpu, lp, la: int, access: int, user: bool, n: int, data=None):
        page = self._page(lp, la, access, user)
        off = la & (PAGE_SIZE - 1)
        if page is None:
            return _ABORT_PAGE[:n] if data is None else None  # writes are dropped
        if data is None:
            return bytes(page[off : off + n])
        page[off : off + n] = data
        return None

    def load(self: Cpu, lp: LogicalProcessor, la: int, n: int, user: bool = True) -> bytes:
        """A data read of ``n`` bytes at linear address ``la``."""
        off = la & (PAGE_SIZE - 1)
        if 0 < n <= PAGE_SIZE - off:
            # Within one page: one access (_access(), inline).
            page = self._page(lp, la, READ, user)
            if page is None:
                return _ABORT_PAGE[:n]
            # A whole page (n == PAGE_SIZE, off == 0) is copied once, not sliced first.
            return bytes(page) if n == PAGE_SIZE else bytes(page[off : off + n])
        out = b""
        while n > 0:
            take = min(n, PAGE_SIZE - (la & (PAGE_SIZE - 1)))
            out += self._access(lp, la, READ, user, take)
            la += take
            n -= take
        return out

    def store(self: Cpu, lp: LogicalProcessor, la: int, data: bytes, user: bool = True) -> None:
        """A data write of ``data`` at linear address ``la``."""
        off = la & (PAGE_SIZE - 1)
        n = len(data)
        if 0 < n <= PAGE_SIZE - off:
            # Within one page: one access (_access(), inline).
            page = self._page(lp, la, WRITE, user)
            if page is not None:  # writes to the abort page are dropped
                page[off : off + n] = data
            return
        mv = memoryview(bytes(data))
        while mv:
            take = min(len(mv), PAGE_SIZE - (la & (PAGE_SIZE - 1)))
            self._access(lp, la, WRITE, user, take, mv[:take])
            la += take
            mv = mv[take:]

    def fetch(self: Cpu, lp: LogicalProcessor, la: int, n: int = 1) -> bytes:
        """An instruction fetch at ``la`` (user mode)."""
        off = la & (PAGE_SIZE - 1)
        if 0 < n <= PAGE_SIZE - off:
            # Within one page: one access (_access(), inline).
            page = self._page(lp, la, FETCH, True)
            return _ABORT_PAGE[:n] if page is None else bytes(page[off : off + n])
        return self._access(lp, la, FETCH, True, n)

    # -- asynchronous exit ----------------------------------------------------------
    def aex(self: Cpu, lp: LogicalProcessor, fault: HwFault | None = None,
            vector: int | None = None) -> HwFault | None:
        """AEX (SDM 40.4): save the state in SSA[CSSA], load the synthetic
        state, CSSA += 1, leave enclave mode.  Returns the fault to deliver,
        with CR2's low 12 bits cleared for a #PF."""
        # SDM: AEX
        ctx = lp.enclave
        assert ctx is not None
        epc = self.epc
        secs = epc.secs_state[ctx.secs]
        regs = lp.regs
        gpr_page = epc.data.get(ctx.ssa_pages[-1]) or epc.page(ctx.ssa_pages[-1])  # epc.page()
        vec = fault.vector if fault is not None else vector
        exitinfo = 0
        exinfo_wanted = bool(secs.miscselect & 1)
        if fault is not None and (vec not in (VEC_PF, VEC_GP) or exinfo_wanted):
            exitinfo = (vec & 0xFF) | (_EXIT_TYPE_HW << 8) | SsaGpr.EXITINFO_VALID
        # GPRSGX written in place, field runs of its layout: RAX..RIP, then
        # (URSP and URBP stay as EENTER saved them) EXITINFO, the reserved
        # dword (zero), FSBASE and GSBASE: the enclave's FS/GS bases (SDM: AEX
        # saves them in GPRSGX and restores the untrusted ones).
        try:
            head = _GPR_REGS.pack(*_gpr_values(regs))
            tail = _GPR_TAIL.pack(exitinfo, 0, regs.get("fsbase", 0), regs.get("gsbase", 0))
        except struct.error as e:
            raise ValueError(f"SsaGpr: {e}") from None
        gpr_page[_GPR_OFF + _GPR_REGS_AT : _GPR_OFF + _GPR_REGS_AT + _GPR_REGS.size] = head
        gpr_page[_GPR_OFF + _GPR_TAIL_AT :] = tail
        ursp, urbp = _GPR_USTACK.unpack_from(gpr_page, _GPR_OFF + _GPR_USTACK_AT)
        if exinfo_wanted and isinstance(fault, (PageFault, GeneralProtection)):
            maddr = fault.addr if isinstance(fault, PageFault) else 0
            errcd = fault.error_code if isinstance(fault, PageFault) else 0
            _EXINFO.pack_into(gpr_page, _EXINFO_OFF, maddr, errcd, 0)  # SsaExinfo, reserved 0
        # TCS.CSSA += 1; the TCS is free again for ERESUME.
        tcs_page = epc.data.get(ctx.tcs_epc) or epc.page(ctx.tcs_epc)  # epc.page()
        _TCS_CSSA.pack_into(tcs_page, _TCS_CSSA_AT, _TCS_CSSA.unpack_from(tcs_page, _TCS_CSSA_AT)[0] + 1)
        _TCS_STATE.pack_into(tcs_page, _TCS_STATE_AT, 0)
        # Synthetic state: RAX=ERESUME, RBX=TCS, RCX=AEP, RIP=AEP, the rest 0.
        regs.update(_ZERO_REGS if regs.keys() == _ZERO_REGS.keys() else dict.fromkeys(regs, 0))
        regs["rax"], regs["rbx"], regs["rcx"], regs["rip"] = 3, ctx.tcs, ctx.aep, ctx.aep
        regs["rsp"], regs["rbp"], regs["fsbase"], regs["gsbase"] = ursp, urbp, ctx.ufsbase, ctx.ugsbase
        self._leave_enclave(lp)
        stats = self.stats  # count("aex"), inline
        stats["aex"] = stats.get("aex", 0) + 1
        if isinstance(fault, PageFault):
            # The same fault and decision (read when someone reads it).
            return PageFault(fault.addr & PAGE_MASK, fault.error_code, fault)
        return fault

    def _leave_enclave(self: Cpu, lp: LogicalProcessor) -> None:
        """Leave enclave mode; the LP counts as having exited for tracking."""
        ctx = lp.enclave
        lp.enclave = None
        st = self.epc.secs_state.get(ctx.secs)
        if st is not None:
            st.active.discard(lp.id)
            if lp.id in st.tracking_set:
                st.tracking_set.discard(lp.id)
                if not st.tracking_set:
                    st.completed_epoch = st.epoch
