"""The few helpers a fuzzer reproduction calls besides the public API: a
plausible enclave build (the selftests' test enclave, built by the
selftests' loader) and the vDSO user handlers the fuzzer registers."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.user import test_encl as T
from sgxsim.user.elf import write_elf
from sgxsim.user.enclave import EnclaveLibrary
from sgxsim.user.loader import encl_build, encl_load, encl_measure, map_segments
from sgxsim.user.vdso import EENTER, ERESUME

_IMAGES: dict[int, Any] = {}  # heap pages -> measured, signed image (RSA is slow)


def _image(heap_pages: int) -> Any:
    if heap_pages not in _IMAGES:
        from sgxsim.user.selftests import signing_key

        img = T.image()
        elf = write_elf([(n, o, p, d) for n, (o, p, d) in img.items()], T.program().symbols)
        encl = encl_load(elf, heap_pages * 4096)
        encl_measure(encl, signing_key())
        _IMAGES[heap_pages] = encl
    return _IMAGES[heap_pages]


def library() -> EnclaveLibrary:
    """An enclave library that knows the test enclave's code."""
    lib = EnclaveLibrary()
    for heap in (1, 4):
        lib.bind(_image(heap).mrenclave, T.program())
    return lib


def build(proc: Any, scratch: int, heap_pages: int = 1) -> tuple[int, int]:
    """Build the selftests' enclave in ``proc`` as the selftests do (open,
    CREATE, ADD_PAGES per segment, INIT, map the segments); returns (fd,
    ELRANGE base).  Raises OSError or Signal like the calls it makes."""
    import copy

    encl = copy.copy(_image(heap_pages))
    encl_build(proc, encl, scratch)
    map_segments(proc, encl)
    return encl.fd, encl.encl_base


def handler(kind: str):
    """A user handler for struct sgx_enclave_run.user_handler.  ``ret0``
    returns 0, ``efault`` -EFAULT, ``eresume`` asks for ERESUME twice, then
    0, ``eenter`` for EENTER twice, then 0."""
    left = [2]

    def fn(rdi, rsi, rdx, rsp, r8, r9, run):
        if kind == "ret0":
            return 0
        if kind == "efault":
            return -errno.EFAULT
        if left[0] <= 0:
            return 0
        left[0] -= 1
        return ERESUME if kind == "eresume" else EENTER

    return fn


HANDLERS = ("ret0", "efault", "eresume", "eenter")
