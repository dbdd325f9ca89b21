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
