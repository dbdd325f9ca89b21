"""The EPC reclaimer (§5.2-5.5) on a small EPC, and enclave teardown (§5.6)."""

from __future__ import annotations

import pytest
from sgx_helpers import PROT_READ, PROT_WRITE, Encl, R, W, machine

from sgxsim.hw.consts import PAGE_SIZE

RW = PROT_READ | PROT_WRITE
NPAGES = 40  # enclave pages; the EPC below holds fewer


def small_machine(kname, epc_pages=24):
    m = machine(kname, epc_pages=epc_pages)
    drv = m.kernel.sgx
    drv.nr_low_pages, drv.nr_high_pages = 4, 8
    return m


def build_big(m, npages=NPAGES):
    e = Encl(m, size=64 * PAGE_SIZE)
    pages = [(i * PAGE_SIZE, R | W) for i in range(2, npages)]
    return e.build(pages)


@pytest.fixture(params=["linux-5.11", "linux-6.0"])
def kname(request):
    return request.param


def test_reclaim_evicts_and_reloads(kname):
    m = small_machine(kname)
    drv = m.kernel.sgx
    e = build_big(m)
    assert drv.stats["ewb"] > 0  # building needed eviction
    assert drv.check_invariants() == []
    resident = sum(1 for p in e.encl.page_array.values() if p.epc_page is not None)
    assert resident < NPAGES
    # debug reads through vm_ops->access fault every page back in (ELDU)
    a = e.mmap(0, e.size, RW)
    eldu0 = drv.stats["eldu"]
    for i in range(2, NPAGES):
        vma = m.kernel.find_vma(e.proc.mm, a + i * PAGE_SIZE)
        buf = bytearray(8)
        assert drv.sgx_vma_access(vma, a + i * PAGE_SIZE, buf, False) == 8
        assert bytes(buf) == bytes([i & 0xFF]) * 8  # contents survived EWB/ELDU
        assert drv.check_invariants() == []
    assert drv.stats["eldu"] > eldu0
    assert drv.stats["ewb"] > NPAGES - resident


def test_secs_written_out_when_no_children_resident(kname):
    m = small_machine(kname, epc_pages=40)
    drv = m.kernel.sgx
    e = build_big(m, npages=20)
    encl = e.encl
    # push everything out: ksgxd with a high watermark above the EPC size
    drv.nr_high_pages = 1000
    drv.ksgxd()
    assert encl.secs_child_cnt == 0
    assert encl.secs.epc_page is None  # the SECS went to backing page size/4096
    assert drv.check_invariants() == []
    # a fault reloads the SECS first, then the page
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    e.proc.peek(a, 1)
    assert encl.secs.epc_page is not None and encl.secs_child_cnt == 1
    assert drv.check_invariants() == []


def test_young_pages_survive_one_scan(kname):
    m = small_machine(kname, epc_pages=64)
    drv = m.kernel.sgx
    e = build_big(m, npages=10)
    a = e.mmap(0, e.size, RW)
    for i in range(2, 10):
        e.proc.peek(a + i * PAGE_SIZE, 1)  # fault in; the retried access sets A
    drv.nr_to_scan = 64
    drv.sgx_reclaim_pages()  # every page was young: all survive, A cleared
    assert all(e.encl.page_array[(e.base >> 12) + i].epc_page is not None for i in range(2, 10))
    e.proc.peek(a + 2 * PAGE_SIZE, 1)  # the CPU sets A on this one only
    page2 = e.encl.page_array[(e.base >> 12) + 2]
    drv.sgx_reclaim_pages()
    assert page2.epc_page is not None  # young: back to the LRU tail
    page3 = e.encl.page_array[(e.base >> 12) + 3]
    assert page3.epc_page is None  # old: written out
    assert drv.check_invariants() == []


def test_teardown_frees_every_epc_page(kname):
    m = small_machine(kname)
    drv = m.kernel.sgx
    total = len(drv.epc_pages)
    e = build_big(m)
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    e.proc.peek(a, 1)
    e.proc.close(e.fd)
    assert drv.sgx_nr_free_pages < total  # the mapping still holds the file
    e.proc.munmap(a, PAGE_SIZE)
    assert drv.sgx_nr_free_pages == total
    assert drv.encls == []
    assert drv.check_invariants() == []


def test_teardown_on_exit_with_mapping(kname):
    m = machine(kname)
    drv = m.kernel.sgx
    total = len(drv.epc_pages)
    e = Encl(m).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    e.proc.peek(a, 1)
    e.proc.exit()
    assert drv.sgx_nr_free_pages == total and drv.encls == []


def test_fork_shares_enclave_until_both_go(kname):
    m = machine(kname)
    drv = m.kernel.sgx
    total = len(drv.epc_pages)
    e = Encl(m).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, RW)
    child = e.proc.fork()
    assert len(e.encl.mm_list) == 2  # sgx_vma_open added the child's mm
    child.peek(a, 1)
    e.proc.exit()
    assert drv.sgx_nr_free_pages < total
    child.exit()
    assert drv.sgx_nr_free_pages == total


def test_backing_frames_are_freed(kname):
    m = small_machine(kname)
    frames0 = len(m.cpu.phys.frames)
    e = build_big(m)
    proc = e.proc
    assert e.encl.backing  # pages were written out
    proc.exit()
    # only the process's own scratch memory is gone too; no backing frame remains
    assert len(m.cpu.phys.frames) <= frames0
