"""read/write/lseek/fcntl on the model's files (fs/read_write.c, fs/fcntl.c).

The SGX files' operations (sgx_encl_fops, sgx_provision_fops) have no read,
write or llseek: vfs_read()/vfs_write() refuse with EBADF when the file lacks
FMODE_READ/FMODE_WRITE and EINVAL otherwise (no FMODE_CAN_READ/WRITE), and
do_dentry_open() leaves them without FMODE_LSEEK, so lseek is ESPIPE, the
same in 6.1 and 6.12 (6.1 already had vfs_llseek()'s FMODE_LSEEK test and
no_llseek as NULL; 6.12 removed the name).  5.11 kept FMODE_LSEEK and fell
back to no_llseek(): the same ESPIPE, decided elsewhere.  The host has no SGX device; /dev/kvm's operations have
no read or write either (only an llseek), so its read/write/fcntl answers are
compared where it opens.
"""

from __future__ import annotations

import errno
import fcntl
import os

import pytest

from sgxsim.kernel.errors import why_of
from sgxsim.machine import Machine

KERNELS = ["linux-5.11", "linux-6.0", "linux-6.12"]
# Who says ESPIPE: since 6.0 vfs_llseek() itself (do_dentry_open() dropped
# FMODE_LSEEK), in 5.11 the no_llseek() it falls back to.
LSEEK_RULE = {"linux-5.11": "no_llseek", "linux-6.0": "vfs_llseek", "linux-6.12": "vfs_llseek"}
PATHS = ["/dev/sgx_enclave", "/dev/sgx_provision"]
O_ACCMODE = 3
O_LARGEFILE = 0o100000  # the kernel's; glibc's os.O_LARGEFILE is 0 on x86-64
MODES = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR, O_ACCMODE]
MODE_IDS = ["rdonly", "wronly", "rdwr", "accmode3"]


def _calls(read, write, pread, pwrite, readv, writev, getfl, setfl):
    return [("read", lambda: read(8)), ("write", lambda: write(b"x")),
            ("pread", lambda: pread(8, 0)), ("pwrite", lambda: pwrite(b"x", 0)),
            ("readv", lambda: readv([bytearray(4), bytearray(4)])),
            ("writev", lambda: writev([b"ab", b"cd"])),
            ("getfl", getfl), ("setfl", lambda: setfl(os.O_NONBLOCK | os.O_APPEND)),
            ("getfl", getfl), ("setfl", lambda: setfl(os.O_DIRECT)), ("getfl", getfl)]


def _run(calls) -> list:
    out = []
    for _name, call in calls:
        try:
            out.append(call())
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    return out


def _model(p, fd):
    return _calls(lambda n: p.read(fd, n), lambda b: p.write(fd, b), lambda n, o: p.pread(fd, n, o),
                  lambda b, o: p.pwrite(fd, b, o), lambda v: p.readv(fd, v), lambda v: p.writev(fd, v),
                  lambda: p.fcntl(fd, fcntl.F_GETFL), lambda a: p.fcntl(fd, fcntl.F_SETFL, a))


def _host(fd):
    return _calls(lambda n: os.read(fd, n), lambda b: os.write(fd, b), lambda n, o: os.pread(fd, n, o),
                  lambda b, o: os.pwrite(fd, b, o), lambda v: os.readv(fd, v), lambda v: os.writev(fd, v),
                  lambda: fcntl.fcntl(fd, fcntl.F_GETFL), lambda a: fcntl.fcntl(fd, fcntl.F_SETFL, a))


def _expected(acc: int) -> list:
    """What vfs_read()/vfs_write() answer for a file without read or write
    operations, and F_GETFL/F_SETFL after them, by access mode."""
    rd = "EINVAL" if acc in (os.O_RDONLY, os.O_RDWR) else "EBADF"
    wr = "EINVAL" if acc in (os.O_WRONLY, os.O_RDWR) else "EBADF"
    base = O_LARGEFILE | acc
    setfl = base | os.O_NONBLOCK | os.O_APPEND
    return [rd, wr, rd, wr, rd, wr, base, 0, setfl, "EINVAL", setfl]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("acc", MODES, ids=MODE_IDS)
def test_sgx_files_have_no_read_write_or_llseek(kernel, path, acc):
    p = Machine(kernel=kernel).spawn()
    fd = p.open(path, acc | os.O_CLOEXEC)  # O_CLOEXEC is the descriptor's, not in f_flags
    assert _run(_model(p, fd)) == _expected(acc)
    for whence in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, os.SEEK_DATA, os.SEEK_HOLE):
        with pytest.raises(OSError) as e:
            p.lseek(fd, 0, whence)
        assert e.value.errno == errno.ESPIPE and why_of(e.value).rule == LSEEK_RULE[kernel]
    with pytest.raises(OSError) as e:  # ksys_lseek(): whence above SEEK_MAX before vfs_llseek()
        p.lseek(fd, 0, 5)
    assert e.value.errno == errno.EINVAL and why_of(e.value).rule == "ksys_lseek"


@pytest.mark.parametrize("acc", MODES, ids=MODE_IDS)
def test_refusals_name_the_vfs_rule(acc):
    p = Machine(kernel="linux-6.12").spawn()
    fd = p.open("/dev/sgx_enclave", acc)
    with pytest.raises(OSError) as e:
        p.read(fd, 1)
    why = why_of(e.value)
    assert (why.layer, why.rule) == ("vfs", "vfs_read")
    assert ("no read or read_iter" in why.detail) == (e.value.errno == errno.EINVAL)
    with pytest.raises(OSError) as e:
        p.writev(fd, [b"x"])
    assert why_of(e.value).rule == "vfs_writev"


def test_positions_and_descriptors_are_checked_first():
    p = Machine(kernel="linux-6.12").spawn()
    fd = p.open("/dev/sgx_enclave", os.O_RDWR)
    # ksys_pread64()/do_pwritev(): a negative position is EINVAL before the fd
    for call in (lambda: p.pread(99, 1, -1), lambda: p.pwrite(99, b"x", -1),
                 lambda: p.preadv(99, [bytearray(1)], -1), lambda: p.pwritev(99, [b"x"], -1)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    for call in (lambda: p.read(99, 1), lambda: p.write(99, b"x"), lambda: p.lseek(99, 0, 0),
                 lambda: p.fcntl(99, fcntl.F_GETFL), lambda: p.readv(99, [bytearray(1)])):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EBADF
    # the operation checks come before the buffer: a bad user address or
    # too many iovecs are never looked at
    for call in (lambda: p.read(fd, 16, addr=1 << 60), lambda: p.write(fd, 1 << 60, 16),
                 lambda: p.readv(fd, 1 << 60, vlen=5000), lambda: p.pwritev(fd, 0, 0, vlen=5000)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL


def test_o_path_files():
    """fdget_raw(): F_GETFL works on an O_PATH file (check_fcntl_cmd()),
    F_SETFL and every read, write or seek are EBADF."""
    p = Machine(kernel="linux-6.12").spawn()
    fd = p.open("/dev/sgx_enclave", os.O_PATH | os.O_RDWR)
    assert p.fcntl(fd, fcntl.F_GETFL) == os.O_PATH  # build_open_how() kept only O_PATH
    for call in (lambda: p.fcntl(fd, fcntl.F_SETFL, 0), lambda: p.read(fd, 1),
                 lambda: p.write(fd, b"x"), lambda: p.lseek(fd, 0, 0), lambda: p.pread(fd, 1, 0)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EBADF


def test_setfl_changes_only_its_flags():
    p = Machine(kernel="linux-6.12").spawn()
    fd = p.open("/dev/sgx_provision", os.O_RDONLY | os.O_NONBLOCK)
    assert p.fcntl(fd, fcntl.F_GETFL) == O_LARGEFILE | os.O_NONBLOCK
    # access mode, O_CREAT/O_TRUNC/O_SYNC/FASYNC/O_LARGEFILE: not F_SETFL's to change
    p.fcntl(fd, fcntl.F_SETFL, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_SYNC | 0o20000 | os.O_NOATIME)
    assert p.fcntl(fd, fcntl.F_GETFL) == O_LARGEFILE | os.O_NOATIME
    with pytest.raises(ValueError):
        p.fcntl(fd, fcntl.F_GETFD)  # not modelled: said so, never a made-up answer


@pytest.mark.parametrize("kernel", KERNELS)
def test_o_direct_open_of_an_sgx_file_is_einval_after_the_driver_opened_it(kernel):
    """do_dentry_open(): the device's mapping has no direct_IO; the file was
    opened (sgx_open() ran) and path_openat()'s fput() releases it."""
    m = Machine(kernel=kernel)
    p = m.spawn()
    opened = []
    drv = m.kernel.sgx
    orig = drv.sgx_release
    drv.sgx_release = lambda inode, file: (opened.append(file), orig(inode, file))
    with pytest.raises(OSError) as e:
        p.open("/dev/sgx_enclave", os.O_RDWR | os.O_DIRECT)
    assert e.value.errno == errno.EINVAL and why_of(e.value).rule == "do_dentry_open"
    assert len(opened) == 1 and not p.files


@pytest.mark.parametrize("acc", MODES, ids=MODE_IDS)
def test_a_device_without_read_or_write_answers_as_on_the_host(acc):
    try:
        hfd = os.open("/dev/kvm", acc)
    except OSError as e:
        pytest.skip(f"/dev/kvm does not open here ({e})")
    try:
        host = _run(_host(hfd))
    finally:
        os.close(hfd)
    p = Machine(kernel="linux-6.12").spawn()
    fd = p.open("/dev/sgx_enclave", acc)
    assert _run(_model(p, fd)) == host == _expected(acc)


def test_regular_files_read_write_and_seek_as_on_the_host(tmp_path):
    """Regular files have read_iter, write_iter and llseek: the same calls
    move bytes and positions as the host's do."""
    host_path = tmp_path / "f"
    host_path.write_bytes(b"hello world")
    m = Machine(kernel="linux-6.12")
    m.kernel.vfs.create_file("/t/f", b"hello world")
    p = m.spawn()

    def seq(open_, read, write, pread, pwrite, lseek, readv, close):
        out = []
        fd = open_(os.O_RDWR)
        for call in (lambda: read(fd, 5), lambda: lseek(fd, 0, os.SEEK_CUR),
                     lambda: write(fd, b"_there"), lambda: lseek(fd, 0, os.SEEK_END),
                     lambda: pwrite(fd, b"XY", 20), lambda: pread(fd, 64, 0),
                     lambda: lseek(fd, -3, os.SEEK_END), lambda: read(fd, 10),
                     lambda: lseek(fd, 30, os.SEEK_DATA), lambda: lseek(fd, 5, os.SEEK_HOLE),
                     lambda: lseek(fd, -100, os.SEEK_SET), lambda: lseek(fd, 2, os.SEEK_SET),
                     lambda: readv(fd, [bytearray(3), bytearray(4)])):
            try:
                r = call()
                out.append(bytes(r) if isinstance(r, bytes | bytearray) else r)
            except OSError as e:
                out.append(errno.errorcode[e.errno])
        close(fd)
        fd = open_(os.O_WRONLY | os.O_APPEND)
        for call in (lambda: write(fd, b"!"), lambda: lseek(fd, 0, os.SEEK_CUR), lambda: read(fd, 1)):
            try:
                out.append(call())
            except OSError as e:
                out.append(errno.errorcode[e.errno])
        close(fd)
        fd = open_(os.O_RDONLY)
        out.append(read(fd, 100))
        close(fd)
        return out

    def hreadv(fd, bufs):
        n = os.readv(fd, bufs)
        return n, [bytes(b) for b in bufs]

    def mreadv(fd, bufs):
        n = p.readv(fd, bufs)
        return n, [bytes(b) for b in bufs]

    host = seq(lambda fl: os.open(host_path, fl), os.read, os.write, os.pread, os.pwrite, os.lseek,
               hreadv, os.close)
    model = seq(lambda fl: p.open("/t/f", fl), p.read, p.write, p.pread, p.pwrite, p.lseek, mreadv,
                p.close)
    assert model == host


def test_a_regular_file_read_sees_a_shared_mapping_and_a_write_reaches_it():
    """read/write go through the page cache a MAP_SHARED mapping maps."""
    m = Machine(kernel="linux-6.12")
    m.kernel.vfs.create_file("/t/f", b"a" * 4096)
    p = m.spawn()
    fd = p.open("/t/f", os.O_RDWR)
    addr = p.mmap(0, 4096, 0x3, 0x01, fd)
    p.poke(addr + 10, b"MAP")
    assert p.pread(fd, 4, 9) == b"aMAP"
    p.pwrite(fd, b"FILE", 100)
    assert p.peek(addr + 100, 4) == b"FILE"
    # to and from user memory
    assert p.pread(fd, 3, 10, addr=addr + 200) == 3 and p.peek(addr + 200, 3) == b"MAP"
    assert p.pwrite(fd, addr + 100, 300, n=4) == 4 and p.pread(fd, 4, 300) == b"FILE"
    with pytest.raises(OSError) as e:
        p.read(fd, 8, addr=1 << 60)
    assert e.value.errno == errno.EFAULT


@pytest.mark.parametrize("kernel", KERNELS)
def test_fmode_bits_by_release(kernel):
    """do_dentry_open(): 6.0 on drops FMODE_LSEEK without ->llseek and sets
    FMODE_CAN_ODIRECT from direct_IO; 5.11 did neither (its O_DIRECT checks
    asked the mapping each time).  A regular file keeps FMODE_LSEEK in both."""
    from sgxsim.kernel.mm.flags import (
        FMODE_CAN_ODIRECT,
        FMODE_CAN_READ,
        FMODE_CAN_WRITE,
        FMODE_LSEEK,
        FMODE_PREAD,
        FMODE_PWRITE,
    )

    m = Machine(kernel=kernel)
    m.kernel.vfs.create_file("/t/f", b"x")
    p = m.spawn()
    sgx = p.file(p.open("/dev/sgx_enclave", os.O_RDWR)).f_mode
    reg = p.file(p.open("/t/f", os.O_RDWR)).f_mode
    new = kernel != "linux-5.11"
    assert sgx & (FMODE_PREAD | FMODE_PWRITE) == FMODE_PREAD | FMODE_PWRITE
    assert not sgx & (FMODE_CAN_READ | FMODE_CAN_WRITE | FMODE_CAN_ODIRECT)
    assert bool(sgx & FMODE_LSEEK) == (not new)
    assert reg & (FMODE_LSEEK | FMODE_CAN_READ | FMODE_CAN_WRITE) == \
        FMODE_LSEEK | FMODE_CAN_READ | FMODE_CAN_WRITE
    assert bool(reg & FMODE_CAN_ODIRECT) == new
    fd = p.open("/t/f", os.O_RDWR | os.O_DIRECT)  # direct_IO: allowed either way
    assert p.fcntl(fd, fcntl.F_SETFL, 0) == 0 and p.fcntl(fd, fcntl.F_SETFL, os.O_DIRECT) == 0


def _host_probe(addr: int, n: int) -> bytes | str:
    """Read n bytes at addr in a forked child (the mappings are inherited):
    the bytes, or 'SIGBUS'/'SIGSEGV' when the read kills it."""
    import ctypes
    import signal

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        import faulthandler

        faulthandler.disable()  # the SIGBUS is the answer, not a crash to report
        os.close(r)
        os.write(w, ctypes.string_at(addr, n))
        os._exit(0)
    os.close(w)
    data = os.read(r, n)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return data


def _model_probe(p, addr: int, n: int) -> bytes | str:
    import signal

    from sgxsim.kernel.errors import Signal

    try:
        return p.peek(addr, n)
    except Signal as s:
        return signal.Signals(s.signo).name


def test_o_trunc_unmaps_the_file_everywhere_as_the_host_kernel(tmp_path):
    """open(O_TRUNC) -> do_truncate(0) -> truncate_pagecache(): every mapping
    of the file loses its pages, a MAP_PRIVATE mapping's COWed copies too
    (unmap_mapping_range(..., even_cows=1)), and the cached pages go: a read
    past the new EOF is SIGBUS, and the page a later write brings back holds
    zeros past what was written (the old bytes were the cache's).  Compared
    with the host kernel."""
    import ctypes
    import mmap

    path = tmp_path / "f"
    path.write_bytes(b"A" * 8192)
    hfd = os.open(path, os.O_RDWR)
    hshared = mmap.mmap(hfd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    hpriv = mmap.mmap(hfd, 8192, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    hs = ctypes.addressof(ctypes.c_char.from_buffer(hshared))
    hp = ctypes.addressof(ctypes.c_char.from_buffer(hpriv))

    m = Machine(kernel="linux-6.12")
    m.kernel.vfs.create_file("/t/f", b"A" * 8192)
    p = m.spawn()
    mfd = p.open("/t/f", os.O_RDWR)
    ms = p.mmap(0, 8192, 0x3, 0x01, mfd)
    mp = p.mmap(0, 8192, 0x3, 0x02, mfd)

    def run(probe, write, trunc, pwrite, shared, priv):
        out = [probe(shared, 4), probe(priv, 4)]  # fault both in
        write(priv + 4096, b"P")  # a private COW copy of the second page
        write(shared + 8, b"S")
        out += [probe(priv + 4096, 2), probe(priv + 8, 1)]
        trunc()
        out += [probe(shared, 4), probe(priv, 4), probe(priv + 4096, 1), probe(shared + 4096, 1)]
        pwrite(b"xy", 0)  # the file is two bytes long again
        out += [probe(shared, 4), probe(shared + 4090, 6), probe(priv, 4), probe(priv + 4096, 1)]
        return out

    host = run(_host_probe, lambda a, d: ctypes.memmove(a, d, len(d)),
               lambda: os.close(os.open(path, os.O_RDWR | os.O_TRUNC)),
               lambda d, o: os.pwrite(hfd, d, o), hs, hp)
    model = run(lambda a, n: _model_probe(p, a, n), p.poke,
                lambda: p.close(p.open("/t/f", os.O_RDWR | os.O_TRUNC)),
                lambda d, o: p.pwrite(mfd, d, o), ms, mp)
    del hs, hp
    hshared.close()
    hpriv.close()
    os.close(hfd)
    assert model == host
    assert host[4:8] == ["SIGBUS"] * 4 and host[8:10] == [b"xy\0\0", bytes(6)]
    # the cached pages were given back: only the one the write brought back is left
    assert len(p.file(mfd).inode.pages) == 1
