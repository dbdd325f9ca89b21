"""Issue 12: each finding of the robustness fuzzer, as the shortest sequence
that showed it (finding 1 is tests/user/test_reclaim_progress.py).  Each test
failed before its fix."""

from __future__ import annotations

import errno
import os
import struct
import tracemalloc

import pytest
from sgx_helpers import (
    ENCL_BASE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Encl,
    err_of,
    machine,
)

from sgxsim import MREMAP_FIXED, MREMAP_MAYMOVE, READ_IMPLIES_EXEC, Signal
from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.paging import PageTable
from sgxsim.kernel import registry
from sgxsim.user import selftests as S

RW = PROT_READ | PROT_WRITE
SGX_DESIGNS = [n for n in registry.names() if n != "linux"]


def _created(kname="linux-6.0"):
    m = machine(kname)
    e = Encl(m)
    assert e.create() == 0
    return m, e


# -- 2, 3: every argument type fcntl.ioctl accepts ------------------------------------------
def test_finding2_ioctl_with_immutable_bytes():
    m = machine()
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", os.O_RDWR)
    e = Encl(m, p)
    src = e.put(e.secs())
    out = p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, struct.pack("<Q", src))
    assert out == struct.pack("<Q", src)  # fcntl.ioctl returns the buffer
    assert p.files[fd].private_data.created


def test_finding3_ioctl_with_read_only_memoryview_is_copied_back_as_bytes():
    m, e = _created()
    src = e.put(bytes(PAGE_SIZE))
    si = e.put(struct.pack("<Q", 0x201 | 0x2) + bytes(56))  # REG RW
    arg = memoryview(struct.pack("<6Q", src, 0, PAGE_SIZE, si, 0, 0))
    out = e.proc.ioctl(e.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, arg)
    assert struct.unpack("<6Q", out)[5] == PAGE_SIZE  # count written back into the copy
    assert bytes(arg)[40:] == bytes(8)  # the caller's read-only buffer is untouched


@pytest.mark.parametrize("bad", [1.5, "x", None, [1, 2]])
def test_finding3_ioctl_with_an_unsupported_type_is_a_clear_type_error(bad):
    m, e = _created()
    with pytest.raises(TypeError, match="ioctl argument must be an int or a bytes-like"):
        e.proc.ioctl(e.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, bad)
    assert m.kernel.sgx.check_invariants() == []


# -- 4: the vDSO takes 64-bit registers ---------------------------------------------------------
def test_finding4_vdso_masks_register_values():
    env = S.setup_test_encl("linux-6.0", False)
    assert env.vdso.sgx_enter_enclave(-1, 0, 0, 2, 0, 0, env.run) == 0
    r = env.run_struct()
    assert r.exception_vector in (0, 13, 14)  # whatever the enclave did with op = 2**64-1
    assert env.vdso.sgx_enter_enclave(0, -5, 1 << 70, 2, -1, -1, env.run) in (0,)
    assert env.vdso.sgx_enter_enclave(0, 0, 0, 2 + (1 << 32), 0, 0, env.run) == 0  # ECX only
    assert env.vdso.sgx_enter_enclave(0, 0, 0, 7, 0, 0, -1) == -errno.EINVAL  # before run is read


# -- 5: mremap of zero length -----------------------------------------------------------------------
def test_finding5_mremap_old_len_zero_private_is_einval():
    p = machine("linux").spawn()
    a = p.mmap(0, 0x2000, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    before = p.maps()
    assert err_of(p.mremap, a, 0, 0x2000, MREMAP_MAYMOVE) == errno.EINVAL
    assert p.maps() == before


def test_finding5_mremap_old_len_zero_shared_duplicates_without_empty_vma():
    p = machine("linux").spawn()
    a = p.mmap(0, 0x2000, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.poke(a + 0x1000, b"shared")
    b = p.mremap(a + 0x1000, 0, 0x1000, MREMAP_MAYMOVE)
    assert all(v.vm_start < v.vm_end for v in p.mm.vmas)
    assert p.peek(b, 6) == b"shared"  # the same object, at pgoff 1
    assert p.mm.find_vma(a).vm_end == a + 0x2000  # the original is not split


# -- 6: addresses below mmap_min_addr and negative ones -------------------------------------------
def test_finding6_negative_address_vma_is_impossible():
    p = machine("linux").spawn()
    assert err_of(p.mremap, 0x7FFFFFFDF000, 0x8000, 0x8000, MREMAP_MAYMOVE | MREMAP_FIXED,
                  0) == errno.EPERM
    with pytest.raises(Signal):
        p.peek(-0x1000, 1)
    assert all(0 <= v.vm_start < v.vm_end for v in p.mm.vmas)


def test_finding6_map_fixed_below_mmap_min_addr_is_eperm():
    p = machine("linux").spawn()
    with pytest.raises(OSError) as ei:
        p.mmap(0x1000, 0x1000, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    assert ei.value.errno == errno.EPERM and "cap_mmap_addr" in str(ei.value.why)
    assert p.mmap(0x10000, 0x1000, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) == 0x10000


def test_finding6_stack_does_not_grow_below_mmap_min_addr():
    p = machine("linux").spawn()
    p.mmap(0x10000, 0x1000, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | 0x0100)  # GROWSDOWN
    with pytest.raises(Signal) as ei:
        p.peek(0xF000, 1)
    assert ei.value.signo == 11
    assert p.mm.find_vma(0x10000).vm_start == 0x10000


# -- 7: mremap of an SGX VMA (a Linux finding) -----------------------------------------------------
def test_finding7_mremap_moves_an_sgx_vma_and_its_pte_goes_stale_as_in_linux():
    m = machine("linux-6.0", epc_pages=64)
    e = Encl(m)
    e.create()
    e.add(0, b"secret".ljust(PAGE_SIZE, b"\0"))
    assert e.init() == 0
    p = e.proc
    p.mmap(ENCL_BASE, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED, e.fd)
    p.peek(ENCL_BASE, 1)  # outside enclave mode: abort page, but the fault maps the PTE
    pte = p.mm.pgtable.get(ENCL_BASE >> 12)
    assert pte
    new = ENCL_BASE + 0x100000
    # Same size: vma_to_resize() returns before its VM_DONTEXPAND|VM_PFNMAP check.
    assert p.mremap(ENCL_BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, new) == new
    assert p.mm.pgtable.get(new >> 12) == pte  # move_page_tables() took the PTE along
    page = e.encl.page_array[ENCL_BASE >> 12]
    assert m.kernel.sgx.sgx_reclaim_page(page)  # EWB: zaps only at the enclave address
    assert p.mm.pgtable.get(new >> 12) == pte  # stale: the EPC page is free
    # The driver's own invariants know this PTE is mremap's, not the driver's.
    assert m.kernel.sgx.check_invariants() == []
    # Through it, outside enclave mode, the EPC is the abort page.
    assert p.peek(new, 4) == b"\xff" * 4
    # Growing the SGX VMA is still refused.
    assert err_of(p.mremap, new, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE) == errno.EFAULT


def test_finding7_checker_no_stale_pte_finds_the_mremap_trace():
    from sgxsim.check.explorer import explore
    from sgxsim.check.machine_model import MachineModel
    from sgxsim.check.scope import Scope

    sc = Scope(pages=1, perms=("RW",), sources=("image",),
               actions=("mmap", "add_pages", "init", "load", "mremap"))
    exp = explore(MachineModel("linux-6.0", sc), ["no-stale-pte"], depth=5)
    f = exp.findings["no-stale-pte"]
    assert [a.name for a in f.path] == ["mmap", "init", "load", "mremap"]
    assert "maps the EPC page of enclave offset 0" in f.reason


# -- 8: shared anonymous memory is freed with its last mapping -----------------------------------
def test_finding8_shared_anonymous_pages_are_freed_on_last_unmap():
    m = machine("linux")
    p = m.spawn()
    frames = len(m.cpu.phys.frames)
    for _ in range(3):
        a = p.mmap(0, 1 << 20, RW, MAP_SHARED | MAP_ANONYMOUS)
        for off in range(0, 1 << 20, PAGE_SIZE):
            p.poke(a + off, b"x")
        p.munmap(a, 1 << 20)
    assert len(m.cpu.phys.frames) == frames


def test_finding8_shared_anonymous_pages_survive_while_a_fork_maps_them():
    m = machine("linux")
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.poke(a, b"kept")
    child = p.fork()
    p.munmap(a, PAGE_SIZE)
    assert child.peek(a, 4) == b"kept"
    frames = len(m.cpu.phys.frames)
    child.exit()
    assert len(m.cpu.phys.frames) == frames - 1


# -- 9, 10: cost grows with the work --------------------------------------------------------------
def test_finding9_munmap_removes_the_ptes_in_one_slice(monkeypatch):
    p = machine("linux").spawn()
    n = 1 << 14  # 64 MiB
    a = p.mmap(0, n * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | 0x8000)  # MAP_POPULATE
    pt = p.mm.pgtable
    assert len(pt.populated(a >> 12, (a >> 12) + n)) == n
    calls = []
    orig = PageTable.clear
    # PageTable.clear() deletes one key from the sorted index: O(n) each.
    monkeypatch.setattr(PageTable, "clear", lambda self, vpn: calls.append(vpn) or orig(self, vpn))
    p.munmap(a, n * PAGE_SIZE)
    assert calls == [] and not pt.populated(a >> 12, (a >> 12) + n)
    b = p.mmap(0, n * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | 0x8000)
    p.exit()  # exit zaps the same way
    assert calls == [] and b


@pytest.mark.parametrize("kname", SGX_DESIGNS)
def test_finding10_huge_prot_exec_sgx_mapping_costs_nothing(kname):
    m = machine(kname)
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", os.O_RDWR)
    tracemalloc.start()
    try:
        a = p.mmap(0, 1 << 40, PROT_READ | PROT_EXEC, MAP_SHARED, fd)
        p.mprotect(a, 1 << 40, PROT_READ)
        p.munmap(a, 1 << 40)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # was MemoryError on safe-to-execute (a set of 2**28 pages)


def test_finding10_safe_to_execute_bit_over_a_huge_writable_range():
    m, e = _created("safe-to-execute")
    e.add(0, flags=0x7)  # R|W|X from an anonymous (non-exec) source: unsafe
    assert e.init() == 0
    drv = m.kernel.sgx
    p = e.proc
    p.mmap(ENCL_BASE, e.size, RW, MAP_SHARED | MAP_FIXED, e.fd)  # clears every bit
    assert drv.design_state(e.encl) == ((ENCL_BASE >> 12, (ENCL_BASE + e.size) >> 12),)
    assert err_of(p.mprotect, ENCL_BASE + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_EXEC) == \
        errno.EACCES


# -- fork -----------------------------------------------------------------------------------------
def test_fork_keeps_the_personality():
    m, e = _created()
    p = e.proc
    p.personality(READ_IMPLIES_EXEC)
    child = p.fork()
    assert child.personality(0xFFFFFFFF) == READ_IMPLIES_EXEC
    assert err_of(child.mmap, ENCL_BASE, PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_FIXED,
                  e.fd) == errno.EACCES


def test_finding7_check_cli_offers_mremap_when_asked(tmp_path):
    from click.testing import CliRunner

    from sgxsim.cli import main

    r = CliRunner().invoke(main, ["check", "--design", "linux-6.0", "--property", "no-stale-pte",
                                  "--depth", "4", "--perms", "RW", "--sources", "image",
                                  "--actions", "mmap,add_pages,init,load,mremap",
                                  "--out", str(tmp_path)])
    assert r.exit_code in (0, 1), r.output
    assert "violated at depth 4" in r.output and "4. mremap(offset=0, length=4096)" in r.output
    r = CliRunner().invoke(main, ["run", str(tmp_path / "linux-6.0--no-stale-pte.toml")])
    assert "verdict: violated at step 4" in r.output
