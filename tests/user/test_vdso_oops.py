"""fixup_vdso_exception() reports in struct sgx_enclave_run only the signals
of the user-mode exception paths that call it (#PF's SIGSEGV/SIGBUS, #GP,
do_trap()/math_error(), #DB/#BP); a kernel oops's SIGKILL, or any other
signal, goes on as it would (the vDSO neither reports it nor returns 0)."""

from __future__ import annotations

import signal

import pytest

from sgxsim.fuzz.repro import Machine, Signal, TaskBlocked, build_enclave, run_struct, vdso
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.kernel.errors import Oops
from sgxsim.trace import Decision
from sgxsim.user.vdso import vdso_fixup_applies

WHY = Decision("test", "t", "x")


@pytest.mark.parametrize("sig, reported", [
    (Signal(signal.SIGSEGV, 1, 0x1000, WHY), True),   # #PF -> __bad_area_nosemaphore()
    (Signal(signal.SIGBUS, 2, 0x1000, WHY), True),    # #PF -> do_sigbus()
    (Signal(signal.SIGSEGV, 0x80, 0, WHY, trapno=13), True),  # #GP
    (Signal(signal.SIGILL, 0x80, 0, WHY, trapno=6), True),    # #UD -> do_trap()
    (Signal(signal.SIGFPE, 0x80, 0, WHY, trapno=0), True),    # #DE -> do_trap()
    (Signal(signal.SIGTRAP, 0x80, 0, WHY, trapno=3), True),   # #BP
    (Signal(signal.SIGKILL, 0, 0, WHY), False),   # pagefault_out_of_memory()
    (Oops(signal.SIGKILL, 0, 0, WHY), False),     # make_task_dead()
    (Signal(signal.SIGUSR1, 0, 0, WHY), False),   # sent, not an exception
    (Signal(signal.SIGTERM, 0, 0, WHY), False),
])
def test_which_signals_the_vdso_reports(sig, reported):
    assert vdso_fixup_applies(sig) is reported


def test_an_oops_in_the_enclave_is_not_reported_and_does_not_return_0():
    # The fuzzer's case 306 of seed 0 (`sgxsim fuzz --kernel linux-6.0`), shrunk:
    # linux-6.0's EAUG fault oopses on a written-out SECS while in the vDSO.
    m = Machine(kernel="linux-6.0", epc_pages=32)
    p = m.spawn()
    p.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
    build_enclave(p, 0x10000000, 1)
    build_enclave(p, 0x10000000, 4)
    p.mremap(0x7FFFAFFC3000, 0x5000, 0x1000, 0x3, 0x7FFFAFFE3000)
    p.poke(0x10005000, bytes.fromhex("03000000000000000000fcafff7f0000"
                                     "f077f7f2aeae8c3b0050fcafff7f0000"))
    p.poke(0x10006000, run_struct(0x7FFFAFFC0000, 0, b""))
    assert vdso(p).sgx_enter_enclave(0x10005000, 0xD09D53298DA06CC4, 0x9C64FD9928F9B922, 2, 0,
                                     -1, 0x10006000) == 0  # a #PF the vDSO reports
    p.poke(0x10005000, bytes.fromhex("03000000000000000000000000000000"
                                     "0020fcafff7f00000040fcafff7f0000"))
    p.poke(0x10006000, run_struct(0x7FFFAFFE3000, 0, b""))
    assert vdso(p).sgx_enter_enclave(0x10005000, 0, 0, 2, 0, -1, 0x10006000) == 0
    before = SgxEnclaveRun.unpack(p.peek(0x10006000, SgxEnclaveRun.SIZE))
    assert before.exception_vector == 14 and not m.kernel.oopses  # an ordinary #PF, reported
    p.poke(0x10006000, run_struct(0x7FFFAFFE3000, 0, b""))
    with pytest.raises(Oops) as ei:
        vdso(p).sgx_enter_enclave(0x10005000, 0, 0, 3, 0, -1, 0x10006000)  # ERESUME
    assert ei.value.signo == signal.SIGKILL and m.kernel.oopses
    # Nothing was written back: the task died in the kernel.
    run = SgxEnclaveRun.unpack(m.cpu.phys.read(_paddr(m, p, 0x10006000), SgxEnclaveRun.SIZE))
    assert (run.function, run.exception_vector) == (0, 0)
    with pytest.raises(TaskBlocked):  # and it makes no further call
        vdso(p).sgx_enter_enclave(0x10005000, 0, 0, 3, 0, -1, 0x10006000)


def _paddr(m, p, addr):
    from sgxsim.hw.paging import pte_pfn
    return (pte_pfn(p.mm.pgtable.get(addr >> 12)) << 12) | (addr & 0xFFF)
