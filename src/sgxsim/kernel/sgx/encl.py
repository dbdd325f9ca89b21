"""Enclaves, their pages and their memory (arch/x86/kernel/cpu/sgx/encl.c, encl.h).

Data: :class:`SgxEncl`, :class:`SgxEnclPage`, :class:`SgxVaPage`,
:class:`SgxEnclMm`, and the shmem-like backing store (RAM frames owned by the
enclave, indexed by backing page).  Functions: the methods of
:class:`SgxEnclOps`, a mixin of the driver class, named after encl.c.

:class:`SgxEnclOpsSgx2` holds what SGX2/EDMM (Linux 6.0) changed: the ELRANGE
check of ``sgx_encl_may_map`` after INIT and the EAUG path of the fault.
"""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.hw.consts import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PCMD_SIZE, SECS_SIZE, PageType
from sgxsim.hw.faults import HwFault
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import (
    VM_ACCESS_FLAGS,
    VM_EXEC,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_READ,
    VM_WRITE,
)
from sgxsim.kernel.sgx.encls import SGX_ENCLS_FAULT_FLAG, encls, encls_failed

# encl.h: sgx_encl flags (bit numbers) and sgx_encl_page.desc bits.
SGX_ENCL_IOCTL = 0
SGX_ENCL_DEBUG = 1
SGX_ENCL_CREATED = 2
SGX_ENCL_INITIALIZED = 3
_CREATED_BIT, _INITIALIZED_BIT = 1 << SGX_ENCL_CREATED, 1 << SGX_ENCL_INITIALIZED
SGX_ENCL_PAGE_BEING_RECLAIMED = 1 << 3
SGX_ENCL_PAGE_VA_OFFSET_MASK = ((1 << 12) - 1) & ~((1 << 3) - 1)  # GENMASK_ULL(11, 3)
SGX_VA_SLOT_COUNT = 512
PCMDS_PER_PAGE = PAGE_SIZE // PCMD_SIZE
PCMD_FIRST_MASK = PCMDS_PER_PAGE - 1  # GENMASK(4, 0)
XA_CHECK_SCHED = 4096

# PROT_* (uapi) for calc_vm_prot_bits().
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
_SECINFO_TCS = int(PageType.PT_TCS) << 8
_U64 = (1 << 64) - 1
# personality(2): READ_IMPLIES_EXEC.
READ_IMPLIES_EXEC = 0x0400000


def _calc_vm_prot_bits(prot: int) -> int:
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


# calc_vm_prot_bits() of each PROT_READ|PROT_WRITE|PROT_EXEC combination
# (sgx_encl_page_alloc() asks once per page added).
_VM_PROT_BITS = tuple(_calc_vm_prot_bits(prot) for prot in range(8))


def calc_vm_prot_bits(prot: int) -> int:
    # calc_vm_prot_bits(prot, 0)
    return _VM_PROT_BITS[prot & (PROT_READ | PROT_WRITE | PROT_EXEC)]


def prot_str(vm_bits: int) -> str:
    return "".join(c if vm_bits & b else "-" for c, b in
                   (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))


class SgxVaPage:
    """struct sgx_va_page: an EPC page of 512 version-array slots."""

    __slots__ = ("epc_page", "slots")

    def __init__(self, epc_page: Any = None):
        self.epc_page = epc_page
        self.slots = 0  # bitmap of used slots

    def sgx_alloc_va_slot(self) -> int:
        # sgx_alloc_va_slot(): first free slot, as a byte offset (slot * 8).
        free = ~self.slots & ((1 << SGX_VA_SLOT_COUNT) - 1)
        slot = (free & -free).bit_length() - 1
        if slot < 0:
            slot = SGX_VA_SLOT_COUNT  # find_first_zero_bit() on a full map
        else:
            self.slots |= 1 << slot
        return slot << 3

    def sgx_free_va_slot(self, offset: int) -> None:
        # sgx_free_va_slot()
        self.slots &= ~(1 << (offset >> 3))

    def full(self) -> bool:
        # sgx_va_page_full()
        return self.slots == (1 << SGX_VA_SLOT_COUNT) - 1


class SgxEnclPage:
    """struct sgx_encl_page."""

    __slots__ = ("desc", "vm_max_prot_bits", "type", "epc_page", "encl", "va_page")

    def __init__(self, encl: Any, desc: int, vm_max_prot_bits: int = 0):
        self.desc = desc
        self.vm_max_prot_bits = vm_max_prot_bits
        self.type = 0
        self.epc_page: Any = None
        self.encl = encl
        self.va_page: SgxVaPage | None = None

    @property
    def addr(self) -> int:
        return self.desc & PAGE_MASK

    @property
    def being_reclaimed(self) -> bool:
        # Meaningful only while epc_page is set (bit 3 doubles as VA offset).
        return self.epc_page is not None and bool(self.desc & SGX_ENCL_PAGE_BEING_RECLAIMED)

    def __repr__(self) -> str:
        return (f"SgxEnclPage({self.addr:#x}, type={self.type}, "
                f"max={prot_str(self.vm_max_prot_bits)}, epc={self.epc_page})")


class SgxEnclMm:
    """struct sgx_encl_mm: one per mm that mapped the enclave."""

    __slots__ = ("encl", "mm")

    def __init__(self, encl: Any, mm: Any):
        self.encl = encl
        self.mm = mm

    # mmu_notifier_ops.release: the mm is going away (exit/exec).
    def release(self, mm: Any) -> None:
        self.encl.drv.sgx_mmu_notifier_release(self, mm)


class SgxBacking:
    """struct sgx_backing: the pinned contents page and PCMD slot."""

    __slots__ = ("page_index", "contents_paddr", "pcmd_paddr", "pcmd_index", "pcmd_offset")

    def __init__(self, page_index: int, contents_paddr: int, pcmd_index: int,
                 pcmd_offset: int, pcmd_paddr: int):
        self.page_index = page_index
        self.contents_paddr = contents_paddr
        self.pcmd_index = pcmd_index
        self.pcmd_offset = pcmd_offset
        self.pcmd_paddr = pcmd_paddr


class SgxEncl:
    """struct sgx_encl: one per open of /dev/sgx_enclave."""

    __slots__ = ("drv", "base", "size", "flags", "page_cnt", "secs_child_cnt", "page_array",
                 "secs", "attributes", "attributes_mask", "backing", "refcount", "va_pages",
                 "mm_list", "mm_list_version", "released", "lock_held_by")

    def __init__(self, drv: Any):
        self.drv = drv
        self.base = 0
        self.size = 0
        self.flags = 0
        self.page_cnt = 0
        self.secs_child_cnt = 0
        self.page_array: dict[int, SgxEnclPage] = {}  # xarray: PFN(addr) -> page
        self.secs = SgxEnclPage(self, 0)
        self.secs.type = PageType.PT_SECS
        self.attributes = 0
        self.attributes_mask = 0
        # shmem "SGX backing": None until CREATE; then page index -> RAM pfn.
        self.backing: dict[int, int] | None = None
        self.refcount = 1  # kref_init()
        self.va_pages: list[SgxVaPage] = []
        self.mm_list: list[SgxEnclMm] = []
        self.mm_list_version = 0
        self.released = False
        # encl->lock is not modelled while a call runs (calls are atomic);
        # it stays held only when its holder died in an oops: who, as text.
        self.lock_held_by: str | None = None

    def test_bit(self, bit: int) -> bool:
        return bool(self.flags & (1 << bit))

    def set_bit(self, bit: int) -> None:
        self.flags |= 1 << bit

    def clear_bit(self, bit: int) -> None:
        self.flags &= ~(1 << bit)

    # test_bit() of the flag, inline (every mmap, mprotect and SGX2 ioctl asks).
    @property
    def created(self) -> bool:
        return bool(self.flags & _CREATED_BIT)

    @property
    def initialized(self) -> bool:
        return bool(self.flags & _INITIALIZED_BIT)

    def pages_in(self, start: int, end: int) -> list[SgxEnclPage]:
        """Existing entries with PFN in [PFN(start), PFN(end - 1)], in order
        (xa_for_each_range); costs min(range, entries)."""
        lo, hi = start >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1
        pa = self.page_array
        if hi - lo <= len(pa):
            return [pa[i] for i in range(lo, hi) if i in pa]
        return [pa[i] for i in sorted(i for i in pa if lo <= i < hi)]

    def __repr__(self) -> str:
        return (f"SgxEncl(base={self.base:#x}, size={self.size:#x}, flags={self.flags:#x}, "
                f"pages={len(self.page_array)}, children={self.secs_child_cnt})")


class SgxEnclOps:
    """encl.c (SGX1 behaviour, as in Linux 5.11)."""

    # -- encl->lock ------------------------------------------------------------------
    def sgx_encl_lock_blocked(self, encl: SgxEncl, rule: str) -> None:
        """mutex_lock(&encl->lock) while a task that oopsed holds it (an oops
        never unlocks): the caller sleeps for ever, uninterruptibly, and
        never returns from its call (TaskBlocked).

        The reclaimer takes the lock too (sgx_reclaim_pages()), but never
        meets it held: the one oops modelled needs the enclave's SECS written
        out, so no page of it is resident (on the LRU) then, and every path
        that could make one resident again takes the lock first."""
        from sgxsim.trace import Decision

        why = Decision("sgx", rule, "blocked",
                       f"mutex_lock(&encl->lock) of the enclave at {encl.base:#x} waits for ever: "
                       f"{encl.lock_held_by}")
        self.kernel.block_task(self.current(), why, raise_=True)

    # -- references ----------------------------------------------------------------
    def sgx_encl_get(self, encl: SgxEncl) -> None:
        encl.refcount += 1  # kref_get()

    def sgx_encl_put(self, encl: SgxEncl) -> None:
        # kref_put(&encl->refcount, sgx_encl_release)
        encl.refcount -= 1
        if encl.refcount == 0:
            self.sgx_encl_release(encl)

    # -- EPC pages of an enclave ---------------------------------------------------
    def sgx_encl_free_epc_page(self, page: Any) -> None:
        """sgx_encl_free_epc_page(): EREMOVE, then free; a failed EREMOVE leaks."""
        if page.flags & 1:  # SGX_EPC_PAGE_RECLAIMER_TRACKED
            self.warn(f"sgx_encl_free_epc_page: page {page.index} still tracked")
        ret = encls(self.cpu.eremove, page.paddr)
        if ret:
            self.warn(f"EREMOVE returned {ret} ({ret:#x}) and an EPC page was leaked")
            return
        self.sgx_free_epc_page(page)

    def sgx_alloc_va_page(self, reclaim: bool) -> Any:
        """sgx_alloc_va_page(): an EPC page EPA'd into a version array."""
        epc_page = self.sgx_alloc_epc_page(None, reclaim)
        ret = encls(self.cpu.epa, epc_page.paddr)
        if ret:
            self.warn(f"EPA returned {ret} ({ret:#x})")
            self.sgx_encl_free_epc_page(epc_page)
            raise refuse(errno.EFAULT, "sgx", "sgx_alloc_va_page", f"EPA returned {ret:#x}")
        return epc_page

    def sgx_encl_grow(self, encl: SgxEncl, reclaim: bool) -> SgxVaPage | None:
        """sgx_encl_grow(): a new VA page every SGX_VA_SLOT_COUNT pages."""
        va_page = None
        if not encl.page_cnt % SGX_VA_SLOT_COUNT:
            va_page = SgxVaPage(self.sgx_alloc_va_page(reclaim))
        encl.page_cnt += 1
        return va_page

    def sgx_encl_shrink(self, encl: SgxEncl, va_page: SgxVaPage | None) -> None:
        # sgx_encl_shrink()
        encl.page_cnt -= 1
        if va_page is not None:
            self.sgx_encl_free_epc_page(va_page.epc_page)
            if va_page in encl.va_pages:
                encl.va_pages.remove(va_page)

    def sgx_encl_page_alloc(self, encl: SgxEncl, offset: int, secinfo_flags: int) -> SgxEnclPage:
        """sgx_encl_page_alloc(): vm_max_prot_bits from the SECINFO R/W/X,
        plus RW for a TCS."""
        prot = secinfo_flags & (PROT_READ | PROT_WRITE | PROT_EXEC)  # SECINFO R/W/X == PROT_*
        if (secinfo_flags & 0xFF00) == _SECINFO_TCS:
            prot |= PROT_READ | PROT_WRITE
        return SgxEnclPage(encl, (encl.base + offset) & _U64, _VM_PROT_BITS[prot])

    # -- mmap gate -----------------------------------------------------------------
    def sgx_encl_may_map_range(self, encl: SgxEncl, start: int, end: int) -> None:
        """The ELRANGE check that 6.0 added; SGX1 kernels have none."""

    def sgx_encl_may_map(self, encl: SgxEncl, start: int, end: int, vm_flags: int) -> None:
        """sgx_encl_may_map(): -EACCES if a page in [start, end) has a lower
        maximum than the VM_READ|VM_WRITE|VM_EXEC asked for; holes are free."""
        vm_prot_bits = vm_flags & VM_ACCESS_FLAGS
        self.sgx_encl_may_map_range(encl, start, end)
        # Tasks with READ_IMPLIES_EXEC get PROT_EXEC behind the driver's back.
        if self.current_personality() & READ_IMPLIES_EXEC:
            raise refuse(errno.EACCES, "sgx", "sgx_encl_may_map",
                         "the task has READ_IMPLIES_EXEC personality")
        if encl.lock_held_by is not None:  # mutex_lock(&encl->lock)
            self.sgx_encl_lock_blocked(encl, "sgx_encl_may_map")
        for page in encl.pages_in(start, end):
            if ~page.vm_max_prot_bits & vm_prot_bits:
                raise refuse(errno.EACCES, "sgx", "sgx_encl_may_map",
                             f"page {page.addr:#x} maximum {prot_str(page.vm_max_prot_bits)}, "
                             f"mapping asks {prot_str(vm_prot_bits)}")

    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> None:
        # sgx_vma_mprotect(): the vm_ops->mprotect hook.
        self.sgx_encl_may_map(vma.vm_private_data, start, end, newflags)

    # -- mm list -------------------------------------------------------------------
    def sgx_encl_find_mm(self, encl: SgxEncl, mm: Any) -> SgxEnclMm | None:
        for encl_mm in encl.mm_list:
            if encl_mm.mm is mm:
                return encl_mm
        return None

    def sgx_encl_mm_add(self, encl: SgxEncl, mm: Any) -> None:
        """sgx_encl_mm_add(): one sgx_encl_mm per mm, holding an enclave ref and
        registered as an mmu notifier."""
        if self.sgx_encl_find_mm(encl, mm) is not None:
            return
        encl_mm = SgxEnclMm(encl, mm)
        self.sgx_encl_get(encl)
        self.mmu_notifier_register(encl_mm, mm)
        # list_add_rcu(): at the head, so sgx_reclaimer_age() and every other
        # walk of the list meets the newest mm (a fork's child) first.
        encl.mm_list.insert(0, encl_mm)
        encl.mm_list_version += 1

    def sgx_mmu_notifier_release(self, encl_mm: SgxEnclMm, mm: Any) -> None:
        """sgx_mmu_notifier_release(): the mm exits; drop its entry and ref."""
        encl = encl_mm.encl
        if encl_mm in encl.mm_list:
            encl.mm_list.remove(encl_mm)
            encl.mm_list_version += 1
            self.mmu_notifier_unregister(encl_mm, mm)
            self.sgx_encl_put(encl)  # sgx_mmu_notifier_free()

    def sgx_encl_find(self, mm: Any, addr: int) -> Any:
        """sgx_encl_find(): the enclave VMA covering addr, or None."""
        vma = self.find_vma(mm, addr)
        if vma is None or vma.vm_ops is not self.vm_ops or addr < vma.vm_start:
            return None
        return vma

    def sgx_zap_enclave_ptes(self, encl: SgxEncl, addr: int) -> None:
        """sgx_zap_enclave_ptes(): remove the PTE of addr in every mm."""
        while True:
            version = encl.mm_list_version
            for encl_mm in list(encl.mm_list):
                if not self.mmget_not_zero(encl_mm.mm):
                    continue
                vma = self.sgx_encl_find(encl_mm.mm, addr)
                if vma is not None and vma.vm_private_data is encl:
                    self.zap_vma_ptes(vma, addr, PAGE_SIZE)
            if encl.mm_list_version == version:
                break

    def sgx_encl_test_and_clear_young(self, mm: Any, page: SgxEnclPage) -> bool:
        """sgx_encl_test_and_clear_young(): test and clear the PTE accessed bit."""
        addr = page.addr
        vma = self.sgx_encl_find(mm, addr)
        if vma is None or vma.vm_private_data is not page.encl:
            return False
        return self.ptep_test_and_clear_young(mm, addr)

    def sgx_encl_cpumask(self, encl: SgxEncl) -> set[int]:
        """sgx_encl_cpumask(): union of mm_cpumask() over mm_list."""
        cpus: set[int] = set()
        for encl_mm in encl.mm_list:
            cpus |= self.mm_cpumask(encl_mm.mm)
        return cpus

    def sgx_ipi_encl_cpus(self, encl: SgxEncl) -> None:
        # on_each_cpu_mask(sgx_encl_cpumask(encl), sgx_ipi_cb, NULL, 1)
        self.send_ipis(self.sgx_encl_cpumask(encl))

    # -- backing store -------------------------------------------------------------
    def sgx_encl_get_backing_page_pcmd_offset(self, encl: SgxEncl, page_index: int) -> int:
        # sgx_encl_get_backing_page_pcmd_offset(): PCMDs start after the SECS.
        return encl.size + SECS_SIZE + page_index * PCMD_SIZE

    def sgx_encl_get_backing_page(self, encl: SgxEncl, index: int) -> int:
        """shmem_read_mapping_page(): the page's RAM frame, created zeroed."""
        assert encl.backing is not None
        pfn = encl.backing.get(index)
        if pfn is None:
            pfn = self.cpu.phys.alloc_frame()
            encl.backing[index] = pfn
        return pfn

    def sgx_encl_lookup_backing(self, encl: SgxEncl, page_index: int) -> SgxBacking:
        """sgx_encl_get_backing(): the contents page and its PCMD slot."""
        pcmd_off = self.sgx_encl_get_backing_page_pcmd_offset(encl, page_index)
        contents = self.sgx_encl_get_backing_page(encl, page_index)
        pcmd_index = pcmd_off >> PAGE_SHIFT
        pcmd = self.sgx_encl_get_backing_page(encl, pcmd_index)
        offset = pcmd_off & (PAGE_SIZE - 1)
        return SgxBacking(page_index, contents << PAGE_SHIFT, pcmd_index, offset,
                          (pcmd << PAGE_SHIFT) + offset)

    def sgx_encl_alloc_backing(self, encl: SgxEncl, page_index: int) -> SgxBacking:
        # sgx_encl_alloc_backing(): the same, charged to the enclave's memcg.
        return self.sgx_encl_lookup_backing(encl, page_index)

    def sgx_encl_put_backing(self, encl: SgxEncl, backing: SgxBacking) -> None:
        """sgx_encl_put_backing(): unpin (the pages stay in the shmem file)."""

    def sgx_encl_truncate_backing_page(self, encl: SgxEncl, index: int) -> None:
        # sgx_encl_truncate_backing_page(): drop a page of the shmem file.
        assert encl.backing is not None
        pfn = encl.backing.pop(index, None)
        if pfn is not None:
            self.cpu.phys.free_frame(pfn)

    def reclaimer_writing_to_pcmd(self, encl: SgxEncl, start_addr: int) -> bool:
        """reclaimer_writing_to_pcmd(): is a page that shares this PCMD page
        being written out right now?"""
        for i in range(PCMDS_PER_PAGE):
            addr = start_addr + i * PAGE_SIZE
            if addr == encl.base + encl.size:  # the SECS: no page_array entry
                break
            entry = encl.page_array.get(addr >> PAGE_SHIFT)
            if entry is not None and entry.being_reclaimed:
                return True
        return False

    # -- ELDU ------------------------------------------------------------------
    def _sgx_encl_eldu(self, encl_page: SgxEnclPage, epc_page: Any, secs_page: Any) -> None:
        """__sgx_encl_eldu(): ELDU from the backing store, then put the
        backing (sgx_encl_eldu_put_backing())."""
        va_offset = encl_page.desc & SGX_ENCL_PAGE_VA_OFFSET_MASK
        encl = encl_page.encl
        if secs_page is not None:
            page_index = (encl_page.addr - encl.base) >> PAGE_SHIFT
        else:
            page_index = encl.size >> PAGE_SHIFT
        pcmd_first_page = ((page_index & ~PCMD_FIRST_MASK) << PAGE_SHIFT) + encl.base
        b = self.sgx_encl_lookup_backing(encl, page_index)
        assert encl_page.va_page is not None
        pginfo = self.kstack_pageinfo(encl_page.addr, b.contents_paddr, b.pcmd_paddr,
                                      secs_page.paddr if secs_page is not None else 0)
        ret = encls(self.cpu.eldu, pginfo, epc_page.paddr,
                    encl_page.va_page.epc_page.paddr + va_offset)
        if not ret:
            self.stats["eldu"] += 1  # pages loaded back
        err = None
        if ret:
            if encls_failed(ret):
                self.warn(f"ELDU returned {ret} ({ret:#x})")
            err = refuse(errno.EFAULT, "sgx", "__sgx_encl_eldu", f"ELDU returned {ret:#x}")
        self.sgx_encl_eldu_put_backing(encl, b, page_index, pcmd_first_page)
        if err is not None:
            raise err

    def sgx_encl_eldu_put_backing(self, encl: SgxEncl, b: SgxBacking, page_index: int,
                                  pcmd_first_page: int) -> None:
        # __sgx_encl_eldu() in 5.11: sgx_encl_put_backing(&b, false) only: the
        # contents and the PCMD entry stay in the shmem file, whatever ELDU
        # returned (a later EWB of the page writes over them).
        pass

    def sgx_encl_eldu(self, encl_page: SgxEnclPage, secs_page: Any) -> Any:
        """sgx_encl_eldu(): allocate (no reclaim) and load a swapped-out page."""
        va_offset = encl_page.desc & SGX_ENCL_PAGE_VA_OFFSET_MASK
        encl = encl_page.encl
        epc_page = self.sgx_alloc_epc_page(encl_page, False)
        try:
            self._sgx_encl_eldu(encl_page, epc_page, secs_page)
        except OSError:
            self.sgx_encl_free_epc_page(epc_page)
            raise
        va_page = encl_page.va_page
        assert va_page is not None
        va_page.sgx_free_va_slot(va_offset)
        encl.va_pages.remove(va_page)  # list_move() to the head
        encl.va_pages.insert(0, va_page)
        encl_page.desc &= ~SGX_ENCL_PAGE_VA_OFFSET_MASK
        encl_page.epc_page = epc_page
        return epc_page

    def sgx_encl_load_secs(self, encl: SgxEncl) -> Any:
        # sgx_encl_load_secs(): ELDU the SECS if the reclaimer wrote it out.
        epc_page = encl.secs.epc_page
        if epc_page is None:
            epc_page = self.sgx_encl_eldu(encl.secs, None)
        return epc_page

    def _sgx_encl_load_page(self, encl: SgxEncl, entry: SgxEnclPage) -> SgxEnclPage:
        """__sgx_encl_load_page(): make the page resident."""
        if entry.epc_page is not None:
            if entry.desc & SGX_ENCL_PAGE_BEING_RECLAIMED:
                raise refuse(errno.EBUSY, "sgx", "__sgx_encl_load_page",
                             f"page {entry.addr:#x} is being reclaimed")
            return entry
        self.sgx_encl_load_secs(encl)
        self.sgx_encl_eldu(entry, encl.secs.epc_page)
        encl.secs_child_cnt += 1
        self.sgx_mark_page_reclaimable(entry.epc_page)
        return entry

    def sgx_encl_vma_within_max(self, entry: SgxEnclPage, vm_flags: int) -> None:
        """The fault-time check of sgx_encl_load_page_in_vma(): the whole VMA's
        RWX must fit the page's maximum (-EFAULT, the fault SIGBUSes).  The
        seam for designs that drop or change it."""
        vm_prot_bits = vm_flags & VM_ACCESS_FLAGS
        if (entry.vm_max_prot_bits & vm_prot_bits) != vm_prot_bits:
            raise refuse(errno.EFAULT, "sgx", "sgx_encl_load_page_in_vma",
                         f"page {entry.addr:#x} maximum {prot_str(entry.vm_max_prot_bits)}, "
                         f"VMA is {prot_str(vm_prot_bits)}")

    def sgx_encl_load_page_in_vma(self, encl: SgxEncl, addr: int, vm_flags: int) -> SgxEnclPage:
        """sgx_encl_load_page_in_vma(): the page must exist and the VMA fit its
        maximum (:meth:`sgx_encl_vma_within_max`), then load it."""
        entry = encl.page_array.get(addr >> PAGE_SHIFT)
        if entry is None:
            raise refuse(errno.EFAULT, "sgx", "sgx_encl_load_page_in_vma",
                         f"no enclave page at {addr & PAGE_MASK:#x}")
        self.sgx_encl_vma_within_max(entry, vm_flags)
        return self._sgx_encl_load_page(encl, entry)

    def sgx_encl_load_page(self, encl: SgxEncl, addr: int) -> SgxEnclPage:
        """sgx_encl_load_page(): for ioctls; no VMA check."""
        entry = encl.page_array.get(addr >> PAGE_SHIFT)
        if entry is None:
            raise refuse(errno.EFAULT, "sgx", "sgx_encl_load_page",
                         f"no enclave page at {addr & PAGE_MASK:#x}")
        return self._sgx_encl_load_page(encl, entry)

    # -- vm_operations_struct ------------------------------------------------------
    def sgx_vma_open(self, vma: Any) -> None:
        """sgx_vma_open(): fork or split; a failed mm_add leaves the VMA
        without an enclave (every fault SIGBUS)."""
        encl = vma.vm_private_data
        if encl is None:
            return
        try:
            self.sgx_encl_mm_add(encl, vma.vm_mm)
        except OSError:
            vma.vm_private_data = None

    def sgx_vma_fault_eaug(self, vmf: Any, encl: SgxEncl, addr: int) -> int | None:
        """The SGX2 path of the fault; SGX1 kernels have none (None: go on)."""
        return None

    def sgx_vma_fault(self, vmf: Any) -> int:
        """sgx_vma_fault(): load the page and insert its PFN with the VMA's
        protection."""
        addr = vmf.address
        vma = vmf.vma
        encl = vma.vm_private_data
        if encl is None:
            vmf.why = self.trace_note("sgx_vma_fault", "SIGBUS", "VMA has no enclave")
            return VM_FAULT_SIGBUS
        ret = self.sgx_vma_fault_eaug(vmf, encl, addr)
        if ret is not None:
            return ret
        if encl.lock_held_by is not None:  # mutex_lock(&encl->lock)
            self.sgx_encl_lock_blocked(encl, "sgx_vma_fault")
        try:
            entry = self.sgx_encl_load_page_in_vma(encl, addr, vma.vm_flags)
        except OSError as e:
            vmf.why = getattr(e, "why", None)
            if e.errno == errno.EBUSY:
                return VM_FAULT_NOPAGE
            return VM_FAULT_SIGBUS
        ret = self.vmf_insert_pfn(vma, addr & PAGE_MASK, entry.epc_page.paddr >> PAGE_SHIFT)
        if ret != VM_FAULT_NOPAGE:
            vmf.why = self.trace_note("sgx_vma_fault", "SIGBUS", "vmf_insert_pfn failed")
            return VM_FAULT_SIGBUS
        self.sgx_encl_test_and_clear_young(vma.vm_mm, entry)
        return VM_FAULT_NOPAGE

    def sgx_encl_reserve_page(self, encl: SgxEncl, addr: int, vm_flags: int) -> SgxEnclPage:
        # sgx_encl_reserve_page(): retry while the page is being reclaimed.
        while True:
            if encl.lock_held_by is not None:  # mutex_lock(&encl->lock)
                self.sgx_encl_lock_blocked(encl, "sgx_encl_reserve_page")
            try:
                return self.sgx_encl_load_page_in_vma(encl, addr, vm_flags)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
            self.ksgxd()  # the reclaimer finishes with the page

    def sgx_vma_access(self, vma: Any, addr: int, buf: bytearray, write: bool) -> int:
        """sgx_vma_access(): ptrace access to a debug enclave, 8 bytes at a time
        through EDBGRD/EDBGWR."""
        encl = vma.vm_private_data
        if encl is None or not encl.test_bit(SGX_ENCL_DEBUG):
            return -errno.EFAULT
        length = len(buf)
        i = 0
        ret = 0
        while i < length:
            try:
                entry = self.sgx_encl_reserve_page(encl, (addr + i) & PAGE_MASK, vma.vm_flags)
            except OSError as e:
                ret = -e.errno
                break
            align = (addr + i) & ~7
            offset = (addr + i) & 7
            cnt = min(8 - offset, length - i)
            epc_addr = entry.epc_page.paddr + (align & (PAGE_SIZE - 1))
            code, data = self.sgx_edbgrd(epc_addr)
            if code:
                ret = -errno.EIO
                break
            word = bytearray(data.to_bytes(8, "little"))
            if write:
                word[offset:offset + cnt] = buf[i:i + cnt]
                code = encls(self.cpu.edbgwr, epc_addr, int.from_bytes(word, "little"))
                if code:
                    ret = -errno.EIO
                    break
            else:
                buf[i:i + cnt] = word[offset:offset + cnt]
            i += cnt
        # "ret < 0 ? ret : i": an error wins even after some bytes were done.
        return ret if ret < 0 else i

    def sgx_edbgrd(self, epc_addr: int) -> tuple[int, int]:
        # __edbgrd(): (status, data)
        try:
            code, value = self.cpu.edbgrd(epc_addr)
        except HwFault as fault:
            return fault.vector | SGX_ENCLS_FAULT_FLAG, 0
        return int(code), int(value)

    # -- teardown --------------------------------------------------------------
    def sgx_encl_release(self, encl: SgxEncl) -> None:
        """sgx_encl_release(): the last reference is gone; free everything."""
        for index in list(encl.page_array):
            entry = encl.page_array[index]
            if entry.epc_page is not None:
                try:
                    self.sgx_unmark_page_reclaimable(entry.epc_page)
                except OSError:
                    continue  # the reclaimer owns it and will free it
                self.sgx_encl_free_epc_page(entry.epc_page)
                encl.secs_child_cnt -= 1
                entry.epc_page = None
            del encl.page_array[index]
        if not encl.secs_child_cnt and encl.secs.epc_page is not None:
            self.sgx_encl_free_epc_page(encl.secs.epc_page)
            encl.secs.epc_page = None
        while encl.va_pages:
            va_page = encl.va_pages.pop(0)
            self.sgx_encl_free_epc_page(va_page.epc_page)
        if encl.backing is not None:
            for pfn in encl.backing.values():
                self.cpu.phys.free_frame(pfn)
            encl.backing = None  # fput(encl->backing)
        encl.released = True
        if encl in self.encls:
            self.encls.remove(encl)


class SgxEnclOpsSgx2(SgxEnclOps):
    """encl.c as SGX2/EDMM (Linux 6.0) changed it."""

    def sgx_encl_may_map_range(self, encl: SgxEncl, start: int, end: int) -> None:
        # sgx_encl_may_map(): after INIT only ELRANGE may be mapped.
        if encl.initialized and (start < encl.base or end > encl.base + encl.size):
            raise refuse(errno.EACCES, "sgx", "sgx_encl_may_map",
                         f"[{start:#x}, {end:#x}) leaves ELRANGE of an initialized enclave")

    def sgx_vma_fault_eaug(self, vmf: Any, encl: SgxEncl, addr: int) -> int | None:
        # sgx_vma_fault(): no page_array entry on an SGX2 CPU -> EAUG.
        if self.cpu_has_sgx2() and (addr >> PAGE_SHIFT) not in encl.page_array:
            return self.sgx_encl_eaug_page(vmf, encl, addr)
        return None

    def sgx_encl_eaug_load_secs(self, vmf: Any, encl: SgxEncl) -> int | None:
        """The SECS before EAUG: 6.0 does nothing (linux-6.12 overrides)."""
        return None

    def sgx_encl_eldu_put_backing(self, encl: SgxEncl, b: SgxBacking, page_index: int,
                                  pcmd_first_page: int) -> None:
        """__sgx_encl_eldu() after ELDU since 5.18 ("Free backing memory
        after faulting the enclave page") and 5.19 (the PCMD fixes): clear
        the PCMD entry, drop the contents page and, once no entry is left and
        the reclaimer is not writing one (reclaimer_writing_to_pcmd()), the
        PCMD page."""
        pcmd_frame = self.cpu.phys.frame(b.pcmd_paddr >> PAGE_SHIFT)
        pcmd_frame[b.pcmd_offset:b.pcmd_offset + PCMD_SIZE] = bytes(PCMD_SIZE)
        pcmd_page_empty = not any(pcmd_frame)
        self.sgx_encl_truncate_backing_page(encl, page_index)
        if pcmd_page_empty and not self.reclaimer_writing_to_pcmd(encl, pcmd_first_page):
            self.sgx_encl_truncate_backing_page(encl, b.pcmd_index)

    def sgx_encl_eaug_grow_failed(self, vmf: Any, e: OSError) -> int:
        """sgx_encl_grow() failed in the EAUG path: 6.0 gives SIGBUS for any
        error, -EBUSY (no free EPC page for the VA page) included."""
        vmf.why = self.trace_note("sgx_encl_grow", "SIGBUS", str(e))
        return VM_FAULT_SIGBUS

    def sgx_encl_eaug_page(self, vmf: Any, encl: SgxEncl, addr: int) -> int:
        """sgx_encl_eaug_page(): add a PENDING RW page to an initialized
        enclave on first touch; vm_max_prot_bits RWX."""
        vma = vmf.vma

        def sigbus(rule: str, detail: str) -> int:
            vmf.why = self.trace_note(rule, "SIGBUS", detail)
            return VM_FAULT_SIGBUS

        if not encl.initialized:
            return sigbus("sgx_encl_eaug_page", "enclave not initialized: no EAUG")
        encl_page = self.sgx_encl_page_alloc(encl, (addr & PAGE_MASK) - encl.base,
                                             PROT_READ | PROT_WRITE | PROT_EXEC)
        if encl.lock_held_by is not None:  # mutex_lock(&encl->lock)
            self.sgx_encl_lock_blocked(encl, "sgx_encl_eaug_page")
        ret = self.sgx_encl_eaug_load_secs(vmf, encl)
        if ret is not None:
            return ret
        try:
            epc_page = self.sgx_alloc_epc_page(encl_page, False)
        except OSError as e:
            if e.errno == errno.EBUSY:
                return VM_FAULT_NOPAGE
            return sigbus("sgx_alloc_epc_page", str(e))
        try:
            va_page = self.sgx_encl_grow(encl, False)
        except OSError as e:
            self.sgx_encl_free_epc_page(epc_page)
            return self.sgx_encl_eaug_grow_failed(vmf, e)
        if va_page is not None:
            encl.va_pages.insert(0, va_page)
        index = encl_page.addr >> PAGE_SHIFT
        if index in encl.page_array:  # xa_insert() -EBUSY
            self.sgx_encl_shrink(encl, va_page)
            self.sgx_encl_free_epc_page(epc_page)
            return sigbus("sgx_encl_eaug_page", "xa_insert: page already present")
        encl.page_array[index] = encl_page
        secs = encl.secs.epc_page
        if secs is None:
            # 6.0 takes sgx_get_epc_virt_addr() of the SECS as it is: once the
            # reclaimer wrote it out, that is a NULL dereference (fixed in 6.5).
            # The oops does not unwind: the EPC page it allocated is never
            # freed, encl->lock (taken after sgx_encl_page_alloc()) never
            # unlocked, the page stays in page_array without an EPC page; the
            # fault's mmap_lock stays read-held (Linux.make_task_dead()).
            encl.lock_held_by = (f"pid {self.current().pid} took it in sgx_encl_eaug_page() "
                                 "and died there in an oops")
            self.kernel.oops(f"BUG: kernel NULL pointer dereference in sgx_encl_eaug_page "
                             f"at {encl_page.addr:#x}: the SECS is not in the EPC", held=(epc_page,),
                             mmap_locked=True)
        pginfo = self.kstack_pageinfo(encl_page.addr, 0, 0, secs.paddr)
        ret = encls(self.cpu.eaug, pginfo, epc_page.paddr)
        if ret:
            del encl.page_array[index]
            self.sgx_encl_shrink(encl, va_page)
            self.sgx_encl_free_epc_page(epc_page)
            return sigbus("SDM: EAUG", f"EAUG at {encl_page.addr:#x} returned {ret:#x}")
        encl_page.encl = encl
        encl_page.epc_page = epc_page
        encl_page.type = PageType.PT_REG
        encl.secs_child_cnt += 1
        self.sgx_mark_page_reclaimable(encl_page.epc_page)
        vmret = self.vmf_insert_pfn(vma, encl_page.addr, epc_page.paddr >> PAGE_SHIFT)
        if vmret != VM_FAULT_NOPAGE:
            return sigbus("sgx_encl_eaug_page", "vmf_insert_pfn failed (page stays added)")
        return VM_FAULT_NOPAGE

