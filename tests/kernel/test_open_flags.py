"""open(2)'s flags and the order of its checks, against the host's kernel.

do_sys_openat2() checks the flags (build_open_flags(): EINVAL), then reads
the name (getname(): ENOENT for "", ENAMETOOLONG), then takes a descriptor
(get_unused_fd_flags(): EMFILE), and only then walks the path.  Every case
below runs on both sides, once with a free descriptor table and once with a
full one (RLIMIT_NOFILE lowered: the host's in a subprocess), and the errnos
must agree."""

from __future__ import annotations

import errno
import json
import mmap
import os
import signal
import subprocess
import sys

import pytest

from sgxsim.kernel.errors import Signal
from sgxsim.machine import Machine

O_ACCMODE = 3  # both permissions asked, neither FMODE_READ nor FMODE_WRITE given
__O_TMPFILE = os.O_TMPFILE & ~os.O_DIRECTORY

CASES = [  # (path relative to the tree, flags, mode)
    ("file", os.O_RDONLY, 0),
    ("file", O_ACCMODE, 0),
    ("file", O_ACCMODE | os.O_TRUNC, 0),
    ("dir", O_ACCMODE, 0),
    ("dir", os.O_RDONLY | os.O_TRUNC, 0),  # O_TRUNC asks for MAY_WRITE: EISDIR
    ("dir", os.O_RDONLY, 0o177777),  # mode bits without O_CREAT are dropped by open()
    ("file", os.O_RDONLY | 1 << 30, 0),  # open() drops flags it does not know
    ("new", os.O_CREAT | os.O_DIRECTORY | os.O_RDWR, 0o644),
    ("dir", os.O_CREAT | os.O_DIRECTORY, 0o644),
    ("dir", __O_TMPFILE | os.O_RDWR, 0o600),  # O_TMPFILE needs O_DIRECTORY
    ("dir", os.O_TMPFILE | os.O_RDONLY, 0o600),  # ... and write access
    ("dir", os.O_TMPFILE | os.O_CREAT | os.O_RDWR, 0o600),
    ("dir", os.O_TMPFILE | os.O_RDWR, 0o600),
    ("dir", os.O_TMPFILE | O_ACCMODE, 0o600),
    ("file", os.O_TMPFILE | os.O_RDWR, 0o600),
    ("missing", os.O_TMPFILE | os.O_RDWR, 0o600),
    ("dir", os.O_PATH | os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644),  # O_PATH drops the rest
    ("missing", os.O_PATH | os.O_CREAT, 0o644),
    ("file/", os.O_PATH, 0),
    ("file", os.O_DIRECTORY, 0),
    ("missing", os.O_RDONLY, 0),
    ("missing/x", os.O_CREAT | os.O_RDWR, 0o644),
    ("dir/" + "n" * 256, os.O_CREAT | os.O_RDWR, 0o644),  # a name longer than NAME_MAX
    ("missing/" + "n" * 256, os.O_RDONLY, 0),
    ("n/" * 2100, os.O_RDONLY, 0),  # PATH_MAX: getname()
    ("", os.O_RDONLY, 0),  # the empty name: getname()
]

HOST = r"""
import json, os, resource, sys
root, full, cases = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
if full:  # the lowest free descriptor becomes the limit: the table is full
    low = os.dup(0)
    os.close(low)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
out = []
for rel, flags, mode in cases:
    try:
        os.close(os.open(os.path.join(root, rel) if rel else "", flags, mode))
        out.append(0)
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""


def _tree(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")


def _model(full: bool):
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.mkdir("/t/dir")
    m.kernel.vfs.create_file("/t/file", b"x")
    p = m.spawn()
    if full:
        p.prlimit_nofile(0, p.rlimit_nofile[1])
    return p


def _name(e: int) -> str:
    return errno.errorcode.get(e, str(e))


@pytest.mark.parametrize("full", [False, True], ids=["free-table", "full-table"])
def test_open_refuses_as_the_host_kernel_in_the_same_order(tmp_path, full):
    _tree(tmp_path)
    host = json.loads(subprocess.run(
        [sys.executable, "-c", HOST, str(tmp_path), "1" if full else "0", json.dumps(CASES)],
        check=True, capture_output=True, text=True).stdout)
    got = []
    for rel, flags, mode in CASES:
        p = _model(full)
        try:
            p.close(p.open("/t/" + rel if rel else "", flags, mode))
            got.append(0)
        except OSError as e:
            assert "vfs" in str(e)  # the layer and rule that decided
            got.append(e.errno)
    want = [(rel[:20], flags, _name(e)) for (rel, flags, _), e in zip(CASES, host, strict=True)]
    assert [(rel[:20], flags, _name(e)) for (rel, flags, _), e in zip(CASES, got, strict=True)] == want


def test_invalid_flags_are_refused_by_build_open_flags_before_the_descriptor():
    p = _model(full=True)
    for flags in (os.O_CREAT | os.O_DIRECTORY, __O_TMPFILE | os.O_RDWR, os.O_TMPFILE):
        with pytest.raises(OSError) as e:
            p.open("/t/dir", flags)
        assert e.value.errno == errno.EINVAL and "build_open_flags" in str(e.value)
    with pytest.raises(OSError) as e:
        p.open("", os.O_RDONLY)
    assert e.value.errno == errno.ENOENT and "getname" in str(e.value)
    with pytest.raises(OSError) as e:
        p.open("/t/file", os.O_RDONLY)
    assert e.value.errno == errno.EMFILE and "alloc_fd" in str(e.value)


def _host_fd_ops(path: str, flags: int) -> list[int]:
    fd = os.open(path, flags)
    out = []
    for call in (lambda: os.read(fd, 1), lambda: os.write(fd, b"y"),
                 lambda: mmap.mmap(fd, 1, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ),
                 lambda: mmap.mmap(fd, 1, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ),
                 lambda: os.fstat(fd)):
        try:
            r = call()
            if isinstance(r, mmap.mmap):
                r.close()
            out.append(0)
        except OSError as e:
            out.append(e.errno)
    os.close(fd)
    return out


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_RDWR, O_ACCMODE, os.O_PATH],
                         ids=["rdonly", "rdwr", "accmode3", "o_path"])
def test_the_file_mode_decides_mmap_as_on_the_host(tmp_path, flags):
    """OPEN_FMODE(): O_ACCMODE 3 gives neither FMODE_READ nor FMODE_WRITE, so
    do_mmap() refuses even a read-only mapping (EACCES); an O_PATH file is no
    file to fget() at all (EBADF) but fstat() still sees it."""
    (tmp_path / "file").write_bytes(b"x")
    host = _host_fd_ops(str(tmp_path / "file"), flags)
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"x")
    p = m.spawn()
    fd = p.open("/t/file", flags)
    got = []
    for call in (lambda: p.mmap(0, 1, 0x1, 0x01, fd), lambda: p.mmap(0, 1, 0x1, 0x02, fd),
                 lambda: p.stat(fd=fd)):
        try:
            call()
            got.append(0)
        except OSError as e:
            assert e.errno != errno.EBADF or "fget" in str(e) or "ksys_mmap_pgoff" in str(e)
            got.append(e.errno)
    assert [_name(e) for e in got] == [_name(e) for e in host[2:]]


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY, os.O_RDWR, O_ACCMODE])
def test_o_trunc_truncates_whatever_the_access_mode_as_do_open(tmp_path, flags):
    """do_open() truncates a regular file opened with O_TRUNC whether or not
    the file gets FMODE_WRITE (O_TRUNC adds MAY_WRITE to the permission asked)."""
    (tmp_path / "file").write_bytes(b"abc")
    os.close(os.open(str(tmp_path / "file"), flags | os.O_TRUNC))
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"abc")
    p = m.spawn()
    p.close(p.open("/t/file", flags | os.O_TRUNC))
    assert p.stat("/t/file").st_size == os.stat(tmp_path / "file").st_size == 0


def test_o_accmode_3_file_has_no_read_or_write_mode_and_o_path_skips_the_driver():
    m = Machine(kernel="linux-6.0")
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", O_ACCMODE)
    f = p.file(fd)
    assert f.f_mode & 0x3 == 0 and f.private_data is not None  # sgx_open() ran
    # O_PATH: vfs_open() gives FMODE_PATH and empty file operations; the
    # driver's open never runs, and ioctl()'s fdget() does not find the file.
    fd2 = p.open("/dev/sgx_enclave", os.O_PATH | os.O_RDWR)
    assert p.file(fd2).private_data is None
    with pytest.raises(OSError) as e:
        p.ioctl(fd2, 0xA400, 0)
    assert e.value.errno == errno.EBADF
    assert p.stat(fd=fd2).st_mode & 0o170000 == 0o020000
    assert p.dup(fd2) == fd2 + 1


def test_o_tmpfile_is_a_nameless_regular_file_in_the_directory():
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.mkdir("/t/dir")
    p = m.spawn()
    before = set(m.kernel.vfs.inodes)
    fd = p.open("/t/dir", os.O_TMPFILE | os.O_RDWR, 0o600)
    st = p.stat(fd=fd)
    assert st.st_mode == 0o100600 and set(m.kernel.vfs.inodes) == before
    assert p.file(fd).path == f"/t/dir/#{st.st_ino} (deleted)"  # d_path() of it


def test_an_o_tmpfile_page_cache_goes_with_its_last_reference():
    """iput_final(): a file with no name is evicted when its last reference
    (descriptor or mapping) goes; its page-cache frames are freed."""
    m = Machine(kernel="linux-6.0")
    p = m.spawn()
    fd = p.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    ino = p.file(fd).inode
    frames = len(m.cpu.phys.frames)
    addr = p.mmap(0, 4096, 0x3, 0x01, fd)  # MAP_SHARED, read-write
    p.close(fd)  # the mapping still holds the file
    with pytest.raises(Signal) as sig:  # a new file is empty: past its end
        p.poke(addr, b"kept")
    assert sig.value.signo == signal.SIGBUS
    ino.i_size = 4096  # as ftruncate(fd, 4096) would (the model has no ftruncate)
    p.poke(addr, b"kept")
    assert ino.pages and p.peek(addr, 4) == b"kept"
    p.munmap(addr, 4096)
    assert not ino.pages and len(m.cpu.phys.frames) <= frames


UMASK_HOST = r"""
import json, os, sys
root, cases = sys.argv[1], json.loads(sys.argv[2])
out = []
for i, (how, mode, mask) in enumerate(cases):
    old = os.umask(mask)
    if how == "creat":
        fd = os.open(os.path.join(root, f"f{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    else:
        fd = os.open(root, os.O_TMPFILE | os.O_RDWR, mode)
    out.append([os.fstat(fd).st_mode, os.umask(old)])
    os.close(fd)
print(json.dumps(out))
"""
# (how, mode, umask): setuid and setgid bits are kept (the creator owns the
# file and is in the directory's group), the umask clears permission bits only.
UMASK_CASES = [(how, mode, mask) for how in ("creat", "tmpfile")
               for mode, mask in ((0o644, 0o022), (0o666, 0o022), (0o777, 0o077), (0o666, 0),
                                  (0o777, 0o777), (0o4755, 0o022), (0o2775, 0o002),
                                  (0o6777, 0o027), (0o640, 0o137))]


def test_created_files_get_mode_minus_umask_as_on_the_host(tmp_path):
    """umask(2) and vfs_prepare_mode(): a file made by O_CREAT or O_TMPFILE
    gets the mode asked for without the umask's bits; umask() returns the
    old mask (os.umask's answers on the host, the model's here)."""
    host = json.loads(subprocess.run(
        [sys.executable, "-c", UMASK_HOST, str(tmp_path), json.dumps(UMASK_CASES)],
        check=True, capture_output=True, text=True).stdout)
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.mkdir("/t")
    p = m.spawn()
    got = []
    for i, (how, mode, mask) in enumerate(UMASK_CASES):
        old = p.umask(mask)
        if how == "creat":
            fd = p.open(f"/t/f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
        else:
            fd = p.open("/t", os.O_TMPFILE | os.O_RDWR, mode)
        got.append([p.stat(fd=fd).st_mode, p.umask(old)])
        p.close(fd)
    assert [[oct(a), oct(b)] for a, b in got] == [[oct(a), oct(b)] for a, b in host]


def test_umask_keeps_the_permission_bits_and_is_inherited_by_fork():
    p = Machine(kernel="linux-6.0").spawn()
    assert p.umask(0o7777) == 0o022  # init_fs's mask
    assert p.umask(-1) == 0o777  # int mask: the permission bits of 0xffffffff
    assert p.umask((1 << 32) + 0o027) == 0o777
    child = p.fork()
    assert child.umask(0) == 0o027 and p.umask(0o022) == 0o027  # a copy, not shared
    with pytest.raises(TypeError, match="'mask' must be an int"):
        p.umask(0.5)
    # an existing file keeps its mode: the umask applies to creation only
    p.kernel.vfs.create_file("/t/old", b"", mode=0o666)
    fd = p.open("/t/old", os.O_CREAT | os.O_RDWR, 0o600)
    assert p.stat(fd=fd).st_mode == 0o100666
