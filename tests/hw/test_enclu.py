"""ENCLU leaves (sgx-hardware.md §4.15-§4.21)."""

from __future__ import annotations

import pytest
from tests.hw.leafkit import BASE, REG, RW, RWX, TCS, TRIM, Kit, epa

from sgxsim.hw.consts import PAGE_SIZE, SgxReturn
from sgxsim.hw.faults import GeneralProtection, PageFault
from sgxsim.hw.structs import Keyrequest, Report, Tcs

GP, PF = GeneralProtection, PageFault
R = SgxReturn
D0 = BASE + 2 * PAGE_SIZE  # first data page
D1 = BASE + 3 * PAGE_SIZE  # second data page; D0 holds SECINFOs


@pytest.fixture
def kit():
    return Kit().standard(data_pages=2)


def test_eenter_eexit(kit):
    kit.lp.regs.update(rip=0x1000, rsp=0x7000)
    kit.cpu.eenter(kit.lp, BASE, 0x5000)
    assert kit.lp.enclave is not None
    assert kit.lp.regs["rip"] == BASE + 2 * PAGE_SIZE  # OENTRY
    assert kit.lp.regs["rcx"] == 0x1003 and kit.lp.regs["rax"] == 0
    kit.cpu.eexit(kit.lp, 0x1003)
    assert kit.lp.enclave is None and kit.lp.regs["rcx"] == 0x5000
    with pytest.raises(GP):
        kit.cpu.eexit(kit.lp, 0)  # not in enclave mode


def test_eenter_in_enclave_mode_is_gp_through_aex(kit):
    kit.enter()
    with pytest.raises(GP):
        kit.cpu.eenter(kit.lp, BASE, 0x5000)  # already in enclave mode
    # Raised in enclave mode, so delivered through an AEX: enclave mode left,
    # CSSA advanced, synthetic state loaded (RAX = ERESUME, RCX = AEP).
    assert kit.lp.enclave is None
    assert kit.lp.regs["rax"] == 3 and kit.lp.regs["rcx"] == 0x5000
    assert Tcs.unpack(kit.cpu.epc.page(kit.tcs_i)).cssa == 1


def test_eenter_checks():
    k = Kit().standard(init=False)
    with pytest.raises(GP):  # not initialised
        k.enter()
    assert k.einit() == 0
    with pytest.raises(GP):
        k.cpu.eenter(k.lp, BASE + 8, 0)  # TCS misaligned
    with pytest.raises(PF) as e:
        k.cpu.eenter(k.lp, D0, 0)  # not a TCS page
    assert e.value.error_code & 0x8000
    with pytest.raises(GP):
        k.cpu.eenter(k.lp, BASE, 1 << 48)  # AEP not canonical
    k.pt.clear(BASE >> 12)
    with pytest.raises(PF) as e:
        k.cpu.eenter(k.lp, BASE, 0)
    assert e.value.error_code == 0x4  # an ordinary not-present read


def test_tcs_busy_and_cssa_limits(kit):
    kit.lp.regs["rip"] = 0x1000
    kit.cpu.eenter(kit.lp, BASE, 0x5000)
    lp2 = kit.cpu.lps[1]
    lp2.cr3 = kit.pt
    with pytest.raises(GP):  # TCS busy
        kit.cpu.eenter(lp2, BASE, 0x5000)
    kit.cpu.epc.flags[kit.data_i[0]] &= ~0x4
    with pytest.raises(PF):
        kit.cpu.store(kit.lp, D0, b"x")  # AEX: CSSA 0 -> 1 = NSSA
    with pytest.raises(GP):  # CSSA >= NSSA
        kit.cpu.eenter(kit.lp, BASE, 0x5000)
    with pytest.raises(GP):  # ERESUME of a TCS with CSSA 0
        k = Kit().standard()
        k.cpu.eresume(k.lp, BASE, 0)


def _accept(kit, flags, page, secinfo_off=0):
    la = kit.secinfo_in_enclave(2 * PAGE_SIZE + secinfo_off, flags)
    return kit.cpu.eaccept(kit.lp, la, page)


def test_eaccept_after_eaug():
    k = Kit().standard(data_pages=2)
    p = BASE + 4 * PAGE_SIZE
    i = k.eaug(4 * PAGE_SIZE)
    k.enter()
    with pytest.raises(PF):  # pending page inaccessible
        k.cpu.load(k.lp, p, 1)
    k.cpu.eresume(k.lp, BASE, 0x5000)
    assert _accept(k, REG | RW | 0x20, p) == R.SGX_PAGE_ATTRIBUTES_MISMATCH  # PENDING differs
    assert _accept(k, REG | RW | 0x8 | 0x4, p) == R.SGX_PAGE_ATTRIBUTES_MISMATCH  # X differs
    with pytest.raises(GP):  # neither PENDING nor PR: not a legal request
        _accept(k, REG | RW, p)
    k.cpu.eresume(k.lp, BASE, 0x5000)
    with pytest.raises(GP):  # TRIM without MODIFIED
        _accept(k, TRIM, p)
    k.cpu.eresume(k.lp, BASE, 0x5000)
    assert _accept(k, REG | RW | 0x8, p) == 0
    assert not k.cpu.epc.epcm(i).pending
    k.cpu.store(k.lp, p, b"ok")


def test_eaccept_after_emodpr_needs_tracking(kit):
    i = kit.data_i[1]
    assert kit.cpu.emodpr(kit.secinfo(0x1), epa(i)) == 0
    kit.enter()
    assert _accept(kit, REG | 0x1 | 0x20, D1) == R.SGX_NOT_TRACKED
    kit.cpu.eexit(kit.lp, 0)
    assert kit.cpu.etrack(epa(kit.secs_i)) == 0
    kit.enter()
    assert _accept(kit, REG | RW | 0x20, D1) == R.SGX_PAGE_ATTRIBUTES_MISMATCH
    assert _accept(kit, REG | 0x1 | 0x20, D1) == 0
    with pytest.raises(PF) as e:
        kit.cpu.store(kit.lp, D1, b"x")
    assert e.value.error_code == 0x8007


def test_eaccept_trim_and_tcs(kit):
    i = kit.data_i[1]
    assert kit.cpu.emodt(kit.secinfo(TRIM), epa(i)) == 0
    kit.cpu.etrack(epa(kit.secs_i))
    kit.enter()
    assert _accept(kit, TRIM | 0x10, D1) == 0
    assert kit.cpu.epc.epcm(i).modified is False


def test_eaccept_faults(kit):
    kit.enter()
    with pytest.raises(GP):  # SECINFO misaligned
        kit.cpu.eaccept(kit.lp, D0 + 8, D1)
    kit.cpu.eresume(kit.lp, BASE, 0x5000)
    with pytest.raises(GP):  # target outside ELRANGE
        kit.cpu.eaccept(kit.lp, kit.secinfo_in_enclave(2 * PAGE_SIZE, REG | 0x8), BASE + 0x8000)
    kit.cpu.eresume(kit.lp, BASE, 0x5000)
    with pytest.raises(PF) as e:  # not-present target: an ordinary read fault
        kit.cpu.eaccept(kit.lp, D0, BASE + 6 * PAGE_SIZE)
    assert (e.value.error_code, e.value.addr) == (0x4, BASE + 6 * PAGE_SIZE)


def test_emodpe_extends_only(kit):
    i = kit.data_i[1]
    kit.enter()
    la = kit.secinfo_in_enclave(2 * PAGE_SIZE, REG | 0x4)
    kit.cpu.emodpe(kit.lp, la, D1)
    assert kit.cpu.epc.epcm(i).perms == RWX
    la = kit.secinfo_in_enclave(2 * PAGE_SIZE, REG)
    kit.cpu.emodpe(kit.lp, la, D1)
    assert kit.cpu.epc.epcm(i).perms == RWX  # nothing removed
    with pytest.raises(PF):  # TCS target
        kit.cpu.emodpe(kit.lp, la, BASE)


def test_eacceptcopy():
    k = Kit().standard(data_pages=2)
    k.cpu.epc.page(k.data_i[1])[:4] = b"code"
    j = k.eaug(4 * PAGE_SIZE)
    k.enter()
    la = k.secinfo_in_enclave(2 * PAGE_SIZE, REG | 0x5)
    assert k.cpu.eacceptcopy(k.lp, la, BASE + 4 * PAGE_SIZE, D1) == 0
    e = k.cpu.epc.epcm(j)
    assert (e.perms, e.pending) == (0x5, False)
    assert bytes(k.cpu.epc.page(j)[:4]) == b"code"
    assert k.cpu.eacceptcopy(k.lp, la, BASE + 4 * PAGE_SIZE, D1) \
        == R.SGX_PAGE_ATTRIBUTES_MISMATCH  # no longer pending


def test_ereport_and_egetkey(kit):
    kit.enter()
    st = kit.cpu.epc.secs_state[kit.secs_i]
    # TARGETINFO (512) at D0+0x200, REPORTDATA (64) at D0+0x80, REPORT out at D1.
    kit.cpu.epc.page(kit.data_i[0])[0x200:0x228] = st.mrenclave + st.attributes.to_bytes(8, "little")
    kit.cpu.ereport(kit.lp, D0 + 0x200, D0 + 0x80, D1)
    rep = Report.unpack(kit.cpu.epc.page(kit.data_i[1])[: Report.SIZE])
    assert rep.mrenclave == st.mrenclave and rep.mrsigner == st.mrsigner
    req = Keyrequest(keyname=Keyrequest.KEYNAME_REPORT)
    kit.cpu.epc.page(kit.data_i[0])[0x400:0x600] = req.pack()
    assert kit.cpu.egetkey(kit.lp, D0 + 0x400, D1 + 0x800) == 0
    key = bytes(kit.cpu.epc.page(kit.data_i[1])[0x800:0x810])
    import hashlib
    import hmac

    assert hmac.new(key, rep.pack()[:384], hashlib.sha256).digest()[:16] == rep.mac
    req = Keyrequest(keyname=Keyrequest.KEYNAME_PROVISION)
    kit.cpu.epc.page(kit.data_i[0])[0x400:0x600] = req.pack()
    assert kit.cpu.egetkey(kit.lp, D0 + 0x400, D1 + 0x800) == R.SGX_INVALID_ATTRIBUTE
    req = Keyrequest(keyname=9)
    kit.cpu.epc.page(kit.data_i[0])[0x400:0x600] = req.pack()
    assert kit.cpu.egetkey(kit.lp, D0 + 0x400, D1 + 0x800) == R.SGX_INVALID_KEYNAME


def test_enclu_outside_enclave_mode_is_gp(kit):
    with pytest.raises(GP):
        kit.cpu.eaccept(kit.lp, D0, D1)
    with pytest.raises(GP):
        kit.cpu.emodpe(kit.lp, D0, D1)


def test_new_tcs_via_emodt_and_eaccept():
    k = Kit().standard(data_pages=2)
    i = k.data_i[1]
    k.cpu.epc.page(i)[:] = Tcs(ossa=PAGE_SIZE, nssa=1, oentry=0).pack()
    assert k.cpu.emodt(k.secinfo(TCS), epa(i)) == 0
    k.cpu.etrack(epa(k.secs_i))
    k.enter()
    assert _accept(k, TCS | 0x10, D1) == 0
    assert k.cpu.epc.epcm(i).pt == 1
