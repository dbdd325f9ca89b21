"""A user access to a non-canonical address: the CPU raises #GP(0) before
paging (SDM Vol 3A 3.3.7.1), and the kernel's exc_general_protection()
sends a plain SIGSEGV (SI_KERNEL, no address), not the #PF path's
SEGV_MAPERR."""

from __future__ import annotations

import signal

import pytest

from sgxsim import Machine, Signal
from sgxsim.kernel.errors import SEGV_MAPERR, SI_KERNEL

NONCANONICAL = (1 << 47, 0x0000_8000_0000_1000, 0xFFFF_0000_0000_0000, 0x8000_0000_0000_0000)


@pytest.mark.parametrize("addr", NONCANONICAL)
@pytest.mark.parametrize("op", ["peek", "poke", "fetch"])
def test_noncanonical_user_access_is_sigsegv_si_kernel(addr, op):
    p = Machine(kernel="linux").spawn()
    call = {"peek": lambda: p.peek(addr, 1), "poke": lambda: p.poke(addr, b"x"),
            "fetch": lambda: p.fetch(addr)}[op]
    with pytest.raises(Signal) as ei:
        call()
    s = ei.value
    assert (s.signo, s.si_code, s.addr, s.trapno) == (signal.SIGSEGV, SI_KERNEL, 0, 13)
    assert "exc_general_protection" in str(s) and "non-canonical" in str(s)


@pytest.mark.parametrize("addr", [(1 << 47) - 4096, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_F000])
def test_canonical_unmapped_addresses_still_take_the_page_fault_path(addr):
    p = Machine(kernel="linux").spawn()
    with pytest.raises(Signal) as ei:
        p.peek(addr, 1)
    assert (ei.value.si_code, ei.value.addr, ei.value.trapno) == (SEGV_MAPERR, addr, 14)


def test_the_process_goes_on_after_the_signal():
    p = Machine(kernel="linux").spawn()
    a = p.mmap(0, 4096, 3, 0x22, -1)
    with pytest.raises(Signal):
        p.poke(1 << 47, b"x")
    p.poke(a, b"ok")
    assert p.peek(a, 2) == b"ok"
