"""A user access whose fault the kernel fixes is retried (returning from the
#PF handler); one whose faults make no progress ends in SIGBUS after
MAX_FAULT_RETRIES handled faults, the same count on every path into the
retry: the one-page peek/poke with their first try inline, a two-page
access through user_access(), and fetch."""

from __future__ import annotations

import errno
import signal

import pytest

from sgxsim import Machine, Signal
from sgxsim.hw.paging import pte_pfn
from sgxsim.kernel.errors import BUS_ADRERR
from sgxsim.kernel.mm.fault import MAX_FAULT_RETRIES

PAGE = 4096


def _calls(p, addr):
    return {"peek": lambda: p.peek(addr, 8), "peek2": lambda: p.peek(addr + PAGE - 4, 8),
            "poke": lambda: p.poke(addr, b"x" * 8), "poke2": lambda: p.poke(addr + PAGE - 4, b"x" * 8),
            "fetch": lambda: p.fetch(addr)}


@pytest.mark.parametrize("op", ["peek", "peek2", "poke", "poke2", "fetch"])
def test_no_progress_is_sigbus_after_max_retries(op, monkeypatch):
    p = Machine(kernel="linux").spawn()
    addr = p.mmap(0, 2 * PAGE, 7, 0x22, -1)  # RWX, not yet faulted in
    k = p.kernel
    handled = []
    monkeypatch.setattr(k, "do_user_addr_fault", lambda task, pf: handled.append(pf.addr))
    with pytest.raises(Signal) as ei:
        _calls(p, addr)[op]()
    assert (ei.value.signo, ei.value.si_code) == (signal.SIGBUS, BUS_ADRERR)
    first = addr + PAGE - 4 if op.endswith("2") else addr  # the first byte the access reaches
    assert handled == [first] * MAX_FAULT_RETRIES


@pytest.mark.parametrize("op", ["peek", "peek2", "poke", "poke2", "fetch"])
def test_a_fixed_fault_is_retried_once(op):
    p = Machine(kernel="linux").spawn()
    addr = p.mmap(0, 2 * PAGE, 7, 0x22, -1)
    k = p.kernel
    real = k.do_user_addr_fault
    handled = []

    def counting(task, pf):
        handled.append(pf.addr)
        return real(task, pf)

    k.do_user_addr_fault = counting
    _calls(p, addr)[op]()
    # One fault per page the access touches, each fixed by the fault path.
    assert handled == ([addr + PAGE - 4, addr + PAGE] if op.endswith("2") else [addr])


def test_get_user_pages_faults_until_the_page_is_there():
    # A page mapped as asked is pinned without a fault; a missing one is
    # faulted in once; faults that make no progress end in EFAULT after
    # MAX_FAULT_RETRIES of them; a write pin of a read-only (zero page) PTE
    # breaks COW with one more fault.
    p = Machine(kernel="linux").spawn()
    addr = p.mmap(0, 2 * PAGE, 3, 0x22, -1)
    k = p.kernel
    real = k.handle_mm_fault
    faults = []

    def counting(vma, a, ec):
        faults.append(a)
        return real(vma, a, ec)

    k.handle_mm_fault = counting
    zero = k.get_user_pages(p, addr)
    assert faults == [addr] and zero == k.get_user_pages(p, addr) and faults == [addr]
    own = k.get_user_pages(p, addr, write=True)
    assert own != zero and faults == [addr, addr] and pte_pfn(p.mm.pgtable.get(addr >> 12)) == own
    k.handle_mm_fault = lambda vma, a, ec: faults.append(a) or 0  # "handled", nothing mapped
    faults.clear()
    with pytest.raises(OSError) as ei:
        k.get_user_pages(p, addr + PAGE)
    assert ei.value.errno == errno.EFAULT and "no progress" in str(ei.value)
    assert faults == [addr + PAGE] * MAX_FAULT_RETRIES
