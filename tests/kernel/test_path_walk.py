"""Path resolution against the host's kernel: the same tree (a directory
holding a file and a directory) on both sides, every path and open flags
below opened on each, and the same errno (or success) expected.  The model
walks "." and ".." and trailing slashes as link_path_walk() does."""

from __future__ import annotations

import errno
import itertools
import os

import pytest

from sgxsim.machine import Machine

PATHS = ["file", "file/", "file/.", "file/..", "file/x", "dir", "dir/", "dir/.", "dir/..",
         "dir/../file", "dir/./../file", "dir//../file/", "missing/../file", "missing/",
         "dir/new", "dir/new/", "new", "new/", ".", "./file", "dir/../dir/../file"]
FLAGS = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_CREAT | os.O_WRONLY, os.O_CREAT | os.O_RDONLY,
         os.O_CREAT | os.O_EXCL | os.O_WRONLY, os.O_DIRECTORY | os.O_RDONLY]


def _host(root, rel: str, flags: int) -> int:
    try:
        os.close(os.open(os.path.join(str(root), rel), flags, 0o644))
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize("rel, flags", list(itertools.product(PATHS, FLAGS)))
def test_open_resolves_as_the_host_kernel(tmp_path, rel, flags):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    want = _host(tmp_path, rel, flags)
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.mkdir("/t/dir")
    m.kernel.vfs.create_file("/t/file", b"x")
    proc = m.spawn()
    try:
        proc.close(proc.open("/t/" + rel, flags, 0o644))
        got = 0
    except OSError as e:
        got = e.errno
        assert "vfs" in str(e)  # the layer and rule that decided
    assert errno.errorcode.get(got, got) == errno.errorcode.get(want, want)


@pytest.mark.parametrize("rel", PATHS)
def test_stat_resolves_as_the_host_kernel(tmp_path, rel):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    try:
        os.stat(os.path.join(str(tmp_path), rel))
        want = 0
    except OSError as e:
        want = e.errno
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.mkdir("/t/dir")
    m.kernel.vfs.create_file("/t/file", b"x")
    try:
        m.spawn().stat("/t/" + rel)
        got = 0
    except OSError as e:
        got = e.errno
    assert errno.errorcode.get(got, got) == errno.errorcode.get(want, want)


def _raised(call, *args):
    try:
        call(*args)
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)
    return None


def test_a_nul_inside_a_python_path_is_refused_as_os_refuses_it(tmp_path):
    """Process.open/stat take Python paths as os.open/os.stat do: a str or
    bytes with a NUL inside is no C string, so it is a ValueError with os's
    message, before any call (not the name up to the NUL, nor ENOENT)."""
    (tmp_path / "file").write_bytes(b"x")
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"x")
    proc = m.spawn()
    for suffix in ("\0", "\0junk", "/\0"):
        host_path, model_path = str(tmp_path / "file") + suffix, "/t/file" + suffix
        for conv in (str, os.fsencode):
            for host, model in ((lambda p: os.open(p, os.O_RDONLY), lambda p: proc.open(p)),
                                (os.stat, lambda p: proc.stat(p))):
                want = _raised(host, conv(host_path))
                assert want is not None and want[0] == "ValueError"
                assert _raised(model, conv(model_path)) == want, (suffix, conv)
    assert proc.files == {}  # nothing was opened
    # the ValueError comes before an argument of the wrong type, as in os.open
    assert _raised(proc.open, "/t/file\0", 1.5) == ("ValueError", "embedded null byte")


def test_getname_ends_the_name_at_the_first_nul_as_the_host(tmp_path):
    """What reads a name from user memory (getname(): strncpy_from_user())
    stops at the first NUL: the host opens the name before it, and a name
    that starts with NUL is the empty name (ENOENT)."""
    import ctypes

    (tmp_path / "file").write_bytes(b"x")
    libc = ctypes.CDLL(None, use_errno=True)
    host = []
    for raw in (os.fsencode(tmp_path / "file") + b"\0junk", b"\0" + os.fsencode(tmp_path / "file")):
        fd = libc.open(ctypes.c_char_p(raw), os.O_RDONLY)
        host.append(0 if fd >= 0 else ctypes.get_errno())
        if fd >= 0:
            os.close(fd)
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"x")
    vfs = m.kernel.vfs
    assert vfs.getname("/t/file\0junk") == "/t/file"
    got = []
    for name in ("/t/file\0junk", "\0/t/file"):
        try:
            f = vfs.open(name, os.O_RDONLY)
            assert f.path == "/t/file"
            got.append(0)
        except OSError as e:
            assert e.why.rule == "getname"
            got.append(e.errno)
    assert got == host == [0, errno.ENOENT]


def test_a_name_with_a_nul_cannot_be_created_in_the_namespace():
    m = Machine(kernel="linux-6.0")
    vfs = m.kernel.vfs
    for make in (lambda: vfs.create_file("/t/a\0b"), lambda: vfs.mkdir("/t/d\0"),
                 lambda: vfs.mount("/mnt\0x", noexec=True)):
        with pytest.raises(ValueError, match="embedded null byte"):
            make()
    assert not any("\0" in path for path in vfs.inodes)
