"""The access check: paging, then EPCM in enclave mode; abort-page outside; AEX."""

from __future__ import annotations

import struct

import pytest
from sgxbuild import REG_RW, Enclave, map_page

from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.faults import (
    PF_PROT,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    GeneralProtection,
    PageFault,
)
from sgxsim.hw.structs import SsaGpr, Tcs

AEP = 0x40_1000


@pytest.fixture
def encl(cpu, key):
    return Enclave(cpu, key, reg_pages=3, miscselect=1)


def enter(cpu, encl, lp_index=0):
    lp = cpu.lps[lp_index]
    lp.cr3 = encl.pt
    lp.regs["rip"] = AEP
    cpu.eenter(lp, encl.tcs_la, AEP)
    return lp


def test_eenter_registers(cpu, encl):
    lp = enter(cpu, encl)
    assert lp.regs["rip"] == encl.base + 0x2000
    assert lp.regs["rax"] == 0 and lp.regs["rbx"] == encl.tcs_la and lp.regs["rcx"] == AEP + 3
    assert lp.enclave is not None


def test_outside_enclave_epc_is_abort_page(cpu, encl):
    lp = cpu.lps[0]
    lp.cr3 = encl.pt
    assert cpu.load(lp, encl.reg(0), 8) == b"\xff" * 8
    cpu.store(lp, encl.reg(0), b"zz")
    assert cpu.epc.page(cpu.epc.index(encl.pages[encl.reg(0)]))[:2] == b"\x01\x01"


def test_user_write_readonly_pte_is_0x7(cpu, encl):
    lp = cpu.lps[0]
    lp.cr3 = encl.pt
    map_page(encl.pt, 0x5000, cpu.phys.alloc_frame() << 12, write=False)
    with pytest.raises(PageFault) as e:
        cpu.store(lp, 0x5000, b"x")
    assert (e.value.addr, e.value.error_code) == (0x5000, PF_PROT | PF_WRITE | PF_USER)
    assert e.value.error_code == 0x7


def test_not_present_codes(cpu, encl):
    lp = cpu.lps[0]
    lp.cr3 = encl.pt
    with pytest.raises(PageFault) as e:
        cpu.store(lp, 0x7000, b"x")
    assert e.value.error_code == PF_WRITE | PF_USER == 0x6
    with pytest.raises(PageFault) as e:
        cpu.load(lp, 0x7000, 1)
    assert e.value.error_code == PF_USER == 0x4


def test_epcm_denials_in_enclave(cpu, encl, key):
    lp = enter(cpu, encl)
    # TCS page: not PT_REG -> read denied by the EPCM: 0x8005, AEX, CR2 masked.
    with pytest.raises(PageFault) as e:
        cpu.load(lp, encl.tcs_la + 0x18, 8)
    assert e.value.error_code == PF_PROT | PF_USER | PF_SGX == 0x8005
    assert e.value.addr == encl.tcs_la and lp.cr2 == encl.tcs_la
    assert lp.enclave is None and lp.regs["rax"] == 3 and lp.regs["rcx"] == AEP
    assert lp.exception == (14, 0x8005, encl.tcs_la)


def test_epcm_write_denied_is_0x8007(cpu, key):
    from sgxbuild import REG_RWX

    from sgxsim.hw.consts import PageType, secinfo_flags
    encl = Enclave(cpu, key, reg_pages=1, reg_flags=secinfo_flags(PageType.PT_REG, 1))
    assert REG_RWX
    lp = enter(cpu, encl)
    assert cpu.load(lp, encl.reg(0), 1) == b"\x01"
    with pytest.raises(PageFault) as e:
        cpu.store(lp, encl.reg(0) + 5, b"x")
    assert e.value.error_code == PF_PROT | PF_WRITE | PF_USER | PF_SGX == 0x8007
    assert e.value.addr == encl.reg(0)


def test_aex_writes_ssa_and_cssa(cpu, encl):
    lp = enter(cpu, encl)
    lp.regs.update(rsp=0x1234, r9=99, rip=encl.base + 0x2010)
    with pytest.raises(PageFault):
        cpu.load(lp, encl.tcs_la + 0x123, 1)
    ssa = cpu.epc.page(cpu.epc.index(encl.pages[encl.base + 0x1000]))
    gpr = SsaGpr.unpack(ssa[PAGE_SIZE - 184 :])
    assert gpr.r9 == 99 and gpr.rsp == 0x1234 and gpr.rip == encl.base + 0x2010
    assert gpr.exitinfo == SsaGpr.EXITINFO_VALID | (3 << 8) | 14
    maddr, errcd = struct.unpack_from("<QI", ssa, PAGE_SIZE - 184 - 16)
    assert maddr == encl.tcs_la + 0x123 and errcd == 0x8005  # EXINFO keeps the full address
    tcs = Tcs.unpack(cpu.epc.page(cpu.epc.index(encl.tcs)))
    assert tcs.cssa == 1 and tcs.state == 0 and tcs.aep == AEP
    # ERESUME restores and decrements CSSA.
    cpu.eresume(lp, encl.tcs_la, AEP)
    assert lp.regs["r9"] == 99 and lp.regs["rip"] == encl.base + 0x2010
    assert Tcs.unpack(cpu.epc.page(cpu.epc.index(encl.tcs))).cssa == 0


def test_fetch_outside_elrange_is_gp(cpu, encl):
    lp = enter(cpu, encl)
    map_page(encl.pt, 0x9000, cpu.phys.alloc_frame() << 12)
    assert cpu.load(lp, 0x9000, 1) == b"\0"  # data outside ELRANGE is allowed
    with pytest.raises(GeneralProtection):
        cpu.fetch(lp, 0x9000)
    assert lp.enclave is None and lp.exception[0] == 13


def test_nx_pte_fetch(cpu, encl):
    map_page(encl.pt, encl.reg(0), encl.pages[encl.reg(0)], nx=True)
    lp = enter(cpu, encl)
    with pytest.raises(PageFault) as e:
        cpu.fetch(lp, encl.reg(0))
    assert e.value.error_code == 0x15 and not e.value.sgx


def test_pending_page_denied(cpu, encl):
    b = encl.b
    epc = b.alloc_epc()
    la = encl.reg(2) + PAGE_SIZE
    cpu.eaug(b.put_pageinfo(la, 0, 0, encl.secs), epc)
    encl.map(la, epc)
    lp = enter(cpu, encl)
    with pytest.raises(PageFault) as e:
        cpu.load(lp, la, 1)
    assert e.value.error_code == 0x8005
    assert REG_RW


def test_accessed_dirty_bits(cpu, encl):
    lp = enter(cpu, encl)
    cpu.store(lp, encl.reg(1), b"q")
    pte = encl.pt.get(encl.reg(1) >> 12)
    assert pte & (1 << 5) and pte & (1 << 6)
