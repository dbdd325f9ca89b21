"""ENCLU leaves (ring 3): SDM Vol. 3D ch. 40; reference sgx-hardware.md
§4.15-§4.21.

Operands are user linear addresses, translated through the LP's page tables
(an ordinary #PF on a paging failure), then checked against the EPCM as each
leaf specifies.  A fault raised by a leaf executed in enclave mode is
delivered through an AEX, like any other exception in enclave mode.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
from typing import TYPE_CHECKING, NamedTuple

from sgxsim.hw.access import (
    _GPR_NAMES,
    _GPR_REGS,
    _GPR_REGS_AT,
    _PFN_MASK,
    _PTE_CHECK,
    _PTE_SETS,
    READ,
    WRITE,
)
from sgxsim.hw.consts import (
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    SECINFO_PT_MASK,
    SECINFO_PT_SHIFT,
    Attribute,
    Enclu,
    PageType,
    SgxReturn,
)
from sgxsim.hw.epc import (
    EPCM_BLOCKED,
    EPCM_MODIFIED,
    EPCM_PENDING,
    EPCM_PR,
    EPCM_R,
    EPCM_RWX,
    EPCM_VALID,
    EPCM_W,
    EPCM_X,
    perms_to_epcm,
)
from sgxsim.hw.faults import (
    PF_PROT,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    GeneralProtection,
    HwFault,
    PageFault,
)
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import _CANONICAL_TOP
from sgxsim.hw.structs import Keyrequest, Report, Secinfo, SsaGpr, Targetinfo, Tcs, nonzero

if TYPE_CHECKING:
    from sgxsim.hw.cpu import Cpu, EnclaveContext, LogicalProcessor

U64 = (1 << 64) - 1
# SECINFO.FLAGS reserved for the ENCLU leaves: 63:16 and 7:6.
SECINFO_ENCLU_RESERVED = U64 & ~(0x3F | SECINFO_PT_MASK)
_GPR_OFF = PAGE_SIZE - SsaGpr.SIZE
_ENCLU_LEN = 3  # ENCLU is 0F 01 D7
_SGX2_LEAVES = (Enclu.EACCEPT, Enclu.EMODPE, Enclu.EACCEPTCOPY)
_ZF = 1 << 6
_STATUS_FLAGS = 0x1 | 0x4 | 0x10 | _ZF | 0x80 | 0x800  # CF PF AF ZF SF OF
_TCS_FLAGS_VALID = Tcs.FLAGS_DBGOPTIN | Tcs.FLAGS_AEXNOTIFY
# Plain ints for the hot checks: ``int & IntFlag`` dispatches to the Flag's
# reflected operator, ~20x the cost of an int operation.
_MODE64BIT = int(Attribute.MODE64BIT)
_AEXNOTIFY = int(Attribute.AEXNOTIFY)
_PT_REG, _PT_TCS = int(PageType.PT_REG), int(PageType.PT_TCS)
_TCS_TRIM = (_PT_TCS, int(PageType.PT_TRIM))
_REG_TCS_TRIM = (_PT_REG,) + _TCS_TRIM
_ATTRIBUTES_MISMATCH = int(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)
_NOT_TRACKED = int(SgxReturn.SGX_NOT_TRACKED)
_OFF_URSP, _OFF_URBP = _GPR_OFF + SsaGpr.OFF_URSP, _GPR_OFF + SsaGpr.OFF_URBP


class TcsHead(NamedTuple):
    """The TCS fields EENTER and ERESUME read (all but the reserved area,
    which only EADD and EACCEPT check)."""

    state: int
    flags: int
    ossa: int
    cssa: int
    nssa: int
    oentry: int
    aep: int
    ofsbase: int
    ogsbase: int
    fslimit: int
    gslimit: int


_U64 = struct.Struct("<Q")
_TCS_HEAD = struct.Struct("<" + "".join(
    {4: "I", 8: "Q"}[size] for _, _, size, kind in Tcs.FIELDS if kind == "u"))
assert TcsHead._fields == tuple(name for name, _, _, kind in Tcs.FIELDS if kind == "u")


# TcsHead._make() without its Python frame: _new_tcs_head(_TCS_HEAD.unpack_from(page)).
_new_tcs_head = functools.partial(tuple.__new__, TcsHead)


# The faults' decisions are built when read (HwFault): Decision("hw", "SDM: leaf",
# "#GP(0)" or "#PF(la, ec)", detail).
def _gp(leaf: str, detail: str) -> GeneralProtection:
    return GeneralProtection((f"SDM: {leaf}", detail))


def _pf(leaf: str, la: int, detail: str, write: bool = False) -> PageFault:
    ec = PF_USER | PF_PROT | PF_SGX | (PF_WRITE if write else 0)
    return PageFault(la, ec, (f"SDM: {leaf}", detail))


def _enclave_context():
    """hw.cpu.EnclaveContext (imported once, late: cpu.py imports this module)."""
    global _EnclaveContext
    if _EnclaveContext is None:
        from sgxsim.hw.cpu import EnclaveContext

        _EnclaveContext = EnclaveContext
    return _EnclaveContext


_EnclaveContext = None


class EncluMixin:
    """ENCLU[EENTER ... EACCEPTCOPY]."""

    # -- helpers -------------------------------------------------------------------------
    def _u_epc(self: Cpu, lp: LogicalProcessor, leaf: str, la: int, access: int) -> int:
        """Translate a user operand; return its EPC index or #PF."""
        # walk(lp, la, access, user=True), written straight through for a PTE
        # that allows the access (its A/D update included); anything else
        # walks, which checks in the real order (as _page() does).
        pt = lp.cr3
        pte = pt.ptes.get(la >> PAGE_SHIFT, 0) if pt is not None else 0
        mask, need = _PTE_CHECK[access + 3]
        if pte & mask == need:
            sets = _PTE_SETS[access]
            if pte & sets != sets:
                pt.ptes[la >> PAGE_SHIFT] = pte | sets
            i = ((pte >> PAGE_SHIFT) & _PFN_MASK) - EPC_BASE_PFN
        else:
            i = self.walk(lp, la, access, True) - EPC_BASE_PFN
        if not 0 <= i < self.epc_pages:
            raise _pf(leaf, la, f"operand {la:#x} is not in the EPC", access == WRITE)
        return i

    def _owned(self: Cpu, ctx: EnclaveContext, i: int, la: int) -> bool:
        return self.epc.secs[i] == ctx.secs and self.epc.addr[i] == la & PAGE_MASK

    def _in_enclave(self: Cpu, lp: LogicalProcessor, leaf: str) -> EnclaveContext:
        if lp.enclave is None:
            raise _gp(leaf, "executed outside enclave mode")
        return lp.enclave

    def _run_inside(self: Cpu, lp: LogicalProcessor, fn, *args):
        """Run an in-enclave leaf; a fault it raises goes through an AEX."""
        try:
            return fn(lp, *args)
        except HwFault as fault:
            if lp.enclave is not None:
                raise self.aex(lp, fault) from None  # (positional: a keyword costs in a call this hot)
            raise

    def _secinfo_page(self: Cpu, lp: LogicalProcessor, ctx: EnclaveContext, leaf: str,
                      la: int) -> Secinfo:
        # EACCEPT: the whole SECINFO operand is checked before RCX.
        if la % Secinfo.ALIGN:
            raise _gp(leaf, "SECINFO not 64-byte aligned")
        if not ctx.in_elrange(la):
            raise _gp(leaf, "SECINFO outside ELRANGE")
        return self._secinfo_load(ctx, leaf, la, self._u_epc(lp, leaf, la, READ))

    def _secinfo_load(self: Cpu, ctx: EnclaveContext, leaf: str, la: int, i: int) -> Secinfo:
        # The SECINFO must sit in a readable, accepted REG page of this enclave.
        f = self.epc.flags[i]
        if (not f & EPCM_VALID or not f & EPCM_R or f & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED)
                or self.epc.pt[i] != _PT_REG or not self._owned(ctx, i, la)):
            raise _pf(leaf, la, "SECINFO page is not an accessible REG page of this enclave")
        off = la & (PAGE_SIZE - 1)
        si = Secinfo.unpack(self.epc.page(i)[off : off + Secinfo.SIZE])
        if si.flags & SECINFO_ENCLU_RESERVED or nonzero(si.reserved):
            raise _gp(leaf, f"SECINFO reserved bits set (flags {si.flags:#x})")
        return si

    # -- EENTER / ERESUME ------------------------------------------------------------------------
    def _enter_checks(self: Cpu, lp: LogicalProcessor, leaf: str, tcs: int, aep: int):
        if lp.enclave is not None:
            # The #GP is raised in enclave mode, so it is delivered through an
            # AEX like any other exception there (SDM 40.4; module docstring).
            raise self.aex(lp, fault=_gp(leaf, "already in enclave mode"))
        if tcs % PAGE_SIZE:
            raise _gp(leaf, "TCS not 4 KiB aligned")
        ti = self._u_epc(lp, leaf, tcs, READ)
        if aep >> 47 not in _CANONICAL_TOP:  # canonical(aep)
            raise _gp(leaf, "AEP not canonical")
        epc = self.epc
        f = epc.flags[ti]
        if (not f & EPCM_VALID or f & (EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED)
                or epc.addr[ti] != tcs or epc.pt[ti] != _PT_TCS):
            raise _pf(leaf, tcs, "EPCM(TCS) is not a valid, accepted PT_TCS page at this address")
        page = epc.data.get(ti) or epc.page(ti)  # epc.page(), without its frame once allocated
        t = _new_tcs_head(_TCS_HEAD.unpack_from(page))
        secs_i = epc.secs[ti]
        st = epc.secs_state[secs_i]
        if t.ossa % PAGE_SIZE or t.ofsbase % PAGE_SIZE or t.ogsbase % PAGE_SIZE:
            raise _gp(leaf, "OSSA, OFSBASE or OGSBASE not page aligned")
        base = st.base
        # The sums as the CPU forms them, modulo 2**64.
        # canonical() of both sums, inline (the hottest leaves' every entry)
        if ((base + t.ofsbase) & U64) >> 47 not in _CANONICAL_TOP \
                or ((base + t.ogsbase) & U64) >> 47 not in _CANONICAL_TOP:
            raise _gp(leaf, "FS/GS base not canonical")
        if t.flags & ~_TCS_FLAGS_VALID:
            raise _gp(leaf, "TCS.FLAGS reserved bits set")
        if not st.initialized:
            raise _gp(leaf, "enclave not initialised")
        if not st.attributes & _MODE64BIT:
            raise _gp(leaf, "32-bit enclaves are not modelled in 64-bit mode")
        return ti, page, t, secs_i, st

    def _aexnotify_check(self: Cpu, leaf: str, t: TcsHead, st) -> None:
        # SDM: EENTER (SDM-2023, AEX-Notify; reference §4.15 step 3, after CSSA < NSSA):
        # TCS.FLAGS.AEXNOTIFY must equal SECS.ATTRIBUTES.AEXNOTIFY unless DBGOPTIN=1.
        if (not t.flags & Tcs.FLAGS_DBGOPTIN
                and bool(t.flags & Tcs.FLAGS_AEXNOTIFY) != bool(st.attributes & _AEXNOTIFY)):
            raise _gp(leaf, "TCS.FLAGS.AEXNOTIFY differs from SECS.ATTRIBUTES.AEXNOTIFY")

    def _ssa_frame(self: Cpu, lp: LogicalProcessor, leaf: str, st, secs_i: int, t: TcsHead,
                   frame: int) -> tuple[int, list[int]]:
        # Every page of the SSA frame must be a RW, accepted REG page of this enclave.
        frame_la = st.base + t.ossa + frame * PAGE_SIZE * st.ssa_frame_size
        pages = []
        epc = self.epc
        for k in range(st.ssa_frame_size):
            la = frame_la + k * PAGE_SIZE
            i = self._u_epc(lp, leaf, la, WRITE)
            f = epc.flags[i]
            if (not f & EPCM_VALID or f & (EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED)
                    or epc.pt[i] != _PT_REG or epc.secs[i] != secs_i
                    or epc.addr[i] != la or not f & EPCM_R or not f & EPCM_W):
                raise _pf(leaf, la, "SSA page is not a RW, accepted REG page of this enclave", True)
            pages.append(i)
        return frame_la, pages

    def _enter(self: Cpu, lp: LogicalProcessor, tcs: int, aep: int, ti: int, page: bytearray,
               t: TcsHead, secs_i: int, st, frame_la: int, pages: list[int]) -> None:
        regs = lp.regs
        base = st.base
        # EnclaveContext(secs, base, size, tcs, tcs_epc, aep, ssa_pages, ssa_la, ufsbase, ugsbase)
        lp.enclave = (_EnclaveContext or _enclave_context())(
            secs_i, base, st.size, tcs, ti, aep, pages, frame_la, regs.get("fsbase", 0), regs.get("gsbase", 0))
        # SDM: EENTER/ERESUME: FS and GS bases come from the TCS, relative to the enclave base.
        regs["fsbase"] = (base + t.ofsbase) & U64
        regs["gsbase"] = (base + t.ogsbase) & U64
        _U64.pack_into(page, Tcs.OFF_STATE, 1)
        _U64.pack_into(page, Tcs.OFF_AEP, aep)
        st.active.add(lp.id)

    def eenter(self: Cpu, lp: LogicalProcessor, tcs: int, aep: int) -> None:
        # SDM: EENTER
        leaf = "EENTER"
        ti, page, t, secs_i, st = self._enter_checks(lp, leaf, tcs, aep)
        if t.cssa >= t.nssa:
            raise _gp(leaf, "CSSA >= NSSA")
        self._aexnotify_check(leaf, t, st)
        frame_la, pages = self._ssa_frame(lp, leaf, st, secs_i, t, t.cssa)
        target = (st.base + t.oentry) & U64  # the sum as the CPU forms it
        if target >> 47 not in _CANONICAL_TOP:  # canonical(target)
            raise _gp(leaf, "entry point not canonical")
        if t.state:
            raise _gp(leaf, "TCS busy")
        regs = lp.regs
        ret = (regs.get("rip", 0) + _ENCLU_LEN) & U64
        # Save URSP/URBP in the SSA's GPR area (the rest of GPRSGX is untouched).
        epc = self.epc
        gpr_page = epc.data.get(pages[-1]) or epc.page(pages[-1])  # as in _enter_checks()
        _U64.pack_into(gpr_page, _OFF_URSP, regs.get("rsp", 0) & U64)
        _U64.pack_into(gpr_page, _OFF_URBP, regs.get("rbp", 0) & U64)
        self._enter(lp, tcs, aep, ti, page, t, secs_i, st, frame_la, pages)
        regs["rcx"], regs["rax"], regs["rbx"], regs["rip"] = ret, t.cssa, tcs, target
        stats = self.stats  # count("eenter"), inline
        stats["eenter"] = stats.get("eenter", 0) + 1

    def eresume(self: Cpu, lp: LogicalProcessor, tcs: int, aep: int) -> None:
        # SDM: ERESUME
        leaf = "ERESUME"
        ti, page, t, secs_i, st = self._enter_checks(lp, leaf, tcs, aep)
        if t.cssa == 0:
            raise _gp(leaf, "CSSA = 0: nothing to resume")
        if t.cssa > t.nssa:
            raise _gp(leaf, "CSSA > NSSA")
        self._aexnotify_check(leaf, t, st)  # SDM: ERESUME mirrors EENTER (reference §4.16)
        frame_la, pages = self._ssa_frame(lp, leaf, st, secs_i, t, t.cssa - 1)
        # GPRSGX's RAX..RIP (read in place; the rest of it ERESUME does not load here).
        epc = self.epc
        gprs = _GPR_REGS.unpack_from(epc.data.get(pages[-1]) or epc.page(pages[-1]),
                                     _GPR_OFF + _GPR_REGS_AT)
        # SDM: ERESUME: the target (saved RIP) check precedes the STATE check, as in EENTER
        # (reference §4.16 mirrors §4.15 steps 5-6).
        if gprs[-1] >> 47 not in _CANONICAL_TOP:  # canonical(RIP)
            raise _gp(leaf, "saved RIP not canonical")
        if t.state:
            raise _gp(leaf, "TCS busy")
        self._enter(lp, tcs, aep, ti, page, t, secs_i, st, frame_la, pages)
        page[Tcs.OFF_CSSA : Tcs.OFF_CSSA + 4] = (t.cssa - 1).to_bytes(4, "little")
        # zip() without a keyword argument (a call with one costs as much as
        # the update): the codec gives one value per name, checked at import.
        lp.regs.update(zip(_GPR_NAMES, gprs))  # noqa: B905
        stats = self.stats  # count("eresume"), inline
        stats["eresume"] = stats.get("eresume", 0) + 1

    # -- EEXIT -----------------------------------------------------------------------------------------
    def eexit(self: Cpu, lp: LogicalProcessor, target: int) -> None:
        # SDM: EEXIT
        ctx = lp.enclave
        if ctx is None:
            raise _gp("EEXIT", "executed outside enclave mode")  # _in_enclave()
        if target >> 47 not in _CANONICAL_TOP:  # canonical(target)
            raise self.aex(lp, fault=_gp("EEXIT", "target not canonical"))
        epc = self.epc
        _U64.pack_into(epc.data.get(ctx.tcs_epc) or epc.page(ctx.tcs_epc), Tcs.OFF_STATE, 0)
        regs = lp.regs
        regs["rip"], regs["rcx"], regs["fsbase"], regs["gsbase"] = target, ctx.aep, ctx.ufsbase, ctx.ugsbase
        self._leave_enclave(lp)
        stats = self.stats  # count("eexit"), inline
        stats["eexit"] = stats.get("eexit", 0) + 1

    # -- EACCEPT ---------------------------------------------------------------------------------------
    def eaccept(self: Cpu, lp: LogicalProcessor, secinfo: int, page: int) -> int:
        # SDM: EACCEPT
        ctx = self._in_enclave(lp, "EACCEPT")
        return self._run_inside(lp, self._eaccept, ctx, secinfo, page)

    def _eaccept(self: Cpu, lp: LogicalProcessor, ctx: EnclaveContext, secinfo: int,
                 page: int) -> int:
        leaf = "EACCEPT"
        si = self._secinfo_page(lp, ctx, leaf, secinfo)
        if page % PAGE_SIZE:
            raise _gp(leaf, "RCX not 4 KiB aligned")
        if not ctx.in_elrange(page):
            raise _gp(leaf, "RCX outside ELRANGE")
        i = self._u_epc(lp, leaf, page, READ)
        sflags = si.flags
        spt = (sflags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT
        pending, modified, pr = sflags & 0x8, sflags & 0x10, sflags & 0x20
        legal = (spt == _PT_REG and (pr or pending) and not modified) or (
            spt in _TCS_TRIM and not pr and not pending and modified)
        if not legal:
            raise _gp(leaf, f"SECINFO {sflags:#x} is not a legal EACCEPT request")
        epc = self.epc
        f = epc.flags[i]
        if (not f & EPCM_VALID or f & EPCM_BLOCKED or epc.secs[i] != ctx.secs
                or epc.pt[i] not in _REG_TCS_TRIM):
            raise _pf(leaf, page, "EPCM(RCX) is not a valid page of this enclave")
        mismatch = []
        if epc.addr[i] != page:
            mismatch.append("ENCLAVEADDRESS")
        if bool(f & EPCM_PENDING) != bool(pending):
            mismatch.append("PENDING")
        if bool(f & EPCM_MODIFIED) != bool(modified):
            mismatch.append("MODIFIED")
        if f & EPCM_RWX != perms_to_epcm(sflags):
            mismatch.append("RWX")
        if epc.pt[i] != spt:
            mismatch.append("PT")
        if mismatch:
            # SDM: the code goes to the enclave in RAX; no kernel sees it first.
            self.trace.refuse_note("hw", f"SDM: {leaf}", "SGX_PAGE_ATTRIBUTES_MISMATCH", ", ".join(mismatch))
            return _ATTRIBUTES_MISMATCH
        if f & (EPCM_PR | EPCM_MODIFIED) and not self.tracked(i):
            self.trace.refuse_note("hw", f"SDM: {leaf}", "SGX_NOT_TRACKED", "tracking not complete")
            return _NOT_TRACKED
        if epc.pt[i] == _PT_TCS:
            t = Tcs.unpack(epc.page(i))
            if (nonzero(t.reserved) or t.flags & Tcs.FLAGS_DBGOPTIN or t.cssa >= t.nssa or t.aep
                    or t.state):
                raise _gp(leaf, "TCS contents not valid for a new TCS")
        epc.flags[i] = f & ~(EPCM_PENDING | EPCM_MODIFIED | EPCM_PR)
        return 0

    # -- EACCEPTCOPY -------------------------------------------------------------------------------------
    def eacceptcopy(self: Cpu, lp: LogicalProcessor, secinfo: int, dst: int, src: int) -> int:
        # SDM: EACCEPTCOPY (reference §12 item 10: operands of the R/BLOCKED tests swapped back)
        ctx = self._in_enclave(lp, "EACCEPTCOPY")
        return self._run_inside(lp, self._eacceptcopy, ctx, secinfo, dst, src)

    def _eacceptcopy(self: Cpu, lp: LogicalProcessor, ctx: EnclaveContext, secinfo: int,
                     dst: int, src: int) -> int:
        leaf = "EACCEPTCOPY"
        if secinfo % Secinfo.ALIGN or dst % PAGE_SIZE or src % PAGE_SIZE:
            raise _gp(leaf, "operand misaligned")
        if not (ctx.in_elrange(secinfo) and ctx.in_elrange(dst) and ctx.in_elrange(src)):
            raise _gp(leaf, "operand outside ELRANGE")
        # SDM: EACCEPTCOPY: every operand is in the EPC before any EPCM rule.
        si_i = self._u_epc(lp, leaf, secinfo, READ)
        di = self._u_epc(lp, leaf, dst, WRITE)
        sri = self._u_epc(lp, leaf, src, READ)
        si = self._secinfo_load(ctx, leaf, secinfo, si_i)
        sflags = si.flags
        if sflags & 0x2 and not sflags & 0x1:
            raise _gp(leaf, "SECINFO W without R")
        if (sflags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT != _PT_REG:
            raise _gp(leaf, "SECINFO.PT is not PT_REG")
        epc = self.epc
        sf = epc.flags[sri]
        if (not sf & EPCM_VALID or not sf & EPCM_R
                or sf & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED)
                or epc.pt[sri] != _PT_REG or not self._owned(ctx, sri, src)):
            raise _pf(leaf, src, "source is not a readable, accepted REG page of this enclave")
        df = epc.flags[di]
        # SDM: EACCEPTCOPY destination test; its BLOCKED test is on RCX (reference §12 item 10).
        if (not df & EPCM_VALID or not df & EPCM_PENDING or df & EPCM_MODIFIED
                or df & EPCM_BLOCKED
                or epc.pt[di] != _PT_REG or epc.secs[di] != ctx.secs):
            self.trace.refuse_note("hw", f"SDM: {leaf}", "SGX_PAGE_ATTRIBUTES_MISMATCH", "destination")
            return _ATTRIBUTES_MISMATCH
        if df & EPCM_RWX != EPCM_R | EPCM_W or epc.addr[di] != dst:
            self.trace.refuse_note("hw", f"SDM: {leaf}", "SGX_PAGE_ATTRIBUTES_MISMATCH", "destination")
            return _ATTRIBUTES_MISMATCH
        epc.data[di] = bytearray(epc.page(sri))
        epc.flags[di] = (df & ~(EPCM_RWX | EPCM_PENDING)) | perms_to_epcm(sflags)
        return 0

    # -- EMODPE ------------------------------------------------------------------------------------------
    def emodpe(self: Cpu, lp: LogicalProcessor, secinfo: int, page: int) -> None:
        # SDM: EMODPE (reference §12 item 11: the R=0/W=1 test raises #GP)
        ctx = self._in_enclave(lp, "EMODPE")
        self._run_inside(lp, self._emodpe, ctx, secinfo, page)

    def _emodpe(self: Cpu, lp: LogicalProcessor, ctx: EnclaveContext, secinfo: int,
                page: int) -> None:
        leaf = "EMODPE"
        if secinfo % Secinfo.ALIGN or page % PAGE_SIZE:
            raise _gp(leaf, "operand misaligned")
        if not (ctx.in_elrange(secinfo) and ctx.in_elrange(page)):
            raise _gp(leaf, "operand outside ELRANGE")
        # SDM: EMODPE: both operands are in the EPC before the SECINFO page's EPCM rules.
        si_i = self._u_epc(lp, leaf, secinfo, READ)
        i = self._u_epc(lp, leaf, page, READ)
        si = self._secinfo_load(ctx, leaf, secinfo, si_i)
        epc = self.epc
        f = epc.flags[i]
        if (not f & EPCM_VALID or f & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED)
                or epc.pt[i] != _PT_REG or not self._owned(ctx, i, page)):
            raise _pf(leaf, page, "target is not an accepted REG page of this enclave")
        if not f & EPCM_R and not si.flags & 0x1 and si.flags & 0x2:
            raise _gp(leaf, "would give W without R")
        epc.flags[i] = f | perms_to_epcm(si.flags)

    # -- EREPORT / EGETKEY ------------------------------------------------------------------------------------
    def _data_operand(self: Cpu, lp, ctx, leaf: str, la: int, align: int, write: bool) -> int:
        if la % align:
            raise _gp(leaf, f"operand {la:#x} not {align}-byte aligned")
        if not ctx.in_elrange(la):
            raise _gp(leaf, "operand outside ELRANGE")
        i = self._u_epc(lp, leaf, la, WRITE if write else READ)
        f = self.epc.flags[i]
        need = EPCM_W if write else EPCM_R
        if (not f & EPCM_VALID or f & (EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED)
                or self.epc.pt[i] != _PT_REG or not self._owned(ctx, i, la)
                or not f & need):
            raise _pf(leaf, la, "operand page not accessible to the enclave", write)
        return i

    def _key(self: Cpu, *parts: bytes) -> bytes:
        return hmac.new(self.secret, b"|".join(parts), hashlib.sha256).digest()[:16]

    def ereport(self: Cpu, lp: LogicalProcessor, targetinfo: int, reportdata: int, out: int) -> None:
        # SDM: EREPORT
        ctx = self._in_enclave(lp, "EREPORT")
        self._run_inside(lp, self._ereport, ctx, targetinfo, reportdata, out)

    def _ereport(self: Cpu, lp, ctx, targetinfo: int, reportdata: int, out: int) -> None:
        leaf = "EREPORT"
        ti = self._data_operand(lp, ctx, leaf, targetinfo, Targetinfo.ALIGN, False)
        ri = self._data_operand(lp, ctx, leaf, reportdata, 128, False)
        oi = self._data_operand(lp, ctx, leaf, out, Report.ALIGN, True)
        epc = self.epc
        toff, roff, ooff = (targetinfo & 0xFFF, reportdata & 0xFFF, out & 0xFFF)
        target = Targetinfo.unpack(epc.page(ti)[toff : toff + Targetinfo.SIZE])
        st = epc.secs_state[ctx.secs]
        rep = Report(miscselect=st.miscselect, attributes=st.attributes, xfrm=st.xfrm,
                     mrenclave=st.mrenclave, mrsigner=st.mrsigner, isvprodid=st.isvprodid,
                     isvsvn=st.isvsvn, reportdata=bytes(epc.page(ri)[roff : roff + 64]),
                     keyid=hashlib.sha256(self.secret + b"KEYID").digest())
        body = rep.pack()[:384]
        key = self._key(b"REPORT", target.mrenclave, target.attributes.to_bytes(8, "little"))
        rep.mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
        epc.page(oi)[ooff : ooff + Report.SIZE] = rep.pack()

    def report_key(self: Cpu, mrenclave: bytes, attributes: int) -> bytes:
        """The REPORT key of an enclave (what its EGETKEY(REPORT) returns)."""
        return self._key(b"REPORT", mrenclave, attributes.to_bytes(8, "little"))

    def egetkey(self: Cpu, lp: LogicalProcessor, keyrequest: int, out: int) -> int:
        # SDM: EGETKEY (reference §12 item 7: "not within ELRANGE")
        ctx = self._in_enclave(lp, "EGETKEY")
        return self._run_inside(lp, self._egetkey, ctx, keyrequest, out)

    def _egetkey(self: Cpu, lp, ctx, keyrequest: int, out: int) -> int:
        leaf = "EGETKEY"
        ki = self._data_operand(lp, ctx, leaf, keyrequest, Keyrequest.ALIGN, False)
        oi = self._data_operand(lp, ctx, leaf, out, 16, True)
        epc = self.epc
        koff = keyrequest & 0xFFF
        req = Keyrequest.unpack(epc.page(ki)[koff : koff + Keyrequest.SIZE])
        st = epc.secs_state[ctx.secs]
        if any(req.reserved1) or any(req.reserved2) or req.keypolicy & ~0x3F:
            raise _gp(leaf, "KEYREQUEST reserved bits set")
        if not st.attributes & Attribute.KSS and (req.keypolicy & 0x3C or req.configsvn):
            raise _gp(leaf, "KSS key policy without KSS")
        name = req.keyname
        if name in (Keyrequest.KEYNAME_PROVISION, Keyrequest.KEYNAME_PROVISION_SEAL):
            if not st.attributes & Attribute.PROVISIONKEY:
                return int(SgxReturn.SGX_INVALID_ATTRIBUTE)
        elif name == Keyrequest.KEYNAME_EINITTOKEN:
            if not st.attributes & Attribute.EINITTOKENKEY:
                return int(SgxReturn.SGX_INVALID_ATTRIBUTE)
        elif name not in (Keyrequest.KEYNAME_REPORT, Keyrequest.KEYNAME_SEAL):
            return int(SgxReturn.SGX_INVALID_KEYNAME)
        if any(req.cpusvn):
            return int(SgxReturn.SGX_INVALID_CPUSVN)
        if req.isvsvn > st.isvsvn:
            return int(SgxReturn.SGX_INVALID_ISVSVN)
        if name == Keyrequest.KEYNAME_REPORT:
            key = self.report_key(st.mrenclave, st.attributes)
        else:
            ident = []
            if req.keypolicy & Keyrequest.POLICY_MRENCLAVE:
                ident.append(st.mrenclave)
            if req.keypolicy & Keyrequest.POLICY_MRSIGNER:
                ident.append(st.mrsigner)
            # Sealing always includes INIT|DEBUG in the attributes.
            attr = st.attributes & (req.attributemask | 0x3)
            key = self._key(name.to_bytes(2, "little"), *ident, attr.to_bytes(8, "little"),
                            req.isvsvn.to_bytes(2, "little"), req.keyid)
        epc.page(oi)[out & 0xFFF : (out & 0xFFF) + 16] = key
        return 0

    # -- ENCLU: the instruction ----------------------------------------------------------------------
    def enclu(self: Cpu, lp: LogicalProcessor) -> None:
        """Execute the ENCLU instruction at ``lp.regs["rip"]`` as hardware
        does: the leaf in EAX, operands in RBX/RCX/RDX, results in RAX and
        RFLAGS, RIP past the instruction (or the leaf's target: EENTER,
        ERESUME, EEXIT).  Faults are raised like the leaves' (after an AEX in
        enclave mode)."""
        regs = lp.regs
        leaf = regs["rax"] & 0xFFFFFFFF  # SDM: ENCLU ignores RAX[63:32]
        rbx, rcx, rdx = regs["rbx"], regs["rcx"], regs["rdx"]
        # SDM: ENCLU: "IF EAX is invalid leaf number THEN #GP(0)" (the SGX2 leaves
        # are invalid on a CPU without SGX2).
        if leaf > Enclu.EACCEPTCOPY or (leaf in _SGX2_LEAVES and not self.sgx2):
            fault = _gp("ENCLU", f"EAX={leaf:#x} is not a leaf of this CPU")
            if lp.enclave is not None:
                raise self.aex(lp, fault=fault)
            raise fault
        if leaf == Enclu.EENTER:
            self.eenter(lp, rbx, rcx)
            return
        if leaf == Enclu.ERESUME:
            self.eresume(lp, rbx, rcx)
            return
        if leaf == Enclu.EEXIT:
            self.eexit(lp, rbx)
            return
        nxt = (regs["rip"] + _ENCLU_LEN) & U64
        ret = None
        if leaf == Enclu.EREPORT:
            self.ereport(lp, rbx, rcx, rdx)
        elif leaf == Enclu.EGETKEY:
            ret = self.egetkey(lp, rbx, rcx)
        elif leaf == Enclu.EACCEPT:
            ret = self.eaccept(lp, rbx, rcx)
        elif leaf == Enclu.EMODPE:
            self.emodpe(lp, rbx, rcx)
        else:
            ret = self.eacceptcopy(lp, rbx, rcx, rdx)
        if ret is not None:
            # SDM: EACCEPT/EACCEPTCOPY/EGETKEY: RAX = status, ZF = (status != 0),
            # CF, PF, AF, OF and SF cleared.
            regs["rax"] = ret
            regs["rflags"] = (regs["rflags"] & ~_STATUS_FLAGS) | (_ZF if ret else 0)
        regs["rip"] = nxt

    # -- identity, for the code that runs inside -------------------------------------------------------
    def enclave_identity(self: Cpu, lp: LogicalProcessor) -> bytes:
        """MRENCLAVE of the enclave the LP is executing (selects its code)."""
        ctx = lp.enclave
        if ctx is None:
            raise _gp("identity", "executed outside enclave mode")  # _in_enclave()
        return self.epc.secs_state[ctx.secs].mrenclave


__all__ = ["EncluMixin", "EPCM_X"]
