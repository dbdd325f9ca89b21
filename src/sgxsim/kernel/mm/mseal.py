"""mseal(2) (mm/mseal.c, 6.10) and the sealed-VMA test the mm's other paths
ask (mm/vma.h: can_modify_vma)."""

from __future__ import annotations

import errno

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import PAGE_MASK, VM_SEALED, page_align
from sgxsim.kernel.mm.vma import Vma

U64 = (1 << 64) - 1
# The release that added mseal(2); older kernels have no such syscall.
MSEAL_RELEASE = (6, 10)


def can_modify_vma(vma: Vma) -> bool:
    # can_modify_vma(): a sealed VMA may not be changed
    return not vma.vm_flags & VM_SEALED


def refuse_sealed(vma: Vma, rule: str, what: str) -> OSError:
    return refuse(errno.EPERM, "mm", rule,
                  f"{what}: [{vma.vm_start:#x}, {vma.vm_end:#x}) is sealed (mseal)")


class MsealMixin:
    """do_mseal(): check the whole range first, then seal VMA by VMA."""

    def do_mseal(self, start: int, len_in: int, flags: int) -> None:
        if self.mm_release < MSEAL_RELEASE:
            raise refuse(errno.ENOSYS, "kernel", "sys_mseal",
                         f"no mseal(2) before Linux 6.10 (this mm is {self.mm_version()})")
        if flags:  # can_do_mseal()
            raise refuse(errno.EINVAL, "mm", "can_do_mseal", f"flags {flags:#x} must be 0")
        if start & ~PAGE_MASK:
            raise refuse(errno.EINVAL, "mm", "do_mseal", "start not page aligned")
        length = page_align(len_in) & U64
        if len_in and not length:
            raise refuse(errno.EINVAL, "mm", "do_mseal", "length rounds up to 0")
        end = start + length
        if end > U64:
            raise refuse(errno.EINVAL, "mm", "do_mseal", "range wraps")
        if end == start:
            return
        mm = self.current.mm
        # check_mm_seal(): no hole anywhere in [start, end)
        pos = start
        for vma in mm.overlapping(start, end):
            if vma.vm_start > pos:
                break
            pos = vma.vm_end
        if pos < end:
            raise refuse(errno.ENOMEM, "mm", "check_mm_seal", f"{pos:#x} is not mapped")
        # apply_mm_seal() / mseal_fixup(): split or merge like any flags change
        pos = start
        while pos < end:
            vma = mm.find_vma(pos)
            tmp = min(vma.vm_end, end)
            newflags = vma.vm_flags | VM_SEALED
            if newflags != vma.vm_flags:
                vma = self.vma_modify_flags(mm, vma, pos, tmp, newflags)
                vma.vm_flags |= VM_SEALED
            pos = min(vma.vm_end, end)
