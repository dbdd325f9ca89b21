"""The descriptor table: dup, dup2 and open against RLIMIT_NOFILE, each
refusal with the errno and the rule the kernel's own path gives."""

from __future__ import annotations

import errno
import os

import pytest

from sgxsim.machine import Machine


@pytest.fixture
def proc():
    return Machine(kernel="linux-6.0").spawn()


def test_dup2_onto_a_descriptor_at_or_above_the_limit_is_ebadf(proc):
    fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
    for newfd in (proc.rlimit_nofile[0], 1 << 70, -1):  # -1: unsigned in ksys_dup3()
        with pytest.raises(OSError) as e:
            proc.dup(fd, newfd)
        assert e.value.errno == errno.EBADF and "ksys_dup3" in str(e.value)
        assert newfd not in proc.files
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
