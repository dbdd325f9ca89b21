"""mprotect (mm/mprotect.c: do_mprotect_pkey, mprotect_fixup, change_protection;
mm/vma.c: vma_modify_flags)."""

from __future__ import annotations

import errno

from sgxsim.hw.paging import (
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_PFN_MASK,
    PTE_PRESENT,
    PTE_RW,
    PTE_SPECIAL,
)
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    PAGE_MASK,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_FLAGS_CLEAR,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_NORESERVE,
    VM_SHARED,
    VM_WRITE,
    calc_vm_prot_bits,
    page_align,
)
from sgxsim.kernel.mm.mman import map_deny_write_exec
from sgxsim.kernel.mm.mseal import can_modify_vma, refuse_sealed
from sgxsim.kernel.mm.vma import (
    MmStruct,
    Vma,
    can_merge_after,
    can_merge_before,
    pte_accessible,
    vm_get_page_prot,
)

_VM_MAY_NAMES = {1: "VM_MAYREAD", 2: "VM_MAYWRITE", 4: "VM_MAYEXEC"}


class MprotectMixin:
    """do_mprotect_pkey() and the per-VMA step designs override."""

    def do_mprotect_pkey(self, start: int, length: int, prot: int, pkey: int = -1) -> None:
        # do_mprotect_pkey()
        task = self.current
        mm = task.mm
        rier = bool(task.persona & READ_IMPLIES_EXEC) and bool(prot & PROT_READ)
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP:
            raise refuse(errno.EINVAL, "mm", "do_mprotect_pkey", "PROT_GROWSDOWN|PROT_GROWSUP")
        if start & ~PAGE_MASK:
            raise refuse(errno.EINVAL, "mm", "do_mprotect_pkey", "start not page aligned")
        if not length:
            return
        length = page_align(length)
        end = start + length
        if end <= start or end >= 1 << 64:
            raise refuse(errno.ENOMEM, "mm", "do_mprotect_pkey", "range wraps")
        unknown = prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)  # any bit of the unsigned long
        if unknown:
            raise refuse(errno.EINVAL, "mm", "arch_validate_prot", f"unknown prot bits {unknown:#x}")
        if pkey != -1 and pkey not in mm.allocated_pkeys():
            raise refuse(errno.EINVAL, "mm", "do_mprotect_pkey", "protection key not allocated")
        reqprot = prot
        vma = mm.find_vma(start)
        if vma is None or vma.vm_start >= end:
            raise refuse(errno.ENOMEM, "mm", "do_mprotect_pkey", f"no mapping in [{start:#x}, {end:#x})")
        if grows & PROT_GROWSDOWN:
            start = vma.vm_start
            if not vma.vm_flags & VM_GROWSDOWN:
                raise refuse(errno.EINVAL, "mm", "do_mprotect_pkey",
                             "PROT_GROWSDOWN on a VMA without VM_GROWSDOWN")
        elif vma.vm_start > start:
            raise refuse(errno.ENOMEM, "mm", "do_mprotect_pkey", f"{start:#x} is not mapped")
        elif grows & PROT_GROWSUP:
            raise refuse(errno.EINVAL, "mm", "do_mprotect_pkey", "no VM_GROWSUP on x86")
        nstart = start
        tmp = vma.vm_start
        while vma is not None and vma.vm_start < end:
            if vma.vm_start != tmp:
                raise refuse(errno.ENOMEM, "mm", "do_mprotect_pkey", f"hole at {tmp:#x}")
            if rier and vma.vm_flags & 0x40:  # VM_MAYEXEC
                prot |= PROT_EXEC
            new_vma_pkey = self.arch_override_mprotect_pkey(vma, prot, pkey)
            newflags = calc_vm_prot_bits(prot, new_vma_pkey) | (
                vma.vm_flags & ~(VM_ACCESS_FLAGS | VM_FLAGS_CLEAR))
            tmp = min(vma.vm_end, end)
            vma = self.mprotect_vma(vma, nstart, tmp, newflags, reqprot, prot)
            tmp = min(vma.vm_end, end)  # vma_iter_end(): the VMA may have merged
            nstart = tmp
            prot = reqprot
            vma = mm.find_vma(tmp) if tmp < end else None
        if tmp < end:
            raise refuse(errno.ENOMEM, "mm", "do_mprotect_pkey", f"hole at {tmp:#x}")

    def mprotect_vma(self, vma: Vma, nstart: int, tmp: int, newflags: int, reqprot: int,
                     prot: int) -> Vma:
        """One VMA's step of do_mprotect_pkey(), in the merged order: VM_MAY*,
        map_deny_write_exec() (6.3), security_file_mprotect(), vm_ops->mprotect(),
        mprotect_fixup() (whose first test is mseal's, 6.10).
        Returns the VMA now covering ``[nstart, tmp)``.  Designs that move or
        replace the hook override this method."""
        self.check_vm_may(newflags)
        self.check_mdwe(vma, newflags)
        self.security.security_file_mprotect(self.current, vma, reqprot, prot)
        if vma.vm_ops is not None and vma.vm_ops.mprotect is not None:
            vma.vm_ops.mprotect(vma, nstart, tmp, newflags)
        return self.mprotect_fixup(vma, nstart, tmp, newflags)

    @staticmethod
    def check_vm_may(newflags: int) -> None:
        # newflags >> 4 shifts VM_MAY% in place of VM_%
        missing = (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS
        if missing:
            names = ", ".join(n for b, n in _VM_MAY_NAMES.items() if missing & b)
            raise refuse(errno.EACCES, "mm", "do_mprotect_pkey", f"{names} missing")

    def check_mdwe(self, vma: Vma, newflags: int) -> None:
        # map_deny_write_exec(), then arch_validate_flags() (nothing to check on x86)
        why = map_deny_write_exec(vma.vm_mm, vma.vm_flags, newflags)
        if why:
            raise refuse(errno.EACCES, "mm", "map_deny_write_exec", why)

    def mprotect_fixup(self, vma: Vma, start: int, end: int, newflags: int) -> Vma:
        # mprotect_fixup()
        if not can_modify_vma(vma):
            raise refuse_sealed(vma, "mprotect_fixup", "mprotect")
        mm = vma.vm_mm
        oldflags = vma.vm_flags
        if newflags == oldflags:
            return vma
        if newflags & VM_WRITE:
            if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
                newflags |= VM_ACCOUNT
        elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
            newflags &= ~VM_ACCOUNT
        vma = self.vma_modify_flags(mm, vma, start, end, newflags)
        vma.vm_flags = newflags
        self.change_protection(vma, start, end)
        return vma

    def vma_modify_flags(self, mm: MmStruct, vma: Vma, start: int, end: int,
                         newflags: int) -> Vma:
        """vma_modify_flags(): merge [start, end) with prev/next when the new
        flags allow, else split it out; return the VMA that covers it."""
        pgoff = vma.pgoff_at(start)
        file, anon = vma.vm_file, vma.anon_vma
        prev = mm.prev_of(vma) if start == vma.vm_start else None
        if prev is not None and prev.vm_end != start:
            prev = None
        nxt = mm.next_of(vma) if end == vma.vm_end else None
        if nxt is not None and nxt.vm_start != end:
            nxt = None
        pglen = (end - start) >> PAGE_SHIFT
        ops = vma.vm_ops
        m_prev = prev is not None and prev.vm_ops is ops and can_merge_after(prev, newflags, file,
                                                                             anon, pgoff)
        m_next = nxt is not None and nxt.vm_ops is ops and can_merge_before(nxt, newflags, file,
                                                                            anon, pgoff, pglen)
        if m_prev and m_next and prev.anon_vma is not None and nxt.anon_vma is not None \
                and prev.anon_vma is not nxt.anon_vma:
            m_next = False
        if m_prev:
            if end == vma.vm_end:
                prev.vm_end = nxt.vm_end if m_next else end
                prev.anon_vma = prev.anon_vma or anon or (nxt.anon_vma if m_next else None)
                self.remove_vma(mm, vma, merged=True)
                if m_next:
                    self.remove_vma(mm, nxt, merged=True)
            else:
                prev.vm_end = end
                prev.anon_vma = prev.anon_vma or anon
                vma.vm_start = end
                vma.vm_pgoff = pgoff + pglen
                mm.reindex()
            return prev
        if m_next:
            nxt.vm_start = start
            nxt.vm_pgoff = pgoff
            nxt.anon_vma = nxt.anon_vma or anon
            if start == vma.vm_start:
                self.remove_vma(mm, vma, merged=True)
            else:
                vma.vm_end = start
            mm.reindex()
            return nxt
        if vma.vm_start < start:
            vma = self.split_vma(mm, vma, start)
        if vma.vm_end > end:
            self.split_vma(mm, vma, end)
        return vma

    def change_protection(self, vma: Vma, start: int, end: int) -> None:
        """change_protection(): rewrite the present PTEs of [start, end) for the
        VMA's new flags; cost follows the populated entries only."""
        pt = vma.vm_mm.pgtable
        flags = vma.vm_flags
        base = vm_get_page_prot(flags)
        accessible = pte_accessible(flags)
        for vpn in pt.populated(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            pte = pt.ptes[vpn]
            new = (pte & (PTE_PFN_MASK | PTE_ACCESSED | PTE_DIRTY | PTE_SPECIAL)) | base
            if flags & VM_WRITE and not flags & VM_SHARED and self.page_exclusive(pte):
                new |= PTE_RW  # an exclusive anonymous page stays writable
            if accessible:
                new |= PTE_PRESENT
            pt.ptes[vpn] = new
