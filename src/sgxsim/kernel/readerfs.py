"""Files whose pages come from a reader, read afresh on every fault.

A generic pseudo filesystem for memory the model does not own: each fault
asks ``inode.reader(pgoff)`` for the page's bytes (``None`` is an I/O error:
SIGBUS) and maps a private anonymous copy, so nothing is cached and a later
fault after munmap sees the reader's current contents.  A private writable
mapping of such a file gets the task's own copy on every fault, writable at
once where the VMA is (there is nothing to copy on write).  Like a FUSE
file opened with direct I/O, but for mmap.

The one who reads may also tell the kernel that a page changed
(:func:`store_reader_page`, as a FUSE server's FUSE_NOTIFY_STORE pushes new
bytes to the kernel): a copy mapped there takes the new bytes in place, so the
task sees them without a fault, as a mapping of a shared page would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sgxsim.hw.faults import PF_WRITE
from sgxsim.hw.paging import PTE_DIRTY, PTE_PRESENT, PTE_RW, make_pte, pte_pfn
from sgxsim.kernel.mm.fault import VmFault
from sgxsim.kernel.mm.flags import PAGE_SHIFT, PAGE_SIZE, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_WRITE
from sgxsim.kernel.mm.vma import FileOperations, VmOperations, vm_get_page_prot
from sgxsim.trace import Decision

Reader = Callable[[int], "bytes | None"]


class ReaderVmOps(VmOperations):
    """vm_ops of a reader file's mappings: every fault reads the page."""

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def fault(self, vmf: VmFault) -> int:
        vma = vmf.vma
        data = vma.vm_file.inode.reader(vmf.pgoff)
        if data is None:
            vmf.why = Decision("mm", "reader_fault", "VM_FAULT_SIGBUS",
                               f"{vma.vm_file.path}: page {vmf.pgoff:#x} cannot be read")
            return VM_FAULT_SIGBUS
        k = self.kernel
        if vma.anon_vma is None:
            vma.anon_vma = vma.vm_mm.new_anon_vma()  # anon_vma_prepare()
        pfn = k.alloc_anon_frame(bytes(data).ljust(PAGE_SIZE, b"\0"))
        prot = vm_get_page_prot(vma.vm_flags)
        if vma.vm_flags & VM_WRITE:
            # A private copy no one else maps: nothing to copy on write, so it
            # is writable at once (as do_wp_page() would make it on the first write).
            prot |= PTE_RW
        if vmf.flags & PF_WRITE:
            prot |= PTE_DIRTY
        vma.vm_mm.pgtable.set(vmf.address >> PAGE_SHIFT, make_pte(pfn, prot))
        return VM_FAULT_NOPAGE


class ReaderFileOps(FileOperations):
    def __init__(self, kernel: Any):
        self.vm_ops = ReaderVmOps(kernel)

    def mmap(self, file: Any, vma: Any) -> None:
        vma.vm_ops = self.vm_ops


def create_reader_file(vfs: Any, path: str, reader: Reader, size: int,
                       label: str = "unlabeled_t") -> Any:
    """A regular file at ``path`` of ``size`` bytes whose pages ``reader``
    produces.  Its mappings get :class:`ReaderVmOps`; read(2) is not modelled."""
    ino = vfs.create_file(path, label=label)
    ino.i_size = size
    ino.reader = reader
    ino.fops = ReaderFileOps(vfs.kernel)
    return ino



def _reader_pte(task: Any, addr: int) -> int:
    """The present PTE of a reader mapping's copy at ``addr``, else 0."""
    vma = task.mm.vma_lookup(addr)
    if vma is None or not isinstance(vma.vm_ops, ReaderVmOps):
        return 0
    pte = task.mm.pgtable.get(addr >> PAGE_SHIFT)
    return pte if pte & PTE_PRESENT else 0


def store_reader_page(task: Any, addr: int, data: bytes) -> bool:
    """The reader's page mapped at ``addr`` in ``task`` now holds ``data``
    (``PAGE_SIZE`` bytes): write them into the copy mapped there, in place
    (the PTE, its accessed/dirty bits and the frame stay, so no fault and no
    TLB shootdown follow: a write from outside the CPU, as a device's would
    be).  Like fuse_notify_store() for a FUSE file.

    Returns False, changing nothing, when there is no copy to update: no
    reader mapping at ``addr``, no page present (the next fault reads the
    reader afresh anyway), or a frame shared with another mapping (a fork's
    copy on write: the caller unmaps the page so it faults afresh)."""
    if len(data) != PAGE_SIZE:
        raise ValueError(f"store_reader_page: {len(data)} bytes, not one page")
    pte = _reader_pte(task, addr)
    k = task.kernel
    if not pte or not k.page_exclusive(pte):
        return False
    k.cpu.phys.frame(pte_pfn(pte))[:] = data
    return True


def reader_page_young(task: Any, addr: int) -> bool | None:
    """Whether ``task`` accessed the reader page mapped at ``addr`` since the
    last call, read and cleared from the PTE's accessed bit
    (ptep_test_and_clear_young(), as idle page tracking does); None when no
    copy of a reader page is mapped there."""
    if not _reader_pte(task, addr):
        return None
    return bool(task.kernel.ptep_test_and_clear_young(task.mm, addr))
