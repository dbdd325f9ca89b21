"""The access check: paging first, then the EPCM; error codes from the bits."""

from __future__ import annotations

import pytest
from tests.hw.leafkit import BASE, REG, RW, Kit

from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.faults import GeneralProtection, PageFault

DATA = BASE + 2 * PAGE_SIZE  # first data page of Kit.standard()


@pytest.fixture
def kit():
    return Kit().standard()


def fault(fn, *args) -> PageFault:
    with pytest.raises(PageFault) as e:
        fn(*args)
    return e.value


def test_user_write_to_readonly_pte_is_0x7(kit):
    kit.map(DATA, kit.data_i[0], rw=False)
    kit.enter()
    f = fault(kit.cpu.store, kit.lp, DATA, b"x" * 8)
    assert (f.error_code, f.addr) == (0x7, DATA)
    assert kit.lp.enclave is None  # the fault went through an AEX


def test_epcm_write_denied_is_0x8007(kit):
    kit.cpu.epc.flags[kit.data_i[0]] &= ~0x4  # EPCM W cleared
    kit.enter()
    f = fault(kit.cpu.store, kit.lp, DATA, b"x")
    assert (f.error_code, f.addr) == (0x8007, DATA)


def test_trimmed_page_read_is_0x8005(kit):
    kit.cpu.epc.pt[kit.data_i[0]] = 4  # PT_TRIM
    kit.enter()
    f = fault(kit.cpu.load, kit.lp, DATA + 16, 8)
    assert (f.error_code, f.addr) == (0x8005, DATA)  # CR2 low 12 bits cleared by the AEX


def test_not_present_write_is_0x6_and_read_is_0x4(kit):
    kit.pt.clear(DATA >> 12)
    kit.enter()
    assert fault(kit.cpu.store, kit.lp, DATA, b"x").error_code == 0x6
    kit.cpu.eresume(kit.lp, BASE, 0x5000)
    assert fault(kit.cpu.load, kit.lp, DATA, 1).error_code == 0x4


def test_pending_and_modified_pages_are_inaccessible(kit):
    kit.cpu.epc.flags[kit.data_i[0]] |= 0x20  # PENDING
    kit.enter()
    assert fault(kit.cpu.load, kit.lp, DATA, 1).sgx


def test_fetch_needs_epcm_x_and_pte_x(kit):
    kit.enter()
    f = fault(kit.cpu.fetch, kit.lp, DATA)  # data page is RW in the EPCM
    assert f.error_code == 0x8015  # P | U | I/D | SGX


def test_fetch_outside_elrange_is_gp(kit):
    kit.map_ram(0x1000_0000, x=True)
    kit.enter()
    with pytest.raises(GeneralProtection):
        kit.cpu.fetch(kit.lp, 0x1000_0000)


def test_enclave_reads_untrusted_memory(kit):
    pa = kit.map_ram(0x1000_0000)
    kit.cpu.phys.write(pa, b"hello")
    kit.enter()
    assert kit.cpu.load(kit.lp, 0x1000_0000, 5) == b"hello"
    kit.cpu.store(kit.lp, DATA, b"inside")
    assert kit.cpu.load(kit.lp, DATA, 6) == b"inside"


def test_reads_and_writes_within_and_across_frames():
    # RAM reads and writes within one frame (one slice) and across frames
    # (frame by frame), a whole-page load (copied once) and a load across
    # two pages: every byte where it belongs, bytes returned.
    kit = Kit()
    phys = kit.cpu.phys
    a, b = kit.map_ram(0x1000_0000), kit.map_ram(0x1000_1000)
    assert b == a + PAGE_SIZE  # consecutive frames: a write may run across
    data = bytes(range(256)) * 16
    phys.write(a, data)
    phys.write(a + PAGE_SIZE - 3, b"xyzuvw")
    assert phys.read(a + PAGE_SIZE - 5, 10) == data[-5:-3] + b"xyzuvw" + bytes(2)
    assert phys.read(a + 8, 8) == data[8:16] and type(phys.read(a, 4)) is bytes
    page = kit.cpu.load(kit.lp, 0x1000_0000, PAGE_SIZE)
    assert type(page) is bytes and page == phys.read(a, PAGE_SIZE) == data[:-3] + b"xyz"
    assert kit.cpu.load(kit.lp, 0x1000_0000 + PAGE_SIZE - 2, 4) == b"yzuv"
    phys.frames[a >> 12][0] = 0xAB  # the copy returned is not the frame
    assert page[0] == 0


def test_abort_page_outside_enclave_mode(kit):
    assert kit.cpu.load(kit.lp, DATA, 4) == b"\xff" * 4
    kit.cpu.store(kit.lp, DATA, b"\0\0\0\0")  # dropped
    kit.enter()
    assert kit.cpu.load(kit.lp, DATA, 4) == bytes(4)


def test_aex_saves_state_and_eresume_restores_it(kit):
    kit.cpu.epc.flags[kit.data_i[0]] &= ~0x4
    kit.enter()
    kit.lp.regs["rip"] = BASE + 0x2040
    kit.lp.regs["rdi"] = 0x1234
    fault(kit.cpu.store, kit.lp, DATA, b"x")
    regs = kit.lp.regs
    assert (regs["rax"], regs["rbx"], regs["rcx"], regs["rip"]) == (3, BASE, 0x5000, 0x5000)
    assert regs["rdi"] == 0
    kit.cpu.epc.flags[kit.data_i[0]] |= 0x4
    kit.cpu.eresume(kit.lp, BASE, 0x5000)
    assert (kit.lp.regs["rip"], kit.lp.regs["rdi"]) == (BASE + 0x2040, 0x1234)
    kit.cpu.store(kit.lp, DATA, b"x")


def test_page_at_another_address_faults():
    k = Kit().standard()
    # Map the first data address onto the second data page: ENCLAVEADDRESS differs.
    k.map(DATA, k.data_i[1])
    k.enter()
    assert fault(k.cpu.load, k.lp, DATA, 1).error_code & 0x8000


def test_reg_w_without_r_rejected_by_eadd():
    k = Kit()
    k.ecreate()
    with pytest.raises(GeneralProtection):
        k.eadd(0, REG | 0x2)
    k.eadd(0, REG | RW)
