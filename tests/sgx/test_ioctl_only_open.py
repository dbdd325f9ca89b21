"""/dev/sgx_enclave opened with O_ACCMODE 3 (the "ioctl-only" open some
drivers' users make): open() asks for read and write permission and
accepts it; the file gets neither FMODE_READ nor FMODE_WRITE (OPEN_FMODE()).
The SGX driver's open and ioctls never look at f_mode, so the enclave builds;
do_mmap() looks before sgx_mmap() is reached, so no mapping of it is
possible.  O_PATH opens no file at all: the driver is never called."""

from __future__ import annotations

import errno
import os

import pytest
from sgx_helpers import MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Encl, R, X, machine

from sgxsim.hw import uapi

O_ACCMODE = 3


@pytest.fixture(params=["linux-5.11", "linux-6.0", "linux-6.12"])
def kname(request):
    return request.param


def _encl(kname: str, flags: int) -> Encl:
    e = Encl(machine(kname))
    e.proc.close(e.fd)
    e.fd = e.proc.open("/dev/sgx_enclave", flags)
    return e


def test_an_o_accmode_3_enclave_builds_but_never_maps(kname):
    e = _encl(kname, O_ACCMODE)
    e.build([(2 * 4096, R | X)])  # CREATE, ADD_PAGES, INIT: sgx_ioctl() has no f_mode check
    assert e.encl is not None and e.proc.file(e.fd).f_mode & 3 == 0
    for prot in (PROT_READ, PROT_READ | PROT_WRITE):
        with pytest.raises(OSError) as err:
            e.mmap(0, 4096, prot, MAP_SHARED | MAP_FIXED)
        assert err.value.errno == errno.EACCES and "do_mmap" in str(err.value)
    # do_mmap() asks the driver's get_unmapped_area() first: a private
    # mapping is its EINVAL before any f_mode check.
    with pytest.raises(OSError) as err:
        e.mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_FIXED)
    assert err.value.errno == errno.EINVAL and "sgx_get_unmapped_area" in str(err.value)
    # The same enclave through an O_RDONLY descriptor of another open of it
    # does not exist (one enclave per open), so check the contrast on a
    # fresh O_RDONLY open: its mapping reaches the driver.
    ro = _encl(kname, os.O_RDONLY)
    ro.build([(2 * 4096, R | X)])
    assert ro.mmap(2 * 4096, 4096, PROT_READ) == ro.base + 2 * 4096


def test_an_o_path_descriptor_reaches_no_driver_entry(kname):
    m = machine(kname)
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", os.O_PATH)
    assert p.file(fd).private_data is None  # sgx_open() did not run
    with pytest.raises(OSError) as err:
        p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytes(8))
    assert err.value.errno == errno.EBADF
    with pytest.raises(OSError) as err:
        p.mmap(0, 4096, PROT_READ, MAP_SHARED, fd)
    assert err.value.errno == errno.EBADF and "ksys_mmap_pgoff" in str(err.value)
    p.close(fd)  # fput() of it: no sgx_release() either
