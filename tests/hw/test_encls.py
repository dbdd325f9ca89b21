"""ENCLS leaves: one test per documented failure, asserting the exact fault or code."""

from __future__ import annotations

import struct

import pytest
from sgxbuild import REG_RW, REG_RWX, TCS_FLAGS, Builder, Enclave, tcs_page

from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType, SgxReturn, secinfo_flags
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_WRITE, GeneralProtection, PageFault
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.structs import Pcmd, Secs

BASE = 0x20_0000_0000
R = SgxReturn


def pf(exc, addr, code=PF_PROT | PF_SGX):
    assert isinstance(exc.value, PageFault)
    assert exc.value.addr == addr and exc.value.error_code == code


# -- ECREATE -----------------------------------------------------------------
def test_ecreate_checks(cpu):
    b = Builder(cpu)
    epc = b.alloc_epc()
    src = b.put_src(Secs(size=0x2000, base=BASE, ssa_frame_size=1, xfrm=3,
                         attributes=int(Attribute.MODE64BIT)).pack())
    pi = b.put_pageinfo(srcpge=src, secinfo=b.put_secinfo(0))
    with pytest.raises(GeneralProtection):
        cpu.ecreate(pi + 8, epc)
    with pytest.raises(GeneralProtection):
        cpu.ecreate(pi, epc + 8)
    with pytest.raises(PageFault) as e:
        cpu.ecreate(pi, 0x1000)
    pf(e, 0x1000, PF_PROT | PF_SGX | PF_WRITE)
    b.put_pageinfo(linaddr=0x1000, srcpge=src, secinfo=b.scratch + 64)
    with pytest.raises(GeneralProtection):
        cpu.ecreate(pi, epc)
    b.put_pageinfo(srcpge=src, secinfo=b.put_secinfo(TCS_FLAGS))
    with pytest.raises(GeneralProtection):
        cpu.ecreate(pi, epc)
    b.put_secinfo(0)
    cpu.ecreate(pi, epc)
    with pytest.raises(PageFault) as e:
        cpu.ecreate(pi, epc)
    pf(e, epc, PF_PROT | PF_SGX | PF_WRITE)


@pytest.mark.parametrize("fields", [
    dict(xfrm=1), dict(xfrm=0x3 | 0x8), dict(miscselect=2), dict(ssa_frame_size=0),
    dict(size=0x1000), dict(size=0x3000), dict(base=BASE + 0x1000),
    dict(attributes=int(Attribute.MODE64BIT | Attribute.INIT)),
    dict(attributes=int(Attribute.MODE64BIT) | (1 << 3)),
    dict(attributes=0, base=1 << 33), dict(base=1 << 47),
    dict(reserved4=b"\1" + bytes(3833)), dict(config_svn=1), dict(size=1 << 36, base=0),
])
def test_ecreate_secs_validation_gp(cpu, fields):
    b = Builder(cpu)
    vals = dict(size=0x2000, base=BASE, ssa_frame_size=1, xfrm=3,
                attributes=int(Attribute.MODE64BIT))
    vals.update(fields)
    b.put_src(Secs(**vals).pack())
    with pytest.raises(GeneralProtection):
        cpu.ecreate(b.put_pageinfo(srcpge=b.src, secinfo=b.put_secinfo(0)), b.alloc_epc())


# -- EADD / EEXTEND --------------------------------------------------------------
def test_eadd_checks(cpu):
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    epc = b.alloc_epc()
    si = b.put_secinfo(REG_RWX)
    with pytest.raises(PageFault) as e:
        cpu.eadd(b.put_pageinfo(BASE, b.src, si, secs), 0x2000)
    pf(e, 0x2000, PF_PROT | PF_SGX | PF_WRITE)
    with pytest.raises(GeneralProtection):
        cpu.eadd(b.put_pageinfo(BASE + 1, b.src, si, secs), epc)
    with pytest.raises(PageFault) as e:
        cpu.eadd(b.put_pageinfo(BASE, b.src, si, 0x3000), epc)
    pf(e, 0x3000)
    for bad in (secinfo_flags(PageType.PT_VA, 3), REG_RW | 0x8, REG_RW | (1 << 16)):
        b.put_secinfo(bad)
        with pytest.raises(GeneralProtection):
            cpu.eadd(b.put_pageinfo(BASE, b.src, si, secs), epc)
    b.put_secinfo(secinfo_flags(PageType.PT_REG, 2))  # W without R
    with pytest.raises(GeneralProtection):
        cpu.eadd(b.put_pageinfo(BASE, b.src, si, secs), epc)
    b.put_secinfo(REG_RW)
    with pytest.raises(GeneralProtection):  # outside ELRANGE
        cpu.eadd(b.put_pageinfo(BASE + 0x4000, b.src, si, secs), epc)
    other = b.alloc_epc()
    with pytest.raises(PageFault) as e:  # SECS operand not a SECS page
        cpu.eadd(b.put_pageinfo(BASE, b.src, si, other), epc)
    pf(e, other)
    b.put_src(tcs_page(0x1000)[:100] + b"\1")
    b.put_secinfo(TCS_FLAGS)
    with pytest.raises(GeneralProtection):  # TCS reserved area
        cpu.eadd(b.put_pageinfo(BASE, b.src, si, secs), epc)
    b.put_src(b"")
    b.put_secinfo(REG_RW)
    cpu.eadd(b.put_pageinfo(BASE, b.src, si, secs), epc)
    with pytest.raises(PageFault) as e:
        cpu.eadd(b.put_pageinfo(BASE + 0x1000, b.src, si, secs), epc)
    pf(e, epc, PF_PROT | PF_SGX | PF_WRITE)


def test_eadd_tcs_forces_fields(cpu):
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    from sgxsim.hw.structs import Tcs
    raw = Tcs(ossa=0x1000, nssa=1, cssa=5, aep=7, state=1, flags=1).pack()
    epc = b.eadd(secs, BASE, raw, TCS_FLAGS | 7, measure=False) if False else None
    assert epc is None
    with pytest.raises(GeneralProtection):  # PT_TCS with RWX stays legal; bits 3-5 not
        b.eadd(secs, BASE, raw, TCS_FLAGS | 0x20, measure=False)
    epc = b.eadd(secs, BASE, raw, TCS_FLAGS | 7, measure=False)
    t = Tcs.unpack(cpu.epc.page(cpu.epc.index(epc)))
    assert (t.cssa, t.aep, t.state, t.flags) == (0, 0, 0, 0)
    assert cpu.epc.flags[cpu.epc.index(epc)] & 7 == 0


def test_eextend_checks(cpu, key):
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    secs2 = b.ecreate(0x4000, BASE)
    page = b.eadd(secs, BASE, b"", REG_RW, measure=False)
    with pytest.raises(GeneralProtection):
        cpu.eextend(secs + 8, page)
    with pytest.raises(PageFault) as e:
        cpu.eextend(0x5000, page)
    pf(e, 0x5000)
    with pytest.raises(GeneralProtection):
        cpu.eextend(secs, page + 8)
    with pytest.raises(PageFault) as e:
        cpu.eextend(secs, 0x5100)
    pf(e, 0x5100)
    with pytest.raises(PageFault) as e:
        cpu.eextend(secs, secs2)  # a SECS page is not REG/TCS
    pf(e, secs2)
    with pytest.raises(GeneralProtection):
        cpu.eextend(secs2, page)  # not this page's SECS
    cpu.eextend(secs, page + 256)
    e2 = Enclave(cpu, key)
    with pytest.raises(GeneralProtection):  # initialised (reference §12 item 5)
        cpu.eextend(e2.secs, e2.pages[e2.reg(0)])


# -- EINIT ---------------------------------------------------------------------------
def test_einit_faults_and_attribute_codes(cpu, key):
    from sgxsim.hw import sigstruct as sigmod
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE, attributes=Attribute.MODE64BIT | Attribute.DEBUG)
    mr = cpu.epc.secs_state[cpu.epc.index(secs)].measurement.digest()
    with pytest.raises(GeneralProtection):
        cpu.einit(b.src + 64, secs, b.token)
    with pytest.raises(PageFault) as e:
        cpu.einit(b.src, 0x4000, b.token)
    pf(e, 0x4000)
    # Mask: the signer demands DEBUG=0.
    sig = sigmod.sign(sigmod.build(mr, attributes=Attribute.MODE64BIT,
                                   attributes_mask=Attribute.DEBUG), key)
    b.set_launch_hash(sigmod.mrsigner(sig))
    assert b.einit(secs, sig.pack()) == R.SGX_INVALID_ATTRIBUTE
    sig = sigmod.sign(sigmod.build(mr, miscselect=1, misc_mask=1), key)
    assert b.einit(secs, sig.pack()) == R.SGX_INVALID_ATTRIBUTE
    sig = sigmod.sign(sigmod.build(mr, vendor=0x1234), key)
    assert b.einit(secs, sig.pack()) == R.SGX_INVALID_SIG_STRUCT
    sig = sigmod.sign(sigmod.build(mr), key)
    assert b.einit(secs, sig.pack()) == 0
    with pytest.raises(GeneralProtection):  # already initialised
        b.einit(secs, sig.pack())


def test_einit_einittokenkey_needs_le_signer(cpu, key):
    from sgxsim.hw import sigstruct as sigmod
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE, attributes=Attribute.MODE64BIT | Attribute.EINITTOKENKEY)
    mr = cpu.epc.secs_state[cpu.epc.index(secs)].measurement.digest()
    sig = sigmod.sign(sigmod.build(mr), key)
    assert b.einit(secs, sig.pack()) == R.SGX_INVALID_ATTRIBUTE  # MSRs hold Intel's hash
    b.set_launch_hash(sigmod.mrsigner(sig))
    assert b.einit(secs, sig.pack()) == 0


def test_einit_token_path(cpu, key):
    import hashlib
    import hmac

    from sgxsim.hw import sigstruct as sigmod
    from sgxsim.hw.structs import Einittoken
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    st = cpu.epc.secs_state[cpu.epc.index(secs)]
    mr = st.measurement.digest()
    sig = sigmod.sign(sigmod.build(mr), key)
    tok = Einittoken(valid=1, attributes=int(st.attributes), xfrm=st.xfrm, mrenclave=mr,
                     mrsigner=sigmod.mrsigner(sig))
    assert b.einit(secs, sig.pack(), tok.pack()) == R.SGX_INVALID_EINITTOKEN  # bad MAC
    mac = hmac.new(cpu.einittoken_key(), tok.pack()[:192], hashlib.sha256).digest()[:16]
    assert b.einit(secs, sig.pack(), tok.replace(mac=mac).pack()) == 0


# -- EREMOVE ---------------------------------------------------------------------------
def test_eremove(cpu, key):
    e = Enclave(cpu, key)
    with pytest.raises(GeneralProtection):
        cpu.eremove(e.secs + 1)
    with pytest.raises(PageFault) as x:
        cpu.eremove(0x1000)
    pf(x, 0x1000, PF_PROT | PF_SGX | PF_WRITE)
    assert cpu.eremove(e.b.alloc_epc()) == 0  # not VALID: no-op success
    assert cpu.eremove(e.secs) == R.SGX_CHILD_PRESENT
    lp = cpu.lps[0]
    lp.cr3 = e.pt
    cpu.eenter(lp, e.tcs_la, 0x1000)
    assert cpu.eremove(e.pages[e.reg(0)]) == R.SGX_ENCLAVE_ACT
    cpu.eexit(lp, 0x1000)
    for pa in e.pages.values():
        assert cpu.eremove(pa) == 0
    assert cpu.eremove(e.secs) == 0
    assert not cpu.epc.valid(cpu.epc.index(e.secs))


def test_eremove_accepted_trim_ignores_enclave_act(cpu, key):
    e = Enclave(cpu, key)
    i = cpu.epc.index(e.pages[e.reg(0)])
    assert cpu.emodt(e.b.put_secinfo(secinfo_flags(PageType.PT_TRIM)), e.pages[e.reg(0)]) == 0
    cpu.epc.flags[i] &= ~0x20  # as EACCEPT leaves it (MODIFIED=0)
    lp = cpu.lps[0]
    lp.cr3 = e.pt
    cpu.eenter(lp, e.tcs_la, 0x1000)
    assert cpu.eremove(e.pages[e.reg(0)]) == 0  # reference §12 item 1


# -- EDBGRD / EDBGWR ---------------------------------------------------------------------
def test_edbg(cpu, key):
    e = Enclave(cpu, key, attributes=int(Attribute.DEBUG))
    pa = e.pages[e.reg(0)]
    assert cpu.edbgrd(pa) == (0, int.from_bytes(b"\1" * 8, "little"))
    assert cpu.edbgwr(pa + 8, 0x55) == 0 and cpu.edbgrd(pa + 8) == (0, 0x55)
    with pytest.raises(GeneralProtection):
        cpu.edbgrd(pa + 4)
    with pytest.raises(PageFault):
        cpu.edbgrd(0x1000)
    with pytest.raises(PageFault):
        cpu.edbgrd(e.b.alloc_epc())  # not VALID
    with pytest.raises(PageFault):
        cpu.edbgrd(e.secs)  # PT_SECS not debuggable
    with pytest.raises(GeneralProtection):
        cpu.edbgrd(e.tcs + 72)  # beyond the TCS limit
    with pytest.raises(GeneralProtection):
        cpu.edbgwr(e.tcs + 16, 1)  # only FLAGS
    assert cpu.edbgwr(e.tcs + 8, 1) == 0
    aug = e.b.alloc_epc()
    cpu.eaug(e.b.put_pageinfo(e.reg(5), 0, 0, e.secs), aug)
    assert cpu.edbgrd(aug) == (R.SGX_PAGE_NOT_DEBUGGABLE, 0)
    assert cpu.edbgwr(aug, 1) == R.SGX_PAGE_NOT_DEBUGGABLE
    cpu2_e = Enclave(cpu, key, base=0x30_0000_0000)
    with pytest.raises(GeneralProtection):  # not a debug enclave
        cpu.edbgrd(cpu2_e.pages[cpu2_e.reg(0)])


# -- EBLOCK / ETRACK / EPA / EWB / ELDU -----------------------------------------------------
def test_eblock_codes(cpu, key):
    e = Enclave(cpu, key)
    va = e.b.alloc_epc()
    cpu.epa(va)
    assert cpu.eblock(e.b.alloc_epc()) == R.SGX_PG_INVLD
    assert cpu.eblock(e.secs) == R.SGX_PG_IS_SECS
    assert cpu.eblock(va) == R.SGX_NOTBLOCKABLE
    assert cpu.eblock(e.pages[e.reg(0)]) == 0
    assert cpu.eblock(e.pages[e.reg(0)]) == R.SGX_BLKSTATE
    with pytest.raises(GeneralProtection):
        cpu.eblock(va + 4)
    with pytest.raises(PageFault):
        cpu.eblock(0x1000)


def test_etrack_prev_incomplete(cpu, key):
    e = Enclave(cpu, key)
    lp = cpu.lps[1]
    lp.cr3 = e.pt
    cpu.eenter(lp, e.tcs_la, 0x1000)
    assert cpu.etrack(e.secs) == 0
    assert cpu.etrack(e.secs) == R.SGX_PREV_TRK_INCMPL
    cpu.eexit(lp, 0x1000)
    assert cpu.etrack(e.secs) == 0
    with pytest.raises(PageFault) as x:
        cpu.etrack(e.tcs)
    pf(x, e.tcs)


def test_epa(cpu):
    b = Builder(cpu)
    va = b.alloc_epc()
    with pytest.raises(GeneralProtection):
        cpu.epa(va, rbx=2)
    cpu.epa(va)
    with pytest.raises(PageFault) as x:
        cpu.epa(va)
    pf(x, va, PF_PROT | PF_SGX | PF_WRITE)


def evict_setup(cpu, key):
    e = Enclave(cpu, key)
    va = e.b.alloc_epc()
    cpu.epa(va)
    back = cpu.phys.alloc_frame() << 12
    return e, va, back


def ewb(cpu, e, page, va_slot, back):
    pi = e.b.put_pageinfo(0, back, e.b.scratch + 128, 0)
    return cpu.ewb(pi, page, va_slot)


def test_ewb_codes_and_round_trip(cpu, key):
    e, va, back = evict_setup(cpu, key)
    page = e.pages[e.reg(0)]
    i = cpu.epc.index(page)
    before = bytes(cpu.epc.page(i)), cpu.epc.flags[i], cpu.epc.pt[i], cpu.epc.addr[i]
    assert ewb(cpu, e, page, va, back) == R.SGX_PAGE_NOT_BLOCKED
    assert cpu.eblock(page) == 0
    assert ewb(cpu, e, page, va, back) == R.SGX_NOT_TRACKED
    assert cpu.etrack(e.secs) == 0
    assert ewb(cpu, e, e.secs, va + 8, back) == R.SGX_CHILD_PRESENT
    assert ewb(cpu, e, page, va, back) == 0
    assert not cpu.epc.valid(i)
    linaddr = struct.unpack_from("<Q", cpu.phys.read(e.b.scratch, 8))[0]
    assert linaddr == e.reg(0)
    # Tampered contents -> MAC failure, slot kept.
    new = e.b.alloc_epc()
    pi = e.b.put_pageinfo(e.reg(0), back, e.b.scratch + 128, e.secs)
    cpu.phys.write(back + 7, b"\x99")
    assert cpu.eldu(pi, new, va) == R.SGX_MAC_COMPARE_FAIL
    cpu.phys.write(back + 7, before[0][7:8])
    assert cpu.eldu(pi, new, va) == 0
    j = cpu.epc.index(new)
    after = bytes(cpu.epc.page(j)), cpu.epc.flags[j], cpu.epc.pt[j], cpu.epc.addr[j]
    assert after == (before[0], before[1], before[2], before[3])
    # Replay: the slot was consumed.
    again = e.b.alloc_epc()
    assert cpu.eldu(pi, again, va) == R.SGX_MAC_COMPARE_FAIL


def test_ewb_operand_faults(cpu, key):
    e, va, back = evict_setup(cpu, key)
    page = e.pages[e.reg(0)]
    with pytest.raises(GeneralProtection):
        ewb(cpu, e, page, va + 4, back)
    with pytest.raises(PageFault) as x:
        ewb(cpu, e, page, 0x8000, back)
    pf(x, 0x8000, PF_PROT | PF_SGX | PF_WRITE)
    with pytest.raises(GeneralProtection):
        ewb(cpu, e, page, page + 8, back)
    with pytest.raises(PageFault) as x:
        ewb(cpu, e, page, e.pages[e.reg(1)], back)  # RDX not a VA page
    pf(x, e.pages[e.reg(1)], PF_PROT | PF_SGX | PF_WRITE)
    with pytest.raises(PageFault) as x:
        ewb(cpu, e, e.b.alloc_epc(), va, back)
    e.b.put_pageinfo(1, back, e.b.scratch + 128, 0)
    with pytest.raises(GeneralProtection):
        cpu.ewb(e.b.scratch, page, va)


def test_ewb_slot_occupied_and_eldb(cpu, key):
    e, va, back = evict_setup(cpu, key)
    p0, p1 = e.pages[e.reg(0)], e.pages[e.reg(1)]
    for p in (p0, p1):
        assert cpu.eblock(p) == 0
    assert cpu.etrack(e.secs) == 0
    assert ewb(cpu, e, p0, va, back) == 0
    back2 = cpu.phys.alloc_frame() << 12
    assert ewb(cpu, e, p1, va, back2) == R.SGX_VA_SLOT_OCCUPIED
    assert not cpu.epc.valid(cpu.epc.index(p1))
    new = e.b.alloc_epc()
    pi = e.b.put_pageinfo(e.reg(1), back2, e.b.scratch + 128, e.secs)
    assert cpu.eldb(pi, new, va) == 0
    assert cpu.epc.flags[cpu.epc.index(new)] & 0x08  # BLOCKED
    with pytest.raises(PageFault):
        cpu.eldb(pi, new, va)  # target VALID


def test_ewb_eldu_secs(cpu, key):
    e, va, back = evict_setup(cpu, key)
    for _la, p in list(e.pages.items()):
        cpu.eblock(p)
    assert cpu.etrack(e.secs) == 0
    for k, p in enumerate(e.pages.values()):
        fr = cpu.phys.alloc_frame() << 12
        pi = e.b.put_pageinfo(0, fr, e.b.scratch + 128 + 128 * (k % 8), 0)
        assert cpu.ewb(pi, p, va + 8 * (k + 1)) == 0
    assert ewb(cpu, e, e.secs, va, back) == 0
    pc = Pcmd.unpack(cpu.phys.read(e.b.scratch + 128, 128))
    assert pc.secinfo[1] == PageType.PT_SECS
    new = e.b.alloc_epc()
    assert cpu.eldu(e.b.put_pageinfo(0, back, e.b.scratch + 128, 0), new, va) == 0
    assert cpu.epc.secs_state[cpu.epc.index(new)].attributes & Attribute.INIT


# -- EAUG / EMODPR / EMODT -----------------------------------------------------------------------
def test_eaug_checks(cpu, key):
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    epc = b.alloc_epc()
    with pytest.raises(GeneralProtection):  # not initialised
        cpu.eaug(b.put_pageinfo(BASE, 0, 0, secs), epc)
    e = Enclave(cpu, key, base=0x30_0000_0000)
    with pytest.raises(GeneralProtection):
        cpu.eaug(b.put_pageinfo(e.reg(5), b.src, 0, e.secs), epc)
    with pytest.raises(GeneralProtection):
        cpu.eaug(b.put_pageinfo(e.reg(5), 0, b.scratch + 64, e.secs), epc)
    with pytest.raises(GeneralProtection):
        cpu.eaug(b.put_pageinfo(e.base + 0x10000, 0, 0, e.secs), epc)
    with pytest.raises(PageFault) as x:
        cpu.eaug(b.put_pageinfo(e.reg(5), 0, 0, e.tcs), epc)
    pf(x, e.tcs)
    cpu.eaug(b.put_pageinfo(e.reg(5), 0, 0, e.secs), epc)
    i = cpu.epc.index(epc)
    assert cpu.epc.pt[i] == PageType.PT_REG and cpu.epc.flags[i] == 0x80 | 0x10 | 3
    with pytest.raises(PageFault) as x:
        cpu.eaug(b.put_pageinfo(e.reg(6), 0, 0, e.secs), epc)
    pf(x, epc, PF_PROT | PF_SGX | PF_WRITE)
    sgx1 = type(cpu)(16, sgx2=False)
    with pytest.raises(GeneralProtection):
        sgx1.eaug(0, EPC_BASE)


def test_emodpr_order(cpu, key):
    e = Enclave(cpu, key)
    page = e.pages[e.reg(0)]
    si = e.b.put_secinfo(1)
    with pytest.raises(GeneralProtection):
        cpu.emodpr(si + 8, page)
    e.b.put_secinfo(2)  # W without R
    with pytest.raises(GeneralProtection):
        cpu.emodpr(si, page)
    e.b.put_secinfo(1)
    with pytest.raises(PageFault):
        cpu.emodpr(si, e.b.alloc_epc())
    assert cpu.emodpr(si, page) == 0
    i = cpu.epc.index(page)
    assert cpu.epc.flags[i] & 0x47 == 0x41  # R only, PR
    with pytest.raises(PageFault) as x:
        cpu.emodpr(si, e.tcs)  # not REG
    pf(x, e.tcs)
    cpu.emodt(e.b.put_secinfo(secinfo_flags(PageType.PT_TRIM)), page)
    e.b.put_secinfo(7)
    assert cpu.emodpr(si, page) == R.SGX_PAGE_NOT_MODIFIABLE  # state before type
    cpu.epc.flags[i] &= ~0x20  # accepted
    with pytest.raises(PageFault):
        cpu.emodpr(si, page)


def test_emodt_order(cpu, key):
    e = Enclave(cpu, key)
    page = e.pages[e.reg(0)]
    si = e.b.put_secinfo(secinfo_flags(PageType.PT_REG))
    with pytest.raises(GeneralProtection):
        cpu.emodt(si, page)
    e.b.put_secinfo(secinfo_flags(PageType.PT_TCS))
    assert cpu.emodt(si, page) == 0
    with pytest.raises(PageFault) as x:  # TCS -> TCS: type first
        cpu.emodt(si, page)
    pf(x, page)
    e.b.put_secinfo(secinfo_flags(PageType.PT_TRIM))
    assert cpu.emodt(si, page) == R.SGX_PAGE_NOT_MODIFIABLE
    with pytest.raises(PageFault):
        cpu.emodt(si, e.secs)
    b = Builder(cpu)
    secs = b.ecreate(0x4000, BASE)
    p = b.eadd(secs, BASE, b"", REG_RW, measure=False)
    with pytest.raises(GeneralProtection):  # not initialised
        cpu.emodt(si, p)
    assert PAGE_SIZE and TCS_FLAGS
