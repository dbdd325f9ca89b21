"""What ELDU leaves in the enclave's shmem backing: 5.11's __sgx_encl_eldu()
only put the backing pages back (the contents and the PCMD entry stay until
the next EWB writes over them); since 5.18/5.19 the PCMD entry is cleared
and the contents page, then the empty PCMD page, truncated."""

from __future__ import annotations

import pytest
from sgx_helpers import PROT_READ, PROT_WRITE, Encl, R, W, machine

from sgxsim.hw.consts import PAGE_SIZE


@pytest.mark.parametrize(("kernel", "kept"), [("linux-5.11", True), ("linux-6.0", False),
                                               ("linux-6.12", False)])
def test_backing_after_eldu(kernel, kept):
    m = machine(kernel)
    drv = m.kernel.sgx
    e = Encl(m).build([(2 * PAGE_SIZE, R | W)])
    page = e.encl.page_array[(e.base + 2 * PAGE_SIZE) >> 12]
    assert drv.sgx_reclaim_page(page)
    written = sorted(e.encl.backing)
    assert len(written) == 2  # the contents page and its PCMD page
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    e.proc.peek(a, 1)  # the fault loads it back (ELDU)
    assert page.epc_page is not None
    assert sorted(e.encl.backing) == (written if kept else [])
    # Written out and loaded back again: the same slots (5.11 writes over
    # what it kept), and ELDU's MAC check passes on the new PCMD.
    assert drv.sgx_reclaim_page(page)
    assert sorted(e.encl.backing) == written
    e.proc.peek(a, 1)
    assert page.epc_page is not None
    assert m.kernel.sgx.check_invariants() == []
