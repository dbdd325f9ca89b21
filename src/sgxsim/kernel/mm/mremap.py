"""mremap (mm/mremap.c): shrink, grow in place, move."""

from __future__ import annotations

import errno

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_MASK,
    PAGE_SHIFT,
    TASK_SIZE,
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SHARED,
    page_align,
)
from sgxsim.kernel.mm.mmap import DEFAULT_MAX_MAP_COUNT
from sgxsim.kernel.mm.mseal import can_modify_vma, refuse_sealed


def _err(e: int, detail: str) -> OSError:
    return refuse(e, "mm", "mremap", detail)


# Linux 5.13 ("mm: extend MREMAP_DONTUNMAP to non-anonymous mappings"):
# MREMAP_DONTUNMAP works on any mapping but VM_DONTEXPAND/VM_PFNMAP ones;
# before, on private anonymous mappings only.
DONTUNMAP_ANY_RELEASE = (5, 13)
# Linux 6.17 (the mremap rework that added check_prep_vma() and moves over
# several VMAs): the old VMA and the new range are checked before anything
# is unmapped.  Before, mremap_to() checked the new range only after the
# old address's lookup, and unmapped the MREMAP_FIXED destination (and a
# shrinking move's tail) before vma_to_resize() checked the old VMA, so a
# move refused there has already unmapped the destination (read from 6.12).
CHECK_FIRST_RELEASE = (6, 17)


def _check_new_range(addr: int, old_len: int, new_addr: int, new_len: int) -> None:
    """The new range of a move: aligned, below TASK_SIZE, apart from the
    old one (check_mremap_params() since 6.17, mremap_to() before)."""
    if new_addr & ~PAGE_MASK:
        raise _err(errno.EINVAL, "new address not page aligned")
    if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
        raise _err(errno.EINVAL, "new range beyond TASK_SIZE")
    if new_addr < addr + old_len and addr < new_addr + new_len:
        raise _err(errno.EINVAL, "old and new ranges overlap")


class MremapMixin:
    def do_mremap(self, addr: int, old_len: int, new_len: int, flags: int, new_addr: int) -> int:
        # SYSCALL_DEFINE5(mremap) / do_mremap()
        mm = self.current.mm
        if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
            raise _err(errno.EINVAL, f"unknown flags {flags:#x}")
        if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
            raise _err(errno.EINVAL, "MREMAP_FIXED without MREMAP_MAYMOVE")
        if flags & MREMAP_DONTUNMAP and (not flags & MREMAP_MAYMOVE or old_len != new_len):
            raise _err(errno.EINVAL, "MREMAP_DONTUNMAP needs MAYMOVE and equal sizes")
        if addr & ~PAGE_MASK:
            raise _err(errno.EINVAL, "old address not page aligned")
        old_len = page_align(old_len)
        new_len = page_align(new_len)
        if not new_len:
            raise _err(errno.EINVAL, "new length 0")
        if self.mm_release < CHECK_FIRST_RELEASE:
            return self._do_mremap_before_617(addr, old_len, new_len, flags, new_addr)
        if old_len > TASK_SIZE or new_len > TASK_SIZE or addr > TASK_SIZE - old_len:
            raise _err(errno.EINVAL, "range beyond TASK_SIZE")
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
            # check_mremap_params(): the new range, before any lookup
            _check_new_range(addr, old_len, new_addr, new_len)
        # do_mremap(): the old address must be mapped before anything changes
        vma = mm.vma_lookup(addr)
        if vma is None:
            raise _err(errno.EFAULT, f"{addr:#x} is not mapped")
        if not can_modify_vma(vma):  # 6.10: a sealed VMA is never remapped
            raise refuse_sealed(vma, "mremap", "mremap")
        implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
        # Linux 6.17+: a same-size MREMAP_FIXED move may span several VMAs.
        multi = implies_new and old_len == new_len and not flags & MREMAP_DONTUNMAP
        self.check_prep_vma(vma, addr, old_len, new_len, flags, implies_new, multi)
        if implies_new:
            return self.mremap_to(addr, old_len, new_addr, new_len, flags, multi)
        # Shrinking in place always works.
        if old_len >= new_len:
            if old_len > new_len:
                self.unmap_range(mm, addr + new_len, addr + old_len)
            return addr
        return self.mremap_at(vma, addr, old_len, new_len, flags)

    def mremap_at(self, vma, addr: int, old_len: int, new_len: int, flags: int) -> int:
        # grow in place, else move anywhere (MREMAP_MAYMOVE)
        mm = self.current.mm
        # Grow in place when the VMA ends at the old end and the gap is free.
        if vma.vm_end == addr + old_len:
            nxt = mm.next_of(vma)
            room = nxt.vm_start if nxt is not None else TASK_SIZE
            if addr + new_len <= room:
                vma.vm_end = addr + new_len
                self.vma_merge_extend(vma)
                return addr
        if not flags & MREMAP_MAYMOVE:
            raise _err(errno.ENOMEM, "cannot grow in place and MREMAP_MAYMOVE not given")
        mtype = MAP_SHARED if vma.vm_flags & VM_MAYSHARE else MAP_PRIVATE
        dest = self.get_unmapped_area(vma.vm_file, 0, new_len, vma.pgoff_at(addr), mtype)
        return self.move_vma(vma, addr, old_len, new_len, dest, flags)

    def _do_mremap_before_617(self, addr: int, old_len: int, new_len: int, flags: int,
                              new_addr: int) -> int:
        # do_mremap() before Linux 6.17 (read from 6.12): no range check of
        # its own; the lookup, the seal, then the move or the resize decide.
        mm = self.current.mm
        vma = mm.vma_lookup(addr)
        if vma is None:
            raise _err(errno.EFAULT, f"{addr:#x} is not mapped")
        if not can_modify_vma(vma):  # 6.10: a sealed VMA is never remapped
            raise refuse_sealed(vma, "mremap", "mremap")
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
            return self._mremap_to_before_617(addr, old_len, new_addr, new_len, flags)
        # Shrinking in place always works (do_vmi_munmap() checks the tail).
        if old_len >= new_len:
            if old_len > new_len:
                self.do_vmi_munmap(addr + new_len, old_len - new_len)
            return addr
        vma = self.vma_to_resize(addr, old_len, new_len, flags)
        return self.mremap_at(vma, addr, old_len, new_len, flags)

    def _mremap_to_before_617(self, addr: int, old_len: int, new_addr: int, new_len: int,
                              flags: int) -> int:
        # mremap_to() before Linux 6.17: the new range is checked here, after
        # the lookup, and the destination is unmapped before the old VMA is.
        mm = self.current.mm
        _check_new_range(addr, old_len, new_addr, new_len)
        # Room for splitting both ranges in three, before anything is unmapped.
        if mm.map_count + 2 >= DEFAULT_MAX_MAP_COUNT - 3:
            raise _err(errno.ENOMEM, "too many mappings to split both ranges")
        if flags & MREMAP_FIXED:
            self.do_vmi_munmap(new_addr, new_len)  # do_munmap(): seals checked there
        if old_len > new_len:
            self.do_vmi_munmap(addr + new_len, old_len - new_len)
            old_len = new_len
        vma = self.vma_to_resize(addr, old_len, new_len, flags)
        mtype = MAP_SHARED if vma.vm_flags & VM_MAYSHARE else MAP_PRIVATE
        if flags & MREMAP_FIXED:
            mtype |= MAP_FIXED
        dest = self.get_unmapped_area(vma.vm_file, new_addr, new_len, vma.pgoff_at(addr), mtype)
        return self.move_vma(vma, addr, old_len, new_len, dest, flags)

    def vma_to_resize(self, addr: int, old_len: int, new_len: int, flags: int):
        # vma_to_resize() before Linux 6.17: looks the old VMA up again (the
        # destination's unmap may have changed it)
        vma = self.current.mm.vma_lookup(addr)
        if vma is None:
            raise _err(errno.EFAULT, f"{addr:#x} is not mapped")
        self.check_prep_vma(vma, addr, old_len, new_len, flags, True, False)
        return vma

    def check_prep_vma(self, vma, addr: int, old_len: int, new_len: int, flags: int,
                        implies_new: bool, multi: bool) -> None:
        # check_prep_vma() / vma_to_resize(): old_len 0 "duplicates" a
        # mapping, which makes sense only for a shared one
        if not old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
            raise _err(errno.EINVAL, "old length 0 on a private mapping (duplicating it is "
                       "not supported)")
        if flags & MREMAP_DONTUNMAP:
            if self.mm_release >= DONTUNMAP_ANY_RELEASE:
                # a special mapping keeps its pages where it is (sgx_mmap()
                # sets both flags: an enclave VMA is never duplicated)
                if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
                    raise _err(errno.EINVAL, "MREMAP_DONTUNMAP of a VM_DONTEXPAND/VM_PFNMAP "
                               "mapping")
            elif not vma.is_anonymous() or vma.vm_flags & VM_SHARED:
                raise _err(errno.EINVAL, "MREMAP_DONTUNMAP of a mapping that is not private "
                           "anonymous (before Linux 5.13)")
        # only moves and expansions are checked further
        if not implies_new and new_len <= old_len:
            return
        # A shrinking move moves only what is left after the shrink.
        if not multi and min(old_len, new_len) > vma.vm_end - addr:
            raise _err(errno.EFAULT, "old range spans more than one mapping")
        if new_len == old_len:
            return
        if vma.pgoff_at(addr) + (new_len >> PAGE_SHIFT) >= 1 << 64:
            raise _err(errno.EINVAL, "page offset overflows")
        if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
            raise _err(errno.EFAULT, "VM_DONTEXPAND/VM_PFNMAP mappings cannot be resized")

    def mremap_to(self, addr: int, old_len: int, new_addr: int, new_len: int, flags: int,
                  multi: bool) -> int:
        # mremap_to() (Linux 6.17+; _mremap_to_before_617() before)
        mm = self.current.mm
        if flags & MREMAP_FIXED and not multi:
            self.unmap_range(mm, new_addr, new_addr + new_len)
        if old_len > new_len:
            self.unmap_range(mm, addr + new_len, addr + old_len)  # shrink_vma()
            old_len = new_len
        if multi:
            return self.remap_move(addr, old_len, new_addr, flags)
        vma = mm.vma_lookup(addr)
        if vma is None:
            raise _err(errno.EFAULT, f"{addr:#x} is not mapped")
        mtype = MAP_SHARED if vma.vm_flags & VM_MAYSHARE else MAP_PRIVATE
        if flags & MREMAP_FIXED:
            mtype |= MAP_FIXED
        dest = self.get_unmapped_area(vma.vm_file, new_addr, new_len, vma.pgoff_at(addr), mtype)
        return self.move_vma(vma, addr, old_len, new_len, dest, flags)

    def remap_move(self, addr: int, length: int, new_addr: int, flags: int) -> int:
        """remap_move(): each VMA of [addr, addr+length) moves by the same
        delta; holes stay holes (Linux 6.17+)."""
        mm = self.current.mm
        pos, end = addr, addr + length
        while pos < end:
            cur = mm.find_vma(pos)
            if cur is None or cur.vm_start >= end:
                break
            if not can_modify_vma(cur):  # each VMA is checked as the move reaches it
                raise refuse_sealed(cur, "mremap", "mremap")
            lo, hi = max(cur.vm_start, pos), min(cur.vm_end, end)
            mtype = MAP_SHARED if cur.vm_flags & VM_MAYSHARE else MAP_PRIVATE
            dest = new_addr + (lo - addr)
            self.unmap_range(mm, dest, dest + (hi - lo))  # only where a VMA lands
            cur = mm.vma_lookup(lo)  # the unmap may have split it
            dest = self.get_unmapped_area(cur.vm_file, dest, hi - lo, cur.pgoff_at(lo),
                                          mtype | MAP_FIXED)
            self.move_vma(cur, lo, hi - lo, hi - lo, dest, flags)
            pos = hi
        return new_addr

    def move_vma(self, vma, addr: int, old_len: int, new_len: int, dest: int, flags: int) -> int:
        # move_vma(): copy the VMA part and its PTEs to dest, then unmap the old range
        mm = self.current.mm
        # A zero old_len (duplicating a shared mapping) moves nothing and splits nothing.
        if old_len and vma.vm_start < addr:
            vma = self.split_vma(mm, vma, addr)
        if old_len and vma.vm_end > addr + old_len:
            self.split_vma(mm, vma, addr + old_len)
        new = vma.clone()
        new.vm_pgoff = vma.pgoff_at(addr)  # move_vma(): new_pgoff
        new.vm_start, new.vm_end = dest, dest + new_len
        if new.is_anonymous() and new.anon_vma is None:
            new.vm_pgoff = dest >> PAGE_SHIFT  # copy_vma(): never faulted, rebase pgoff
        if new.vm_file is not None:
            new.vm_file.refcount += 1
        pt = mm.pgtable
        shift = (dest - addr) >> PAGE_SHIFT
        moved = [(vpn + shift, pte)
                 for vpn, pte in pt.clear_range(addr >> PAGE_SHIFT, (addr + old_len) >> PAGE_SHIFT)]
        merged = None
        if not vma.vm_flags & (VM_PFNMAP | VM_DONTEXPAND):
            merged = self.vma_merge_new_range(mm, dest, dest + new_len, new.vm_flags, new.vm_file,
                                              new.vm_pgoff, new.anon_vma, ops=new.vm_ops)
        if merged is None:
            mm.insert(new)
            if new.vm_ops is not None and new.vm_ops.open is not None:
                new.vm_ops.open(new)
        elif new.vm_file is not None:
            self.fput(new.vm_file)
        pt.set_range(moved)
        if flags & MREMAP_DONTUNMAP:
            vma.vm_flags &= ~VM_ACCOUNT
            if not vma.vm_flags & VM_SHARED:
                vma.anon_vma = None
        else:
            # The source may have merged into the new VMA (copy_vma() with a
            # rebased pgoff), so unmap the old range rather than the object.
            self.unmap_range(mm, addr, addr + old_len)
        return dest

    def vma_merge_extend(self, vma) -> None:
        # vma_merge_extend(): a grown VMA may now touch a compatible next VMA
        mm = vma.vm_mm
        nxt = mm.next_of(vma)
        from sgxsim.kernel.mm.vma import can_merge_before

        if nxt is not None and nxt.vm_start == vma.vm_end and nxt.vm_ops is vma.vm_ops and \
                can_merge_before(nxt, vma.vm_flags, vma.vm_file, vma.anon_vma, vma.vm_pgoff,
                                 vma.pages()):
            vma.vm_end = nxt.vm_end
            vma.anon_vma = vma.anon_vma or nxt.anon_vma
            self.remove_vma(mm, nxt, merged=True)
