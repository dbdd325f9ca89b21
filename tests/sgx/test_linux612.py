"""What linux-6.12's SGX driver does differently from linux-6.0 (docs/linux-6.12.md):
each test runs on both kernels and the two must disagree as the sources do."""

from __future__ import annotations

import errno
import signal

import pytest
from sgx_helpers import MAP_SHARED, PROT_READ, PROT_WRITE, Encl, R, W, machine

from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE, Attribute
from sgxsim.kernel.errors import Signal

OLD, NEW = "linux-6.0", "linux-6.12"
AEX = Attribute.MODE64BIT | Attribute.DEBUG | Attribute.AEXNOTIFY


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_aex_notify_attribute(kname):
    """6.2: SGX_ATTR_UNPRIV_MASK puts AEX-Notify (SECS.ATTRIBUTES bit 10) in
    encl->attributes_mask.  CREATE has no attribute check of its own in
    either kernel (ECREATE checks the CPU's allowed set), so 6.0 creates the
    enclave and refuses it at INIT (EACCES); 6.12 initializes it."""
    e = Encl(machine(kname), attributes=AEX)
    assert e.create() == 0
    assert e.add_tcs(0, PAGE_SIZE) == (0, PAGE_SIZE)
    assert e.add(PAGE_SIZE) == (0, PAGE_SIZE)
    if kname == OLD:
        assert e.init() == errno.EACCES
        assert not e.encl.attributes_mask & Attribute.AEXNOTIFY
        assert e.drv.sgx_attributes_reserved_mask & Attribute.AEXNOTIFY
    else:
        assert e.init() == 0
        assert e.encl.attributes_mask & Attribute.AEXNOTIFY
        assert not e.drv.sgx_attributes_reserved_mask & Attribute.AEXNOTIFY


def test_aex_notify_needs_the_cpu():
    """Without CPUID.12H.1:EAX[10], ECREATE itself refuses the bit (#GP: EIO)."""
    assert Encl(machine(NEW, aexnotify=False), attributes=AEX).create() == errno.EIO
    assert Encl(machine(NEW, aexnotify=False)).create() == 0


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_wrapping_offset_of_an_sgx2_ioctl(kname):
    """6.1: sgx_validate_offset_length() refuses an offset + length that wraps
    (EINVAL); 6.0 lets it through and the page walk finds no page (EFAULT)."""
    e = Encl(machine(kname)).build()
    for name in ("RESTRICT_PERMISSIONS", "REMOVE_PAGES"):
        cmd = getattr(uapi, f"SGX_IOC_ENCLAVE_{name}")
        fields = [(1 << 64) - PAGE_SIZE, 2 * PAGE_SIZE] + ([int(R), 0, 0] if "RESTRICT" in name
                                                           else [0])
        got = e.sgx2(cmd, *fields)[0]
        assert got == (errno.EFAULT if kname == OLD else errno.EINVAL), name


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_wrapping_offset_of_add_pages(kname):
    """With a valid SECINFO, 6.0 gets as far as EADD at the wrapped address,
    below ELRANGE: #GP, EIO; 6.12 refuses the range (EINVAL)."""
    e = Encl(machine(kname))
    assert e.create() == 0
    got = e.add((1 << 64) - PAGE_SIZE, length=2 * PAGE_SIZE)
    assert got == ((errno.EIO if kname == OLD else errno.EINVAL), 0)
    assert e.encl.page_array == {} and e.drv.check_invariants() == []


def _enclave_at_a_va_boundary(kname: str) -> Encl:
    """An initialized enclave with page_cnt = 512 (SECS + 511 pages), so the
    next EAUG needs a new VA page, on an EPC with exactly two free pages
    left after it (one for the EAUGed page, one for the VA page)."""
    m = machine(kname, epc_pages=514)
    e = Encl(m, size=1024 * PAGE_SIZE)
    drv = e.drv
    drv.nr_low_pages, drv.nr_high_pages = 1, 4  # ksgxd stays asleep during the build
    e.build(init=False)
    assert e.add(2 * PAGE_SIZE, length=509 * PAGE_SIZE, measure=False) == (0, 509 * PAGE_SIZE)
    assert e.init() == 0
    assert e.encl.page_cnt == 512 and drv.sgx_nr_free_pages == 1
    e.mmap(0, 1024 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | 0x10)
    return e


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_eaug_when_the_va_page_cannot_be_allocated(kname):
    """6.1: sgx_encl_grow() failing with -EBUSY in the EAUG fault path retries
    the fault (VM_FAULT_NOPAGE; ksgxd frees pages meanwhile) instead of
    SIGBUS, which 6.0 sends."""
    e = _enclave_at_a_va_boundary(kname)
    addr = e.base + 600 * PAGE_SIZE
    if kname == OLD:
        with pytest.raises(Signal) as ei:
            e.proc.peek(addr, 8)
        assert ei.value.signo == signal.SIGBUS and "sgx_encl_grow" in str(ei.value)
        assert (addr >> 12) not in e.encl.page_array
    else:
        e.proc.peek(addr, 8)  # the retried fault EAUGs the page
        assert (addr >> 12) in e.encl.page_array
        assert e.encl.page_cnt == 513


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_eaug_after_the_secs_was_reclaimed(kname):
    """6.5: sgx_encl_eaug_page() loads a reclaimed SECS back (ELDU) before
    EAUG.  6.0 passes the SECS it no longer has: a NULL dereference, the
    kernel oopses and the task dies."""
    e = Encl(machine(kname)).build([(2 * PAGE_SIZE, R | W)])
    drv = e.drv
    for page in list(e.encl.page_array.values()):
        assert drv.sgx_reclaim_page(page)
    assert e.encl.secs.epc_page is None  # written out with its last child
    e.mmap(0, e.size, PROT_READ | PROT_WRITE)
    addr = e.base + 8 * PAGE_SIZE
    if kname == OLD:
        with pytest.raises(Signal) as ei:
            e.proc.peek(addr, 8)
        assert ei.value.signo == signal.SIGKILL
        assert "NULL pointer dereference" in e.m.kernel.oopses[0]
    else:
        assert e.proc.peek(addr, 8) == b"\xff" * 8  # EAUGed; abort-page read outside enclave mode
        assert e.encl.secs.epc_page is not None and (addr >> 12) in e.encl.page_array
        assert e.m.kernel.oopses == []


# -- the mm of 6.12 around an enclave: MDWE (6.3) and mseal (6.10) ---------------------

PROT_EXEC = 0x4
RX, RWX = PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC
PR_SET_MDWE, PR_GET_MDWE, REFUSE_EXEC_GAIN = 65, 66, 1


def _rule(exc: OSError) -> str:
    return exc.why.rule


def test_linux_6_0_has_neither_mdwe_nor_mseal():
    p = machine(OLD).spawn()
    with pytest.raises(OSError) as ei:
        p.prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(OSError) as ei:
        p.mseal(0x1000_0000, PAGE_SIZE)
    assert ei.value.errno == errno.ENOSYS


@pytest.mark.parametrize("kname", [OLD, NEW])
def test_mdwe_stops_an_enclave_mapping_becoming_executable(kname):
    """Under MDWE, map_deny_write_exec() refuses RW -> RX and any W+X before
    the LSM and the SGX hook are asked; 6.0 has no MDWE and the SGX hook
    allows both (the EAUG-able page's maximum is RWX)."""
    e = Encl(machine(kname)).build()
    if kname == NEW:
        assert e.proc.prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN) == 0
    e.mmap(4 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    try:
        e.proc.mprotect(e.base + 4 * PAGE_SIZE, PAGE_SIZE, RX)
        got = None
    except OSError as exc:
        got = exc
    if kname == OLD:
        assert got is None
        return
    assert got.errno == errno.EACCES and _rule(got) == "map_deny_write_exec"
    with pytest.raises(OSError) as ei:
        e.mmap(5 * PAGE_SIZE, PAGE_SIZE, RWX)
    assert ei.value.errno == errno.EACCES and _rule(ei.value) == "map_deny_write_exec"
    # munmap + a fresh PROT_EXEC mapping is no mapping "becoming" executable.
    e.proc.munmap(e.base + 4 * PAGE_SIZE, PAGE_SIZE)
    assert e.mmap(4 * PAGE_SIZE, PAGE_SIZE, RX) == e.base + 4 * PAGE_SIZE


def test_mdwe_is_inherited_unless_no_inherit():
    p = machine(NEW).spawn()
    assert p.prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN) == 0
    assert p.fork().prctl(PR_GET_MDWE) == REFUSE_EXEC_GAIN
    with pytest.raises(OSError) as ei:  # cannot be changed once set
        p.prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN | 2)
    assert ei.value.errno == errno.EPERM
    q = machine(NEW).spawn()
    assert q.prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN | 2) == 0
    assert q.fork().prctl(PR_GET_MDWE) == 0


def test_a_sealed_enclave_mapping():
    """mseal's EPERM comes from mprotect_fixup(), after vm_ops->mprotect: a
    request the SGX driver refuses still gets the driver's EACCES; munmap,
    mremap and MAP_FIXED over it are EPERM; access through it is unchanged."""
    e = Encl(machine(NEW)).build([(2 * PAGE_SIZE, R)])
    addr = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    e.proc.mseal(addr, PAGE_SIZE)
    with pytest.raises(OSError) as ei:
        e.proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE)  # beyond the page's R
    assert ei.value.errno == errno.EACCES and _rule(ei.value) == "sgx_encl_may_map"
    for call in (lambda: e.proc.mprotect(addr, PAGE_SIZE, PROT_READ),
                 lambda: e.proc.munmap(addr, PAGE_SIZE),
                 lambda: e.proc.mremap(addr, PAGE_SIZE, PAGE_SIZE, 3, addr + PAGE_SIZE),
                 lambda: e.mmap(2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EPERM, ei.value.why
    assert e.proc.peek(addr, 4) == b"\xff" * 4  # abort-page read, as before the seal
