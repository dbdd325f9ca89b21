"""mremap across releases: MREMAP_DONTUNMAP's mapping rule (5.13) and the
order of mremap_to()'s checks and unmaps (6.17), each shown on the
releases before and after the change."""

from __future__ import annotations

import errno

import pytest
from sgx_helpers import (
    ENCL_BASE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Encl,
    err_of,
    machine,
)

from sgxsim import MREMAP_FIXED, MREMAP_MAYMOVE
from sgxsim.hw.consts import PAGE_SIZE

MREMAP_DONTUNMAP = 4
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED


def _enclave_mapped(kname: str):
    m = machine(kname, epc_pages=64)
    e = Encl(m)
    e.create()
    e.add(0, b"x".ljust(PAGE_SIZE, b"\0"))
    assert e.init() == 0
    e.proc.mmap(ENCL_BASE, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED, e.fd)
    return m, e


@pytest.mark.parametrize("kname", ["linux-5.11", "linux-6.0", "linux-6.12"])
def test_dontunmap_of_an_enclave_vma_is_einval_and_changes_nothing(kname):
    m, e = _enclave_mapped(kname)
    p = e.proc
    before = p.maps()
    err = err_of(p.mremap, ENCL_BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)
    assert err == errno.EINVAL
    assert p.maps() == before
    with pytest.raises(OSError) as ei:
        p.mremap(ENCL_BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)
    assert "MREMAP_DONTUNMAP" in str(ei.value) and "mremap" in str(ei.value)


@pytest.mark.parametrize("kname,expect", [("linux-5.11", errno.EINVAL), ("linux-6.0", 0)])
def test_dontunmap_of_a_shared_mapping_since_513(kname, expect):
    p = machine(kname).spawn()
    a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS, -1)
    assert err_of(p.mremap, a, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP) == expect


def _two_vmas_and_a_destination(kname: str):
    p = machine(kname).spawn()
    a = p.mmap(0, 6 * PAGE_SIZE, RW, ANON, -1)
    p.munmap(a + 2 * PAGE_SIZE, 4 * PAGE_SIZE)
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ)  # [a, a+1) RW, [a+1, a+2) R
    dest = a + 3 * PAGE_SIZE
    p.mmap(dest, 3 * PAGE_SIZE, RW, ANON | MAP_FIXED, -1)
    return p, a, dest


@pytest.mark.parametrize("kname,dest_left", [("linux-6.12", False), ("linux", True)])
def test_refused_move_unmaps_the_destination_before_617(kname, dest_left):
    # A growing MREMAP_FIXED move of a range over two VMAs: the span check
    # refuses it (EFAULT) on every release; before 6.17 mremap_to() has
    # already unmapped the destination by then.
    p, a, dest = _two_vmas_and_a_destination(kname)
    assert err_of(p.mremap, a, 2 * PAGE_SIZE, 3 * PAGE_SIZE, MOVE, dest) == errno.EFAULT
    assert (p.mm.find_vma(dest) is not None and p.mm.find_vma(dest).vm_start == dest) \
        == dest_left
    assert p.mm.vma_lookup(a) is not None  # the old range is untouched


@pytest.mark.parametrize("kname,expect", [("linux-6.12", errno.EFAULT), ("linux", errno.EINVAL)])
def test_unmapped_old_address_against_a_bad_new_address(kname, expect):
    # 6.17 checks the new range first (check_mremap_params()); before, the
    # old address's lookup came first.
    p = machine(kname).spawn()
    a = p.mmap(0, PAGE_SIZE, RW, ANON, -1)
    p.munmap(a, PAGE_SIZE)
    assert err_of(p.mremap, a, PAGE_SIZE, PAGE_SIZE, MOVE, a + 0x10001) == expect


@pytest.mark.parametrize("kname", ["linux-6.12", "linux"])
def test_moves_that_work_do_the_same_on_both_orders(kname):
    p = machine(kname).spawn()
    a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON, -1)
    p.poke(a, b"hello")
    dest = a + 0x100000
    p.mmap(dest, PAGE_SIZE, RW, ANON | MAP_FIXED, -1)
    assert p.mremap(a, 2 * PAGE_SIZE, 3 * PAGE_SIZE, MOVE, dest) == dest  # grows while moving
    assert p.peek(dest, 5) == b"hello"
    assert p.mm.vma_lookup(a) is None
    assert p.mremap(dest, 3 * PAGE_SIZE, PAGE_SIZE) == dest  # shrink in place
    assert p.mm.find_vma(dest).vm_end == dest + PAGE_SIZE
