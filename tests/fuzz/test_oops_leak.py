"""An oops leaks what its path held (Linux.oops_held) and what the task it
killed holds, for that task never finishes exiting: the fuzzer's after-exit
check counts those EPC pages as the kernel's loss, not as a model bug, and
still catches any other page left in use."""

from __future__ import annotations

import signal

from sgxsim.fuzz.repro import (
    Machine,
    Signal,
    TaskBlocked,
    build_enclave,
    check_after_exit,
    check_machine,
)


def _oops_then_exit():
    # linux-6.0's EAUG after the SECS was written out dereferences NULL
    # (fixed in 6.5): found by the fuzzer's CI slice.
    m = Machine(kernel="linux-6.0", epc_pages=16)
    boot = set(m.cpu.phys.frames)
    p = m.spawn()
    p.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
    build_enclave(p, 0x10000000, 1)
    try:
        p.mremap(0x7FFFAFFE3000, 0x25AE, 0x1000, 0x3, 0x10000)
    except OSError:
        pass
    build_enclave(p, 0x10000000, 4)
    try:
        p.fetch(0x10000)
        raise AssertionError("the fetch did not oops")
    except Signal as s:
        assert s.signo == signal.SIGKILL
    try:
        p.exit()  # it cannot: it sleeps in do_exit() for ever
        raise AssertionError("the oopsed task made a call")
    except TaskBlocked:
        pass
    for q in list(m.kernel.tasks):
        if q.alive:
            q.exit()
    return m, boot


def test_an_oops_leaks_the_epc_page_it_allocated_and_the_check_knows():
    m, boot = _oops_then_exit()
    k, drv = m.kernel, m.kernel.sgx
    assert "NULL pointer dereference in sgx_encl_eaug_page" in k.oopses[0]
    # The EPC page sgx_encl_eaug_page() allocated is left in use, and so are
    # the dead task's enclaves (its mm and files stay): here the second
    # enclave's resident pages, SECS and VA page; the first has none resident.
    assert len(k.oops_held) == 1
    kept = sum((e.secs.epc_page is not None) + len(e.va_pages)
               + sum(pg.epc_page is not None for pg in e.page_array.values())
               for e in drv.encls)
    assert len(drv.epc_pages) - drv.sgx_nr_free_pages == 1 + kept
    assert check_machine(m) == []
    assert check_after_exit(m, boot) == []


def test_a_page_left_in_use_besides_the_oops_is_still_found():
    m, boot = _oops_then_exit()
    drv = m.kernel.sgx
    # Miscount one more page, as a model bug would: the check must say so.
    drv.sgx_nr_free_pages -= 1
    bad = check_after_exit(m, boot)
    assert bad and bad[0].startswith("EPC pages in use:") and "1 leaked by an oops" in bad[0]
