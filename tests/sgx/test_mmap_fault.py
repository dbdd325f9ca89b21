"""The mmap gate (sgx_encl_may_map, §3), the mprotect hook, sgx_vma_fault's
results (§4.2) and vm_ops->access (§4.3)."""

from __future__ import annotations

import errno
import signal

import pytest
from sgx_helpers import (
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    RWX,
    TCS,
    Encl,
    R,
    W,
    X,
    err_of,
    machine,
)

from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE, PageType
from sgxsim.kernel.errors import Signal
from sgxsim.kernel.sgx.encl import READ_IMPLIES_EXEC

RW = PROT_READ | PROT_WRITE
RX = PROT_READ | PROT_EXEC


@pytest.fixture(params=["linux-5.11", "linux-6.0"])
def kname(request):
    return request.param


def touch(proc, addr, write=False):
    """A user access; returns the signal number, or 0."""
    try:
        if write:
            proc.poke(addr, b"\0")
        else:
            proc.peek(addr, 1)
    except Signal as s:
        return s.signo
    return 0


# -- mmap -------------------------------------------------------------------------

def test_map_private_is_einval(kname):
    e = Encl(machine(kname)).build()
    assert err_of(e.mmap, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED) == errno.EINVAL


def test_map_is_capped_by_each_page_maximum(kname):
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R), (3 * PAGE_SIZE, R | X)])
    assert err_of(e.mmap, 2 * PAGE_SIZE, PAGE_SIZE, RW) == errno.EACCES
    assert err_of(e.mmap, 3 * PAGE_SIZE, PAGE_SIZE, RW) == errno.EACCES
    assert err_of(e.mmap, 2 * PAGE_SIZE, 2 * PAGE_SIZE, RX) == errno.EACCES  # page 2 is R
    assert err_of(e.mmap, 3 * PAGE_SIZE, PAGE_SIZE, RX) == 0
    assert err_of(e.mmap, 2 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ) == 0
    # a TCS page is mappable RW although its EPCM permissions are none
    assert err_of(e.mmap, 0, PAGE_SIZE, RW) == 0
    assert err_of(e.mmap, 0, PAGE_SIZE, RWX) == errno.EACCES


def test_mapping_over_holes_may_be_rwx(kname):
    e = Encl(machine(kname)).build()
    assert err_of(e.mmap, 4 * PAGE_SIZE, 8 * PAGE_SIZE, RWX) == 0
    # before CREATE too: no pages, nothing to compare
    e2 = Encl(machine(kname))
    assert err_of(e2.mmap, 0, 4 * PAGE_SIZE, RWX) == 0


def test_read_implies_exec_is_eacces(kname):
    e = Encl(machine(kname)).build()
    e.proc.personality(READ_IMPLIES_EXEC)
    assert err_of(e.mmap, 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ) == errno.EACCES


def test_elrange_check_after_init_only_on_6_0(kname):
    e = Encl(machine(kname)).build(init=False)
    below = e.base - PAGE_SIZE
    # before INIT a mapping may lie outside the future ELRANGE (both kernels)
    assert err_of(e.mmap, 0, PAGE_SIZE, PROT_READ, addr=below) == 0
    e.proc.munmap(below, PAGE_SIZE)
    assert e.init() == 0
    want = errno.EACCES if kname == "linux-6.0" else 0
    assert err_of(e.mmap, 0, PAGE_SIZE, PROT_READ, addr=below) == want
    assert err_of(e.mmap, 0, PAGE_SIZE, PROT_READ, addr=e.base + e.size) == want


def test_mprotect_above_max_is_eacces_and_keeps_earlier_vmas(kname):
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W), (3 * PAGE_SIZE, R)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    e.mmap(3 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    assert err_of(e.proc.mprotect, a, 2 * PAGE_SIZE, RW) == errno.EACCES
    maps = {vma_start: prot for vma_start, prot in vma_prots(e)}
    assert maps[a] == RW  # the first VMA was changed (no rollback)
    assert maps[a + PAGE_SIZE] == PROT_READ
    # mprotect over a hole: anything goes
    h = e.mmap(6 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    assert err_of(e.proc.mprotect, h, PAGE_SIZE, RWX) == 0


def vma_prots(e):
    """(vm_start, PROT_* of VM_READ|WRITE|EXEC) of the enclave VMAs."""
    out = []
    for vma in e.proc.mm.vmas:
        if vma.vm_private_data is e.encl:
            out.append((vma.vm_start, vma.vm_flags & 0x7))
    return out


# -- faults ---------------------------------------------------------------------------

def test_fault_on_added_page_installs_pte(kname):
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    assert touch(e.proc, a) == 0
    # outside enclave mode the EPC reads as the abort page
    assert e.proc.peek(a, 4) == b"\xff" * 4


def test_vma_created_before_add_pages_sigbus(kname):
    """ADD_PAGES does not look at existing VMAs: an RWX VMA over a page later
    added R faults SIGBUS (the whole VMA RWX must fit the page)."""
    e = Encl(machine(kname))
    assert e.create() == 0
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RWX)
    assert e.add(2 * PAGE_SIZE, flags=R) == (0, PAGE_SIZE)
    assert touch(e.proc, a) == signal.SIGBUS


def test_fault_on_hole_sgx1_and_before_init_is_sigbus(kname):
    e = Encl(machine(kname)).build(init=False)
    a = e.mmap(4 * PAGE_SIZE, PAGE_SIZE, RW)
    assert touch(e.proc, a) == signal.SIGBUS  # no entry, not initialized
    assert e.init() == 0
    want = 0 if kname == "linux-6.0" else signal.SIGBUS
    assert touch(e.proc, a) == want


def test_fault_on_hole_sgx1_cpu_is_sigbus():
    e = Encl(machine("linux-6.0", sgx2=False)).build()
    a = e.mmap(4 * PAGE_SIZE, PAGE_SIZE, RW)
    assert touch(e.proc, a) == signal.SIGBUS
    assert (a >> 12) not in e.encl.page_array


def test_eaug_on_fault_adds_rwx_page():
    e = Encl(machine()).build()
    encl = e.encl
    children, pages = encl.secs_child_cnt, encl.page_cnt
    a = e.mmap(4 * PAGE_SIZE, PAGE_SIZE, PROT_READ)  # a read fault on an R VMA EAUGs too
    assert touch(e.proc, a) == 0
    page = encl.page_array[a >> 12]
    assert (page.type, page.vm_max_prot_bits) == (PageType.PT_REG, 7)
    assert (encl.secs_child_cnt, encl.page_cnt) == (children + 1, pages + 1)
    # the EPCM has it REG, RW, PENDING
    st = e.m.cpu.epc.epcm(page.epc_page.index)
    assert st.pt == PageType.PT_REG and st.pending


def test_eaug_outside_elrange_is_sigbus():
    e = Encl(machine()).build(init=False)
    a = e.mmap(0, PAGE_SIZE, RW, addr=e.base + e.size)  # allowed before INIT
    assert e.init() == 0
    assert touch(e.proc, a) == signal.SIGBUS  # EAUG refuses an address outside ELRANGE
    assert (a >> 12) not in e.encl.page_array


def test_page_converted_to_tcs_sigbus_in_rwx_vma():
    e = Encl(machine()).build([(2 * PAGE_SIZE, R | W | X)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RWX)
    assert touch(e.proc, a) == 0
    assert e.proc.mm.pgtable.get(a >> 12)  # resident PTE
    assert e.sgx2(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, 2 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0)[0] == 0
    assert not e.proc.mm.pgtable.get(a >> 12)  # zapped
    assert touch(e.proc, a) == signal.SIGBUS  # vm_max now RW < VMA RWX


def test_fault_with_no_enclave_is_sigbus(kname):
    """A VMA whose sgx_vma_open failed (vm_private_data NULL) SIGBUSes."""
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    vma = e.m.kernel.find_vma(e.proc.mm, a)
    vma.vm_private_data = None
    assert touch(e.proc, a) == signal.SIGBUS


def test_write_fault_follows_vma_not_epcm(kname):
    """PTEs follow the VMA: a write to an RW mapping of an RW page is allowed
    by paging (outside enclave mode it hits the abort page)."""
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    assert touch(e.proc, a, write=True) == 0
    e.proc.mprotect(a, PAGE_SIZE, PROT_READ)
    assert touch(e.proc, a, write=True) == signal.SIGSEGV


# -- vm_ops->access ---------------------------------------------------------------------

def test_access_debug_enclave_reads_and_writes(kname):
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    vma = e.m.kernel.find_vma(e.proc.mm, a)
    buf = bytearray(12)
    assert e.drv.sgx_vma_access(vma, a + 3, buf, False) == 12
    assert bytes(buf) == bytes([2]) * 12  # the page's contents (offset >> 12)
    assert e.drv.sgx_vma_access(vma, a + 5, bytearray(b"hello"), True) == 5
    buf = bytearray(8)
    assert e.drv.sgx_vma_access(vma, a, buf, False) == 8
    assert bytes(buf) == bytes([2]) * 5 + b"hel"


def test_access_non_debug_or_missing_is_efault(kname):
    from sgxsim.hw.consts import Attribute
    e = Encl(machine(kname), attributes=Attribute.MODE64BIT)
    e.build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    vma = e.m.kernel.find_vma(e.proc.mm, a)
    assert e.drv.sgx_vma_access(vma, a, bytearray(8), False) == -errno.EFAULT
    d = Encl(machine(kname)).build()
    h = d.mmap(4 * PAGE_SIZE, PAGE_SIZE, RW)
    vma = d.m.kernel.find_vma(d.proc.mm, h)
    assert d.drv.sgx_vma_access(vma, h, bytearray(8), False) == -errno.EFAULT  # no page

