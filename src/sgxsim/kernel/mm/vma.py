"""vm_area_struct, the per-mm VMA tree, and the operations tables drivers
provide (include/linux/mm_types.h, include/linux/fs.h, mm/vma.c)."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from sgxsim.hw.paging import PTE_NX, PTE_RW, PTE_USER, PageTable
from sgxsim.kernel.mm.flags import (
    PAGE_SHIFT,
    VM_EXEC,
    VM_IGNORE_MERGE,
    VM_MAYSHARE,
    VM_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
)


class VmOperations:
    """struct vm_operations_struct.  A hook a driver does not provide stays
    ``None``, so the mm tests ``if vma.vm_ops and vma.vm_ops.close`` as C does.

    ``mprotect(vma, start, end, newflags)`` refuses by raising ``OSError``;
    ``fault(vmf)`` returns ``VM_FAULT_*`` bits."""

    open: Any = None
    close: Any = None
    may_split: Any = None
    mprotect: Any = None
    fault: Any = None
    access: Any = None
    name: Any = None


class FileOperations:
    """struct file_operations (the members the model uses)."""

    open: Any = None
    release: Any = None
    mmap: Any = None
    get_unmapped_area: Any = None
    unlocked_ioctl: Any = None
    # Data transfer (None: the file has no such operation, as the SGX
    # driver's files have none): read/write(file, pos, ...) and
    # llseek(file, offset, whence).  read_iter/write_iter stand for both
    # ->read/->write and ->*_iter: the VFS only asks whether one exists.
    read_iter: Any = None
    write_iter: Any = None
    llseek: Any = None
    fasync: Any = None
    check_flags: Any = None
    # a_ops->direct_IO of the file's mapping (do_dentry_open(): FMODE_CAN_ODIRECT)
    direct_io: bool = False


class AnonVma:
    """struct anon_vma: identity is all that matters for merging and COW."""

    __slots__ = ("id",)

    def __init__(self, ident: int):
        self.id = ident


class Vma:
    """struct vm_area_struct."""

    __slots__ = ("vm_mm", "vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file", "vm_ops",
                 "vm_private_data", "anon_vma")

    def __init__(self, mm: MmStruct, start: int, end: int, flags: int, pgoff: int = 0,
                 file: Any = None):
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = pgoff
        self.vm_file = file
        self.vm_ops: VmOperations | None = None
        self.vm_private_data: Any = None
        self.anon_vma: AnonVma | None = None

    def pages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def is_anonymous(self) -> bool:
        # vma_is_anonymous(): no vm_ops
        return self.vm_ops is None

    def pgoff_at(self, addr: int) -> int:
        return self.vm_pgoff + ((addr - self.vm_start) >> PAGE_SHIFT)

    def clone(self) -> Vma:
        v = Vma(self.vm_mm, self.vm_start, self.vm_end, self.vm_flags, self.vm_pgoff,
                self.vm_file)
        v.vm_ops, v.vm_private_data, v.anon_vma = self.vm_ops, self.vm_private_data, self.anon_vma
        return v

    def perms(self) -> str:
        f = self.vm_flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + (
            "x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    def __repr__(self) -> str:
        return f"Vma({self.vm_start:#x}-{self.vm_end:#x} {self.perms()} flags={self.vm_flags:#x})"


def vm_get_page_prot(vm_flags: int) -> int:
    """vm_get_page_prot() on x86-64 (protection_map): the PTE bits of a VMA.
    Private writable mappings are read-only until written (COW); PROT_NONE
    yields no PTE at all (the caller does not install one)."""
    bits = PTE_USER
    if vm_flags & VM_WRITE and vm_flags & VM_SHARED:
        bits |= PTE_RW
    if not vm_flags & VM_EXEC:
        bits |= PTE_NX
    return bits


def pte_accessible(vm_flags: int) -> bool:
    return bool(vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


class MmStruct:
    """struct mm_struct: the VMA tree (ordered, bisectable) and the page table."""

    def __init__(self, mmap_base: int):
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.pgtable = PageTable()
        self.mmap_base = mmap_base
        self.users = 1
        self.notifiers: list[Any] = []
        self.start_brk = 0
        self.brk = 0
        self.start_stack = 0
        self.next_anon = 1
        self.execute_only_pkey = -1
        self.flags = 0  # mm->flags: the MMF_* bits modelled (MDWE)

    def allocated_pkeys(self) -> set[int]:
        return {0} | ({self.execute_only_pkey} if self.execute_only_pkey > 0 else set())

    @property
    def map_count(self) -> int:
        return len(self.vmas)

    # -- lookup --------------------------------------------------------------------
    def find_vma(self, addr: int) -> Vma | None:
        """find_vma(): the first VMA with vm_end > addr."""
        i = bisect_right(self._starts, addr) - 1
        vmas = self.vmas
        if i >= 0 and vmas[i].vm_end > addr:
            return vmas[i]
        return vmas[i + 1] if i + 1 < len(vmas) else None

    def vma_lookup(self, addr: int) -> Vma | None:
        v = self.find_vma(addr)
        return v if v is not None and v.vm_start <= addr else None

    def index_of(self, vma: Vma) -> int:
        i = bisect_right(self._starts, vma.vm_start) - 1
        assert self.vmas[i] is vma
        return i

    def prev_of(self, vma: Vma) -> Vma | None:
        i = self.index_of(vma)
        return self.vmas[i - 1] if i > 0 else None

    def next_of(self, vma: Vma) -> Vma | None:
        i = self.index_of(vma)
        return self.vmas[i + 1] if i + 1 < len(self.vmas) else None

    def overlapping(self, start: int, end: int) -> list[Vma]:
        """The VMAs intersecting [start, end), in order."""
        # find_vma(start) and its index, with one bisection.
        vmas = self.vmas
        i = bisect_right(self._starts, start) - 1
        if i < 0 or vmas[i].vm_end <= start:
            i += 1
        out = []
        n = len(vmas)
        while i < n and vmas[i].vm_start < end:
            out.append(vmas[i])
            i += 1
        return out

    def prev_vma(self, addr: int) -> Vma | None:
        """The last VMA starting below addr."""
        i = bisect_right(self._starts, addr - 1) - 1 if addr else -1
        return self.vmas[i] if i >= 0 else None

    # -- tree updates -----------------------------------------------------------------
    def insert(self, vma: Vma) -> None:
        i = bisect_right(self._starts, vma.vm_start)
        self.vmas.insert(i, vma)
        self._starts.insert(i, vma.vm_start)

    def remove(self, vma: Vma) -> None:
        i = self.index_of(vma)
        del self.vmas[i]
        del self._starts[i]

    def reindex(self) -> None:
        """After vm_start of a VMA changed in place (order is unchanged)."""
        self._starts = [v.vm_start for v in self.vmas]

    def new_anon_vma(self) -> AnonVma:
        a = AnonVma(self.next_anon)
        self.next_anon += 1
        return a


# -- merging (mm/vma.c) --------------------------------------------------------------------
def is_mergeable_vma(a: Vma, flags: int, file: Any) -> bool:
    # is_mergeable_vma(): same flags (ignoring VM_SOFTDIRTY), same file, no
    # ->close (a VMA with one may not be merged away).
    if (a.vm_flags ^ flags) & ~VM_IGNORE_MERGE:
        return False
    if a.vm_file is not file:
        return False
    if a.vm_ops is not None and a.vm_ops.close is not None:
        return False
    return not flags & VM_SPECIAL


def is_mergeable_anon_vma(a: AnonVma | None, b: AnonVma | None) -> bool:
    # is_mergeable_anon_vma(): compatible when one is unset or both are the same.
    return a is None or b is None or a is b


def can_merge_before(nxt: Vma, flags: int, file: Any, anon: AnonVma | None, pgoff: int,
                     pglen: int) -> bool:
    # can_vma_merge_before(): the new range [.., nxt.vm_start) precedes nxt.
    return (is_mergeable_vma(nxt, flags, file) and is_mergeable_anon_vma(anon, nxt.anon_vma)
            and nxt.vm_pgoff == pgoff + pglen)


def can_merge_after(prev: Vma, flags: int, file: Any, anon: AnonVma | None, pgoff: int) -> bool:
    # can_vma_merge_after(): the new range starts at prev.vm_end.
    return (is_mergeable_vma(prev, flags, file) and is_mergeable_anon_vma(anon, prev.anon_vma)
            and prev.vm_pgoff + prev.pages() == pgoff)
