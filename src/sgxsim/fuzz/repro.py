"""The names a fuzzer reproduction uses: ``from sgxsim.fuzz.repro import *``.

Everything here drives the model through its public entry points, as a test
would: the reclaimer calls are the driver entry points ``docs/internals.md``
lists for tests (``sgx_reclaim_pages()``, ``ksgxd()``, ``sgx_reclaim_page()``)."""

from __future__ import annotations

from typing import Any

from sgxsim.fuzz.helpers import build, handler, library
from sgxsim.fuzz.invariants import check_after_exit, check_machine
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.kernel.errors import Signal, TaskBlocked
from sgxsim.machine import Machine
from sgxsim.user.vdso import Vdso

__all__ = ["Machine", "Signal", "TaskBlocked", "build_enclave", "check_after_exit",
           "check_machine", "handler", "reclaim_one", "reclaim_pages", "run_ksgxd", "run_struct",
           "vdso"]


def build_enclave(proc: Any, scratch: int, heap_pages: int) -> tuple[int, int]:
    """The selftests' enclave, built and mapped in ``proc``: (fd, base)."""
    return build(proc, scratch, heap_pages)


def vdso(proc: Any) -> Vdso:
    """The process's vDSO (one per process), knowing the test enclave's code."""
    v = getattr(proc, "_fuzz_vdso", None)
    if v is None:
        v = Vdso(proc, library())
        proc._fuzz_vdso = v
    return v


def run_struct(tcs: int, user_handler: int, reserved: bytes = b"") -> bytes:
    """A struct sgx_enclave_run for ``tcs`` (``reserved`` non-empty: invalid)."""
    r = SgxEnclaveRun(tcs=tcs, user_handler=user_handler).pack()
    return r[:40] + reserved + r[40 + len(reserved):]


def _drv(m: Machine) -> Any:
    return getattr(m.kernel, "sgx", None)


def reclaim_pages(m: Machine) -> None:
    """One sgx_reclaim_pages() batch, as ksgxd would run it."""
    if _drv(m) is not None:
        _drv(m).sgx_reclaim_pages()


def run_ksgxd(m: Machine) -> None:
    """One wake-up of ksgxd."""
    if _drv(m) is not None:
        _drv(m).ksgxd()


def reclaim_one(m: Machine, index: int) -> None:
    """Reclaim the ``index``-th enclave page (modulo the pages that exist)."""
    drv = _drv(m)
    if drv is None:
        return
    pages = [p for e in drv.encls for _, p in sorted(e.page_array.items())]
    if pages:
        drv.sgx_reclaim_page(pages[index % len(pages)])
