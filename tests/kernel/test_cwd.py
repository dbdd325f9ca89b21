"""The working directory against the host's kernel: chdir(2), getcwd(2),
and relative names in open(2), openat(2) (``dir_fd``) and stat(2).  Each
case runs in a fresh tree (a directory holding a file and a directory) on
both sides, the host's in a subprocess (it changes its working directory),
and the errno (or result) must agree."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from tests.kernel.test_path_walk import FLAGS, PATHS

from sgxsim.machine import Machine

# Where a relative name starts: the working directory, or a dirfd that is a
# directory, a regular file, an O_PATH directory, or not open at all.
DIRFDS = ["cwd", "dir", "opath", "file", "bad"]
CASES = ([["open", rel, flags, "cwd"] for rel in PATHS for flags in FLAGS]
         + [["open", rel, os.O_RDONLY, d] for rel in ("file", "dir/..", "new", "", "../x")
            for d in DIRFDS[1:]]
         + [["open", "/abs", os.O_RDONLY, d] for d in DIRFDS]  # an absolute name ignores dirfd
         + [["chdir", rel, 0, "cwd"] for rel in [*PATHS, "", ".."]]
         + [["stat", rel, 0, "cwd"] for rel in PATHS])

HOST = r"""
import json, os, sys
root, cases = sys.argv[1], json.loads(sys.argv[2])
out = []
for i, (kind, rel, flags, start) in enumerate(cases):
    base = os.path.join(root, str(i))
    os.makedirs(os.path.join(base, "dir"))
    open(os.path.join(base, "file"), "wb").close()
    os.chdir(base)
    if rel == "/abs":
        rel = os.path.join(base, "file")
    dfd = {"cwd": None, "dir": os.open("dir", os.O_RDONLY | os.O_DIRECTORY),
           "opath": os.open(".", os.O_PATH), "file": os.open("file", os.O_RDONLY),
           "bad": 999}[start]
    try:
        if kind == "open":
            os.close(os.open(rel, flags, 0o644, dir_fd=dfd))
            r = 0
        elif kind == "chdir":
            os.chdir(rel)
            r = os.path.relpath(os.getcwd(), base)
        else:
            r = 0 if os.stat(rel) else 1
    except OSError as e:
        r = e.errno
    if dfd not in (None, 999):
        os.close(dfd)
    out.append(r)
print(json.dumps(out))
"""


def _model(cases) -> list:
    m = Machine(kernel="linux-6.0")
    p = m.spawn()
    out = []
    for i, (kind, rel, flags, start) in enumerate(cases):
        base = f"/t/{i}"
        m.kernel.vfs.mkdir(base + "/dir")
        m.kernel.vfs.create_file(base + "/file")
        p.chdir(base)
        if rel == "/abs":
            rel = base + "/file"
        dfd = {"cwd": None, "dir": lambda: p.open("dir", os.O_RDONLY | os.O_DIRECTORY),
               "opath": lambda: p.open(".", os.O_PATH), "file": lambda: p.open("file"),
               "bad": lambda: 999}[start]
        dfd = dfd() if dfd else None
        try:
            if kind == "open":
                p.close(p.open(rel, flags, 0o644, dir_fd=dfd))
                r = 0
            elif kind == "chdir":
                p.chdir(rel)
                r = os.path.relpath(p.getcwd(), base)
            else:
                r = 0 if p.stat(rel) else 1
        except OSError as e:
            assert "vfs" in str(e)  # the layer and rule that decided
            r = e.errno
        if dfd not in (None, 999):
            p.close(dfd)
        out.append(r)
    assert p.files == {}
    return out


def _show(r):
    return errno.errorcode.get(r, r) if isinstance(r, int) else r


def test_relative_names_resolve_as_on_the_host(tmp_path):
    root = os.path.realpath(tmp_path)
    host = json.loads(subprocess.run([sys.executable, "-c", HOST, root, json.dumps(CASES)],
                                     check=True, capture_output=True, text=True).stdout)
    got = _model(CASES)
    want = [(c[0], c[1][:20], c[2], c[3], _show(r)) for c, r in zip(CASES, host, strict=True)]
    assert [(c[0], c[1][:20], c[2], c[3], _show(r)) for c, r in zip(CASES, got, strict=True)] == want
    # the cases reach every outcome the rules give
    assert {errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.EEXIST, errno.EISDIR, 0, ".", "dir",
            ".."} <= set(host)


def test_a_process_starts_at_the_root_and_a_fork_child_inherits_its_working_directory():
    m = Machine(kernel="linux-6.0")
    m.kernel.vfs.create_file("/t/file", b"xy")
    p = m.spawn()
    assert p.getcwd() == "/"
    with pytest.raises(OSError) as e:
        p.open("file")
    assert e.value.errno == errno.ENOENT
    p.chdir("t")
    child = p.fork()
    p.chdir("/")
    assert child.getcwd() == "/t" and child.stat("file").st_size == 2  # a copy, not shared
    assert p.getcwd() == "/"
    fd = child.open("file", dir_fd=-100)  # AT_FDCWD itself
    assert child.file(fd).path == "/t/file"
    with pytest.raises(ValueError, match="embedded null byte"):
        child.chdir("/\0")
    with pytest.raises(TypeError, match="'dir_fd' must be an int"):
        child.open("file", dir_fd="3")
