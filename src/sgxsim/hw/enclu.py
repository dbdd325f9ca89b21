"""ENCLU leaves (ring 3), SDM Vol. 3D ch. 40; reference sgx-hardware.md §4.15–§4.21.

Operands are user linear addresses translated through ``lp.cr3`` (an
ordinary #PF on a paging failure), then checked against the EPCM as each
leaf's pseudocode lists (a #PF with the SGX bit, or a #GP, or a status).
A fault taken while the logical processor is in enclave mode performs an AEX
first (:meth:`sgxsim.hw.cpu.Cpu.aex`).

The code that runs inside the enclave is not modelled here: EENTER and
ERESUME set up the register file (RIP = BASEADDR+OENTRY, RAX = CSSA, RBX =
TCS, RCX = return RIP) and return the :class:`EnclaveContext`; an enclave
program then uses ``cpu.load/store/fetch`` and these leaves.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from sgxsim.hw.consts import (
    PAGE_MASK,
    PAGE_SIZE,
    SECINFO_PERM_MASK,
    SECINFO_PT_SHIFT,
    SECINFO_RESERVED_MASK,
    SSA_GPRSGX_SIZE,
    Attribute,
    PageType,
    SecinfoFlags,
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
)
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE, HwFault, PageFault
from sgxsim.hw.lp import ENCLU_LEN, GPRS, READ, WRITE, EnclaveContext, canonical
from sgxsim.hw.structs import Keyrequest, Report, SsaGpr, Targetinfo, Tcs
from sgxsim.trace import Decision

PT_TCS = PageType.PT_TCS
PT_REG = PageType.PT_REG
PT_TRIM = PageType.PT_TRIM

_TCS_HEAD = struct.Struct("<QQQIIQQQQII")  # STATE, FLAGS, OSSA, CSSA, NSSA, OENTRY, AEP, ...
_TCS_FLAGS_ALLOWED = Tcs.FLAGS_DBGOPTIN  # AEX-Notify is not modelled: bit 1 is reserved
_Q = struct.Struct("<Q")
_SEAL_ATTR_ALWAYS = int(Attribute.INIT | Attribute.DEBUG)
A_INIT = int(Attribute.INIT)
A_MODE64BIT = int(Attribute.MODE64BIT)


class EncluLeaves:
    """Mixin of :class:`sgxsim.hw.cpu.Cpu`: the ENCLU leaves."""

    # -- helpers -----------------------------------------------------------------
    def _ugp(self, leaf: str, detail: str):
        return self._gp(leaf, detail)

    def _upf(self, leaf: str, la: int, detail: str, write: bool = False) -> PageFault:
        """An EPCM-induced #PF on a user operand: P|U|SGX (+W)."""
        code = PF_PROT | PF_USER | PF_SGX | (PF_WRITE if write else 0)
        return PageFault(la, code, Decision("hw", f"SDM: {leaf}", "#PF", detail))

    def _inside(self, lp, leaf: str) -> EnclaveContext:
        ctx = lp.enclave
        if ctx is None:
            raise self._gp(leaf, "not in enclave mode")
        return ctx

    def _in_elrange(self, ctx: EnclaveContext, la: int, leaf: str, what: str) -> None:
        if not ctx.base <= la < ctx.limit:
            raise self._gp(leaf, f"{what} outside ELRANGE")

    def _epc_of(self, lp, la: int, acc: int, leaf: str) -> int:
        """Paging (ordinary #PF), then the EPC requirement (#PF with SGX)."""
        pa = self.walk(lp, la, acc, True)
        i = self.epc.index(pa)
        if i < 0:
            raise self._upf(leaf, la, "operand not in EPC", acc == WRITE)
        return i

    def _run(self, lp, fn, *args):
        try:
            return fn(lp, *args)
        except HwFault as f:
            raise self._fault(lp, f) from None

    # -- EENTER / ERESUME -----------------------------------------------------------------
    def eenter(self, lp, tcs: int, aep: int) -> EnclaveContext:
        """SDM: EENTER.  Returns the enclave context; ``lp.regs`` hold RIP =
        BASEADDR+OENTRY, RAX = CSSA, RBX = TCS, RCX = the return RIP."""
        return self._run(lp, self._enter, tcs, aep, False)

    def eresume(self, lp, tcs: int, aep: int) -> EnclaveContext:
        """SDM: ERESUME: the registers come back from SSA[CSSA-1]; CSSA -= 1."""
        return self._run(lp, self._enter, tcs, aep, True)

    def _enter(self, lp, tcs: int, aep: int, resume: bool) -> EnclaveContext:
        L = "ERESUME" if resume else "EENTER"
        if lp.enclave is not None:
            raise self._gp(L, "already in enclave mode")
        if tcs % PAGE_SIZE:
            raise self._gp(L, "TCS not 4 KiB aligned")
        ti = self._epc_of(lp, tcs, READ, L)
        if not canonical(aep):
            raise self._gp(L, "AEP not canonical")
        epc = self.epc
        f = epc.flags[ti]
        if (not f & EPCM_VALID or f & (EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED)
                or epc.addr[ti] != tcs or epc.pt[ti] != PT_TCS):
            raise self._upf(L, tcs, "EPCM(TCS) not a usable TCS page")
        si = epc.secs[ti]
        st = epc.secs_state[si]
        tpage = epc.pages[ti]
        state, tflags, ossa, cssa, nssa, oentry, _aep, ofs, ogs, _fl, _gl = _TCS_HEAD.unpack_from(
            tpage)
        if ossa & ~PAGE_MASK or ofs & ~PAGE_MASK or ogs & ~PAGE_MASK:
            raise self._gp(L, "OSSA/OFSBASE/OGSBASE not page aligned")
        if not canonical((st.base + ofs) & ((1 << 64) - 1)) or not canonical(
                (st.base + ogs) & ((1 << 64) - 1)):
            raise self._gp(L, "FS/GS base not canonical")
        if tflags & ~_TCS_FLAGS_ALLOWED:
            raise self._gp(L, "TCS.FLAGS reserved bits set")
        if not st.attributes & A_INIT:
            raise self._gp(L, "enclave not initialised")
        if not st.attributes & A_MODE64BIT:
            raise self._gp(L, "32-bit enclave entered from 64-bit mode")
        if resume:
            if cssa == 0:
                raise self._gp(L, "CSSA = 0")
            frame = cssa - 1
        else:
            if cssa >= nssa:
                raise self._gp(L, "CSSA >= NSSA")
            frame = cssa
        # Every page of the SSA frame: paging R/W, then EPCM REG RW of this enclave.
        fbase = st.base + ossa + PAGE_SIZE * st.ssa_frame_size * frame
        gi = -1
        for k in range(st.ssa_frame_size):
            la = (fbase + k * PAGE_SIZE) & ((1 << 64) - 1)
            gi = self._epc_of(lp, la, WRITE, L)
            g = epc.flags[gi]
            if (not g & EPCM_VALID or g & (EPCM_BLOCKED | EPCM_PENDING | EPCM_MODIFIED)
                    or epc.pt[gi] != PT_REG or epc.secs[gi] != si or epc.addr[gi] != la
                    or g & (EPCM_R | EPCM_W) != EPCM_R | EPCM_W):
                raise self._upf(L, la, "SSA page not a RW REG page of this enclave", True)
        if gi < 0:
            raise self._gp(L, "SSAFRAMESIZE = 0")
        if not canonical((st.base + oentry) & ((1 << 64) - 1)):
            raise self._gp(L, "entry point not canonical")
        if state:
            raise self._gp(L, "TCS.STATE is ACTIVE")
        goff = PAGE_SIZE - SSA_GPRSGX_SIZE
        gpage = epc.pages[gi]
        regs = lp.regs
        ctx = EnclaveContext(si, st.base, st.size, ti, tcs, aep, frame, gi, goff)
        if resume:
            ssa = SsaGpr.unpack(gpage[goff : goff + SSA_GPRSGX_SIZE])
            for r in GPRS:
                regs[r] = getattr(ssa, r)
            regs["rflags"] = ssa.rflags
            regs["rip"] = ssa.rip
            struct.pack_into("<I", tpage, Tcs.OFF_CSSA, cssa - 1)
        else:
            # Save URSP/URBP into the frame's GPR area; RCX = return RIP, RAX = CSSA.
            struct.pack_into("<QQ", gpage, goff + SsaGpr.OFF_URSP, regs["rsp"] & ((1 << 64) - 1),
                             regs["rbp"] & ((1 << 64) - 1))
            regs["rcx"] = regs["rip"] + ENCLU_LEN
            regs["rax"] = cssa
            regs["rbx"] = tcs
            regs["rip"] = (st.base + oentry) & ((1 << 64) - 1)
        _Q.pack_into(tpage, Tcs.OFF_AEP, aep)
        # Reference §12 item 6: the pseudocode never sets STATE; EENTER does.
        _Q.pack_into(tpage, Tcs.OFF_STATE, 1)
        lp.enclave = ctx
        st.active.add(lp.index)
        return ctx

    # -- EEXIT ---------------------------------------------------------------------------
    def eexit(self, lp, target: int) -> None:
        """SDM: EEXIT: RIP = target, RCX = AEP, leave enclave mode."""
        self._run(lp, self._eexit, target)

    def _eexit(self, lp, target: int) -> None:
        ctx = self._inside(lp, "EEXIT")
        if not canonical(target):
            raise self._gp("EEXIT", "target not canonical")
        lp.regs["rip"] = target
        lp.regs["rcx"] = ctx.aep
        _Q.pack_into(self.epc.pages[ctx.tcs], Tcs.OFF_STATE, 0)
        self._leave(lp)

    # -- the SECINFO operand of EACCEPT/EACCEPTCOPY/EMODPE --------------------------------
    def _secinfo_operand(self, lp, ctx: EnclaveContext, la: int, leaf: str) -> int:
        """SECINFO in a readable, accepted REG page of this enclave (the EPCM
        rules of the access check): returns SECINFO.FLAGS."""
        pa = self.check(lp, la, READ)
        raw = self._phys_read(pa, 64)
        flags = _Q.unpack_from(raw)[0]
        if flags & SECINFO_RESERVED_MASK or any(raw[8:]):
            raise self._gp(leaf, "SECINFO reserved bits set")
        return flags

    # -- EACCEPT ---------------------------------------------------------------------------
    def eaccept(self, lp, secinfo: int, page: int) -> int:
        """SDM: EACCEPT (reference §12 item 3: ENCLAVEADDRESS vs RBX & ~0xFFF;
        the TCS content checks only for PT_TCS)."""
        return self._run(lp, self._eaccept, secinfo, page)

    def _eaccept(self, lp, secinfo: int, page: int) -> int:
        L = "EACCEPT"
        ctx = self._inside(lp, L)
        if secinfo % 64:
            raise self._gp(L, "SECINFO not 64-byte aligned")
        self._in_elrange(ctx, secinfo, L, "SECINFO")
        flags = self._secinfo_operand(lp, ctx, secinfo, L)
        if page % PAGE_SIZE:
            raise self._gp(L, "RCX not 4 KiB aligned")
        self._in_elrange(ctx, page, L, "RCX")
        i = self._epc_of(lp, page, READ, L)
        pt = flags >> SECINFO_PT_SHIFT
        pr, pend, mod = flags & SecinfoFlags.PR, flags & SecinfoFlags.PENDING, flags & (
            SecinfoFlags.MODIFIED)
        if not ((pt == PT_REG and (pr or pend) and not mod)
                or (pt in (PT_TCS, PT_TRIM) and not pr and not pend and mod)):
            raise self._gp(L, f"SECINFO {flags:#x} is not a legal request")
        epc = self.epc
        f = epc.flags[i]
        if (not f & EPCM_VALID or f & EPCM_BLOCKED or epc.pt[i] not in (PT_REG, PT_TCS, PT_TRIM)
                or epc.secs[i] != ctx.secs):
            raise self._upf(L, page, "EPCM(RCX) not acceptable")
        if (epc.addr[i] != page or bool(f & EPCM_PENDING) != bool(pend)
                or bool(f & EPCM_MODIFIED) != bool(mod)
                or f & EPCM_RWX != flags & SECINFO_PERM_MASK or epc.pt[i] != pt):
            return self._ret(L, SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)
        st = epc.secs_state[ctx.secs]
        if f & (EPCM_PR | EPCM_MODIFIED) and not self._tracked(st, i):
            return self._ret(L, SgxReturn.SGX_NOT_TRACKED)
        if pt == PT_TCS:
            tp = epc.pages[i]
            state, tflags, _o, cssa, nssa, _e, aep, _f, _g, fsl, gsl = _TCS_HEAD.unpack_from(tp)
            if any(tp[_TCS_HEAD.size :]):
                raise self._gp(L, "TCS reserved area not 0")
            if tflags & Tcs.FLAGS_DBGOPTIN or cssa >= nssa or aep or state:
                raise self._gp(L, "TCS contents not acceptable")
            if not st.attributes & A_MODE64BIT and (
                    fsl & 0xFFF != 0xFFF or gsl & 0xFFF != 0xFFF):
                raise self._gp(L, "TCS FS/GS limit")
        epc.flags[i] = f & ~(EPCM_PENDING | EPCM_MODIFIED | EPCM_PR)
        return 0

    # -- EACCEPTCOPY -------------------------------------------------------------------------
    def eacceptcopy(self, lp, secinfo: int, dst: int, src: int) -> int:
        """SDM: EACCEPTCOPY (reference §12 item 10: the R test is on the
        source, the BLOCKED test on the destination)."""
        return self._run(lp, self._eacceptcopy, secinfo, dst, src)

    def _eacceptcopy(self, lp, secinfo: int, dst: int, src: int) -> int:
        L = "EACCEPTCOPY"
        ctx = self._inside(lp, L)
        if secinfo % 64 or dst % PAGE_SIZE or src % PAGE_SIZE:
            raise self._gp(L, "operand misaligned")
        for la, what in ((secinfo, "SECINFO"), (dst, "RCX"), (src, "RDX")):
            self._in_elrange(ctx, la, L, what)
        flags = self._secinfo_operand(lp, ctx, secinfo, L)
        di = self._epc_of(lp, dst, WRITE, L)
        si = self._epc_of(lp, src, READ, L)
        if (flags & SecinfoFlags.W and not flags & SecinfoFlags.R) or (
                flags >> SECINFO_PT_SHIFT != PT_REG):
            raise self._gp(L, "SECINFO not a legal REG request")
        epc = self.epc
        g = epc.flags[si]
        if (not g & EPCM_VALID or not g & EPCM_R
                or g & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED)
                or epc.pt[si] != PT_REG or epc.secs[si] != ctx.secs or epc.addr[si] != src):
            raise self._upf(L, src, "source not a readable REG page of this enclave")
        f = epc.flags[di]
        if not f & EPCM_VALID or f & EPCM_BLOCKED or epc.secs[di] != ctx.secs:
            raise self._upf(L, dst, "destination not a page of this enclave", True)
        if not f & EPCM_PENDING or f & EPCM_MODIFIED or epc.pt[di] != PT_REG:
            return self._ret(L, SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)
        if f & EPCM_RWX != EPCM_R | EPCM_W or epc.addr[di] != dst:
            return self._ret(L, SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)
        epc.pages[di][:] = epc.pages[si]
        epc.flags[di] = (f & ~(EPCM_RWX | EPCM_PENDING)) | (flags & SECINFO_PERM_MASK)
        return 0

    # -- EMODPE ------------------------------------------------------------------------------
    def emodpe(self, lp, secinfo: int, page: int) -> None:
        """SDM: EMODPE (the #GP after the R=0/W=1 test, lost in the SDM-2023
        HTML, is kept: reference §12 item 11)."""
        self._run(lp, self._emodpe, secinfo, page)

    def _emodpe(self, lp, secinfo: int, page: int) -> None:
        L = "EMODPE"
        ctx = self._inside(lp, L)
        if secinfo % 64 or page % PAGE_SIZE:
            raise self._gp(L, "operand misaligned")
        self._in_elrange(ctx, secinfo, L, "SECINFO")
        self._in_elrange(ctx, page, L, "RCX")
        flags = self._secinfo_operand(lp, ctx, secinfo, L)
        i = self._epc_of(lp, page, READ, L)
        epc = self.epc
        f = epc.flags[i]
        if (not f & EPCM_VALID or f & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED)
                or epc.pt[i] != PT_REG or epc.secs[i] != ctx.secs or epc.addr[i] != page):
            raise self._upf(L, page, "EPCM(RCX) not an accepted REG page of this enclave")
        if not f & EPCM_R and not flags & SecinfoFlags.R and flags & SecinfoFlags.W:
            raise self._gp(L, "W without R")
        epc.flags[i] = f | (flags & SECINFO_PERM_MASK)

    # -- EREPORT / EGETKEY -------------------------------------------------------------------
    def _key(self, label: bytes, *parts: bytes) -> bytes:
        h = hmac.new(self.secret, label, hashlib.sha256)
        for p in parts:
            h.update(p)
        return h.digest()[:16]

    def report_key(self, mrenclave: bytes, attributes: int, xfrm: int, miscselect: int) -> bytes:
        """The REPORT key of the enclave with this identity."""
        return self._key(b"REPORT", mrenclave, struct.pack("<QQI", attributes, xfrm, miscselect))

    def ereport(self, lp, targetinfo: int, reportdata: int, out: int) -> None:
        """SDM: EREPORT: a REPORT MACed with the target enclave's REPORT key."""
        self._run(lp, self._ereport, targetinfo, reportdata, out)

    def _ereport(self, lp, targetinfo: int, reportdata: int, out: int) -> None:
        L = "EREPORT"
        ctx = self._inside(lp, L)
        if targetinfo % 512 or reportdata % 128 or out % 512:
            raise self._gp(L, "operand misaligned")
        for la, what in ((targetinfo, "TARGETINFO"), (reportdata, "REPORTDATA"), (out, "OUTPUT")):
            self._in_elrange(ctx, la, L, what)
        ti_pa = self.check(lp, targetinfo, READ)
        rd_pa = self.check(lp, reportdata, READ)
        out_pa = self.check(lp, out, WRITE)
        ti = Targetinfo.unpack(self._phys_read(ti_pa, Targetinfo.SIZE))
        st = self.epc.secs_state[ctx.secs]
        rep = Report(miscselect=st.miscselect, attributes=int(st.attributes), xfrm=st.xfrm,
                     mrenclave=st.mrenclave, mrsigner=st.mrsigner, isvprodid=st.isv_prod_id,
                     isvsvn=st.isv_svn, reportdata=self._phys_read(rd_pa, 64),
                     keyid=self._key(b"KEYID") * 2)
        raw = rep.pack()
        key = self.report_key(bytes(ti.mrenclave), ti.attributes, ti.xfrm, ti.miscselect)
        mac = hmac.new(key, raw[:384], hashlib.sha256).digest()[:16]  # MAC over [0, 384)
        self._phys_write(out_pa, raw[:416] + mac)

    def egetkey(self, lp, keyrequest: int, out: int) -> int:
        """SDM: EGETKEY: a 128-bit key derived from the CPU secret and the
        enclave identity the KEYPOLICY selects."""
        return self._run(lp, self._egetkey, keyrequest, out)

    def _egetkey(self, lp, keyrequest: int, out: int) -> int:
        L = "EGETKEY"
        ctx = self._inside(lp, L)
        if keyrequest % 512 or out % 16:
            raise self._gp(L, "operand misaligned")
        # Reference §12 item 7: "within ELRANGE -> #GP" read as "not within".
        self._in_elrange(ctx, keyrequest, L, "KEYREQUEST")
        self._in_elrange(ctx, out, L, "OUTPUTDATA")
        kr_pa = self.check(lp, keyrequest, READ)
        out_pa = self.check(lp, out, WRITE)
        kr = Keyrequest.unpack(self._phys_read(kr_pa, Keyrequest.SIZE))
        st = self.epc.secs_state[ctx.secs]
        if any(kr.reserved1) or any(kr.reserved2) or kr.keypolicy & ~0x3F:
            raise self._gp(L, "KEYREQUEST reserved bits set")
        if not st.attributes & Attribute.KSS and (kr.keypolicy & 0x3C or kr.configsvn):
            raise self._gp(L, "KSS policy bits without KSS")
        name = kr.keyname
        if name > Keyrequest.KEYNAME_SEAL:
            return self._ret(L, SgxReturn.SGX_INVALID_KEYNAME)
        if name == Keyrequest.KEYNAME_EINITTOKEN and not st.attributes & Attribute.EINITTOKENKEY:
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE)
        if name in (Keyrequest.KEYNAME_PROVISION, Keyrequest.KEYNAME_PROVISION_SEAL) and not (
                st.attributes & Attribute.PROVISIONKEY):
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE)
        if name != Keyrequest.KEYNAME_REPORT:
            if any(kr.cpusvn):  # beyond the model platform's CPUSVN (all zero)
                return self._ret(L, SgxReturn.SGX_INVALID_CPUSVN)
            if kr.isvsvn > st.isv_svn:
                return self._ret(L, SgxReturn.SGX_INVALID_ISVSVN)
        if name == Keyrequest.KEYNAME_REPORT:
            key = self.report_key(st.mrenclave, int(st.attributes), st.xfrm, st.miscselect)
        else:
            pol = kr.keypolicy
            attrs = (int(st.attributes) & kr.attributemask) | _SEAL_ATTR_ALWAYS
            ident = (st.mrenclave if pol & Keyrequest.POLICY_MRENCLAVE else bytes(32)) + (
                st.mrsigner if pol & Keyrequest.POLICY_MRSIGNER else bytes(32))
            prod = 0 if pol & Keyrequest.POLICY_NOISVPRODID else st.isv_prod_id
            key = self._key(b"KEY", struct.pack("<HH", name, pol), ident,
                            struct.pack("<QQIHH", attrs, st.xfrm & kr.xfrmmask,
                                        st.miscselect & kr.miscmask, prod, kr.isvsvn),
                            bytes(kr.keyid))
        self._phys_write(out_pa, key)
        return 0


__all__ = ["EncluLeaves", "EPCM_X"]
