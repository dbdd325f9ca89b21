"""The CPU's public entry points for emulators: translate() (a TLB fill that is
the access check of load/store/fetch), enclu() (the instruction, with its
register operands) and cpuid() (leaf 12H and leaf 7's SGX bits)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.hw.leafkit import BASE, RW, RX, Kit

from sgxsim.hw.access import FETCH, PERM_R, PERM_W, PERM_X, READ, WRITE
from sgxsim.hw.consts import PAGE_SIZE, Enclu
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.faults import GeneralProtection, HwFault, PageFault
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.paging import PTE_ACCESSED, PTE_DIRTY
from sgxsim.hw.structs import SsaGpr, Tcs

DATA = BASE + 2 * PAGE_SIZE
CODE = BASE + 3 * PAGE_SIZE
OUTSIDE = 0x1000_0000


@pytest.fixture
def kit():
    k = Kit()
    k.ecreate()
    tcs = Tcs(ossa=PAGE_SIZE, nssa=1, oentry=3 * PAGE_SIZE, fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF)
    k.tcs_i = k.eadd(0, 0x100, tcs.pack())
    k.ssa_i = k.eadd(PAGE_SIZE, 0x200 | RW)
    k.data_i = k.eadd(2 * PAGE_SIZE, 0x200 | RW, b"\x5a" * PAGE_SIZE)
    k.code_i = k.eadd(3 * PAGE_SIZE, 0x200 | RX)
    assert k.einit() == 0
    k.ram = k.map_ram(OUTSIDE, rw=True, x=True)
    return k


def test_rights_and_accessed_dirty_bits(kit):
    kit.enter()
    cpu, lp, pt = kit.cpu, kit.lp, kit.pt
    page, perms = cpu.translate(lp, DATA + 8, READ)
    assert page is cpu.epc.page(kit.data_i)  # zero-copy: the EPC page itself
    # Read fill: W is not admitted until the PTE is dirty (a write must walk again).
    assert perms == PERM_R and pt.get(DATA >> 12) & (PTE_ACCESSED | PTE_DIRTY) == PTE_ACCESSED
    page, perms = cpu.translate(lp, DATA, WRITE)
    assert perms == PERM_R | PERM_W and pt.get(DATA >> 12) & PTE_DIRTY
    # The EPCM bounds the rights: the RX page never admits W, even with a RW dirty PTE.
    assert cpu.translate(lp, CODE, FETCH)[1] == PERM_R | PERM_X
    # Outside ELRANGE, never X in enclave mode (the PTE allows it).
    page, perms = cpu.translate(lp, OUTSIDE, WRITE)
    assert page is cpu.phys.frames[kit.ram >> 12] and perms == PERM_R | PERM_W


def test_refusal_is_the_access_fault_after_the_aex(kit):
    kit.enter()
    kit.lp.regs.update(rip=CODE + 0x10, rax=0x1234)
    with pytest.raises(PageFault) as e:
        kit.cpu.translate(kit.lp, CODE + 8, WRITE)
    assert (e.value.error_code, e.value.addr) == (0x8007, CODE)
    assert kit.lp.enclave is None
    gpr = SsaGpr.unpack(kit.cpu.epc.page(kit.ssa_i)[PAGE_SIZE - SsaGpr.SIZE :])
    assert (gpr.rip, gpr.rax) == (CODE + 0x10, 0x1234)
    kit.cpu.eresume(kit.lp, BASE, 0x5000)
    with pytest.raises(GeneralProtection):
        kit.cpu.translate(kit.lp, OUTSIDE, FETCH)  # SDM 38.5: no fetch outside ELRANGE
    assert kit.lp.enclave is None


def test_epc_outside_enclave_mode_is_the_abort_page(kit):
    page, perms = kit.cpu.translate(kit.lp, DATA, READ)
    assert bytes(page) == b"\xff" * PAGE_SIZE
    page[0] = 0  # a write to it is dropped
    assert kit.cpu.load(kit.lp, DATA, 1) == b"\xff"
    assert bytes(kit.cpu.epc.page(kit.data_i)[:1]) == b"\x5a"


@given(st.sampled_from([DATA, CODE, OUTSIDE, BASE, BASE + 0x7000, 0x2000_0000]),
       st.sampled_from([READ, WRITE, FETCH]), st.booleans())
def test_translate_agrees_with_load_store_fetch(la, access, inside):
    """One implementation: translate raises what the access raises, or admits
    it with the bytes the access sees."""
    results = []
    for use_translate in (True, False):
        k = Kit()
        k.ecreate()
        k.eadd(0, 0x100, Tcs(ossa=PAGE_SIZE, nssa=1, oentry=3 * PAGE_SIZE).pack())
        k.eadd(PAGE_SIZE, 0x200 | RW)
        k.eadd(2 * PAGE_SIZE, 0x200 | RW, b"\x5a" * PAGE_SIZE)
        k.eadd(3 * PAGE_SIZE, 0x200 | RX, b"\xc3" * PAGE_SIZE)
        k.einit()
        k.map_ram(OUTSIDE, rw=False, x=True)
        if inside:
            k.enter()
        try:
            if use_translate:
                page, perms = k.cpu.translate(k.lp, la, access)
                got = ("ok", bytes(page[:4]), bool(perms & (PERM_R, PERM_W, PERM_X)[access]))
            elif access == READ:
                got = ("ok", k.cpu.load(k.lp, la, 4), True)
            elif access == WRITE:
                k.cpu.store(k.lp, la, b"\x00")
                got = ("ok", None, True)
            else:
                got = ("ok", k.cpu.fetch(k.lp, la, 4), True)
        except HwFault as f:
            got = (type(f).__name__, getattr(f, "error_code", None), getattr(f, "addr", None),
                   k.lp.enclave is None)
        results.append(got)
    t, a = results
    if t[0] == "ok" or a[0] == "ok":
        assert t[0] == a[0] == "ok", (t, a)
        assert t[2]  # the admitted rights cover the access
        if access != WRITE:
            assert t[1] == a[1]
    else:
        assert t == a


def test_enclu_dispatches_on_eax_with_register_operands(kit):
    cpu, lp = kit.cpu, kit.lp
    lp.regs.update(rax=int(Enclu.EENTER), rbx=BASE, rcx=0x5000, rip=0x7000)
    cpu.enclu(lp)
    assert lp.enclave is not None and lp.regs["rip"] == CODE and lp.regs["rcx"] == 0x7003
    # EGETKEY with a misaligned KEYREQUEST: #GP through the AEX.
    lp.regs.update(rax=int(Enclu.EGETKEY), rbx=DATA + 8, rcx=DATA + 512)
    with pytest.raises(GeneralProtection):
        cpu.enclu(lp)
    assert lp.enclave is None


@pytest.mark.parametrize("sgx2,leaf", [(True, 8), (True, 0x20), (False, int(Enclu.EACCEPT)),
                                       (False, int(Enclu.EMODPE))])
def test_enclu_invalid_leaf_is_gp(sgx2, leaf):
    k = Kit(sgx2=sgx2).standard()
    k.enter()
    k.lp.regs.update(rax=(0xFFFF_0000 << 32) | leaf)  # RAX[63:32] ignored
    with pytest.raises(GeneralProtection) as e:
        k.cpu.enclu(k.lp)
    assert "not a leaf" in str(e.value) and k.lp.enclave is None


def test_enclu_eaccept_sets_rax_and_zf(kit):
    kit.enter()
    si = kit.secinfo_in_enclave(2 * PAGE_SIZE, 0x200 | RW | 0x8)  # PENDING: mismatch
    # All six status flags set, with IF and the always-one bit 1.
    kit.lp.regs.update(rax=int(Enclu.EACCEPT), rbx=si, rcx=DATA, rip=CODE, rflags=0x202 | 0x8D5)
    kit.cpu.enclu(kit.lp)
    # SGX_PAGE_ATTRIBUTES_MISMATCH in RAX, ZF set, CF/PF/AF/SF/OF cleared.
    assert kit.lp.regs["rax"] == 19 and kit.lp.regs["rflags"] == 0x202 | 0x40
    assert kit.lp.regs["rip"] == CODE + 3 and kit.lp.enclave is not None


def _metric(low: int, high: int) -> int:
    # the kernel's sgx_calc_section_metric(): bits 31:12 of low, 19:0 of high << 32
    return (low & 0xFFFFF000) + ((high & 0xFFFFF) << 32)


@pytest.mark.parametrize("sgx2,epc_pages", [(True, 96), (False, 48), (True, 0x40000)])
def test_cpuid_leaf_12h(sgx2, epc_pages):
    cpu = Cpu(epc_pages, sgx2=sgx2)
    eax, ebx, ecx, edx = cpu.cpuid(0x12, 0)
    assert eax & 1 and bool(eax & 2) == sgx2
    assert ebx == cpu.miscselect_valid and edx == 31 | 36 << 8
    a0, a1, x0, x1 = cpu.cpuid(0x12, 1)
    assert (a0 | a1 << 32, x0 | x1 << 32) == (cpu.attributes_valid, cpu.xfrm_valid)
    # The EPC sections, read as sgx_page_cache_init() and get_total_epc_mem() do.
    sections, sub = [], 2
    while True:
        eax, ebx, ecx, edx = cpu.cpuid(0x12, sub)
        if eax & 0xF == 0:
            break
        assert eax & 0xF == 1 and ecx & 0xF == 1
        sections.append((_metric(eax, ebx), _metric(ecx, edx)))
        sub += 1
    assert sections == [(EPC_BASE, epc_pages * PAGE_SIZE)]


def test_cpuid_leaf_7_sgx_bits():
    cpu = Cpu(8, flc=False, pku=False)
    assert cpu.cpuid(7, 0) == (0, Cpu.CPUID7_SGX, 0, 0)
    eax, ebx, ecx, edx = Cpu(8).cpuid(7, 0)
    assert ecx & Cpu.CPUID7_SGX_LC and ecx & Cpu.CPUID7_PKU
    assert (ebx & ~Cpu.CPUID7_MASK[0], ecx & ~Cpu.CPUID7_MASK[1], edx & ~Cpu.CPUID7_MASK[2]) == (
        0, 0, 0)
    with pytest.raises(ValueError):
        cpu.cpuid(1, 0)
