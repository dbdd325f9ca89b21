"""What fork() and a second mm do to the reclaimer's aging, as the 6.12
source has it: the child's copy of a PTE is old (and clean in a shared
mapping; __copy_present_ptes()), and sgx_encl_mm_add() puts the new mm at
the head of encl->mm_list (list_add_rcu()), which sgx_reclaimer_age() walks
from the head, clearing only the first young PTE it meets."""

from __future__ import annotations

from sgx_helpers import PROT_READ, PROT_WRITE, Encl, R, W, machine

from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.paging import PTE_ACCESSED, PTE_DIRTY


def _enclave(kernel: str):
    m = machine(kernel)
    m.kernel.sgx.ksgxd_auto = False  # scans only when the test asks
    e = Encl(m).build([(2 * PAGE_SIZE, R | W)])
    a = e.mmap(2 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    return m.kernel.sgx, e, a, e.encl.page_array[(e.base + 2 * PAGE_SIZE) >> 12]


def test_the_childs_copy_of_an_enclave_pte_is_old_and_clean():
    for kernel in ("linux-5.11", "linux-6.0", "linux-6.12"):
        drv, e, a, page = _enclave(kernel)
        e.proc.poke(a, b"x")  # faulted in, then the store sets A and D
        child = e.proc.fork()
        parent_pte, child_pte = e.proc.mm.pgtable.get(a >> 12), child.mm.pgtable.get(a >> 12)
        assert parent_pte & PTE_ACCESSED and parent_pte & PTE_DIRTY, kernel
        assert not child_pte & (PTE_ACCESSED | PTE_DIRTY), kernel
        assert child_pte | PTE_ACCESSED | PTE_DIRTY == parent_pte, kernel  # nothing else differs
        # Only the parent's PTE is young: one scan skips the page (and ages
        # it), the next writes it out.  (With the child's copy young, as it
        # was, the page lived one scan more.)
        drv.sgx_reclaim_pages()
        assert page.epc_page is not None, kernel
        drv.sgx_reclaim_pages()
        assert page.epc_page is None, kernel


def test_the_newest_mm_heads_the_list_and_is_aged_first():
    drv, e, a, page = _enclave("linux-6.12")
    child = e.proc.fork()
    assert [em.mm for em in e.encl.mm_list] == [child.mm, e.proc.mm]
    e.proc.peek(a, 1)  # both processes fault their own PTE in: both young
    child.peek(a, 1)
    drv.sgx_reclaim_pages()  # clears the child's A bit only (the head's)
    e.proc.peek(a, 1)  # the parent's is young anyway
    drv.sgx_reclaim_pages()  # child old, parent young: skipped, parent aged
    assert page.epc_page is not None
    drv.sgx_reclaim_pages()  # both old: written out
    assert page.epc_page is None
