"""The descriptor table: dup, dup2 and open against RLIMIT_NOFILE, each
refusal with the errno and the rule the kernel's own path gives."""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys

import pytest

from sgxsim.machine import Machine


@pytest.fixture
def proc():
    return Machine(kernel="linux-6.0").spawn()


def test_dup2_onto_a_descriptor_at_or_above_the_limit_is_ebadf(proc):
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    limit = proc.rlimit_nofile[0]
    # -1 is 0xffffffff (newfd is an unsigned int); 2**32 + limit is limit
    for newfd in (limit, -1, (1 << 32) + limit):
        with pytest.raises(OSError) as e:
            proc.dup(fd, newfd)
        assert e.value.errno == errno.EBADF and "ksys_dup3" in str(e.value)
        assert set(proc.files) == {fd}
    assert proc.dup(fd, proc.rlimit_nofile[0] - 1) == proc.rlimit_nofile[0] - 1


def test_dup2_checks_the_limit_before_oldfd_and_its_corner_case_only_oldfd(proc):
    with pytest.raises(OSError) as e:
        proc.dup(7, proc.rlimit_nofile[0])  # neither is fine: the limit is checked first
    assert e.value.errno == errno.EBADF and "not below RLIMIT_NOFILE" in str(e.value)
    with pytest.raises(OSError) as e:
        proc.dup(7, 7)  # oldfd == newfd: only whether oldfd is open
    assert e.value.errno == errno.EBADF and "dup2" in str(e.value)
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    assert proc.dup(fd, fd) == fd


def test_a_full_table_is_emfile_for_open_and_dup_and_nothing_leaks(proc):
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    for n in range(1, proc.rlimit_nofile[0]):
        assert proc.dup(fd) == n
    f = proc.files[fd]
    refs = f.refcount
    for call in (lambda: proc.dup(fd), lambda: proc.open("/dev/sgx_enclave", os.O_RDWR)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EMFILE and "alloc_fd" in str(e.value)
    assert len(proc.files) == proc.rlimit_nofile[0] and f.refcount == refs
    # The descriptor comes before the file (do_sys_openat2()): a full table
    # is EMFILE even for a path that does not exist.
    with pytest.raises(OSError) as e:
        proc.open("/no/such/file")
    assert e.value.errno == errno.EMFILE
    proc.close(5)
    assert proc.open("/dev/sgx_enclave", os.O_RDWR) == 5


def test_prlimit_moves_the_limit_and_checks_it_as_do_prlimit(proc):
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    assert proc.prlimit_nofile(4096, 8192) == proc.RLIMIT_NOFILE
    assert proc.dup(fd, 4095) == 4095
    child = proc.fork()  # the limits are inherited
    assert child.rlimit_nofile == (4096, 8192) and child.dup(fd, 4000) == 4000
    # The limits are u64: RLIM_INFINITY (-1) is the largest, so above fs.nr_open.
    for soft, hard, err in ((9, 8, errno.EINVAL), (8, proc.NR_OPEN + 1, errno.EPERM),
                            (-1, -1, errno.EPERM), (-1, 8, errno.EINVAL)):
        with pytest.raises(OSError) as e:
            proc.prlimit_nofile(soft, hard)
        assert e.value.errno == err and "do_prlimit" in str(e.value)
    assert proc.rlimit_nofile == (4096, 8192)


# -- descriptors as the syscall ABI passes them ----------------------------------------------
# A descriptor is an unsigned int (close, dup, dup2, ioctl, fstat; mmap's
# unsigned long fd reaches fget() as one): the kernel reads the register's
# low 32 bits.  The host shows it through raw syscalls (x86-64 numbers)
# with 64-bit register values; the model must do the same with those ints.
SYS_CLOSE, SYS_FSTAT, SYS_MMAP, SYS_MUNMAP, SYS_IOCTL, SYS_DUP, SYS_DUP2 = 3, 5, 9, 11, 16, 32, 33
FD, NEWFD, SPARE = 7, 10, 8
FD_VALUES = [FD, FD + (1 << 32), FD - (1 << 32), FD + (1 << 63), -1, (1 << 32) - 1, (1 << 31) + FD]
NEWFD_VALUES = [NEWFD, NEWFD + (1 << 32), NEWFD - (1 << 32), -1, (1 << 32) + 4096]

HOST_RAW = r"""
import ctypes, json, os, sys
FD, NEWFD, SPARE = 7, 10, 8
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def raw(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a & (2**64 - 1)) for a in args))
    return -ctypes.get_errno() if r == -1 else r
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
f = os.open(sys.argv[1], os.O_RDONLY)
os.dup2(f, FD); os.dup2(f, SPARE); os.close(f)
buf = ctypes.create_string_buffer(256)
out = {}
for v in json.loads(sys.argv[2]):
    r = raw(5, v, ctypes.addressof(buf)); out.setdefault("fstat", []).append(min(r, 0))
    r = raw(16, v, 0x1234, 0); out.setdefault("ioctl", []).append(min(r, 0))
    r = raw(9, 0, 4096, 1, 2, v, 0); out.setdefault("mmap", []).append(min(r, 0))
    if r > 0: raw(11, r, 4096)
    r = raw(32, v); out.setdefault("dup", []).append(min(r, 0))
    if r >= 0: os.close(r)
    r = raw(3, v); out.setdefault("close", []).append(min(r, 0))
    if r == 0: os.dup2(SPARE, FD)
for v in json.loads(sys.argv[3]):
    r = raw(33, FD, v); out.setdefault("dup2", []).append(min(r, 0) if r < 0 else r)
    if r >= 0 and r != FD: os.close(r)
print(json.dumps(out))
"""


def _model_raw(proc) -> dict[str, list[int]]:
    def err(fn, *args, **kw) -> int:
        try:
            r = fn(*args, **kw)
        except OSError as e:
            return -e.errno
        return r if isinstance(r, int) and r < 4096 else 0

    f = proc.open("/t/file", os.O_RDONLY)
    proc.dup(f, FD), proc.dup(f, SPARE), proc.close(f)
    out: dict[str, list[int]] = {}
    for v in FD_VALUES:
        out.setdefault("fstat", []).append(min(err(proc.stat, fd=v), 0))
        out.setdefault("ioctl", []).append(err(proc.ioctl, v, 0x1234, 0))
        r = err(proc.mmap, 0, 4096, 1, 2, v, 0)
        out.setdefault("mmap", []).append(r)
        if r == 0:
            proc.munmap(proc.maps()[0].start, 4096)
        r = err(proc.dup, v)
        out.setdefault("dup", []).append(min(r, 0))
        if r >= 0:
            proc.close(r)
        r = err(proc.close, v)
        out.setdefault("close", []).append(r)
        if r == 0:
            proc.dup(SPARE, FD)
    for v in NEWFD_VALUES:
        r = err(proc.dup, FD, v)
        out.setdefault("dup2", []).append(r)
        if r >= 0 and r != FD:
            proc.close(r)
    return out


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")
def test_descriptor_registers_are_read_as_unsigned_int_as_on_the_host(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    host = json.loads(subprocess.run(
        [sys.executable, "-c", HOST_RAW, str(tmp_path / "file"), json.dumps(FD_VALUES),
         json.dumps(NEWFD_VALUES)], check=True, capture_output=True, text=True).stdout)
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"x")
    got = _model_raw(m.spawn())
    # the host's ioctl of a regular file ends in the filesystem's ENOTTY, as the model's
    assert got == host
    assert host["close"][:3] == [0, 0, 0] and host["close"][4] == -errno.EBADF


def test_ints_wider_than_a_register_keep_their_low_bits_and_non_ints_are_typeerrors(proc):
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    assert proc.dup(fd + (1 << 64)) == 1 and proc.stat(fd=1 + (1 << 70)).st_mode & 0o020000
    proc.close(1 + (5 << 64))
    assert set(proc.files) == {fd}
    calls = [(lambda v: proc.close(v), os.close, "fd"),
             (lambda v: proc.dup(v), os.dup, "oldfd"),
             (lambda v: proc.dup(fd, v), lambda v: os.dup2(0, v), "newfd"),
             (lambda v: proc.stat(fd=v), os.fstat, "fd "),
             (lambda v: proc.ioctl(v, 0, 0), None, "fd"),
             (lambda v: proc.ioctl(fd, v, 0), None, "request"),
             (lambda v: proc.mmap(0, 4096, 1, 1, v), None, "fd"),
             (lambda v: proc.file(v), None, "fd"),
             (lambda v: proc.open("/dev/sgx_enclave", v), lambda v: os.open("/", v), "flags"),
             (lambda v: proc.open(v), lambda v: os.open(v, 0), "path"),
             (lambda v: proc.prlimit_nofile(v, 4096), None, "soft")]
    for model, host, name in calls:
        # (dup(fd, None) is dup(2), stat(fd=None) a stat of a path; a path may be bytes)
        nobad = (1.0, "3", b"3")
        for bad in {"path": (1.0, None, 3.5), "newfd": nobad, "fd ": nobad}.get(name, nobad + (None,)):
            name = name.strip()
            if host is not None:
                with pytest.raises(TypeError):
                    host(bad)
            with pytest.raises(TypeError) as e:
                model(bad)
            assert repr(name) in str(e.value), (name, bad, str(e.value))
    assert set(proc.files) == {fd} and proc.files[fd].refcount == 1


# -- fs.nr_open -------------------------------------------------------------------------------
# (soft, hard): ["nr", d] is fs.nr_open + d (the host's sysctl, the model's
# NR_OPEN), ["hard", d] the hard limit in force + d, ["abs", v] v itself;
# then dup2 targets relative to the soft limit in force.  No case raises the
# hard limit within fs.nr_open: that needs CAP_SYS_RESOURCE, which the model
# does not model (it allows it, as for root) and this host's root may lack.
NR_OPEN_LIMITS = [(["nr", 1], ["nr", 1]), (["nr", 0], ["nr", 1]), (["nr", 1], ["nr", 0]),
                  ("inf", "inf"), ("inf", ["hard", 0]), (["abs", 64], ["hard", 0]),
                  (["abs", 8], ["abs", 8]), (["abs", 9], ["abs", 8])]
NR_OPEN_DUP2 = [-1, 0, 1, 1 << 32, (1 << 32) - 1]

HOST_NR_OPEN = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
nr_open = int(open("/proc/sys/fs/nr_open").read())
def limits():
    cur = (ctypes.c_uint64 * 2)()
    assert libc.syscall(L(302), L(0), L(7), L(0), L(ctypes.addressof(cur))) == 0  # prlimit64
    return cur[0], cur[1]
def value(spec):
    if spec == "inf":
        return 2**64 - 1
    kind, v = spec
    return {"nr": nr_open, "hard": limits()[1], "abs": 0}[kind] + v
out = []
for soft, hard in json.loads(sys.argv[1]):
    lim = (ctypes.c_uint64 * 2)(value(soft), value(hard))
    r = libc.syscall(L(302), L(0), L(7), L(ctypes.addressof(lim)), L(0))
    out.append(-ctypes.get_errno() if r == -1 else 0)
    for d in json.loads(sys.argv[2]):
        r = libc.syscall(L(33), L(0), L((limits()[0] + d) & (2**64 - 1)))  # dup2(0, ...)
        out.append(-ctypes.get_errno() if r == -1 else 0)
        if r > 2:
            os.close(r)
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")
def test_nr_open_bounds_prlimit_and_the_soft_limit_bounds_dup2_as_on_the_host(proc):
    """do_prlimit(): soft above hard is EINVAL before a hard limit above
    fs.nr_open is EPERM (RLIM_INFINITY too); ksys_dup3(): newfd at or above
    the soft limit (as an unsigned int) is EBADF."""
    host = json.loads(subprocess.run(
        [sys.executable, "-c", HOST_NR_OPEN, json.dumps(NR_OPEN_LIMITS), json.dumps(NR_OPEN_DUP2)],
        check=True, capture_output=True, text=True).stdout)

    def value(spec):
        if spec == "inf":
            return -1
        kind, v = spec
        return {"nr": proc.NR_OPEN, "hard": proc.rlimit_nofile[1], "abs": 0}[kind] + v

    for _ in range(3):  # fds 0, 1 and 2 as on the host
        proc.open("/dev/sgx_enclave", os.O_RDWR)
    got = []
    for soft, hard in NR_OPEN_LIMITS:
        try:
            proc.prlimit_nofile(value(soft), value(hard))
            got.append(0)
        except OSError as e:
            assert "do_prlimit" in str(e)
            got.append(-e.errno)
        for d in NR_OPEN_DUP2:
            try:
                r = proc.dup(0, proc.rlimit_nofile[0] + d)
                got.append(0)
                if r > 2:
                    proc.close(r)
            except OSError as e:
                got.append(-e.errno)
    assert got == host
    assert {-errno.EPERM, -errno.EINVAL, -errno.EBADF, 0} <= set(host)


def test_the_table_reaches_fs_nr_open(proc):
    """A hard limit of fs.nr_open itself is allowed (do_prlimit() refuses
    only above it), and the last descriptor below it can be used."""
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    proc.prlimit_nofile(proc.NR_OPEN, proc.NR_OPEN)
    assert proc.dup(fd, proc.NR_OPEN - 1) == proc.NR_OPEN - 1
    with pytest.raises(OSError) as e:
        proc.dup(fd, proc.NR_OPEN)
    assert e.value.errno == errno.EBADF and "ksys_dup3" in str(e.value)
