"""ENCLU leaves: per-leaf failures with the exact fault or code."""

from __future__ import annotations

import struct

import pytest
from sgxbuild import Enclave

from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType, SgxReturn, secinfo_flags
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, GeneralProtection, PageFault
from sgxsim.hw.structs import Keyrequest, Report, Targetinfo

AEP = 0x40_1000
R = SgxReturn
PEND = 0x8
MOD = 0x10
PR = 0x20


@pytest.fixture
def encl(cpu, key):
    return Enclave(cpu, key, reg_pages=4, attributes=int(Attribute.DEBUG))


def enter(cpu, encl, n=0):
    """EENTER, or ERESUME when an AEX left a frame in use (as a runtime does)."""
    lp = cpu.lps[n]
    lp.cr3 = encl.pt
    cssa = struct.unpack_from("<I", cpu.epc.page(cpu.epc.index(encl.tcs)), 24)[0]
    (cpu.eresume if cssa else cpu.eenter)(lp, encl.tcs_la, AEP)
    return lp


def put(cpu, lp, la, data):
    cpu.store(lp, la, data)


def secinfo_at(cpu, lp, encl, flags, k=0):
    la = encl.reg(k) + 0x40
    put(cpu, lp, la, struct.pack("<Q", flags) + bytes(56))
    return la


def aug(cpu, encl, la):
    pa = encl.b.alloc_epc()
    cpu.eaug(encl.b.put_pageinfo(la, 0, 0, encl.secs), pa)
    encl.map(la, pa)
    return pa


# -- EENTER / ERESUME / EEXIT ----------------------------------------------------------
def test_eenter_faults(cpu, encl):
    lp = cpu.lps[0]
    lp.cr3 = encl.pt
    with pytest.raises(GeneralProtection):
        cpu.eenter(lp, encl.tcs_la + 8, AEP)
    with pytest.raises(PageFault) as e:
        cpu.eenter(lp, 0x7000, AEP)  # not mapped: ordinary #PF
    assert e.value.error_code == PF_USER
    with pytest.raises(GeneralProtection):
        cpu.eenter(lp, encl.tcs_la, 1 << 60)  # AEP not canonical
    with pytest.raises(PageFault) as e:
        cpu.eenter(lp, encl.reg(0), AEP)  # not a TCS
    assert (e.value.addr, e.value.error_code) == (encl.reg(0), PF_PROT | PF_USER | PF_SGX)
    cpu.eenter(lp, encl.tcs_la, AEP)
    with pytest.raises(GeneralProtection):  # in enclave mode: #GP, AEX
        cpu.eenter(lp, encl.tcs_la, AEP)
    assert lp.enclave is None
    lp2 = cpu.lps[1]
    lp2.cr3 = encl.pt
    cpu.eresume(lp2, encl.tcs_la, AEP)  # the AEX left CSSA = 1
    with pytest.raises(GeneralProtection):  # TCS.STATE is ACTIVE (reference §12 item 6)
        cpu.eenter(lp, encl.tcs_la, AEP)
    assert lp.enclave is None and lp2.enclave is not None


def test_eenter_cssa_nssa_and_eresume_zero(cpu, encl):
    lp = cpu.lps[0]
    lp.cr3 = encl.pt
    with pytest.raises(GeneralProtection):
        cpu.eresume(lp, encl.tcs_la, AEP)  # CSSA = 0
    for _ in range(2):
        cpu.eenter(lp, encl.tcs_la, AEP)
        with pytest.raises(PageFault):
            cpu.load(lp, encl.tcs_la, 1)  # AEX: CSSA += 1
    with pytest.raises(GeneralProtection):
        cpu.eenter(lp, encl.tcs_la, AEP)  # CSSA = NSSA


def test_eenter_uninitialised_and_ssa(cpu, key):
    from sgxbuild import TCS_FLAGS, Builder, map_page, tcs_page

    from sgxsim.hw.paging import PageTable
    b = Builder(cpu)
    base = 0x50_0000_0000
    secs = b.ecreate(0x4000, base)
    tcs = b.eadd(secs, base, tcs_page(0x1000), TCS_FLAGS)
    pt = PageTable()
    map_page(pt, base, tcs)
    lp = cpu.lps[0]
    lp.cr3 = pt
    with pytest.raises(GeneralProtection):  # not initialised
        cpu.eenter(lp, base, AEP)
    e = Enclave(cpu, key, base=0x60_0000_0000)
    lp.cr3 = e.pt
    e.pt.clear((e.base + 0x1000) >> 12)
    with pytest.raises(PageFault) as x:  # SSA page not mapped: ordinary #PF (write)
        cpu.eenter(lp, e.tcs_la, AEP)
    assert x.value.addr == e.base + 0x1000 and x.value.error_code == 0x6
    e.map(e.base + 0x1000, e.pages[e.reg(0)])  # SSA address mapped to the wrong page
    with pytest.raises(PageFault) as x:
        cpu.eenter(lp, e.tcs_la, AEP)
    assert x.value.error_code == 0x8007


def test_eexit(cpu, encl):
    lp = cpu.lps[0]
    with pytest.raises(GeneralProtection):
        cpu.eexit(lp, AEP)
    lp = enter(cpu, encl)
    cpu.eexit(lp, 0x5000)
    assert lp.enclave is None and lp.regs["rip"] == 0x5000 and lp.regs["rcx"] == AEP
    lp = enter(cpu, encl)
    with pytest.raises(GeneralProtection):
        cpu.eexit(lp, 1 << 50)
    assert lp.enclave is None  # AEX


# -- EACCEPT -------------------------------------------------------------------------------
def test_eaccept_after_eaug(cpu, encl):
    la = encl.reg(4)
    aug(cpu, encl, la)
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 3, PEND))
    bad = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 0, PEND), k=1)
    assert cpu.eaccept(lp, bad, la) == R.SGX_PAGE_ATTRIBUTES_MISMATCH
    assert cpu.eaccept(lp, si, la) == 0
    assert cpu.load(lp, la, 1) == b"\0"
    assert cpu.eaccept(lp, si, la) == R.SGX_PAGE_ATTRIBUTES_MISMATCH  # no longer PENDING


def test_eaccept_faults(cpu, encl):
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 3, PEND))
    with pytest.raises(PageFault) as e:  # not present: ordinary #PF, U read
        cpu.eaccept(lp, si, encl.reg(6))
    assert e.value.error_code == PF_USER == 0x4
    lp = enter(cpu, encl)
    with pytest.raises(GeneralProtection):
        cpu.eaccept(lp, si + 8, encl.reg(1))
    lp = enter(cpu, encl)
    with pytest.raises(GeneralProtection):
        cpu.eaccept(lp, 0x1000, encl.reg(1))  # outside ELRANGE
    lp = enter(cpu, encl)
    with pytest.raises(PageFault) as e:
        cpu.eaccept(lp, encl.tcs_la, encl.reg(1))  # SECINFO in a TCS page
    assert e.value.error_code == 0x8005
    lp = enter(cpu, encl)
    bad = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 3))  # no PR/PENDING
    with pytest.raises(GeneralProtection):
        cpu.eaccept(lp, bad, encl.reg(1))
    assert cpu.lps[0].enclave is None
    with pytest.raises(GeneralProtection):
        cpu.eaccept(cpu.lps[1], si, encl.reg(1))  # not in enclave mode


def test_eaccept_emodpr_needs_tracking(cpu, encl):
    page = encl.pages[encl.reg(2)]
    assert cpu.emodpr(encl.b.put_secinfo(1), page) == 0
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 1, PR))
    assert cpu.eaccept(lp, si, encl.reg(2)) == R.SGX_NOT_TRACKED  # no ETRACK yet
    assert cpu.etrack(encl.secs) == 0
    assert cpu.eaccept(lp, si, encl.reg(2)) == R.SGX_NOT_TRACKED  # this LP still inside
    cpu.eexit(lp, AEP)
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 1, PR))
    assert cpu.eaccept(lp, si, encl.reg(2)) == 0
    assert cpu.epc.flags[cpu.epc.index(page)] & 0x7F == 1


def test_eaccept_trim(cpu, encl):
    page = encl.pages[encl.reg(3)]
    assert cpu.emodt(encl.b.put_secinfo(secinfo_flags(PageType.PT_TRIM)), page) == 0
    assert cpu.etrack(encl.secs) == 0
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_TRIM, 0, MOD))
    assert cpu.eaccept(lp, si, encl.reg(3)) == 0
    # The kernel's REMOVE_PAGES probe: after the accept EMODPR takes a #PF.
    with pytest.raises(PageFault):
        cpu.emodpr(encl.b.put_secinfo(7), page)
    assert cpu.eremove(page) == 0


# -- EACCEPTCOPY / EMODPE --
def test_eacceptcopy(cpu, encl):
    la = encl.reg(5)
    pa = aug(cpu, encl, la)
    lp = enter(cpu, encl)
    si = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 5))
    with pytest.raises(PageFault) as e:  # source is the TCS
        cpu.eacceptcopy(lp, si, la, encl.tcs_la)
    assert e.value.addr == encl.tcs_la and e.value.sgx
    lp = enter(cpu, encl)
    assert cpu.eacceptcopy(lp, si, encl.reg(1), encl.reg(0)) == R.SGX_PAGE_ATTRIBUTES_MISMATCH
    bad = secinfo_at(cpu, lp, encl, secinfo_flags(PageType.PT_REG, 2), k=1)
    with pytest.raises(GeneralProtection):
        cpu.eacceptcopy(lp, bad, la, encl.reg(0))
    lp = enter(cpu, encl)
    assert cpu.eacceptcopy(lp, si, la, encl.reg(0)) == 0
    i = cpu.epc.index(pa)
    assert cpu.epc.flags[i] & 0x7F == 5 and cpu.epc.page(i)[:16] == b"\1" * 16


def test_emodpe(cpu, key):
    e = Enclave(cpu, key, reg_pages=2, reg_flags=secinfo_flags(PageType.PT_REG, 1))
    lp = enter(cpu, e)
    with pytest.raises(PageFault):
        cpu.store(lp, e.reg(1), b"x")
    lp = enter(cpu, e)
    # SECINFO must be in a readable REG page: use the (RW) SSA page 2.
    si = e.base + 0x2000 + 0x40
    cpu.store(lp, si, struct.pack("<Q", 2) + bytes(56))
    with pytest.raises(GeneralProtection):  # would give W without R? R is 1: allowed
        cpu.emodpe(lp, si + 8, e.reg(1))
    lp = enter(cpu, e)
    cpu.emodpe(lp, si, e.reg(1))
    cpu.store(lp, e.reg(1), b"x")
    with pytest.raises(PageFault) as x:
        cpu.emodpe(lp, si, e.tcs_la)
    assert x.value.addr == e.tcs_la and x.value.sgx
    lp = enter(cpu, e)
    with pytest.raises(GeneralProtection):
        cpu.emodpe(lp, si, 0x3000)  # outside ELRANGE


# -- EREPORT / EGETKEY --
def test_ereport_and_egetkey(cpu, encl):
    import hashlib
    import hmac
    lp = enter(cpu, encl)
    st = cpu.epc.secs_state[cpu.epc.index(encl.secs)]
    ti = encl.reg(0)
    cpu.store(lp, ti, Targetinfo(mrenclave=st.mrenclave, attributes=int(st.attributes),
                                 xfrm=st.xfrm).pack()[:512])
    rd = encl.reg(1)
    cpu.store(lp, rd, b"R" * 64)
    out = encl.reg(2)
    cpu.ereport(lp, ti, rd, out)
    rep = Report.unpack(cpu.load(lp, out, Report.SIZE))
    assert rep.mrenclave == st.mrenclave and rep.mrsigner == encl.mrsigner
    assert rep.reportdata == b"R" * 64
    kr = encl.reg(3)
    cpu.store(lp, kr, Keyrequest(keyname=Keyrequest.KEYNAME_REPORT).pack())
    assert cpu.egetkey(lp, kr, out + 0x800) == 0
    k = cpu.load(lp, out + 0x800, 16)
    assert hmac.new(k, rep.pack()[:384], hashlib.sha256).digest()[:16] == rep.mac
    cpu.store(lp, kr, Keyrequest(keyname=9).pack())
    assert cpu.egetkey(lp, kr, out) == R.SGX_INVALID_KEYNAME
    cpu.store(lp, kr, Keyrequest(keyname=Keyrequest.KEYNAME_PROVISION).pack())
    assert cpu.egetkey(lp, kr, out) == R.SGX_INVALID_ATTRIBUTE
    cpu.store(lp, kr, Keyrequest(keyname=Keyrequest.KEYNAME_SEAL, isvsvn=1).pack())
    assert cpu.egetkey(lp, kr, out) == R.SGX_INVALID_ISVSVN
    cpu.store(lp, kr, Keyrequest(keyname=Keyrequest.KEYNAME_SEAL, keypolicy=0x4).pack())
    with pytest.raises(GeneralProtection):
        cpu.egetkey(lp, kr, out)
    lp = enter(cpu, encl)
    with pytest.raises(GeneralProtection):
        cpu.ereport(lp, ti + 8, rd, out)
    lp = enter(cpu, encl)
    with pytest.raises(PageFault):
        cpu.ereport(lp, encl.tcs_la, rd, out)
    assert PAGE_SIZE
