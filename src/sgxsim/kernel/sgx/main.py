"""The EPC allocator and reclaimer (arch/x86/kernel/cpu/sgx/main.c).

State: one :class:`SgxEpcPage` descriptor per EPC page, the free list with
``sgx_nr_free_pages``, and the global LRU ``sgx_active_page_list``.  The
functions of main.c are methods of :class:`SgxMain`, a mixin of the driver
class (``driver.SgxDriver``), so that a design can override one of them.

ksgxd.  The real ksgxd is a kernel thread that sleeps until
``sgx_should_reclaim(SGX_NR_HIGH_PAGES)`` and is woken by an allocation that
left fewer than ``SGX_NR_LOW_PAGES`` free pages.  The model keeps it
deterministic: the wake-up sets ``ksgxd_woken`` and the thread body
(:meth:`SgxMain.ksgxd`) runs to sleep again as soon as the driver entry
point that woke it (ioctl, mmap, a fault that could not install its PTE)
returns -- one legal interleaving of the real thread with the waker, chosen
so that the faulting instruction is retried before the reclaimer runs
(:meth:`SgxMain.ksgxd_service_after_fault`).  Tests may also call ``ksgxd()`` directly, or
turn the automatic run off with ``ksgxd_auto = False``.

Boot sanitisation (``__sgx_sanitize_pages``) EREMOVEs whatever a previous
kernel left in the EPC.  The model's EPC starts with every EPCM entry invalid,
so there is nothing to sanitise; the step is therefore omitted.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Any

from sgxsim.hw.consts import PAGE_SHIFT, SgxReturn
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.paging import PTE_PRESENT
from sgxsim.kernel.errors import ERESTARTSYS, refuse
from sgxsim.kernel.sgx.encl import SGX_ENCL_PAGE_BEING_RECLAIMED
from sgxsim.kernel.sgx.encls import encls, encls_failed

_SGX_NOT_TRACKED = int(SgxReturn.SGX_NOT_TRACKED)

# sgx.h
SGX_EPC_PAGE_RECLAIMER_TRACKED = 1 << 0
SGX_EPC_PAGE_IS_FREE = 1 << 1
SGX_NR_TO_SCAN = 16
SGX_NR_LOW_PAGES = 32
SGX_NR_HIGH_PAGES = 64


class SgxEpcPage:
    """struct sgx_epc_page."""

    __slots__ = ("index", "paddr", "flags", "owner", "poison")

    def __init__(self, index: int):
        self.index = index
        # sgx_get_epc_virt_addr(): the direct map is the identity.
        self.paddr = EPC_BASE + (index << PAGE_SHIFT)
        self.flags = SGX_EPC_PAGE_IS_FREE
        self.owner: Any = None
        self.poison = 0

    def __repr__(self) -> str:
        return f"SgxEpcPage({self.index}, flags={self.flags:#x})"


class SgxMain:
    """main.c: allocation, the LRU and the reclaimer."""

    # Overridable per instance (tests use a small EPC with small watermarks).
    nr_to_scan = SGX_NR_TO_SCAN
    nr_low_pages = SGX_NR_LOW_PAGES
    nr_high_pages = SGX_NR_HIGH_PAGES

    def _init_epc(self, nr_pages: int) -> None:
        # sgx_page_cache_init() / sgx_setup_epc_section(): every page free.
        self.epc_pages = [SgxEpcPage(i) for i in range(nr_pages)]
        self.free_page_list: deque[int] = deque(range(nr_pages))
        self.sgx_nr_free_pages = nr_pages
        # sgx_active_page_list: insertion-ordered; a tracked page missing from
        # it has been isolated by the reclaimer (list_del_init).
        self.sgx_active_page_list: dict[int, None] = {}
        self.ksgxd_woken = False
        self.ksgxd_auto = True
        self.ksgxd_running = False
        self.stats = {"ewb": 0, "eldu": 0, "eblock": 0, "etrack": 0, "reclaim_runs": 0}
        self.dmesg: list[str] = []

    # -- helpers ---------------------------------------------------------------
    def warn(self, msg: str) -> None:
        """WARN()/pr_err(): recorded, never raised."""
        self.dmesg.append(msg)

    def epc_page_of(self, paddr: int) -> SgxEpcPage:
        return self.epc_pages[(paddr - EPC_BASE) >> PAGE_SHIFT]

    # -- allocation ------------------------------------------------------------
    def sgx_should_reclaim(self, watermark: int) -> bool:
        # sgx_should_reclaim()
        return self.sgx_nr_free_pages < watermark and bool(self.sgx_active_page_list)

    def sgx_alloc_epc_page(self, owner: Any, reclaim: bool) -> SgxEpcPage:
        """sgx_alloc_epc_page(): a page, or raise -ENOMEM/-EBUSY/-ERESTARTSYS."""
        err: OSError | None = None
        while True:
            # __sgx_alloc_epc_page(), inline (once per page added): the first
            # page of the free list.
            if self.free_page_list:
                page = self.epc_pages[self.free_page_list.popleft()]
                page.flags = 0
                self.sgx_nr_free_pages -= 1
                page.owner = owner
                break
            if not self.sgx_active_page_list:
                # Returns at once: ksgxd is not woken on this path.
                raise refuse(errno.ENOMEM, "sgx", "sgx_alloc_epc_page",
                             "EPC exhausted and nothing is reclaimable")
            if not reclaim:
                err = refuse(errno.EBUSY, "sgx", "sgx_alloc_epc_page",
                             "no free EPC page and the caller may not reclaim")
                break
            if self.signal_pending():
                err = refuse(ERESTARTSYS, "sgx", "sgx_alloc_epc_page",
                             "signal pending while reclaiming")
                break
            self.sgx_reclaim_pages()
        # sgx_should_reclaim(SGX_NR_LOW_PAGES), inline
        if self.sgx_nr_free_pages < self.nr_low_pages and self.sgx_active_page_list:
            self.ksgxd_woken = True  # wake_up(&ksgxd_waitq)
        if err is not None:
            raise err
        return page

    def sgx_free_epc_page(self, page: SgxEpcPage) -> None:
        # sgx_free_epc_page()
        if page.flags & SGX_EPC_PAGE_RECLAIMER_TRACKED:
            self.warn(f"sgx_free_epc_page: page {page.index} still tracked")
        page.owner = None
        page.flags = SGX_EPC_PAGE_IS_FREE
        self.free_page_list.append(page.index)
        self.sgx_nr_free_pages += 1

    # -- the LRU ---------------------------------------------------------------
    def sgx_mark_page_reclaimable(self, page: SgxEpcPage) -> None:
        # sgx_mark_page_reclaimable(): tail of the active list.
        page.flags |= SGX_EPC_PAGE_RECLAIMER_TRACKED
        self.sgx_active_page_list[page.index] = None

    def sgx_unmark_page_reclaimable(self, page: SgxEpcPage) -> None:
        """sgx_unmark_page_reclaimable(): -EBUSY if the reclaimer isolated it."""
        if page.flags & SGX_EPC_PAGE_RECLAIMER_TRACKED:
            if page.index not in self.sgx_active_page_list:
                raise refuse(errno.EBUSY, "sgx", "sgx_unmark_page_reclaimable",
                             f"EPC page {page.index} is being reclaimed")
            del self.sgx_active_page_list[page.index]
            page.flags &= ~SGX_EPC_PAGE_RECLAIMER_TRACKED

    # -- ksgxd -------------------------------------------------------------------
    def ksgxd(self) -> None:
        """One wake-up of ksgxd: reclaim until the high watermark is met."""
        self.ksgxd_woken = False
        self.ksgxd_running = True
        try:
            while self.sgx_should_reclaim(self.nr_high_pages):
                self.sgx_reclaim_pages()
        finally:
            self.ksgxd_running = False

    def ksgxd_service(self) -> None:
        """Let a woken ksgxd run (called when a driver entry point returns)."""
        if self.ksgxd_woken and self.ksgxd_auto and not self.ksgxd_running:
            self.ksgxd()

    def ksgxd_service_after_fault(self, vmf: Any) -> None:
        """The interleaving of a woken ksgxd with a faulting task.

        A fault that installed its PTE returns to user space, where the CPU
        retries the access at once; the woken ksgxd runs later, at the next
        driver entry point.  Running it in between would be a legal but
        unfair schedule that can evict the page the retried instruction needs
        (EENTER needs the TCS and the SSA frame resident at the same time, and
        sgx_vma_fault() clears the accessed bit of the page it just mapped, so
        sgx_reclaimer_age() sees it as old): with an EPC smaller than the
        watermarks every fault would undo the previous one.  A fault that made
        no progress (EBUSY from sgx_alloc_epc_page(..., false): VM_FAULT_NOPAGE
        without a PTE) leaves the task spinning on the retry, which only the
        reclaimer can end, so ksgxd runs now."""
        if not vmf.vma.vm_mm.pgtable.get(vmf.address >> PAGE_SHIFT) & PTE_PRESENT:
            self.ksgxd_service()

    def sgx_reclaim_direct(self) -> None:
        # sgx_reclaim_direct(): one batch when below the low watermark.
        if self.sgx_should_reclaim(self.nr_low_pages):
            self.sgx_reclaim_pages()

    # -- the reclaimer -------------------------------------------------------------
    def sgx_reclaimer_age(self, epc_page: SgxEpcPage) -> bool:
        """sgx_reclaimer_age(): True if no mm has touched the page since the
        last scan (the accessed bit of each PTE is tested and cleared)."""
        page = epc_page.owner
        encl = page.encl
        for encl_mm in list(encl.mm_list):
            if not self.mmget_not_zero(encl_mm.mm):
                continue
            if self.sgx_encl_test_and_clear_young(encl_mm.mm, page):
                return False
        return True

    def sgx_reclaimer_block(self, epc_page: SgxEpcPage) -> None:
        # sgx_reclaimer_block(): zap every PTE, then EBLOCK.
        page = epc_page.owner
        encl = page.encl
        self.sgx_zap_enclave_ptes(encl, page.addr)
        ret = encls(self.cpu.eblock, epc_page.paddr)
        self.stats["eblock"] += 1
        if encls_failed(ret):
            self.warn(f"EBLOCK returned {ret:#x}")

    def _sgx_encl_ewb(self, epc_page: SgxEpcPage, va_slot: int, backing: Any) -> int:
        # __sgx_encl_ewb(): PAGEINFO {addr 0, secs 0, contents, PCMD}.
        pginfo = self.kstack_pageinfo(0, backing.contents_paddr, backing.pcmd_paddr, 0)
        ret = encls(self.cpu.ewb, pginfo, epc_page.paddr, va_slot)
        if not ret:
            self.stats["ewb"] += 1  # pages written out
        return ret

    def sgx_encl_ewb(self, epc_page: SgxEpcPage, backing: Any) -> None:
        """sgx_encl_ewb(): write a blocked page out, with the ETRACK/IPI retries."""
        encl_page = epc_page.owner
        encl = encl_page.encl
        encl_page.desc &= ~SGX_ENCL_PAGE_BEING_RECLAIMED
        va_page = encl.va_pages[0]
        va_offset = va_page.sgx_alloc_va_slot()
        va_slot = va_page.epc_page.paddr + va_offset
        if va_page.full():
            encl.va_pages.append(encl.va_pages.pop(0))  # list_move_tail
        ret = self._sgx_encl_ewb(epc_page, va_slot, backing)
        if ret == _SGX_NOT_TRACKED:
            ret = encls(self.cpu.etrack, encl.secs.epc_page.paddr)
            self.stats["etrack"] += 1
            if encls_failed(ret):
                self.warn(f"ETRACK returned {ret:#x}")
            ret = self._sgx_encl_ewb(epc_page, va_slot, backing)
            if ret == _SGX_NOT_TRACKED:
                # Slow path: IPIs kick every CPU out of the enclave.
                self.sgx_ipi_encl_cpus(encl)
                ret = self._sgx_encl_ewb(epc_page, va_slot, backing)
        if ret:
            if encls_failed(ret):
                self.warn(f"EWB returned {ret:#x}")
            va_page.sgx_free_va_slot(va_offset)
        else:
            encl_page.desc |= va_offset
            encl_page.va_page = va_page

    def sgx_reclaimer_write(self, epc_page: SgxEpcPage, backing: Any) -> None:
        """sgx_reclaimer_write(): EWB the page; EWB the SECS once it has no
        resident children."""
        encl_page = epc_page.owner
        encl = encl_page.encl
        self.sgx_encl_ewb(epc_page, backing)
        encl_page.epc_page = None
        encl.secs_child_cnt -= 1
        self.sgx_encl_put_backing(encl, backing)
        if not encl.secs_child_cnt and encl.initialized:
            secs_backing = self.sgx_encl_alloc_backing(encl, encl.size >> PAGE_SHIFT)
            self.sgx_encl_ewb(encl.secs.epc_page, secs_backing)
            self.sgx_encl_free_epc_page(encl.secs.epc_page)
            encl.secs.epc_page = None
            self.sgx_encl_put_backing(encl, secs_backing)

    def sgx_reclaim_pages(self) -> None:
        """sgx_reclaim_pages(): isolate up to SGX_NR_TO_SCAN pages from the
        head of the LRU, age them, then block and write the old ones."""
        self.stats["reclaim_runs"] += 1
        chunk: list[SgxEpcPage] = []
        lru = self.sgx_active_page_list
        for _ in range(self.nr_to_scan):
            if not lru:
                break
            index = next(iter(lru))
            del lru[index]  # list_del_init(): isolated
            epc_page = self.epc_pages[index]
            if epc_page.owner.encl.refcount > 0:  # kref_get_unless_zero()
                epc_page.owner.encl.refcount += 1
                chunk.append(epc_page)
            else:
                epc_page.flags &= ~SGX_EPC_PAGE_RECLAIMER_TRACKED
        self._sgx_reclaim_isolated(chunk, age=True)

    def _sgx_reclaim_isolated(self, isolated: list[SgxEpcPage], age: bool) -> None:
        """The second half of sgx_reclaim_pages() over pinned, isolated pages:
        age, pin backing, block every page, then write each one out."""
        chunk: list[SgxEpcPage | None] = list(isolated)
        backing: list[Any] = [None] * len(chunk)
        lru = self.sgx_active_page_list
        for i, epc_page in enumerate(isolated):
            encl_page = epc_page.owner
            encl = encl_page.encl
            if not age or self.sgx_reclaimer_age(epc_page):
                page_index = (encl_page.addr - encl.base) >> PAGE_SHIFT
                backing[i] = self.sgx_encl_alloc_backing(encl, page_index)
                encl_page.desc |= SGX_ENCL_PAGE_BEING_RECLAIMED
                continue
            # skip: back to the tail of the LRU.
            lru[epc_page.index] = None
            self.sgx_encl_put(encl)
            chunk[i] = None
        for epc_page in chunk:
            if epc_page is not None:
                self.sgx_reclaimer_block(epc_page)
        for i, epc_page in enumerate(chunk):
            if epc_page is None:
                continue
            encl = epc_page.owner.encl
            self.sgx_reclaimer_write(epc_page, backing[i])
            self.sgx_encl_put(encl)
            epc_page.flags &= ~SGX_EPC_PAGE_RECLAIMER_TRACKED
            self.sgx_free_epc_page(epc_page)

    def sgx_reclaim_page(self, encl_page: Any, age: bool = False) -> bool:
        """Reclaim one chosen enclave page now (a scheduling choice for the
        checker: the real reclaimer picks pages from the LRU head).  The page
        goes through the same steps as in sgx_reclaim_pages(); False if it is
        not resident and reclaimable."""
        epc_page = encl_page.epc_page
        if epc_page is None or epc_page.index not in self.sgx_active_page_list:
            return False
        if encl_page.encl.refcount <= 0:
            return False
        del self.sgx_active_page_list[epc_page.index]
        encl_page.encl.refcount += 1
        self._sgx_reclaim_isolated([epc_page], age=age)
        return encl_page.epc_page is None

    # -- counts for tests and invariants ----------------------------------------
    def nr_used_epc_pages(self) -> int:
        return len(self.epc_pages) - self.sgx_nr_free_pages

