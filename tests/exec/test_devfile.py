"""read/write/lseek/fcntl of the placeholder fds under `sgxsim exec`: the
model's vfs answers (tests/exec/native/devfile.c), not the memfd behind the
placeholder, which read 0 bytes and wrote them all."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess

import pytest
from test_bridge import sgxsim_exec

from sgxsim.machine import Machine

MODES = ("rdonly", "wronly", "rdwr", "accmode3")


def _model_devfile(kernel: str, path: str) -> list[str]:
    """devfile.c's calls on the Python API of a model with ``kernel``."""
    p = Machine(kernel=kernel).spawn()
    out = []

    def show(m, what, fn, hexa=False):
        try:
            r = fn()
        except OSError as e:
            out.append(f"{m} {what} -> {errno.errorcode[e.errno]}")
            return
        r = len(r) if isinstance(r, bytes) else r
        out.append(f"{m} {what} -> {r:#x}" if hexa else f"{m} {what} -> {r}")

    def one_mode(acc: int, m: str) -> None:
        fd = p.open(path, acc | os.O_CLOEXEC)
        show(m, "read", lambda: p.read(fd, 16))
        show(m, "write", lambda: p.write(fd, b"abc"))
        show(m, "pread", lambda: p.pread(fd, 16, 0))
        show(m, "pread -1", lambda: p.pread(fd, 16, -1))
        show(m, "pwrite", lambda: p.pwrite(fd, b"abc", 4096))
        show(m, "readv", lambda: p.readv(fd, [bytearray(4), bytearray(4)]))
        show(m, "writev", lambda: p.writev(fd, [b"abcd", b"efgh"]))
        show(m, "preadv", lambda: p.preadv(fd, [bytearray(4), bytearray(4)], 0))
        show(m, "pwritev", lambda: p.pwritev(fd, [b"abcd", b"efgh"], 0))
        show(m, "read 0", lambda: p.read(fd, 0))
        show(m, "lseek set", lambda: p.lseek(fd, 0, os.SEEK_SET))
        show(m, "lseek cur", lambda: p.lseek(fd, 0, os.SEEK_CUR))
        show(m, "lseek end", lambda: p.lseek(fd, 0, os.SEEK_END))
        show(m, "lseek whence 7", lambda: p.lseek(fd, 0, 7))
        show(m, "getfl", lambda: p.fcntl(fd, fcntl.F_GETFL), True)
        show(m, "setfl nonblock|append|rdwr",
             lambda: p.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK | os.O_APPEND | os.O_RDWR))
        show(m, "getfl", lambda: p.fcntl(fd, fcntl.F_GETFL), True)
        fd2 = p.dup(fd)
        show(m, "setfl direct", lambda: p.fcntl(fd2, fcntl.F_SETFL, os.O_DIRECT))
        show(m, "setfl 0 on dup", lambda: p.fcntl(fd2, fcntl.F_SETFL, 0))
        show(m, "getfl", lambda: p.fcntl(fd, fcntl.F_GETFL), True)
        p.close(fd2)
        p.close(fd)
        show(m, "read closed", lambda: p.read(fd, 1))
        show(m, "getfl closed", lambda: p.fcntl(fd, fcntl.F_GETFL), True)

    for acc, m in enumerate(MODES):
        one_mode(acc, m)
    return out


PIPE = ["pipe write -> 2", "pipe read -> 2", "pipe got ok"]


@pytest.mark.parametrize("kernel", ["linux-6.0", "linux-6.12"])
def test_device_file_io_is_the_models(native, kernel):
    r = sgxsim_exec("--kernel", kernel, "--", str(native["devfile"]), "/dev/sgx_enclave",
                    "/dev/sgx_provision")
    assert r.returncode == 0, r.stderr
    expected = _model_devfile(kernel, "/dev/sgx_enclave") + _model_devfile(kernel, "/dev/sgx_provision")
    assert r.stdout.splitlines() == expected + PIPE
    # what the placeholder memfd answered before: a read of 0 bytes, a write of 3
    assert "rdwr read -> EINVAL" in expected and "rdwr write -> EINVAL" in expected


def test_device_file_io_matches_a_host_device_without_read_or_write(native):
    """/dev/kvm's operations have no read or write either (they have an
    llseek: lseek is left out); the host kernel gives the same lines."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        pytest.skip(f"/dev/kvm does not open here ({e})")
    host = subprocess.run([str(native["devfile"]), "-noseek", "/dev/kvm"], capture_output=True,
                          text=True, timeout=60, check=True).stdout.splitlines()
    r = sgxsim_exec("--", str(native["devfile"]), "-noseek", "/dev/sgx_enclave")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == host
    assert len(host) == 4 * 18 + len(PIPE)
