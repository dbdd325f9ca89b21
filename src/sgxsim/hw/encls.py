"""ENCLS leaves (ring 0), SDM Vol. 3D ch. 40; reference sgx-hardware.md §4.

Operands are physical addresses (the model kernel's direct map is the
identity): PAGEINFO, SECINFO, SIGSTRUCT, EINITTOKEN, SRCPGE and PCMD are in RAM
(:class:`~sgxsim.hw.memory.PhysMem`), EPC pages are ``EPC_BASE + i*4096``, a
VA slot is the EPC address of a VA page plus ``slot*8``.  Every leaf runs its
checks in the SDM's order; the first failing check decides: a fault is
raised (#GP(0), #PF(operand)), a status is returned (``SgxReturn``).

Concurrency ("EPC page in use", "SECS busy") cannot arise: the model runs one
leaf at a time to completion, so those checks never fire (reference §13
item 13).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from sgxsim.hw import sigstruct as sigmod
from sgxsim.hw.consts import (
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
    SecsState,
)
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_WRITE, GeneralProtection, PageFault
from sgxsim.hw.lp import canonical
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.structs import Einittoken, Pcmd, Secs, Sigstruct, Tcs
from sgxsim.trace import Decision

# Plain ints on the hot paths (IntFlag arithmetic costs microseconds).
A_INIT = int(Attribute.INIT)
A_DEBUG = int(Attribute.DEBUG)
A_MODE64BIT = int(Attribute.MODE64BIT)
A_EINITTOKENKEY = int(Attribute.EINITTOKENKEY)
A_KSS = int(Attribute.KSS)
SI_R = int(SecinfoFlags.R)
SI_W = int(SecinfoFlags.W)

PT_SECS = PageType.PT_SECS
PT_TCS = PageType.PT_TCS
PT_REG = PageType.PT_REG
PT_VA = PageType.PT_VA
PT_TRIM = PageType.PT_TRIM

# SECINFO bits 3-5 (PENDING/MODIFIED/PR) are treated as reserved for the
# leaves that do not consume them (EADD, ECREATE, EMODPR, EMODT): reference
# §13 item 12, recommendation #GP (Linux rejects them in software too).
SECINFO_STATE_BITS = int(SecinfoFlags.PENDING | SecinfoFlags.MODIFIED | SecinfoFlags.PR)
_RSV_NO_STATE = SECINFO_RESERVED_MASK | SECINFO_STATE_BITS
_ZERO_PAGE = bytes(PAGE_SIZE)
_ALL_ONES = b"\xff" * PAGE_SIZE

_PAGEINFO = struct.Struct("<QQQQ")
_Q = struct.Struct("<Q")
_TCS_HEAD = struct.Struct("<QQQIIQQQQII")  # STATE..GSLIMIT, 72 bytes
TCS_ARCH_SIZE = _TCS_HEAD.size  # SGX_TCS_LIMIT: the architectural TCS fields
_SECS_HEAD = struct.Struct("<QQII24xQQ")  # SIZE, BASEADDR, SSAFRAMESIZE, MISCSELECT, ATTR, XFRM
_MAC_LEN = 16

XSAVE_LEGACY = 512 + 64  # legacy region + XSAVE header
XSAVE_COMPONENT_SIZE = {2: 256}  # AVX (YMM_Hi128)
MISC_EXINFO_SIZE = 16


def xsave_size(xfrm: int) -> int:
    """Size of the XSAVE area for the feature set ``xfrm`` (non-compacted)."""
    size = XSAVE_LEGACY
    for bit, extra in XSAVE_COMPONENT_SIZE.items():
        if xfrm >> bit & 1:
            size += extra
    return size


def secinfo_epcm_flags(flags: int) -> int:
    """The EPCM flags byte a SECINFO/PCMD.SECINFO describes (RWX and state)."""
    out = flags & SECINFO_PERM_MASK
    if flags & SecinfoFlags.PENDING:
        out |= EPCM_PENDING
    if flags & SecinfoFlags.MODIFIED:
        out |= EPCM_MODIFIED
    if flags & SecinfoFlags.PR:
        out |= EPCM_PR
    return out


def epcm_secinfo_flags(pt: int, f: int) -> int:
    """SECINFO.FLAGS describing an EPCM entry (EWB's PCMD.SECINFO)."""
    out = (pt << SECINFO_PT_SHIFT) | (f & EPCM_RWX)
    if f & EPCM_PENDING:
        out |= SecinfoFlags.PENDING
    if f & EPCM_MODIFIED:
        out |= SecinfoFlags.MODIFIED
    if f & EPCM_PR:
        out |= SecinfoFlags.PR
    return int(out)


class EnclsLeaves:
    """Mixin of :class:`sgxsim.hw.cpu.Cpu`: the ENCLS leaves."""

    # -- helpers: faults -------------------------------------------------------
    def _gp(self, leaf: str, detail: str) -> GeneralProtection:
        return GeneralProtection(Decision("hw", f"SDM: {leaf}", "#GP(0)", detail))

    def _pf(self, leaf: str, addr: int, detail: str, write: bool = False) -> PageFault:
        """#PF(operand) of an ENCLS leaf: an EPC/EPCM requirement of a
        supervisor access, so P=1 and the SGX bit set."""
        code = PF_PROT | PF_SGX | (PF_WRITE if write else 0)
        return PageFault(addr, code, Decision("hw", f"SDM: {leaf}", "#PF", detail))

    def _ret(self, leaf: str, code: SgxReturn, detail: str = "") -> int:
        self.trace.note("hw", f"SDM: {leaf}", code.name, detail)
        return int(code)

    # -- helpers: memory -------------------------------------------------------
    def _kread(self, leaf: str, addr: int, n: int) -> bytes:
        """Read a memory operand through the kernel's direct map: RAM frames,
        abort-page semantics for EPC, #PF(addr) where nothing is mapped."""
        frames = self.phys.frames
        off = addr & (PAGE_SIZE - 1)
        pfn = addr >> 12
        if off + n <= PAGE_SIZE:
            page = frames.get(pfn)
            if page is not None:
                return bytes(page[off : off + n]) if n != PAGE_SIZE else bytes(page)
        out = bytearray()
        while n > 0:
            take = min(n, PAGE_SIZE - off)
            if self.epc.index(addr) >= 0:
                out += _ALL_ONES[:take]
            else:
                page = frames.get(addr >> 12)
                if page is None or addr < 0:
                    raise PageFault(addr, 0, Decision("hw", f"SDM: {leaf}", "#PF",
                                                      "operand not mapped"))
                out += page[off : off + take]
            addr += take
            n -= take
            off = 0
        return bytes(out)

    def _kwrite(self, leaf: str, addr: int, data: bytes) -> None:
        """Write a memory operand (writes to EPC outside enclave mode drop)."""
        mv = memoryview(data)
        # Check every frame first so a fault leaves memory untouched.
        a, n = addr, len(mv)
        while n > 0:
            take = min(n, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            if self.epc.index(a) < 0 and (a < 0 or (a >> 12) not in self.phys.frames):
                raise PageFault(a, PF_WRITE, Decision("hw", f"SDM: {leaf}", "#PF",
                                                      "operand not mapped"))
            a += take
            n -= take
        while mv:
            off = addr & (PAGE_SIZE - 1)
            take = min(len(mv), PAGE_SIZE - off)
            page = self.phys.frames.get(addr >> 12)
            if page is not None:
                page[off : off + take] = mv[:take]
            addr += take
            mv = mv[take:]

    def _epc_index(self, leaf: str, addr: int, what: str, write: bool = False) -> int:
        i = self.epc.index(addr)
        if i < 0:
            raise self._pf(leaf, addr, f"{what} not in EPC", write)
        return i

    def _secinfo(self, leaf: str, addr: int, reserved: int) -> int:
        """Read a SECINFO and check its reserved bits and bytes (#GP)."""
        raw = self._kread(leaf, addr, 64)
        flags = _Q.unpack_from(raw)[0]
        if flags & reserved or raw[8:] != _ZERO_PAGE[:56]:
            raise self._gp(leaf, f"SECINFO reserved bits set ({flags:#x})")
        return flags

    def _secs_of(self, leaf: str, addr: int, i: int) -> SecsState:
        epc = self.epc
        if not epc.flags[i] & EPCM_VALID or epc.pt[i] != PT_SECS:
            raise self._pf(leaf, addr, "EPCM(SECS) not a valid PT_SECS page")
        return epc.secs_state[i]

    def _tracked(self, secs: SecsState, i: int) -> bool:
        """Reference §7: an ETRACK since the page's change, and every LP inside
        at that ETRACK has left since."""
        return secs.epoch > self.epc.epoch[i] and not secs.tracking_set

    # -- ECREATE -----------------------------------------------------------------
    def ecreate(self, pageinfo: int, epc_page: int) -> None:
        """SDM: ECREATE."""
        L = "ECREATE"
        if pageinfo % 32:
            raise self._gp(L, "PAGEINFO not 32-byte aligned")
        if epc_page % PAGE_SIZE:
            raise self._gp(L, "RCX not 4 KiB aligned")
        i = self._epc_index(L, epc_page, "RCX", True)
        linaddr, srcpge, secinfo, secs = _PAGEINFO.unpack(self._kread(L, pageinfo, 32))
        if srcpge % PAGE_SIZE or secinfo % 64:
            raise self._gp(L, "SRCPGE/SECINFO misaligned")
        if linaddr or secs:
            raise self._gp(L, "PAGEINFO.LINADDR/SECS not 0")
        flags = self._secinfo(L, secinfo, _RSV_NO_STATE)
        if flags >> SECINFO_PT_SHIFT != PT_SECS:
            raise self._gp(L, "SECINFO.PT is not PT_SECS")
        epc = self.epc
        if epc.flags[i] & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX).VALID=1", True)
        src = self._kread(L, srcpge, PAGE_SIZE)
        size, base, ssa, misc, attrs, xfrm = _SECS_HEAD.unpack_from(src)
        if xfrm & 3 != 3 or xfrm & ~self.xfrm_allowed:
            raise self._gp(L, f"XFRM {xfrm:#x} not legal")
        # Reference §12 item 8: MISCSELECT & ~CPUID.12H.0:EBX != 0 -> #GP.
        if misc & ~self.miscselect_allowed:
            raise self._gp(L, f"MISCSELECT {misc:#x} not supported")
        need = xsave_size(xfrm) + SSA_GPRSGX_SIZE + (MISC_EXINFO_SIZE if misc & 1 else 0)
        if ssa * PAGE_SIZE < need:
            raise self._gp(L, "SSAFRAMESIZE too small")
        if attrs & A_MODE64BIT:
            if not canonical(base):
                raise self._gp(L, "BASEADDR not canonical")
            if size >= 1 << self.max_enclave_size_64:
                raise self._gp(L, "SIZE beyond CPUID max (64-bit)")
        else:
            if base >= 1 << 32:
                raise self._gp(L, "BASEADDR above 4 GiB in a 32-bit enclave")
            if size >= 1 << self.max_enclave_size_32:
                raise self._gp(L, "SIZE beyond CPUID max (32-bit)")
        if size < 0x2000 or size & (size - 1):
            raise self._gp(L, "SIZE not a power of two >= 8 KiB")
        if base & (size - 1):
            raise self._gp(L, "BASEADDR not naturally aligned to SIZE")
        # Reference §13 item 11: INIT set in the input is outside the allowed
        # attributes -> #GP.
        if attrs & ~self.attributes_allowed:
            raise self._gp(L, f"ATTRIBUTES {attrs:#x} not allowed")
        if (src[Secs.OFF_RESERVED1 : Secs.OFF_ATTRIBUTES] != _ZERO_PAGE[:24]
                or src[Secs.OFF_RESERVED2 : Secs.OFF_MRSIGNER] != _ZERO_PAGE[:32]
                or src[Secs.OFF_RESERVED3 : Secs.OFF_CONFIG_ID] != _ZERO_PAGE[:32]
                or src[Secs.OFF_RESERVED4 :] != _ZERO_PAGE[Secs.OFF_RESERVED4 :]):
            raise self._gp(L, "SECS reserved fields not 0")
        if not attrs & A_KSS and (
                src[Secs.OFF_CONFIG_ID : Secs.OFF_ISV_PROD_ID] != _ZERO_PAGE[:64]
                or src[Secs.OFF_CONFIG_SVN : Secs.OFF_CONFIG_SVN + 2] != b"\0\0"):
            raise self._gp(L, "CONFIGID/CONFIGSVN without KSS")
        page = bytearray(src)
        page[Secs.OFF_ISV_PROD_ID : Secs.OFF_ISV_PROD_ID + 4] = bytes(4)  # ISVPRODID/ISVSVN := 0
        page[Secs.OFF_MRENCLAVE : Secs.OFF_MRENCLAVE + 32] = bytes(32)
        page[Secs.OFF_MRSIGNER : Secs.OFF_MRSIGNER + 32] = bytes(32)
        st = SecsState(self.next_eid, base, size, ssa, misc, attrs, xfrm)
        self.next_eid += 1
        st.measurement.ecreate(size, ssa)
        epc.set_entry(i, PT_SECS, 0, 0, 0, page)
        epc.secs_state[i] = st

    # -- EADD ----------------------------------------------------------------------
    def eadd(self, pageinfo: int, epc_page: int) -> None:
        """SDM: EADD."""
        L = "EADD"
        if pageinfo % 32 or epc_page % PAGE_SIZE:
            raise self._gp(L, "PAGEINFO/RCX misaligned")
        epc = self.epc
        i = epc.index(epc_page)
        if i < 0:
            raise self._pf(L, epc_page, "RCX not in EPC", True)
        linaddr, srcpge, secinfo, secs = _PAGEINFO.unpack(self._kread(L, pageinfo, 32))
        if srcpge % PAGE_SIZE or secs % PAGE_SIZE or secinfo % 64 or linaddr % PAGE_SIZE:
            raise self._gp(L, "SRCPGE/SECS/SECINFO/LINADDR misaligned")
        si = epc.index(secs)
        if si < 0:
            raise self._pf(L, secs, "PAGEINFO.SECS not in EPC")
        flags = self._secinfo(L, secinfo, _RSV_NO_STATE)
        pt = flags >> SECINFO_PT_SHIFT
        if pt != PT_REG and pt != PT_TCS:
            raise self._gp(L, f"SECINFO.PT {pt} not REG/TCS")
        if epc.flags[i] & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX).VALID=1", True)
        st = self._secs_of(L, secs, si)
        page = bytearray(self._kread(L, srcpge, PAGE_SIZE))
        if pt == PT_TCS:
            if page[TCS_ARCH_SIZE:] != _ZERO_PAGE[TCS_ARCH_SIZE:]:
                raise self._gp(L, "TCS reserved area not 0")
            if not st.attributes & A_MODE64BIT:
                head = _TCS_HEAD.unpack_from(page)
                if head[9] & 0xFFF != 0xFFF or head[10] & 0xFFF != 0xFFF:
                    raise self._gp(L, "TCS FS/GS limit low bits not 0xFFF")
        elif flags & SI_W and not flags & SI_R:
            raise self._gp(L, "SECINFO W without R")
        if not st.base <= linaddr < st.base + st.size:
            raise self._gp(L, "LINADDR outside ELRANGE")
        if st.attributes & A_INIT:
            raise self._gp(L, "enclave already initialised")
        if pt == PT_TCS:
            flags &= ~SECINFO_PERM_MASK  # RWX forced to 0 before measuring
            struct.pack_into("<Q", page, Tcs.OFF_STATE, 0)
            struct.pack_into("<Q", page, Tcs.OFF_FLAGS,
                             _Q.unpack_from(page, Tcs.OFF_FLAGS)[0] & ~Tcs.FLAGS_DBGOPTIN)
            struct.pack_into("<I", page, Tcs.OFF_CSSA, 0)
            struct.pack_into("<Q", page, Tcs.OFF_AEP, 0)
        st.measurement.eadd(linaddr - st.base, flags)
        # Reference §12 item 13: EADD leaves EPCM.PR = 0.
        epc.set_entry(i, pt, flags & SECINFO_PERM_MASK, si, linaddr, page)
        st.children += 1

    # -- EEXTEND ---------------------------------------------------------------------
    def eextend(self, secs: int, chunk: int) -> None:
        """SDM: EEXTEND (the SDM-2018 "does resolve" typo read as "does not",
        reference §12 item 4; the INIT check enforced, §12 item 5).  Kept
        lean: it runs 16 times per measured page."""
        epc = self.epc
        n = epc.npages
        if secs & 0xFFF:
            raise self._gp("EEXTEND", "RBX not 4 KiB aligned")
        si = (secs - EPC_BASE) >> 12
        if not 0 <= si < n:
            raise self._pf("EEXTEND", secs, "RBX not in EPC")
        if chunk & 0xFF:
            raise self._gp("EEXTEND", "RCX not 256-byte aligned")
        i = (chunk - EPC_BASE) >> 12
        if not 0 <= i < n:
            raise self._pf("EEXTEND", chunk, "RCX not in EPC")
        pt = epc.pt[i]
        if not epc.flags[i] & EPCM_VALID or (pt != PT_REG and pt != PT_TCS):
            raise self._pf("EEXTEND", chunk, "EPCM(RCX) not a valid REG/TCS page")
        if epc.secs[i] != si:
            raise self._gp("EEXTEND", "RBX is not the page's SECS")
        st = epc.secs_state[si]
        if st.attributes & A_INIT:
            raise self._gp("EEXTEND", "enclave already initialised")
        off = chunk & 0xFFF
        st.measurement.eextend(epc.addr[i] - st.base + off, epc.pages[i][off : off + 256])

    # -- EINIT -----------------------------------------------------------------------
    def einit(self, sigstruct: int, secs: int, token: int) -> int:
        """SDM: EINIT."""
        L = "EINIT"
        if sigstruct % PAGE_SIZE or secs % PAGE_SIZE or token % 512:
            raise self._gp(L, "SIGSTRUCT/SECS/EINITTOKEN misaligned")
        si = self._epc_index(L, secs, "RCX")
        sig = Sigstruct.unpack(self._kread(L, sigstruct, Sigstruct.SIZE))
        tok = Einittoken.unpack(self._kread(L, token, Einittoken.SIZE))
        if not sigmod.header_valid(sig):
            return self._ret(L, SgxReturn.SGX_INVALID_SIG_STRUCT, "header")
        if self.unmasked_events > 0:
            # An interrupt arrived in EINIT's window; the caller retries.
            self.unmasked_events -= 1
            return self._ret(L, SgxReturn.SGX_UNMASKED_EVENT)
        if not sigmod.check_signature(sig):
            return self._ret(L, SgxReturn.SGX_INVALID_SIGNATURE)
        st = self._secs_of(L, secs, si)
        if st.attributes & A_INIT:
            raise self._gp(L, "enclave already initialised")
        if any(sig.isvfamilyid) and not st.attributes & A_KSS:
            return self._ret(L, SgxReturn.SGX_INVALID_SIG_STRUCT, "ISVFAMILYID without KSS")
        mrenclave = st.measurement.digest()
        if mrenclave != bytes(sig.enclavehash):
            return self._ret(L, SgxReturn.SGX_INVALID_MEASUREMENT)
        mrsigner = sigmod.mrsigner(sig)
        lehash = bytes(self.lepubkeyhash)
        if st.attributes & A_EINITTOKENKEY and mrsigner != lehash:
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE, "EINITTOKENKEY")
        secs_attr = st.attributes | (st.xfrm << 64)
        sig_attr = sig.attributes | (sig.xfrm << 64)
        mask = sig.attributes_mask | (sig.xfrm_mask << 64)
        if secs_attr & mask != sig_attr & mask:
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE, "attributes under mask")
        if st.miscselect & sig.misc_mask != sig.miscselect & sig.misc_mask:
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE, "miscselect under mask")
        if not tok.valid & 1:
            if mrsigner != lehash:
                return self._ret(L, SgxReturn.SGX_INVALID_EINITTOKEN, "MRSIGNER != LEPUBKEYHASH")
        else:
            code = self._einit_token(tok, st, mrenclave, mrsigner)
            if code:
                return code
        # Commit.
        st.mrenclave = mrenclave
        st.mrsigner = mrsigner
        st.isv_prod_id = sig.isvprodid
        st.isv_svn = sig.isvsvn
        st.padding = sigmod.pkcs1_padding()
        st.attributes = int(st.attributes) | A_INIT
        page = self.epc.pages[si]
        page[Secs.OFF_MRENCLAVE : Secs.OFF_MRENCLAVE + 32] = mrenclave
        page[Secs.OFF_MRSIGNER : Secs.OFF_MRSIGNER + 32] = mrsigner
        struct.pack_into("<QHH", page, Secs.OFF_ATTRIBUTES, st.attributes, 0, 0)
        struct.pack_into("<HH", page, Secs.OFF_ISV_PROD_ID, sig.isvprodid, sig.isvsvn)
        return self._ret(L, SgxReturn.SGX_SUCCESS)

    def einittoken_key(self) -> bytes:
        """The EINITTOKEN key: derived from the CPU secret and the launch MSRs
        (as MRSIGNER of the launch enclave)."""
        return hmac.new(self.secret, b"EINITTOKEN" + bytes(self.lepubkeyhash),
                        hashlib.sha256).digest()

    def _einit_token(self, tok: Einittoken, st: SecsState, mrenclave: bytes,
                     mrsigner: bytes) -> int:
        """SDM: EINIT, the token path (VALID=1)."""
        L = "EINIT"
        if tok.maskedattributesle & A_DEBUG and not st.attributes & A_DEBUG:
            return self._ret(L, SgxReturn.SGX_INVALID_EINITTOKEN, "token DEBUG")
        raw = tok.pack()
        if (tok.valid & ~1 or any(tok.reserved1) or any(tok.reserved2) or any(tok.reserved3)
                or any(tok.reserved4)):
            return self._ret(L, SgxReturn.SGX_INVALID_EINITTOKEN, "token reserved")
        if any(tok.cpusvnle):  # the model's CPUSVN is all zero
            return self._ret(L, SgxReturn.SGX_INVALID_CPUSVN)
        mac = hmac.new(self.einittoken_key(), raw[:192], hashlib.sha256).digest()[:_MAC_LEN]
        if not hmac.compare_digest(mac, bytes(tok.mac)):
            return self._ret(L, SgxReturn.SGX_INVALID_EINITTOKEN, "token MAC")
        if bytes(tok.mrenclave) != mrenclave or bytes(tok.mrsigner) != mrsigner:
            return self._ret(L, SgxReturn.SGX_INVALID_MEASUREMENT, "token identity")
        # Reference §12 item 12: SGX_INVALID_EINIT_ATTRIBUTE read as 2.
        if tok.attributes != st.attributes or tok.xfrm != st.xfrm:
            return self._ret(L, SgxReturn.SGX_INVALID_ATTRIBUTE, "token attributes")
        return 0

    # -- EREMOVE ---------------------------------------------------------------------
    def eremove(self, epc_page: int) -> int:
        """SDM: EREMOVE, with the reference §12 item 1 resolution: an accepted
        TRIM page (MODIFIED=0) is freed without the SGX_ENCLAVE_ACT check."""
        L = "EREMOVE"
        if epc_page % PAGE_SIZE:
            raise self._gp(L, "RCX not 4 KiB aligned")
        i = self._epc_index(L, epc_page, "RCX", True)
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            return self._ret(L, SgxReturn.SGX_SUCCESS, "not VALID")
        pt = epc.pt[i]
        if pt == PT_VA or (pt == PT_TRIM and not f & EPCM_MODIFIED):
            self._free_child(i)
            return self._ret(L, SgxReturn.SGX_SUCCESS)
        if pt == PT_SECS:
            if epc.secs_state[i].children:
                return self._ret(L, SgxReturn.SGX_CHILD_PRESENT)
            epc.invalidate(i)
            return self._ret(L, SgxReturn.SGX_SUCCESS)
        st = epc.secs_state.get(epc.secs[i])
        if st is not None and st.active:
            return self._ret(L, SgxReturn.SGX_ENCLAVE_ACT)
        self._free_child(i)
        return self._ret(L, SgxReturn.SGX_SUCCESS)

    def _free_child(self, i: int) -> None:
        epc = self.epc
        if epc.pt[i] not in (PT_SECS, PT_VA):
            st = epc.secs_state.get(epc.secs[i])
            if st is not None:
                st.children -= 1
        epc.invalidate(i)

    # -- EDBGRD / EDBGWR -------------------------------------------------------------
    def _edbg(self, L: str, addr: int, types: tuple[int, ...]) -> tuple[int, int]:
        if addr % 8:
            raise self._gp(L, "address not 8-byte aligned")
        i = self._epc_index(L, addr, "address", L == "EDBGWR")
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            raise self._pf(L, addr, "EPCM not VALID")
        if epc.pt[i] not in types:
            raise self._pf(L, addr, f"EPCM.PT {epc.pt[i]} not debuggable")
        if f & (EPCM_PENDING | EPCM_MODIFIED):
            return -1, i
        return 0, i

    def edbgrd(self, addr: int) -> tuple[int, int]:
        """SDM: EDBGRD -> (status, value)."""
        L = "EDBGRD"
        st_code, i = self._edbg(L, addr, (PT_REG, PT_TCS, PT_VA))
        if st_code:
            return self._ret(L, SgxReturn.SGX_PAGE_NOT_DEBUGGABLE), 0
        epc = self.epc
        off = addr & (PAGE_SIZE - 1)
        if epc.pt[i] == PT_TCS and off >= TCS_ARCH_SIZE:
            raise self._gp(L, "TCS offset beyond SGX_TCS_LIMIT")
        if epc.pt[i] != PT_VA and not epc.secs_state[epc.secs[i]].attributes & A_DEBUG:
            raise self._gp(L, "enclave not DEBUG")
        value = _Q.unpack_from(epc.pages[i], off)[0]
        if epc.pt[i] == PT_VA:
            value = (1 << 64) - 1 if value else 0
        return 0, value

    def edbgwr(self, addr: int, value: int) -> int:
        """SDM: EDBGWR."""
        L = "EDBGWR"
        st_code, i = self._edbg(L, addr, (PT_REG, PT_TCS))
        if st_code:
            return self._ret(L, SgxReturn.SGX_PAGE_NOT_DEBUGGABLE)
        epc = self.epc
        off = addr & (PAGE_SIZE - 1)
        if epc.pt[i] == PT_TCS and off != Tcs.OFF_FLAGS:
            raise self._gp(L, "only TCS.FLAGS is writable")
        if not epc.secs_state[epc.secs[i]].attributes & A_DEBUG:
            raise self._gp(L, "enclave not DEBUG")
        _Q.pack_into(epc.pages[i], off, value & ((1 << 64) - 1))
        return 0

    # -- EBLOCK / ETRACK --------------------------------------------------------------
    def eblock(self, epc_page: int) -> int:
        """SDM: EBLOCK (codes 3, 5 and 18 are reported in CF; the value is the same)."""
        L = "EBLOCK"
        if epc_page % PAGE_SIZE:
            raise self._gp(L, "RCX not 4 KiB aligned")
        i = self._epc_index(L, epc_page, "RCX")
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            return self._ret(L, SgxReturn.SGX_PG_INVLD)
        pt = epc.pt[i]
        if pt not in (PT_REG, PT_TCS, PT_TRIM):
            code = SgxReturn.SGX_PG_IS_SECS if pt == PT_SECS else SgxReturn.SGX_NOTBLOCKABLE
            return self._ret(L, code)
        if f & EPCM_BLOCKED:
            return self._ret(L, SgxReturn.SGX_BLKSTATE)
        epc.flags[i] = f | EPCM_BLOCKED
        epc.epoch[i] = epc.secs_state[epc.secs[i]].epoch
        return 0

    def etrack(self, secs: int) -> int:
        """SDM: ETRACK (tracking model of reference §7)."""
        L = "ETRACK"
        if secs % PAGE_SIZE:
            raise self._gp(L, "RCX not 4 KiB aligned")
        i = self._epc_index(L, secs, "RCX")
        st = self._secs_of(L, secs, i)
        if st.tracking_set:
            return self._ret(L, SgxReturn.SGX_PREV_TRK_INCMPL)
        st.tracking_set = set(st.active)
        st.epoch += 1
        return 0

    # -- EPA ---------------------------------------------------------------------------
    def epa(self, epc_page: int, rbx: int = PT_VA) -> None:
        """SDM: EPA (RBX must be PT_VA)."""
        L = "EPA"
        if rbx != PT_VA or epc_page % PAGE_SIZE:
            raise self._gp(L, "RBX != PT_VA or RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX", True)
        if self.epc.flags[i] & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX).VALID=1", True)
        self.epc.set_entry(i, PT_VA, 0, 0, 0, None)

    # -- EWB / ELDU / ELDB ------------------------------------------------------------
    def _ewb_mac(self, version: int, eid: int, linaddr: int, secinfo: int,
                 contents: bytes) -> bytes:
        """The eviction MAC: keyed by the CPU secret over the version, the
        AAD (EID, LINADDR, SECINFO) and the contents.  (A keyed MAC stands in
        for AES-GCM: the contents leave in clear, which the model accepts.)"""
        h = hmac.new(self.secret, struct.pack("<QQQQ", version, eid, linaddr, secinfo),
                     hashlib.sha256)
        h.update(contents)
        return h.digest()[:_MAC_LEN]

    def _va_slot(self, L: str, va_slot: int, write: bool) -> int:
        if va_slot % 8:
            raise self._gp(L, "RDX not 8-byte aligned")
        return self._epc_index(L, va_slot, "RDX", write)

    def ewb(self, pageinfo: int, epc_page: int, va_slot: int) -> int:
        """SDM: EWB."""
        L = "EWB"
        if pageinfo % 32 or epc_page % PAGE_SIZE:
            raise self._gp(L, "PAGEINFO/RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX")
        vi = self._va_slot(L, va_slot, True)
        if vi == i:
            raise self._gp(L, "RCX and RDX in the same page")
        linaddr, srcpge, pcmd, secs = _PAGEINFO.unpack(self._kread(L, pageinfo, 32))
        if linaddr or secs:
            raise self._gp(L, "PAGEINFO.LINADDR/SECS not 0")
        if pcmd % 128 or srcpge % PAGE_SIZE:
            raise self._gp(L, "PCMD/SRCPGE misaligned")
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX) not VALID")
        if not epc.flags[vi] & EPCM_VALID or epc.pt[vi] != PT_VA:
            raise self._pf(L, va_slot, "RDX not in a valid VA page", True)
        pt = epc.pt[i]
        eid = 0
        if pt in (PT_REG, PT_TCS, PT_TRIM):
            st = epc.secs_state[epc.secs[i]]
            if not f & EPCM_BLOCKED:
                return self._ret(L, SgxReturn.SGX_PAGE_NOT_BLOCKED)
            if not self._tracked(st, i):
                return self._ret(L, SgxReturn.SGX_NOT_TRACKED)
            eid = st.eid
        elif pt == PT_SECS:
            st = epc.secs_state[i]
            if st.children:
                return self._ret(L, SgxReturn.SGX_CHILD_PRESENT)
        # Check the destinations are writable before anything changes.
        contents = bytes(epc.pages[i])
        secinfo = epcm_secinfo_flags(pt, f)
        version = self.next_version
        mac = self._ewb_mac(version, eid, epc.addr[i], secinfo, contents)
        pc = Pcmd(secinfo=_Q.pack(secinfo) + bytes(56),
                  enclave_id=eid if pt != PT_SECS else epc.secs_state[i].eid, mac=mac)
        self._kwrite(L, srcpge, contents)
        self._kwrite(L, pcmd, pc.pack())
        self._kwrite(L, pageinfo, _Q.pack(epc.addr[i]))
        self.next_version += 1
        va = epc.pages[vi]
        off = va_slot & (PAGE_SIZE - 1)
        occupied = _Q.unpack_from(va, off)[0] != 0
        _Q.pack_into(va, off, version)
        if pt == PT_SECS:
            self.evicted_secs[version] = epc.secs_state[i]
        self._free_child(i)
        if occupied:  # CF=1 warning: the eviction happened anyway
            return self._ret(L, SgxReturn.SGX_VA_SLOT_OCCUPIED)
        return 0

    def eldu(self, pageinfo: int, epc_page: int, va_slot: int) -> int:
        """SDM: ELDU."""
        return self._eld("ELDU", pageinfo, epc_page, va_slot, False)

    def eldb(self, pageinfo: int, epc_page: int, va_slot: int) -> int:
        """SDM: ELDB (the page comes back BLOCKED)."""
        return self._eld("ELDB", pageinfo, epc_page, va_slot, True)

    def _eld(self, L: str, pageinfo: int, epc_page: int, va_slot: int, blocked: bool) -> int:
        if pageinfo % 32 or epc_page % PAGE_SIZE:
            raise self._gp(L, "PAGEINFO/RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX", True)
        vi = self._va_slot(L, va_slot, True)
        linaddr, srcpge, pcmd, secs = _PAGEINFO.unpack(self._kread(L, pageinfo, 32))
        if pcmd % 128 or srcpge % PAGE_SIZE:
            raise self._gp(L, "PCMD/SRCPGE misaligned")
        epc = self.epc
        if epc.flags[i] & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX).VALID=1", True)
        if not epc.flags[vi] & EPCM_VALID or epc.pt[vi] != PT_VA:
            raise self._pf(L, va_slot, "RDX not in a valid VA page", True)
        pc = Pcmd.unpack(self._kread(L, pcmd, Pcmd.SIZE))
        secinfo = _Q.unpack_from(pc.secinfo)[0]
        pt = (secinfo >> SECINFO_PT_SHIFT) & 0xFF
        si = 0
        eid = 0
        st = None
        if pt in (PT_REG, PT_TCS, PT_TRIM):
            if secs % PAGE_SIZE:
                raise self._gp(L, "PAGEINFO.SECS misaligned")
            si = self._epc_index(L, secs, "PAGEINFO.SECS")
            st = self._secs_of(L, secs, si)
            eid = st.eid
        contents = self._kread(L, srcpge, PAGE_SIZE)
        va = epc.pages[vi]
        off = va_slot & (PAGE_SIZE - 1)
        version = _Q.unpack_from(va, off)[0]
        mac = self._ewb_mac(version, eid, linaddr, secinfo, contents)
        if not version or not hmac.compare_digest(mac, bytes(pc.mac)):
            return self._ret(L, SgxReturn.SGX_MAC_COMPARE_FAIL)
        _Q.pack_into(va, off, 0)  # SDM-2023 (reference §12 item 2): the slot is consumed
        flags = secinfo_epcm_flags(secinfo)
        if blocked and pt not in (PT_SECS, PT_VA):
            flags |= EPCM_BLOCKED
        if pt == PT_SECS:
            epc.set_entry(i, pt, flags, 0, 0, contents)
            epc.secs_state[i] = self.evicted_secs.pop(version)
        elif pt == PT_VA:
            epc.set_entry(i, pt, flags, 0, 0, contents)
        else:
            epc.set_entry(i, pt, flags, si, linaddr, contents)
            st.children += 1
        return 0

    # -- SGX2: EAUG / EMODPR / EMODT ------------------------------------------------------
    def _sgx2(self, L: str) -> None:
        if not self.sgx2:
            raise self._gp(L, "SGX2 leaf on an SGX1 CPU (invalid leaf)")

    def eaug(self, pageinfo: int, epc_page: int) -> None:
        """SDM: EAUG (SDM-2018 operand rules: SECINFO must be 0, no CET)."""
        L = "EAUG"
        self._sgx2(L)
        if pageinfo % 32 or epc_page % PAGE_SIZE:
            raise self._gp(L, "PAGEINFO/RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX", True)
        linaddr, srcpge, secinfo, secs = _PAGEINFO.unpack(self._kread(L, pageinfo, 32))
        if secs % PAGE_SIZE or linaddr % PAGE_SIZE:
            raise self._gp(L, "SECS/LINADDR misaligned")
        if srcpge or secinfo:
            raise self._gp(L, "SRCPGE/SECINFO not 0")
        si = self._epc_index(L, secs, "PAGEINFO.SECS")
        epc = self.epc
        if epc.flags[i] & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM(RCX).VALID=1", True)
        st = self._secs_of(L, secs, si)
        if not st.attributes & A_INIT:
            raise self._gp(L, "enclave not initialised")
        if not st.base <= linaddr < st.base + st.size:
            raise self._gp(L, "LINADDR outside ELRANGE")
        epc.set_entry(i, PT_REG, EPCM_R | EPCM_W | EPCM_PENDING, si, linaddr, None)
        st.children += 1

    def emodpr(self, secinfo: int, epc_page: int) -> int:
        """SDM: EMODPR (state checked before type, reference §4.13)."""
        L = "EMODPR"
        self._sgx2(L)
        if secinfo % 64 or epc_page % PAGE_SIZE:
            raise self._gp(L, "SECINFO/RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX")
        flags = self._secinfo(L, secinfo, _RSV_NO_STATE)
        if flags & SI_W and not flags & SI_R:
            raise self._gp(L, "SECINFO W without R")
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM not VALID")
        if f & (EPCM_PENDING | EPCM_MODIFIED):
            return self._ret(L, SgxReturn.SGX_PAGE_NOT_MODIFIABLE)
        if epc.pt[i] != PT_REG:
            raise self._pf(L, epc_page, "EPCM.PT is not PT_REG")
        st = epc.secs_state[epc.secs[i]]
        if not st.attributes & A_INIT:
            raise self._gp(L, "enclave not initialised")
        epc.flags[i] = (f & ~EPCM_RWX) | (f & flags & EPCM_RWX) | EPCM_PR
        epc.epoch[i] = st.epoch
        return 0

    def emodt(self, secinfo: int, epc_page: int) -> int:
        """SDM: EMODT (type checked before state, reference §4.14)."""
        L = "EMODT"
        self._sgx2(L)
        if secinfo % 64 or epc_page % PAGE_SIZE:
            raise self._gp(L, "SECINFO/RCX misaligned")
        i = self._epc_index(L, epc_page, "RCX")
        flags = self._secinfo(L, secinfo, _RSV_NO_STATE)
        new = flags >> SECINFO_PT_SHIFT
        if new != PT_TCS and new != PT_TRIM:
            raise self._gp(L, f"SECINFO.PT {new} not TCS/TRIM")
        epc = self.epc
        f = epc.flags[i]
        if not f & EPCM_VALID:
            raise self._pf(L, epc_page, "EPCM not VALID")
        old = epc.pt[i]
        if not (old == PT_REG or (old == PT_TCS and new == PT_TRIM)):
            raise self._pf(L, epc_page, f"EMODT {old}->{new} not allowed")
        if f & (EPCM_PENDING | EPCM_MODIFIED):
            return self._ret(L, SgxReturn.SGX_PAGE_NOT_MODIFIABLE)
        st = epc.secs_state[epc.secs[i]]
        if not st.attributes & A_INIT:
            raise self._gp(L, "enclave not initialised")
        epc.flags[i] = (f & ~(EPCM_RWX | EPCM_PR)) | EPCM_MODIFIED
        epc.pt[i] = new
        epc.epoch[i] = st.epoch
        return 0


__all__ = ["EnclsLeaves", "EPC_BASE", "xsave_size"]
