"""The mm's rules, one at a time: order of checks, VM_MAY*, READ_IMPLIES_EXEC,
a driver's vm_ops->mprotect refusal, the SELinux-like policy, faults."""

from __future__ import annotations

import errno
import signal

import pytest

from sgxsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDONLY,
    O_RDWR,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    Machine,
    Signal,
)
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import FileOperations, VmOperations
from sgxsim.kernel.security.selinux import SelinuxPolicy

A = 0x1000_0000
PG = 4096
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno, e.why
    return 0, None


@pytest.fixture
def proc():
    m = Machine(kernel="linux")
    m.vfs.create_file("/home/user/lib.so", bytes(3 * PG), label="user_home_t")
    m.vfs.mount("/mnt/noexec", noexec=True)
    m.vfs.create_file("/mnt/noexec/data", bytes(2 * PG))
    return m.spawn()


# -- do_mprotect_pkey: the order of checks -------------------------------------------------
def test_unaligned_start_beats_a_hole(proc):
    assert errno_of(proc.mprotect, A + 1, PG, PROT_READ)[0] == errno.EINVAL


def test_growsdown_and_growsup_together_beats_unaligned(proc):
    e, why = errno_of(proc.mprotect, A + 1, PG, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP)
    assert e == errno.EINVAL and "GROWSUP" in why.detail


def test_zero_length_succeeds_before_any_lookup(proc):
    assert errno_of(proc.mprotect, A, 0, PROT_READ)[0] == 0


def test_unknown_prot_bit_is_einval_before_the_lookup(proc):
    assert errno_of(proc.mprotect, A, PG, 0x40)[0] == errno.EINVAL


def test_unmapped_is_enomem(proc):
    e, why = errno_of(proc.mprotect, A, PG, PROT_READ)
    assert e == errno.ENOMEM and why.rule == "do_mprotect_pkey"


def test_hole_after_a_changed_vma_is_enomem_without_rollback(proc):
    proc.mmap(A, PG, PROT_READ, ANON)
    proc.mmap(A + 2 * PG, PG, PROT_READ, ANON)
    assert errno_of(proc.mprotect, A, 3 * PG, PROT_READ | PROT_WRITE)[0] == errno.ENOMEM
    assert [e.perms for e in proc.maps()][:2] == ["rw-p", "r--p"]


def test_vm_may_exec_missing_on_noexec_mount(proc):
    fd = proc.open("/mnt/noexec/data", O_RDONLY)
    a = proc.mmap(A, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    e, why = errno_of(proc.mprotect, a, PG, PROT_READ | PROT_EXEC)
    assert e == errno.EACCES and "VM_MAYEXEC" in why.detail
    assert errno_of(proc.mmap, A + PG, PG, PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd)[0] == errno.EPERM


def test_vm_may_write_missing_on_a_read_only_shared_file(proc):
    fd = proc.open("/home/user/lib.so", O_RDONLY)
    a = proc.mmap(A, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    assert errno_of(proc.mprotect, a, PG, PROT_READ | PROT_WRITE)[0] == errno.EACCES
    assert errno_of(proc.mmap, A, PG, PROT_WRITE, MAP_SHARED | MAP_FIXED, fd)[0] == errno.EACCES
    # A private mapping may be made writable (copy on write).
    b = proc.mmap(A + PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    proc.mprotect(b, PG, PROT_READ | PROT_WRITE)


def test_read_implies_exec_adds_exec_where_may_exec(proc):
    proc.personality(READ_IMPLIES_EXEC)
    a = proc.mmap(A, PG, PROT_READ, ANON)
    assert proc.maps()[0].perms == "r-xp"
    proc.mprotect(a, PG, PROT_READ)
    assert proc.maps()[0].perms == "r-xp"
    fd = proc.open("/mnt/noexec/data", O_RDONLY)
    b = proc.mmap(A + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    proc.mprotect(b, PG, PROT_READ)  # no VM_MAYEXEC: nothing added, no EACCES
    assert [e.perms for e in proc.maps() if e.start == b] == ["r--p"]


# -- vm_ops->mprotect ----------------------------------------------------------------------------
class RefusingVmOps(VmOperations):
    def mprotect(self, vma, start, end, newflags):
        if newflags & 0x4:
            raise refuse(errno.EACCES, "test", "refusing_mprotect", "no exec here")


class TestDevice(FileOperations):
    def mmap(self, file, vma):
        vma.vm_ops = RefusingVmOps()


def test_driver_refusal_leaves_earlier_vmas_changed(proc):
    k = proc.kernel
    k.misc_register("/dev/test", TestDevice())
    fd = proc.open("/dev/test", O_RDWR)
    proc.mmap(A, PG, PROT_READ, ANON)
    proc.mmap(A + PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    e, why = errno_of(proc.mprotect, A, 2 * PG, PROT_READ | PROT_EXEC)
    assert e == errno.EACCES and why.rule == "refusing_mprotect"
    assert [m.perms for m in proc.maps()[:2]] == ["r-xp", "r--s"]


def test_the_hook_runs_after_the_lsm(proc):
    proc.kernel.security.modules.append(SelinuxPolicy(process={"user_t": set()}, files={}))
    proc.kernel.misc_register("/dev/test", TestDevice())
    proc.kernel.security.modules[0].allow("user_t", "read", "device_t")
    fd = proc.open("/dev/test", O_RDWR)
    proc.mmap(A, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    e, why = errno_of(proc.mprotect, A, PG, PROT_READ | PROT_EXEC)
    assert e == errno.EACCES and why.layer == "lsm"  # the LSM said no first


# -- the SELinux-like policy -------------------------------------------------------------------------
@pytest.fixture
def selinux():
    m = Machine(kernel="linux", policy="selinux")
    m.vfs.create_file("/home/user/lib.so", bytes(2 * PG), label="user_home_t")
    m.vfs.create_file("/tmp/x", bytes(2 * PG), label="tmp_t")
    return m, m.spawn()


def test_execmem_denied_for_anonymous_exec(selinux):
    _, p = selinux
    e, why = errno_of(p.mmap, A, PG, PROT_READ | PROT_EXEC, ANON)
    assert e == errno.EACCES and "execmem" in why.detail
    p.mmap(A, PG, PROT_READ | PROT_WRITE, ANON)
    assert errno_of(p.mprotect, A, PG, PROT_READ | PROT_EXEC)[0] == errno.EACCES


def test_file_execute_and_execmod(selinux):
    m, p = selinux
    fd = p.open("/home/user/lib.so", O_RDONLY)
    a = p.mmap(A, PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd)  # execute granted
    b = p.mmap(A + PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    p.mprotect(b, PG, PROT_READ | PROT_WRITE)
    p.poke(b, b"x")  # a COW page: the VMA now has an anon_vma
    p.mprotect(b, PG, PROT_READ)
    e, why = errno_of(p.mprotect, b, PG, PROT_READ | PROT_EXEC)
    assert e == errno.EACCES and "execmod" in why.detail
    m.kernel.security.modules[0].allow("user_t", "execmod", "user_home_t")
    p.mprotect(b, PG, PROT_READ | PROT_EXEC)
    assert a == A


def test_file_execute_denied_on_tmp(selinux):
    _, p = selinux
    fd = p.open("/tmp/x", O_RDWR)
    e, why = errno_of(p.mmap, A, PG, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd)
    assert e == errno.EACCES and "execute" in why.detail
    p.mmap(A, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd)


def test_the_lsm_sees_what_read_implies_exec_makes_of_prot_read(selinux):
    # security_mmap_file() hands the modules mmap_prot(file, prot): PROT_READ
    # from a READ_IMPLIES_EXEC task is PROT_READ|PROT_EXEC (do_mmap() adds it
    # too), except from a noexec mount.  The model asked about PROT_READ and
    # then made an r-x mapping SELinux never saw.
    m, p = selinux
    p.personality(READ_IMPLIES_EXEC)
    e, why = errno_of(p.mmap, A, PG, PROT_READ, ANON)
    assert e == errno.EACCES and "execmem" in why.detail
    fd = p.open("/tmp/x", O_RDONLY)
    e, why = errno_of(p.mmap, A, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    assert e == errno.EACCES and "file execute denied" in why.detail
    m.vfs.mount("/mnt/noexec", noexec=True)
    m.vfs.create_file("/mnt/noexec/d", bytes(PG), label="tmp_t")
    fd = p.open("/mnt/noexec/d", O_RDONLY)
    p.mmap(A, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)  # noexec: PROT_READ as asked
    assert [e.perms for e in p.maps() if e.start == A] == ["r--p"]
    m.kernel.security.modules[0].allow("user_t", "execmem")
    p.mmap(A + PG, PG, PROT_READ, ANON)
    assert [e.perms for e in p.maps() if e.start == A + PG] == ["r-xp"]


def test_private_writable_exec_file_mapping_needs_execmem(selinux):
    _, p = selinux
    fd = p.open("/home/user/lib.so", O_RDONLY)
    e, why = errno_of(p.mmap, A, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd)
    assert e == errno.EACCES and "execmem" in why.detail


# -- faults -------------------------------------------------------------------------------------------
def test_faults(proc):
    with pytest.raises(Signal) as s:
        proc.peek(A, 1)
    assert (s.value.signo, s.value.si_code) == (signal.SIGSEGV, 1)  # SEGV_MAPERR
    proc.mmap(A, PG, PROT_NONE, ANON)
    with pytest.raises(Signal) as s:
        proc.peek(A, 1)
    assert (s.value.signo, s.value.si_code) == (signal.SIGSEGV, 2)  # SEGV_ACCERR
    proc.mmap(A + PG, PG, PROT_READ, ANON)
    with pytest.raises(Signal) as s:
        proc.poke(A + PG, b"x")
    assert s.value.si_code == 2 and s.value.error_code == 0x6  # W|U: not present yet
    proc.peek(A + PG, 1)  # the read fault maps the zero page read-only
    with pytest.raises(Signal) as s:
        proc.poke(A + PG, b"x")
    assert s.value.error_code == 0x7  # P|W|U
    with pytest.raises(Signal):
        proc.fetch(A + PG)  # NX


def test_sigbus_beyond_end_of_file(proc):
    fd = proc.open("/home/user/lib.so", O_RDONLY)
    a = proc.mmap(A, 5 * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    assert proc.peek(a + 2 * PG, 1) == b"\0"
    with pytest.raises(Signal) as s:
        proc.peek(a + 3 * PG, 1)
    assert s.value.signo == signal.SIGBUS


def test_private_file_cow_and_shared_writes(proc):
    m_file = proc.kernel.vfs.inodes["/home/user/lib.so"]
    fd = proc.open("/home/user/lib.so", O_RDWR)
    priv = proc.mmap(A, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd)
    shared = proc.mmap(A + 4 * PG, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd)
    proc.poke(priv, b"private")
    assert proc.peek(shared, 7) == bytes(7)
    proc.poke(shared, b"shared!")
    assert proc.peek(priv, 7) == b"private"
    assert m_file.size == 3 * PG


def test_fork_copies_on_write(proc):
    a = proc.mmap(A, PG, PROT_READ | PROT_WRITE, ANON)
    proc.poke(a, b"parent")
    child = proc.fork()
    assert child.peek(a, 6) == b"parent"
    child.poke(a, b"child!")
    assert proc.peek(a, 6) == b"parent" and child.peek(a, 6) == b"child!"
    child.exit()


def test_closed_fd_and_bad_mmap_flags(proc):
    assert errno_of(proc.mmap, A, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, 42)[0] == errno.EBADF
    assert errno_of(proc.mmap, A, PG, PROT_READ, MAP_ANONYMOUS | MAP_FIXED)[0] == errno.EINVAL
    assert errno_of(proc.mmap, A, 0, PROT_READ, ANON)[0] == errno.EINVAL
    assert errno_of(proc.close, 7)[0] == errno.EBADF
    assert errno_of(proc.mmap, A, PG, PROT_READ, ANON, -1, 1)[0] == errno.EINVAL


def test_an_offset_past_the_largest_file_is_eoverflow(proc):
    # do_mmap()'s file_mmap_ok(): a regular file ends at MAX_LFS_FILESIZE
    # (2^63 - 1), a character device at 2^64 - 1; this machine's kernel
    # gives the same (EOVERFLOW for /dev/zero at -4096, for a file at 2^63 - 4096).
    fd = proc.open("/home/user/lib.so", O_RDONLY)
    assert errno_of(proc.mmap, 0, PG, PROT_READ, MAP_PRIVATE, fd, (1 << 63) - PG)[0] == errno.EOVERFLOW
    assert errno_of(proc.mmap, 0, PG, PROT_READ, MAP_PRIVATE, fd, (1 << 63) - 2 * PG)[0] == 0
    m = Machine(kernel="linux-6.0")
    p = m.spawn()
    enclave = p.open("/dev/sgx_enclave", O_RDWR)
    e, why = errno_of(p.mmap, 0, PG, PROT_READ, MAP_SHARED, enclave, -PG)
    assert e == errno.EOVERFLOW and why.rule == "file_mmap_ok", why
    assert errno_of(p.mmap, 0, PG, PROT_READ, MAP_SHARED, enclave, (1 << 63) - PG)[0] == 0
    assert m.kernel.sgx.check_invariants() == []


def test_a_huge_shared_anonymous_mapping_costs_nothing_until_touched():
    """MAP_SHARED|MAP_ANONYMOUS gets a shmem object as large as the mapping;
    it is sparse (Hypothesis found a 26 GB mapping that used to allocate
    the whole object up front)."""
    import tracemalloc

    import sgxsim

    m = sgxsim.Machine()
    p = m.spawn()
    tracemalloc.start()
    a = p.mmap(0, 26_386_557_597, 0x3, 0x21, -1, 0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20
    p.poke(a + (1 << 34), b"x")
    assert p.peek(a + (1 << 34), 1) == b"x" and p.peek(a, 1) == b"\0"


def test_poke_takes_bytes_not_a_count(proc):
    # bytes(5) is five zero bytes: poke(addr, 5) wrote them where the caller
    # meant one value; a count or a bool is refused as os.write refuses it.
    proc.mmap(A, PG, PROT_READ | PROT_WRITE, ANON)
    proc.poke(A, b"abcdef")
    for bad in (5, True):
        with pytest.raises(TypeError, match="bytes-like"):
            proc.poke(A, bad)
    assert proc.peek(A, 6) == b"abcdef"
    proc.poke(A, bytearray(b"x"))
    proc.poke(A + 1, memoryview(b"y"))
    assert proc.peek(A, 3) == b"xyc"


# -- the registers are unsigned long: prot and flags above bit 31 ------------------------------
def test_prot_and_flags_are_read_as_unsigned_long(proc):
    """mmap/mprotect/mremap take unsigned long prot and flags: a bit above 31
    is kept (the host agrees: tests/kernel/test_differential.py)."""
    fd = proc.open("/home/user/lib.so", O_RDONLY)
    e, why = errno_of(proc.mmap, A, PG, PROT_READ, 0x3 | MAP_FIXED | 1 << 40, fd)
    assert e == errno.EOPNOTSUPP and why.rule == "do_mmap" and "0x10000000000" in why.detail
    assert proc.mmap(A, PG, PROT_READ, MAP_SHARED | MAP_FIXED | 1 << 40, fd) == A
    e, why = errno_of(proc.mprotect, A, PG, PROT_READ | 1 << 32)
    assert e == errno.EINVAL and why.rule == "arch_validate_prot"
    e, why = errno_of(proc.mremap, A, PG, PG, 1 << 63)
    assert e == errno.EINVAL and why.rule == "mremap"
    assert [m.perms for m in proc.maps() if m.start == A] == ["r--s"]


def test_prot_exec_with_a_high_bit_is_not_exec_only(proc):
    """do_mmap() gives the execute-only protection key to prot == PROT_EXEC
    exactly; PROT_EXEC | 1 << 32 is another value (no key), so two such
    neighbours differ in their key and do not merge, as they would if the
    bit were cut off."""
    proc.mmap(A, PG, PROT_EXEC, ANON)
    proc.mmap(A + PG, PG, PROT_EXEC, ANON)
    assert [(m.start, m.end) for m in proc.maps() if A <= m.start < A + 4 * PG] == [(A, A + 2 * PG)]
    proc.mmap(A + 2 * PG, PG, PROT_EXEC | 1 << 32, ANON)
    assert [(m.start, m.end) for m in proc.maps() if A <= m.start < A + 4 * PG] == [
        (A, A + 2 * PG), (A + 2 * PG, A + 3 * PG)]


def test_the_shared_validate_mask_follows_the_release():
    """LEGACY_MAP_MASK: MAP_32BIT and MAP_HUGE_2MB/1GB in every modelled
    release, MAP_ABOVE4G since 6.6 (absent from 6.1's mask, present in
    6.12's), MAP_FIXED_NOREPLACE never."""
    map_32bit, map_above4g, map_huge_2mb, noreplace = 0x40, 0x80, 21 << 26, 0x100000
    sv = 0x3 | MAP_FIXED
    for kernel, above4g in (("linux-5.11", errno.EOPNOTSUPP), ("linux-6.0", errno.EOPNOTSUPP),
                            ("linux-6.12", 0), ("linux", 0)):
        m = Machine(kernel=kernel)
        m.vfs.create_file("/home/user/lib.so", bytes(3 * PG))
        p = m.spawn()
        fd = p.open("/home/user/lib.so", O_RDONLY)
        assert errno_of(p.mmap, A, PG, PROT_READ, sv | map_32bit | map_huge_2mb, fd)[0] == 0
        assert errno_of(p.mmap, A, PG, PROT_READ, sv | map_above4g, fd)[0] == above4g, kernel
        assert errno_of(p.mmap, A + PG, PG, PROT_READ, 0x3 | noreplace, fd)[0] == errno.EOPNOTSUPP
        assert errno_of(p.mmap, A + PG, PG, PROT_READ, MAP_SHARED | noreplace, fd)[0] == 0


def test_a_register_argument_must_be_an_int(proc):
    for call, args, name in ((proc.mmap, (A, PG, 1.0, ANON), "prot"),
                             (proc.mmap, (A, PG, PROT_READ, None), "flags"),
                             (proc.mprotect, (A, PG, "1"), "prot"),
                             (proc.mremap, (A, PG, PG, 0.5), "flags"),
                             (proc.munmap, (A, 1.5), "length"),
                             (proc.mseal, (None, PG), "addr")):
        with pytest.raises(TypeError, match=f"'{name}' must be an int"):
            call(*args)
