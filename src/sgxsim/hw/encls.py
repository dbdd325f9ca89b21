"""ENCLS leaves (ring 0): SDM Vol. 3D ch. 40; reference sgx-hardware.md §4.1-§4.14.

Every operand is a physical address (the model's kernel uses an identity
direct map).  Each leaf runs its checks in the SDM's order; the first that
fails decides: a fault is raised, a status code is returned.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sgxsim.hw import sigstruct as sigs
from sgxsim.hw.consts import (
    EINITTOKEN_SIZE,
    PAGE_MASK,
    PAGE_SIZE,
    SECINFO_PT_MASK,
    SECINFO_PT_SHIFT,
    SIGSTRUCT_SIZE,
    Attribute,
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
    SecsState,
    epcm_to_perms,
    perms_to_epcm,
)
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_WRITE, GeneralProtection, PageFault
from sgxsim.hw.measure import Measurement
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.paging import canonical
from sgxsim.hw.structs import Einittoken, Pageinfo, Pcmd, Secinfo, Secs, Sigstruct, Tcs, nonzero
from sgxsim.trace import Decision

if TYPE_CHECKING:
    from sgxsim.hw.cpu import Cpu

U64 = (1 << 64) - 1
# SECINFO.FLAGS bits reserved for the ENCLS leaves that take a SECINFO (EADD,
# EMODPR, EMODT): 63:16 and 7:3 (reference §13 item 12: PENDING/MODIFIED/PR
# are treated as reserved there).
SECINFO_ENCLS_RESERVED = U64 & ~(0x7 | SECINFO_PT_MASK)
_SECS_HIDDEN_RESERVED = (("reserved1", 24), ("reserved2", 96), ("reserved3", 160))
_XSAVE_LEGACY = 512 + 64  # legacy area + XSAVE header
_XSAVE_COMPONENT = {2: 256}  # AVX
_MISC_SIZE = {0: 16}  # EXINFO
_SSA_GPR = 184
_TCS_LIMIT = Tcs.OFF_RESERVED  # EDBGRD may read the architectural TCS fields only
_REG_TCS_TRIM = tuple(int(p) for p in (PageType.PT_REG, PageType.PT_TCS, PageType.PT_TRIM))
_REG_TCS = (int(PageType.PT_REG), int(PageType.PT_TCS))
# Plain ints for the per-page leaves (an IntEnum member lookup costs more
# than the comparison).
_PT_SECS, _PT_TCS, _PT_REG = int(PageType.PT_SECS), int(PageType.PT_TCS), int(PageType.PT_REG)
_PT_VA, _PT_TRIM = int(PageType.PT_VA), int(PageType.PT_TRIM)
# EADD's operands as Pageinfo/Secinfo lay them out, unpacked in place.
_PAGEINFO, _SECINFO = Pageinfo._codec, Secinfo._codec
_PAGEINFO_ALIGN, _SECINFO_ALIGN = Pageinfo.ALIGN, Secinfo.ALIGN
_ZERO56 = bytes(Secinfo.SIZE - 8)


def _gp(leaf: str, detail: str) -> GeneralProtection:
    return GeneralProtection(Decision("hw", f"SDM: {leaf}", "#GP(0)", detail))


def _pf(leaf: str, addr: int, detail: str, write: bool = False) -> PageFault:
    # An ENCLS operand refused by the EPCM: a #PF with the SGX bit, as the
    # kernel sees it (encls_faulted() with trapnr 14).
    ec = PF_PROT | PF_SGX | (PF_WRITE if write else 0)
    return PageFault(addr, ec, Decision("hw", f"SDM: {leaf}", f"#PF({addr:#x})", detail))


def _code(leaf: str, code: SgxReturn, detail: str, cpu: Cpu) -> int:
    cpu.trace.note("hw", f"SDM: {leaf}", code.name, detail)
    return int(code)


class EnclsMixin:
    """ENCLS[ECREATE ... EMODT]."""

    # -- operand helpers ------------------------------------------------------------
    def _kread(self: Cpu, leaf: str, pa: int, n: int) -> bytes:
        """A kernel read of ordinary memory (PAGEINFO, SECINFO, SRCPGE...)."""
        phys = self.phys
        if phys.is_epc(pa):
            return b"\xff" * n  # abort-page semantics outside enclave mode
        try:
            return phys.read(pa, n)
        except KeyError:
            raise PageFault(pa, 0, Decision("hw", f"SDM: {leaf}", f"#PF({pa:#x})",
                                            "operand is not mapped memory")) from None

    def _kwrite(self: Cpu, leaf: str, pa: int, data: bytes) -> None:
        phys = self.phys
        if phys.is_epc(pa):
            return
        if (pa >> 12) not in phys.frames or ((pa + len(data) - 1) >> 12) not in phys.frames:
            raise PageFault(pa, PF_WRITE, Decision("hw", f"SDM: {leaf}", f"#PF({pa:#x})",
                                                   "operand is not mapped memory"))
        phys.write(pa, data)

    def _epc_operand(self: Cpu, leaf: str, pa: int, what: str, write: bool = False) -> int:
        i = self.epc.index(pa & PAGE_MASK)
        if i is None:
            raise _pf(leaf, pa, f"{what} {pa:#x} is not in the EPC", write)
        return i

    def _kfields(self: Cpu, leaf: str, cls, pa: int) -> tuple:
        """The fields of ``cls`` (in layout order) read from the ordinary
        memory at ``pa``: straight from the RAM frame when the structure lies
        in one (what :meth:`_kread` reads, without its copy), else through
        :meth:`_kread` (EPC, unmapped, split).  The per-page leaves read their
        PAGEINFO and SECINFO this way, without building structure objects."""
        frame = self.phys.frames.get(pa >> 12)
        if frame is not None and (pa & 0xFFF) <= PAGE_SIZE - cls.SIZE:
            return cls._codec.unpack_from(frame, pa & 0xFFF)
        return cls._codec.unpack(self._kread(leaf, pa, cls.SIZE))

    def _secinfo_flags(self: Cpu, leaf: str, pa: int) -> int:
        """SECINFO.FLAGS of the SECINFO at ``pa``; #GP if a reserved bit is set."""
        flags, reserved = self._kfields(leaf, Secinfo, pa)
        if flags & SECINFO_ENCLS_RESERVED or nonzero(reserved):
            raise _gp(leaf, f"SECINFO reserved bits set (flags {flags:#x})")
        return flags

    def _secs_of(self: Cpu, leaf: str, pa: int) -> tuple[int, SecsState]:
        i = self._epc_operand(leaf, pa, "SECS")
        if not self.epc.flags[i] & EPCM_VALID or self.epc.pt[i] != _PT_SECS:
            raise _pf(leaf, pa, "EPCM(SECS) is not a valid PT_SECS page")
        return i, self.epc.secs_state[i]

    def _require_sgx2(self: Cpu, leaf: str) -> None:
        if not self.sgx2:
            raise _gp(leaf, "SGX2 leaf on a CPU without SGX2 (invalid leaf)")

    # -- ECREATE ---------------------------------------------------------------------
    def ecreate(self: Cpu, pageinfo: int, epc: int) -> None:
        # SDM: ECREATE
        leaf = "ECREATE"
        if pageinfo % Pageinfo.ALIGN:
            raise _gp(leaf, "PAGEINFO not 32-byte aligned")
        if epc % PAGE_SIZE:
            raise _gp(leaf, "RCX not 4 KiB aligned")
        i = self._epc_operand(leaf, epc, "RCX")
        pi = Pageinfo.unpack(self._kread(leaf, pageinfo, Pageinfo.SIZE))
        if pi.srcpge % PAGE_SIZE or pi.secinfo % Secinfo.ALIGN:
            raise _gp(leaf, "SRCPGE or SECINFO misaligned")
        if pi.linaddr or pi.secs:
            raise _gp(leaf, "PAGEINFO.LINADDR and PAGEINFO.SECS must be 0")
        si_flags = self._secinfo_flags(leaf, pi.secinfo)
        if (si_flags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT != _PT_SECS:
            raise _gp(leaf, "SECINFO.PT is not PT_SECS")
        if self.epc.flags[i] & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=1")
        raw = self._kread(leaf, pi.srcpge, PAGE_SIZE)
        s = Secs.unpack(raw)
        self._ecreate_validate(s)
        # Effects: the SECS page, its hidden state, the ECREATE record.
        m = Measurement()
        m.ecreate(s.size, s.ssa_frame_size)
        page = bytearray(raw)
        page[Secs.OFF_ATTRIBUTES : Secs.OFF_ATTRIBUTES + 8] = struct.pack(
            "<Q", s.attributes & ~Attribute.INIT)
        page[Secs.OFF_ISV_PROD_ID : Secs.OFF_ISV_PROD_ID + 4] = bytes(4)
        self.epc.set_entry(i, pt=_PT_SECS, flags=0)
        self.epc.data[i] = page
        self.epc.secs_state[i] = SecsState(
            base=s.base, size=s.size, ssa_frame_size=s.ssa_frame_size, miscselect=s.miscselect,
            # A plain int: an IntFlag here would make every later test of
            # the attributes (each EENTER) go through enum's operators.
            attributes=int(s.attributes & ~Attribute.INIT), xfrm=s.xfrm, eid=self.next_eid,
            measurement=m)
        self.next_eid += 1
        self.count("ecreate")

    def _ecreate_validate(self: Cpu, s: Secs) -> None:
        leaf = "ECREATE"
        if s.xfrm & 0x3 != 0x3 or s.xfrm & ~self.xfrm_valid:
            raise _gp(leaf, f"XFRM {s.xfrm:#x} illegal")
        # Reference §12 item 8: MISCSELECT & ~CPUID.12H.0:EBX != 0.
        if s.miscselect & ~self.miscselect_valid:
            raise _gp(leaf, f"MISCSELECT {s.miscselect:#x} unsupported")
        need = _XSAVE_LEGACY + sum(v for b, v in _XSAVE_COMPONENT.items() if s.xfrm >> b & 1)
        need += _SSA_GPR + sum(v for b, v in _MISC_SIZE.items() if s.miscselect >> b & 1)
        if s.ssa_frame_size * PAGE_SIZE < need:
            raise _gp(leaf, f"SSAFRAMESIZE {s.ssa_frame_size} below the {need}-byte need")
        mode64 = bool(s.attributes & Attribute.MODE64BIT)
        if mode64 and not canonical(s.base):
            raise _gp(leaf, "BASEADDR not canonical")
        if not mode64 and s.base >= 1 << 32:
            raise _gp(leaf, "BASEADDR above 4 GiB for a 32-bit enclave")
        if s.size >= 1 << (self.MAX_ENCLAVE_SIZE_64 if mode64 else self.MAX_ENCLAVE_SIZE_32):
            raise _gp(leaf, f"SIZE {s.size:#x} above the CPU's maximum")
        if s.size < 0x2000 or s.size & (s.size - 1):
            raise _gp(leaf, f"SIZE {s.size:#x} not a power of two >= 8 KiB")
        if s.base & (s.size - 1):
            raise _gp(leaf, "BASEADDR not naturally aligned to SIZE")
        # Reference §13 item 11: INIT set in the input is rejected.
        if s.attributes & ~self.attributes_valid or s.attributes & Attribute.INIT:
            raise _gp(leaf, f"ATTRIBUTES {s.attributes:#x} not allowed")
        for name, _ in _SECS_HIDDEN_RESERVED:
            if any(getattr(s, name)):
                raise _gp(leaf, f"SECS {name} not zero")
        if any(s.reserved4):
            raise _gp(leaf, "SECS reserved area not zero")
        if not s.attributes & Attribute.KSS and (any(s.config_id) or s.config_svn):
            raise _gp(leaf, "CONFIGID/CONFIGSVN without KSS")

    # -- EADD ---------------------------------------------------------------------------
    def eadd(self: Cpu, pageinfo: int, epc: int) -> None:
        # SDM: EADD.  Written flat (the driver issues it once per page added):
        # the EPC operands are range-checked in place (as _epc_operand() does),
        # PAGEINFO and SECINFO unpacked straight from their RAM frame; one in
        # no RAM frame goes through _kfields()/_secinfo_flags(), whose kernel
        # read gives the #PF or the abort page.
        leaf = "EADD"
        if pageinfo % _PAGEINFO_ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "PAGEINFO or RCX misaligned")
        epc_ = self.epc
        n = epc_.npages
        i = (epc - EPC_BASE) >> 12  # negative below the EPC
        if not 0 <= i < n:
            raise _pf(leaf, epc, f"RCX {epc:#x} is not in the EPC")
        frames = self.phys.frames
        frame = frames.get(pageinfo >> 12)  # aligned: the PAGEINFO lies within its frame
        if frame is not None:
            linaddr, srcpge, secinfo, secs = _PAGEINFO.unpack_from(frame, pageinfo & 0xFFF)
        else:
            linaddr, srcpge, secinfo, secs = self._kfields(leaf, Pageinfo, pageinfo)
        if (srcpge | secs | linaddr) % PAGE_SIZE or secinfo % _SECINFO_ALIGN:
            raise _gp(leaf, "SRCPGE, SECS, SECINFO or LINADDR misaligned")
        secs_i = (secs - EPC_BASE) >> 12
        if not 0 <= secs_i < n:
            raise _pf(leaf, secs, f"PAGEINFO.SECS {secs:#x} is not in the EPC")
        frame = frames.get(secinfo >> 12)
        if frame is not None:  # aligned: the SECINFO lies within its frame
            flags, reserved = _SECINFO.unpack_from(frame, secinfo & 0xFFF)
            if flags & SECINFO_ENCLS_RESERVED or reserved != _ZERO56:
                raise _gp(leaf, f"SECINFO reserved bits set (flags {flags:#x})")
        else:
            flags = self._secinfo_flags(leaf, secinfo)
        pt = (flags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT
        if pt != _PT_REG and pt != _PT_TCS:
            raise _gp(leaf, f"SECINFO.PT {pt} is neither PT_REG nor PT_TCS")
        eflags = epc_.flags
        if eflags[i] & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=1")
        if not eflags[secs_i] & EPCM_VALID or epc_.pt[secs_i] != _PT_SECS:
            raise _pf(leaf, secs, "EPCM(SECS) is not a valid PT_SECS page")
        st = epc_.secs_state[secs_i]
        src = frames.get(srcpge >> 12)
        page = bytearray(src) if src is not None else bytearray(
            self._kread(leaf, srcpge, PAGE_SIZE))
        if pt == _PT_TCS:
            tcs = Tcs.unpack(page)
            if nonzero(tcs.reserved):
                raise _gp(leaf, "TCS reserved area not zero")
            if not st.attributes & Attribute.MODE64BIT and (
                    tcs.fslimit & 0xFFF != 0xFFF or tcs.gslimit & 0xFFF != 0xFFF):
                raise _gp(leaf, "TCS FS/GS limit of a 32-bit enclave")
        elif flags & 0x2 and not flags & 0x1:
            raise _gp(leaf, "SECINFO W without R")
        base = st.base
        if not base <= linaddr < base + st.size:
            raise _gp(leaf, f"LINADDR {linaddr:#x} outside ELRANGE")
        if st.initialized:
            raise _gp(leaf, "SECS already initialised")
        if pt == _PT_TCS:
            # The CPU clears RWX, DBGOPTIN, CSSA, AEP and STATE before measuring.
            flags &= ~0x7
            tcs = Tcs.unpack(page)
            page[:Tcs.SIZE] = tcs.replace(flags=tcs.flags & ~Tcs.FLAGS_DBGOPTIN, cssa=0, aep=0,
                                          state=0).pack()
        st.measurement.eadd(linaddr - base, flags)
        # epc_.set_entry(i, pt, perms_to_epcm(flags), secs_i, linaddr), inline
        eflags[i] = (flags & 0x7) << 1 | EPCM_VALID
        epc_.pt[i] = pt
        epc_.secs[i] = secs_i
        epc_.addr[i] = linaddr
        epc_.mod_epoch[i] = 0  # no EBLOCK/EMODPR/EMODT awaits tracking (see set_entry())
        epc_.data[i] = page
        st.children += 1
        stats = self.stats  # self.count("eadd")
        stats["eadd"] = stats.get("eadd", 0) + 1

    # -- EEXTEND -------------------------------------------------------------------------
    def eextend(self: Cpu, secs: int, chunk: int) -> None:
        # SDM: EEXTEND (reference §12 items 4, 5: "does not resolve"; INIT enforced).
        st, i = self._eextend_checks(secs, chunk)
        off = chunk & 0xFFF
        st.measurement.eextend(self.epc.addr[i] - st.base + off, self.epc.data[i][off : off + 256])

    def _eextend_checks(self: Cpu, secs: int, chunk: int):
        """EEXTEND's checks, in the SDM's order; the SECS's state and the EPC
        index of the page.  Written flat: the driver issues it 16 times per
        measured page (as :meth:`eextend_page`, once)."""
        leaf = "EEXTEND"
        epc_ = self.epc
        n = epc_.npages
        if secs & 0xFFF:
            raise _gp(leaf, "RBX (SECS) not 4 KiB aligned")
        secs_i = (secs - EPC_BASE) >> 12
        if secs < EPC_BASE or secs_i >= n:
            raise _pf(leaf, secs, f"RBX {secs:#x} is not in the EPC")
        if chunk & 0xFF:
            raise _gp(leaf, "RCX not 256-byte aligned")
        i = (chunk - EPC_BASE) >> 12
        if chunk < EPC_BASE or i >= n:
            raise _pf(leaf, chunk, f"RCX {chunk:#x} is not in the EPC")
        flags, pt = epc_.flags, epc_.pt
        if not flags[i] & EPCM_VALID or pt[i] not in _REG_TCS:
            raise _pf(leaf, chunk, "EPCM(RCX) is not a valid PT_REG/PT_TCS page")
        if epc_.secs[i] != secs_i or pt[secs_i] != _PT_SECS or not flags[secs_i] & EPCM_VALID:
            raise _gp(leaf, "RBX is not the SECS of the page")
        st = epc_.secs_state[secs_i]
        if st.initialized:
            raise _gp(leaf, "SECS already initialised")
        return st, i

    def eextend_page(self: Cpu, secs: int, page: int) -> None:
        """Sixteen EEXTENDs over the 256-byte chunks of one EPC page, in order,
        as the driver issues them for SGX_PAGE_MEASURE.  Every chunk of a page
        passes or fails the same checks (RCX is 256-aligned by construction),
        so they run once; the measurement is the same record stream."""
        st, i = self._eextend_checks(secs, page)
        if page & 0xFFF:  # the page's first chunk: the driver passes the page's address
            raise _gp("EEXTEND", "RCX not the start of a 4 KiB page (eextend_page measures a page)")
        epc_ = self.epc
        st.measurement.eextend_page(epc_.addr[i] - st.base, epc_.data[i])

    # -- EINIT ------------------------------------------------------------------------------
    def einit(self: Cpu, sigstruct: int, secs: int, token: int) -> int:
        # SDM: EINIT
        leaf = "EINIT"
        if sigstruct % PAGE_SIZE or secs % PAGE_SIZE or token % Einittoken.ALIGN:
            raise _gp(leaf, "SIGSTRUCT, SECS or EINITTOKEN misaligned")
        secs_i = self._epc_operand(leaf, secs, "RCX")
        sig = Sigstruct.unpack(self._kread(leaf, sigstruct, SIGSTRUCT_SIZE))
        tok = Einittoken.unpack(self._kread(leaf, token, EINITTOKEN_SIZE))
        if not sigs.header_valid(sig):
            return _code(leaf, SgxReturn.SGX_INVALID_SIG_STRUCT, "SIGSTRUCT header", self)
        if self.pending_unmasked_events:
            self.pending_unmasked_events -= 1
            return _code(leaf, SgxReturn.SGX_UNMASKED_EVENT, "interrupt pending", self)
        if not sigs.check_signature(sig):
            return _code(leaf, SgxReturn.SGX_INVALID_SIGNATURE, "RSA check failed", self)
        epc_ = self.epc
        if not epc_.flags[secs_i] & EPCM_VALID or epc_.pt[secs_i] != _PT_SECS:
            raise _pf(leaf, secs, "EPCM(SECS) is not a valid PT_SECS page")
        st = epc_.secs_state[secs_i]
        if st.initialized:
            raise _gp(leaf, "SECS already initialised")
        if any(sig.isvfamilyid) and not st.attributes & Attribute.KSS:
            return _code(leaf, SgxReturn.SGX_INVALID_SIG_STRUCT, "ISVFAMILYID without KSS", self)
        mrenclave = st.measurement.digest()
        if mrenclave != sig.enclavehash:
            return _code(leaf, SgxReturn.SGX_INVALID_MEASUREMENT,
                         f"MRENCLAVE {mrenclave.hex()[:16]}... != ENCLAVEHASH", self)
        mrsigner = sigs.mrsigner(sig)
        lehash = self.lepubkeyhash()
        if st.attributes & Attribute.EINITTOKENKEY and mrsigner != lehash:
            return _code(leaf, SgxReturn.SGX_INVALID_ATTRIBUTE, "EINITTOKENKEY is controlled",
                         self)
        secs_attr = st.attributes | st.xfrm << 64
        sig_attr = sig.attributes | sig.xfrm << 64
        mask = sig.attributes_mask | sig.xfrm_mask << 64
        if secs_attr & mask != sig_attr & mask:
            return _code(leaf, SgxReturn.SGX_INVALID_ATTRIBUTE, "ATTRIBUTES under the mask", self)
        if st.miscselect & sig.misc_mask != sig.miscselect & sig.misc_mask:
            return _code(leaf, SgxReturn.SGX_INVALID_ATTRIBUTE, "MISCSELECT under the mask", self)
        if not tok.valid & 1:
            if mrsigner != lehash:
                return _code(leaf, SgxReturn.SGX_INVALID_EINITTOKEN,
                             "no token and MRSIGNER != IA32_SGXLEPUBKEYHASH", self)
        else:
            code = self._einit_token(tok, st, mrenclave, mrsigner)
            if code:
                return code
        # Commit.
        st.initialized = True
        st.mrenclave = mrenclave
        st.mrsigner = mrsigner
        st.isvprodid, st.isvsvn = sig.isvprodid, sig.isvsvn
        st.padding = sigs.pkcs1_padding()
        st.attributes = int(st.attributes | Attribute.INIT)
        page = epc_.data[secs_i]
        page[Secs.OFF_MRENCLAVE : Secs.OFF_MRENCLAVE + 32] = mrenclave
        page[Secs.OFF_MRSIGNER : Secs.OFF_MRSIGNER + 32] = mrsigner
        page[Secs.OFF_ATTRIBUTES : Secs.OFF_ATTRIBUTES + 8] = struct.pack("<Q", st.attributes)
        page[Secs.OFF_ISV_PROD_ID : Secs.OFF_ISV_PROD_ID + 4] = struct.pack(
            "<HH", sig.isvprodid, sig.isvsvn)
        self.count("einit")
        return _code(leaf, SgxReturn.SGX_SUCCESS, "enclave initialised", self)

    def _einit_token(self: Cpu, tok: Einittoken, st: SecsState, mrenclave: bytes,
                     mrsigner: bytes) -> int:
        leaf = "EINIT"
        if tok.maskedattributesle & Attribute.DEBUG and not st.attributes & Attribute.DEBUG:
            return _code(leaf, SgxReturn.SGX_INVALID_EINITTOKEN, "token DEBUG mismatch", self)
        if tok.valid & ~1 or any(tok.reserved1 + tok.reserved2 + tok.reserved3 + tok.reserved4):
            return _code(leaf, SgxReturn.SGX_INVALID_EINITTOKEN, "token reserved bits", self)
        if any(tok.cpusvnle):
            return _code(leaf, SgxReturn.SGX_INVALID_CPUSVN, "token CPUSVN beyond", self)
        # The EINITTOKEN key is derived from the platform secret and the launch
        # MSRs; its MAC is modelled as truncated HMAC-SHA256 over [0, 192).
        if not hmac.compare_digest(self.einittoken_mac(tok.pack()[:192]), tok.mac):
            return _code(leaf, SgxReturn.SGX_INVALID_EINITTOKEN, "token MAC", self)
        if tok.mrenclave != mrenclave or tok.mrsigner != mrsigner:
            return _code(leaf, SgxReturn.SGX_INVALID_MEASUREMENT, "token identity", self)
        if tok.attributes != st.attributes or tok.xfrm != st.xfrm:
            return _code(leaf, SgxReturn.SGX_INVALID_ATTRIBUTE, "token attributes", self)
        return 0

    def einittoken_mac(self: Cpu, body: bytes) -> bytes:
        key = hmac.new(self.secret, b"EINITTOKEN" + self.lepubkeyhash(), hashlib.sha256).digest()
        return hmac.new(key, body, hashlib.sha256).digest()[:16]

    # -- EREMOVE -------------------------------------------------------------------------------
    def eremove(self: Cpu, epc: int) -> int:
        # SDM: EREMOVE (reference §12 item 1: an accepted TRIM page is freed)
        leaf = "EREMOVE"
        if epc % PAGE_SIZE:
            raise _gp(leaf, "RCX not 4 KiB aligned")
        i = self._epc_operand(leaf, epc, "RCX")
        epc_ = self.epc
        f = epc_.flags[i]
        if not f & EPCM_VALID:
            return 0
        pt = epc_.pt[i]
        if pt == _PT_VA or (pt == _PT_TRIM and not f & EPCM_MODIFIED):
            epc_.invalidate(i)
            return 0
        if pt == _PT_SECS:
            st = epc_.secs_state[i]
            if st.children:
                return _code(leaf, SgxReturn.SGX_CHILD_PRESENT, f"{st.children} children", self)
            epc_.invalidate(i)
            return 0
        owner = epc_.secs_state.get(epc_.secs[i])
        if owner is not None and owner.active:
            return _code(leaf, SgxReturn.SGX_ENCLAVE_ACT, "a thread is inside the enclave", self)
        epc_.invalidate(i)
        self.count("eremove")
        return 0

    # -- EDBGRD / EDBGWR ----------------------------------------------------------------------------
    def _dbg_target(self: Cpu, leaf: str, addr: int, allowed: tuple[int, ...]) -> int:
        if addr % 8:
            raise _gp(leaf, "address not 8-byte aligned")
        i = self._epc_operand(leaf, addr, "RCX")
        epc_ = self.epc
        if not epc_.flags[i] & EPCM_VALID:
            raise _pf(leaf, addr, "EPCM(RCX).VALID=0")
        if epc_.pt[i] not in allowed:
            raise _pf(leaf, addr, f"EPCM.PT={epc_.pt[i]} not debuggable")
        return i

    def edbgrd(self: Cpu, addr: int) -> tuple[int, int]:
        # SDM: EDBGRD
        leaf = "EDBGRD"
        i = self._dbg_target(leaf, addr, (_PT_REG, _PT_TCS, _PT_VA))
        epc_ = self.epc
        if epc_.flags[i] & (EPCM_PENDING | EPCM_MODIFIED):
            return _code(leaf, SgxReturn.SGX_PAGE_NOT_DEBUGGABLE, "PENDING or MODIFIED", self), 0
        off = addr & (PAGE_SIZE - 1)
        pt = epc_.pt[i]
        if pt == _PT_TCS and off >= _TCS_LIMIT:
            raise _gp(leaf, "TCS offset beyond SGX_TCS_LIMIT")
        word = int.from_bytes(epc_.page(i)[off : off + 8], "little")
        if pt == _PT_VA:
            return 0, (U64 if word else 0)
        if not epc_.secs_state[epc_.secs[i]].attributes & Attribute.DEBUG:
            raise _gp(leaf, "enclave is not a debug enclave")
        return 0, word

    def edbgwr(self: Cpu, addr: int, value: int) -> int:
        # SDM: EDBGWR
        leaf = "EDBGWR"
        i = self._dbg_target(leaf, addr, (_PT_REG, _PT_TCS))
        epc_ = self.epc
        if epc_.flags[i] & (EPCM_PENDING | EPCM_MODIFIED):
            return _code(leaf, SgxReturn.SGX_PAGE_NOT_DEBUGGABLE, "PENDING or MODIFIED", self)
        off = addr & (PAGE_SIZE - 1)
        if epc_.pt[i] == _PT_TCS and off != Tcs.OFF_FLAGS:
            raise _gp(leaf, "only TCS.FLAGS may be written")
        if not epc_.secs_state[epc_.secs[i]].attributes & Attribute.DEBUG:
            raise _gp(leaf, "enclave is not a debug enclave")
        epc_.page(i)[off : off + 8] = (value & U64).to_bytes(8, "little")
        return 0

    # -- EBLOCK / ETRACK ------------------------------------------------------------------------------
    def eblock(self: Cpu, epc: int) -> int:
        # SDM: EBLOCK
        leaf = "EBLOCK"
        if epc % PAGE_SIZE:
            raise _gp(leaf, "RCX not 4 KiB aligned")
        i = self._epc_operand(leaf, epc, "RCX")
        epc_ = self.epc
        f = epc_.flags[i]
        if not f & EPCM_VALID:
            return _code(leaf, SgxReturn.SGX_PG_INVLD, "EPCM.VALID=0", self)
        pt = epc_.pt[i]
        if pt not in _REG_TCS_TRIM:
            code = SgxReturn.SGX_PG_IS_SECS if pt == _PT_SECS else SgxReturn.SGX_NOTBLOCKABLE
            return _code(leaf, code, f"PT={pt}", self)
        if f & EPCM_BLOCKED:
            return _code(leaf, SgxReturn.SGX_BLKSTATE, "already BLOCKED", self)
        epc_.flags[i] = f | EPCM_BLOCKED
        epc_.mod_epoch[i] = epc_.secs_state[epc_.secs[i]].epoch
        return 0

    def etrack(self: Cpu, secs: int) -> int:
        # SDM: ETRACK (tracking model of reference §7)
        leaf = "ETRACK"
        if secs % PAGE_SIZE:
            raise _gp(leaf, "RCX not 4 KiB aligned")
        _, st = self._secs_of(leaf, secs)
        if st.tracking_set:
            return _code(leaf, SgxReturn.SGX_PREV_TRK_INCMPL,
                         f"LPs {sorted(st.tracking_set)} still inside since the last ETRACK", self)
        st.epoch += 1
        st.tracking_set = set(st.active)
        if not st.tracking_set:
            st.completed_epoch = st.epoch
        return 0

    def tracked(self: Cpu, index: int) -> bool:
        """Has tracking completed since the page's EBLOCK/EMODPR/EMODT?"""
        st = self.epc.secs_state[self.epc.secs[index]]
        return st.completed_epoch > self.epc.mod_epoch[index]

    # -- EPA ------------------------------------------------------------------------------------------
    def epa(self: Cpu, epc: int, rbx: int = PageType.PT_VA) -> None:
        # SDM: EPA
        leaf = "EPA"
        if rbx != _PT_VA or epc % PAGE_SIZE:
            raise _gp(leaf, "RBX is not PT_VA or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        if self.epc.flags[i] & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=1")
        self.epc.set_entry(i, pt=_PT_VA, flags=0)
        self.epc.data[i] = bytearray(PAGE_SIZE)

    # -- EWB / ELDU / ELDB ------------------------------------------------------------------------------
    def _va_slot(self: Cpu, leaf: str, va_slot: int, epc: int) -> int:
        if va_slot % 8:
            raise _gp(leaf, "RDX (VA slot) not 8-byte aligned")
        va_i = self._epc_operand(leaf, va_slot, "RDX")
        if (va_slot & PAGE_MASK) == (epc & PAGE_MASK):
            raise _gp(leaf, "RCX and RDX in the same page")
        return va_i

    def _aead(self: Cpu) -> AESGCM:
        return AESGCM(hashlib.sha256(self.secret + b"EWB").digest()[:16])

    @staticmethod
    def _aad(eid: int, linaddr: int, secinfo_flags: int) -> bytes:
        return struct.pack("<QQQ", eid, linaddr, secinfo_flags)

    def ewb(self: Cpu, pageinfo: int, epc: int, va_slot: int) -> int:
        # SDM: EWB
        leaf = "EWB"
        if pageinfo % Pageinfo.ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "PAGEINFO or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        va_i = self._va_slot(leaf, va_slot, epc)
        pi = Pageinfo.unpack(self._kread(leaf, pageinfo, Pageinfo.SIZE))
        if pi.linaddr or pi.secs:
            raise _gp(leaf, "PAGEINFO.LINADDR and PAGEINFO.SECS must be 0")
        if pi.secinfo % Pcmd.ALIGN or pi.srcpge % PAGE_SIZE:
            raise _gp(leaf, "PCMD or SRCPGE misaligned")
        epc_ = self.epc
        f = epc_.flags[i]
        if not f & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=0")
        if not epc_.flags[va_i] & EPCM_VALID or epc_.pt[va_i] != _PT_VA:
            raise _pf(leaf, va_slot, "RDX is not in a valid PT_VA page")
        pt = epc_.pt[i]
        eid = 0
        if pt in _REG_TCS_TRIM:
            if not f & EPCM_BLOCKED:
                return _code(leaf, SgxReturn.SGX_PAGE_NOT_BLOCKED, "page not BLOCKED", self)
            if not self.tracked(i):
                return _code(leaf, SgxReturn.SGX_NOT_TRACKED, "no completed ETRACK since EBLOCK",
                             self)
            eid = epc_.secs_state[epc_.secs[i]].eid
        elif pt == _PT_SECS:
            st = epc_.secs_state[i]
            if st.children:
                return _code(leaf, SgxReturn.SGX_CHILD_PRESENT, f"{st.children} children", self)
            eid = st.eid
        secinfo_flags = (pt << SECINFO_PT_SHIFT) | epcm_to_perms(f) | (
            (0x8 if f & EPCM_PENDING else 0) | (0x10 if f & EPCM_MODIFIED else 0)
            | (0x20 if f & EPCM_PR else 0))
        linaddr = epc_.addr[i]
        version = self.next_version
        self.next_version += 1
        nonce = version.to_bytes(12, "little")
        sealed = self._aead().encrypt(nonce, bytes(epc_.page(i)),
                                      self._aad(eid, linaddr, secinfo_flags))
        pcmd = Pcmd(secinfo=Secinfo(flags=secinfo_flags).pack(), enclave_id=eid,
                    mac=sealed[PAGE_SIZE:])
        self._kwrite(leaf, pi.srcpge, sealed[:PAGE_SIZE])
        self._kwrite(leaf, pi.secinfo, pcmd.pack())
        self._kwrite(leaf, pageinfo, struct.pack("<Q", linaddr))
        if pt == _PT_SECS:
            self.evicted_secs[version] = epc_.secs_state[i]
        va_page = epc_.page(va_i)
        off = va_slot & (PAGE_SIZE - 1)
        occupied = any(va_page[off : off + 8])
        va_page[off : off + 8] = version.to_bytes(8, "little")
        if pt == _PT_SECS:
            epc_.secs_state.pop(i)  # kept under its version until ELDU
            epc_.flags[i] = 0
            epc_.data.pop(i, None)
        else:
            epc_.invalidate(i)
        self.count("ewb")
        if occupied:
            return _code(leaf, SgxReturn.SGX_VA_SLOT_OCCUPIED, "VA slot was not empty", self)
        return 0

    def eldu(self: Cpu, pageinfo: int, epc: int, va_slot: int) -> int:
        # SDM: ELDU (reference §12 item 2: the VA slot is cleared, SDM-2023)
        return self._eld("ELDU", pageinfo, epc, va_slot, blocked=False)

    def eldb(self: Cpu, pageinfo: int, epc: int, va_slot: int) -> int:
        # SDM: ELDB
        return self._eld("ELDB", pageinfo, epc, va_slot, blocked=True)

    def _eld(self: Cpu, leaf: str, pageinfo: int, epc: int, va_slot: int, blocked: bool) -> int:
        if pageinfo % Pageinfo.ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "PAGEINFO or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        va_i = self._va_slot(leaf, va_slot, epc)
        pi = Pageinfo.unpack(self._kread(leaf, pageinfo, Pageinfo.SIZE))
        if pi.secinfo % Pcmd.ALIGN or pi.srcpge % PAGE_SIZE:
            raise _gp(leaf, "PCMD or SRCPGE misaligned")
        epc_ = self.epc
        if epc_.flags[i] & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=1")
        if not epc_.flags[va_i] & EPCM_VALID or epc_.pt[va_i] != _PT_VA:
            raise _pf(leaf, va_slot, "RDX is not in a valid PT_VA page")
        pcmd = Pcmd.unpack(self._kread(leaf, pi.secinfo, Pcmd.SIZE))
        flags = Secinfo.unpack(pcmd.secinfo).flags
        pt = (flags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT
        secs_i, eid = 0, 0
        if pt in _REG_TCS_TRIM:
            if pi.secs % PAGE_SIZE:
                raise _gp(leaf, "PAGEINFO.SECS misaligned")
            secs_i, st = self._secs_of(leaf, pi.secs)
            eid = st.eid
        elif pt == _PT_SECS:
            eid = pcmd.enclave_id
        va_page = epc_.page(va_i)
        off = va_slot & (PAGE_SIZE - 1)
        version = int.from_bytes(va_page[off : off + 8], "little")
        sealed = self._kread(leaf, pi.srcpge, PAGE_SIZE) + pcmd.mac
        try:
            if not version:
                raise InvalidTag
            plain = self._aead().decrypt(version.to_bytes(12, "little"), sealed,
                                         self._aad(eid, pi.linaddr, flags))
        except InvalidTag:
            return _code(leaf, SgxReturn.SGX_MAC_COMPARE_FAIL, "MAC, version or identity", self)
        va_page[off : off + 8] = bytes(8)
        perms = perms_to_epcm(flags) | (EPCM_PENDING if flags & 0x8 else 0) | (
            EPCM_MODIFIED if flags & 0x10 else 0) | (EPCM_PR if flags & 0x20 else 0)
        if blocked and pt not in (_PT_SECS, _PT_VA):
            perms |= EPCM_BLOCKED
        epc_.set_entry(i, pt=pt, flags=perms, secs=secs_i, addr=pi.linaddr)
        epc_.data[i] = bytearray(plain)
        if pt == _PT_SECS:
            epc_.secs_state[i] = self.evicted_secs.pop(version)
        elif pt in _REG_TCS_TRIM:
            epc_.secs_state[secs_i].children += 1
        self.count("eldu")
        return 0

    # -- EAUG ------------------------------------------------------------------------------------------
    def eaug(self: Cpu, pageinfo: int, epc: int) -> None:
        # SDM: EAUG (SDM-2018 reading: PAGEINFO.SECINFO must be 0)
        leaf = "EAUG"
        self._require_sgx2(leaf)
        if pageinfo % Pageinfo.ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "PAGEINFO or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        # PAGEINFO's fields read in place (_kfields(): the kernel read of _kread()).
        linaddr, srcpge, secinfo, secs = self._kfields(leaf, Pageinfo, pageinfo)
        if secs % PAGE_SIZE or linaddr % PAGE_SIZE:
            raise _gp(leaf, "SECS or LINADDR misaligned")
        if srcpge or secinfo:
            raise _gp(leaf, "SRCPGE and SECINFO must be 0")
        secs_i = self._epc_operand(leaf, secs, "PAGEINFO.SECS")
        epc_ = self.epc
        if epc_.flags[i] & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=1")
        if not epc_.flags[secs_i] & EPCM_VALID or epc_.pt[secs_i] != _PT_SECS:
            raise _pf(leaf, secs, "EPCM(SECS) is not a valid PT_SECS page")
        st = epc_.secs_state[secs_i]
        if not st.initialized:
            raise _gp(leaf, "SECS not initialised")
        if not st.base <= linaddr < st.base + st.size:
            raise _gp(leaf, f"LINADDR {linaddr:#x} outside ELRANGE")
        epc_.set_entry(i, pt=_PT_REG, flags=EPCM_R | EPCM_W | EPCM_PENDING, secs=secs_i,
                       addr=linaddr)
        epc_.data[i] = bytearray(PAGE_SIZE)
        st.children += 1
        self.count("eaug")

    # -- EMODPR / EMODT -----------------------------------------------------------------------------------
    def emodpr(self: Cpu, secinfo: int, epc: int) -> int:
        # SDM: EMODPR
        leaf = "EMODPR"
        self._require_sgx2(leaf)
        if secinfo % Secinfo.ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "SECINFO or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        si_flags = self._secinfo_flags(leaf, secinfo)
        if si_flags & 0x2 and not si_flags & 0x1:
            raise _gp(leaf, "SECINFO W without R")
        epc_ = self.epc
        f = epc_.flags[i]
        if not f & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=0")
        if f & (EPCM_PENDING | EPCM_MODIFIED):
            return _code(leaf, SgxReturn.SGX_PAGE_NOT_MODIFIABLE, "PENDING or MODIFIED", self)
        if epc_.pt[i] != _PT_REG:
            raise _pf(leaf, epc, f"EPCM.PT={epc_.pt[i]} is not PT_REG")
        st = epc_.secs_state[epc_.secs[i]]
        if not st.initialized:
            raise _gp(leaf, "SECS not initialised")
        epc_.flags[i] = (f & ~EPCM_RWX) | (f & EPCM_RWX & perms_to_epcm(si_flags)) | EPCM_PR
        epc_.mod_epoch[i] = st.epoch
        return 0

    def emodt(self: Cpu, secinfo: int, epc: int) -> int:
        # SDM: EMODT
        leaf = "EMODT"
        self._require_sgx2(leaf)
        if secinfo % Secinfo.ALIGN or epc % PAGE_SIZE:
            raise _gp(leaf, "SECINFO or RCX misaligned")
        i = self._epc_operand(leaf, epc, "RCX")
        si_flags = self._secinfo_flags(leaf, secinfo)
        new = (si_flags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT
        if new not in (_PT_TCS, _PT_TRIM):
            raise _gp(leaf, f"SECINFO.PT {new} is neither PT_TCS nor PT_TRIM")
        epc_ = self.epc
        f = epc_.flags[i]
        if not f & EPCM_VALID:
            raise _pf(leaf, epc, "EPCM(RCX).VALID=0")
        old = epc_.pt[i]
        if not (old == _PT_REG or (old == _PT_TCS and new == _PT_TRIM)):
            raise _pf(leaf, epc, f"EPCM.PT {old} -> {new} is not allowed")
        if f & (EPCM_PENDING | EPCM_MODIFIED):
            return _code(leaf, SgxReturn.SGX_PAGE_NOT_MODIFIABLE, "PENDING or MODIFIED", self)
        st = epc_.secs_state[epc_.secs[i]]
        if not st.initialized:
            raise _gp(leaf, "SECS not initialised")
        epc_.flags[i] = (f & ~(EPCM_RWX | EPCM_PR)) | EPCM_MODIFIED
        epc_.pt[i] = new
        epc_.mod_epoch[i] = st.epoch
        return 0
