"""mmap and munmap (mm/mmap.c, mm/vma.c, arch/x86/kernel/sys_x86_64.c)."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import TaskBlocked, refuse
from sgxsim.kernel.mm.flags import (
    ARCH_VM_PKEY_FLAGS,
    FMODE_READ,
    FMODE_WRITE,
    LEGACY_MAP_MASK,
    LEGACY_MAP_MASK_BEFORE_6_6,
    MAP_ABOVE4G_RELEASE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_SYNC,
    MAP_TYPE,
    MMAP_MIN_ADDR,
    PAGE_MASK,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_READ,
    READ_IMPLIES_EXEC,
    TASK_SIZE,
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NORESERVE,
    VM_PKEY_SHIFT,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
    calc_vm_flag_bits,
    calc_vm_prot_bits,
    page_align,
)
from sgxsim.kernel.mm.mman import map_deny_write_exec
from sgxsim.kernel.mm.mseal import can_modify_vma, refuse_sealed
from sgxsim.kernel.mm.vma import MmStruct, Vma, can_merge_after, can_merge_before

MAP_NORESERVE = 0x4000


def vma_pkey(vma: Vma) -> int:
    return (vma.vm_flags & ARCH_VM_PKEY_FLAGS) >> VM_PKEY_SHIFT
STACK_GUARD_GAP = 256 << PAGE_SHIFT
DEFAULT_MAX_MAP_COUNT = 65530
MAX_LFS_FILESIZE = (1 << 63) - 1  # LLONG_MAX on 64-bit
ULONG_MAX = (1 << 64) - 1


def file_mmap_ok(file: Any, pgoff: int, length: int) -> bool:
    """file_mmap_ok(): the mapping ends within the largest offset the file
    can have (file_mmap_size_max(): MAX_LFS_FILESIZE for a regular file, the
    whole unsigned range for a device; the model has no block device, socket
    or FOP_UNSIGNED_OFFSET file)."""
    maxsize = MAX_LFS_FILESIZE if file.inode.is_reg() else ULONG_MAX
    if length > maxsize:
        return False
    return pgoff <= (maxsize - length) >> PAGE_SHIFT


def _mm(layer_rule: str, err: int, detail: str) -> OSError:
    return refuse(err, "mm", layer_rule, detail)


class MmapMixin:
    """do_mmap(), mmap_region(), get_unmapped_area(), do_vmi_munmap()."""

    # -- get_unmapped_area -------------------------------------------------------------
    def get_unmapped_area(self, file: Any, addr: int, length: int, pgoff: int,
                          flags: int) -> int:
        # __get_unmapped_area()
        if length > TASK_SIZE:
            raise _mm("get_unmapped_area", errno.ENOMEM, "length above TASK_SIZE")
        if file is not None and file.f_op.get_unmapped_area is not None:
            addr = file.f_op.get_unmapped_area(file, addr, length, pgoff, flags)
        else:
            addr = self.mm_get_unmapped_area(self.current.mm, file, addr, length, pgoff, flags)
        if addr > TASK_SIZE - length:
            raise _mm("get_unmapped_area", errno.ENOMEM, "area ends above TASK_SIZE")
        if addr & ~PAGE_MASK:
            raise _mm("get_unmapped_area", errno.EINVAL, "area not page aligned")
        self.security.security_mmap_addr(self.current, addr)
        return addr

    def mm_get_unmapped_area(self, mm: MmStruct, file: Any, addr: int, length: int,
                             pgoff: int, flags: int) -> int:
        # arch_get_unmapped_area_topdown()
        if flags & MAP_FIXED:
            return addr
        if length > TASK_SIZE - MMAP_MIN_ADDR:
            raise _mm("arch_get_unmapped_area_topdown", errno.ENOMEM, "length too large")
        if addr:
            addr = page_align(addr)
            vma = mm.find_vma(addr)
            prev = mm.prev_vma(addr)
            if (TASK_SIZE - length >= addr and addr >= MMAP_MIN_ADDR
                    and (vma is None or addr + length <= self._vm_start_gap(vma))
                    and (prev is None or addr >= prev.vm_end)):
                return addr
        return self._topdown_search(mm, length, mm.mmap_base)

    @staticmethod
    def _vm_start_gap(vma: Vma) -> int:
        if vma.vm_flags & VM_GROWSDOWN:
            return max(vma.vm_start - STACK_GUARD_GAP, 0)
        return vma.vm_start

    def _topdown_search(self, mm: MmStruct, length: int, high: int) -> int:
        # vm_unmapped_area() top-down: the highest gap below mmap_base that fits.
        limit = high
        for vma in reversed(mm.vmas):
            if vma.vm_start >= limit:
                continue
            if vma.vm_end <= limit - length and limit - length >= MMAP_MIN_ADDR:
                return (limit - length) & PAGE_MASK
            limit = min(limit, self._vm_start_gap(vma))
        if limit - length >= MMAP_MIN_ADDR:
            return (limit - length) & PAGE_MASK
        raise _mm("vm_unmapped_area", errno.ENOMEM, "no gap large enough")

    # -- mmap --------------------------------------------------------------------------
    def legacy_map_mask(self) -> int:
        """LEGACY_MAP_MASK of the release (MAP_ABOVE4G since 6.6)."""
        if self.mm_release < MAP_ABOVE4G_RELEASE:
            return LEGACY_MAP_MASK_BEFORE_6_6
        return LEGACY_MAP_MASK

    def vm_mmap_pgoff(self, file: Any, addr: int, length: int, prot: int, flags: int,
                      pgoff: int) -> int:
        # vm_mmap_pgoff(): the LSM sees the request before do_mmap()
        task = self.current
        self.security.security_mmap_file(task, file, prot, prot, flags)
        return self.do_mmap(file, addr, length, prot, flags, pgoff)

    def do_mmap(self, file: Any, addr: int, length: int, prot: int, flags: int,
                pgoff: int) -> int:
        # do_mmap()
        task = self.current
        mm = task.mm
        if not length:
            raise _mm("do_mmap", errno.EINVAL, "length 0")
        if prot & PROT_READ and task.persona & READ_IMPLIES_EXEC:
            if not (file is not None and file.mount.noexec):
                prot |= PROT_EXEC
        if flags & MAP_FIXED_NOREPLACE:
            flags |= MAP_FIXED
        if not flags & MAP_FIXED:
            addr = max(addr & PAGE_MASK, 0)
            if addr and addr < MMAP_MIN_ADDR:
                addr = page_align(MMAP_MIN_ADDR)  # round_hint_to_min()
        length = page_align(length)
        if not length or length > (1 << 64) - 1:
            raise _mm("do_mmap", errno.ENOMEM, "length overflows when page aligned")
        if pgoff + (length >> PAGE_SHIFT) >= 1 << 64:
            raise _mm("do_mmap", errno.EOVERFLOW, "offset + length overflows")
        if mm.map_count > DEFAULT_MAX_MAP_COUNT:
            raise _mm("do_mmap", errno.ENOMEM, "too many mappings")
        vm_flags = 0
        if file is None and flags & MAP_TYPE == MAP_SHARED:
            pgoff_gua = 0
        else:
            pgoff_gua = pgoff
        addr = self.get_unmapped_area(file, addr, length, pgoff_gua, flags)
        if flags & MAP_FIXED_NOREPLACE and mm.overlapping(addr, addr + length):
            raise _mm("do_mmap", errno.EEXIST, "MAP_FIXED_NOREPLACE over an existing mapping")
        pkey = 0
        if prot == PROT_EXEC:
            pkey = max(self.execute_only_pkey(mm), 0)
        vm_flags = calc_vm_prot_bits(prot, pkey) | calc_vm_flag_bits(flags) | VM_MAYREAD | \
            VM_MAYWRITE | VM_MAYEXEC
        if file is not None:
            if not file_mmap_ok(file, pgoff, length):
                raise _mm("file_mmap_ok", errno.EOVERFLOW, f"offset {pgoff << PAGE_SHIFT:#x} + length "
                          f"{length:#x} past the largest offset of {file.path}")
            mtype = flags & MAP_TYPE
            if mtype in (MAP_SHARED, MAP_SHARED_VALIDATE):
                # The mask: LEGACY_MAP_MASK (MAP_SYNC only for a file whose
                # f_op has FOP_MMAP_SYNC, a DAX-capable one; the model has none).
                flags_mask = self.legacy_map_mask()
                if mtype == MAP_SHARED:  # unknown flags silently dropped
                    flags &= flags_mask
                    vm_flags &= ~calc_vm_flag_bits(MAP_SYNC)
                if flags & ~flags_mask:  # any bit of the unsigned long
                    unknown = flags & ~flags_mask
                    raise _mm("do_mmap", errno.EOPNOTSUPP, f"MAP_SHARED_VALIDATE with flag bits "
                              f"{unknown:#x} this file does not support"
                              + (" (MAP_SYNC needs a DAX file)" if unknown & MAP_SYNC else ""))
                if prot & 0x2 and not file.f_mode & FMODE_WRITE:
                    raise _mm("do_mmap", errno.EACCES,
                              "shared writable mapping of a file not opened for writing")
                vm_flags |= VM_SHARED | VM_MAYSHARE
                if not file.f_mode & FMODE_WRITE:
                    vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
            elif mtype != MAP_PRIVATE:
                raise _mm("do_mmap", errno.EINVAL, f"mapping type {mtype:#x}")
            if not file.f_mode & FMODE_READ:
                raise _mm("do_mmap", errno.EACCES, "file not opened for reading")
            if file.mount.noexec:
                if vm_flags & VM_EXEC:
                    raise _mm("do_mmap", errno.EPERM, f"PROT_EXEC on a noexec mount ({file.path})")
                vm_flags &= ~VM_MAYEXEC
            if file.f_op.mmap is None:
                raise _mm("do_mmap", errno.ENODEV, "the file has no mmap")
            if vm_flags & VM_GROWSDOWN:
                raise _mm("do_mmap", errno.EINVAL, "MAP_GROWSDOWN on a file")
        else:
            mtype = flags & MAP_TYPE
            if mtype == MAP_SHARED:  # MAP_SHARED_VALIDATE is for files only
                if vm_flags & VM_GROWSDOWN:
                    raise _mm("do_mmap", errno.EINVAL, "MAP_GROWSDOWN on a shared mapping")
                pgoff = 0
                vm_flags |= VM_SHARED | VM_MAYSHARE
            elif mtype == MAP_PRIVATE:
                pgoff = addr >> PAGE_SHIFT
            else:
                raise _mm("do_mmap", errno.EINVAL, f"mapping type {mtype:#x}")
        if flags & MAP_NORESERVE:
            vm_flags |= VM_NORESERVE
        addr = self.mmap_region(file, addr, length, vm_flags, pgoff, flags)
        if flags & MAP_POPULATE:
            self.populate(addr, length)
        return addr

    @staticmethod
    def accountable_mapping(vm_flags: int) -> bool:
        # accountable_mapping(): private writable memory is charged
        return (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE

    def mmap_region(self, file: Any, addr: int, length: int, vm_flags: int, pgoff: int,
                    flags: int) -> int:
        # mmap_region(): MDWE refuses a new W+X mapping before anything is unmapped
        mm = self.current.mm
        why = map_deny_write_exec(mm, vm_flags, vm_flags)
        if why:
            raise _mm("map_deny_write_exec", errno.EACCES, why)
        # __mmap_region()
        end = addr + length
        first = mm.find_vma(addr)
        if first is not None and first.vm_start < end:  # mm.overlapping(addr, end), without its list
            self.unmap_range(mm, addr, end)
        if self.accountable_mapping(vm_flags):
            vm_flags |= VM_ACCOUNT
        shmem = file is None and vm_flags & VM_SHARED
        if not shmem and not vm_flags & VM_SPECIAL:
            merged = self.vma_merge_new_range(mm, addr, end, vm_flags, file, pgoff, None)
            if merged is not None:
                return addr
        vma = Vma(mm, addr, end, vm_flags, pgoff, file)
        if file is not None:
            file.refcount += 1  # get_file()
            try:
                file.f_op.mmap(file, vma)
            except OSError:
                self.fput(file)
                raise
            except TaskBlocked:
                # ->mmap() sleeps for ever (a lock an oops left held): the
                # reference get_file() took stays with the sleeping task.
                self.current.blocked_holds.append(file)
                raise
            if vma.vm_flags != vm_flags and not vma.vm_flags & VM_SPECIAL:
                merged = self.vma_merge_new_range(mm, addr, end, vma.vm_flags, file, pgoff, None,
                                                  ops=vma.vm_ops)
                if merged is not None:
                    self.fput(file)
                    return addr
        elif shmem:
            self.shmem_zero_setup(vma)
        mm.insert(vma)
        return addr

    def vma_merge_new_range(self, mm: MmStruct, start: int, end: int, flags: int, file: Any,
                            pgoff: int, anon: Any, ops: Any = None) -> Vma | None:
        # vma_merge_new_range(): extend prev and/or next over [start, end)
        prev = mm.prev_vma(start)
        if prev is not None and prev.vm_end != start:
            prev = None
        nxt = mm.find_vma(start)
        if nxt is not None and nxt.vm_start != end:
            nxt = None
        pglen = (end - start) >> PAGE_SHIFT
        can_prev = prev is not None and can_merge_after(prev, flags, file, anon, pgoff) and (
            ops is None or prev.vm_ops is ops)
        can_next = nxt is not None and can_merge_before(nxt, flags, file, anon, pgoff, pglen) and (
            ops is None or nxt.vm_ops is ops)
        if can_prev and can_next and not (prev.anon_vma is None or nxt.anon_vma is None
                                          or prev.anon_vma is nxt.anon_vma):
            can_next = False
        if can_prev:
            prev.vm_end = end
            if can_next:
                prev.vm_end = nxt.vm_end
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
                self.remove_vma(mm, nxt, merged=True)
            return prev
        if can_next:
            nxt.vm_start = start
            nxt.vm_pgoff = pgoff
            nxt.anon_vma = nxt.anon_vma or anon
            mm.reindex()
            return nxt
        return None

    # -- protection keys (arch/x86/mm/pkeys.c) -------------------------------------------------
    def execute_only_pkey(self, mm: MmStruct) -> int:
        """__execute_only_pkey(): with PKU, PROT_EXEC-only memory gets a key
        that denies data access; -1 without PKU."""
        if not self.cpu.pku:
            return -1
        if mm.execute_only_pkey == -1:
            mm.execute_only_pkey = 1  # mm_pkey_alloc(): the first free key
        return mm.execute_only_pkey

    def arch_override_mprotect_pkey(self, vma: Vma, prot: int, pkey: int) -> int:
        # arch_override_mprotect_pkey()
        if pkey != -1:
            return pkey
        if prot == PROT_EXEC:
            key = self.execute_only_pkey(vma.vm_mm)
            if key > 0:
                return key
        elif self.vma_is_pkey_exec_only(vma):
            return 0  # no longer execute-only: back to ARCH_DEFAULT_PKEY
        return vma_pkey(vma)

    @staticmethod
    def vma_is_pkey_exec_only(vma: Vma) -> bool:
        if vma.vm_flags & VM_ACCESS_FLAGS != VM_EXEC:
            return False
        return vma_pkey(vma) == vma.vm_mm.execute_only_pkey

    # -- munmap ---------------------------------------------------------------------------
    def do_vmi_munmap(self, start: int, length: int) -> None:
        # do_vmi_munmap()
        if start & ~PAGE_MASK or start > TASK_SIZE or length > TASK_SIZE - start:
            raise _mm("do_vmi_munmap", errno.EINVAL, "start unaligned or range beyond TASK_SIZE")
        end = start + page_align(length)
        if end == start:
            raise _mm("do_vmi_munmap", errno.EINVAL, "length 0")
        self.unmap_range(self.current.mm, start, end)

    def unmap_range(self, mm: MmStruct, start: int, end: int) -> None:
        """do_vmi_align_munmap(): split the edge VMAs, then remove the range."""
        if start >= end:
            return  # do_vmi_munmap() of nothing (mremap's old_len 0)
        vmas = mm.overlapping(start, end)
        if not vmas:
            return
        first, last = vmas[0], vmas[-1]
        # vms_gather_munmap_vmas(): a sealed first VMA is refused before it
        # is split; the others after the split of the first.
        if first.vm_start < start and not can_modify_vma(first):
            raise refuse_sealed(first, "vms_gather_munmap_vmas", "munmap")
        # Splits are checked before anything changes (vms_gather_munmap_vmas).
        if first.vm_start < start:
            self.check_split(first, start)
        if last.vm_end > end:
            self.check_split(last, end)
        if first.vm_start < start:
            self.split_vma(mm, first, start)
            vmas = mm.overlapping(start, end)
            last = vmas[-1]
        for v in vmas:
            if not can_modify_vma(v):
                raise refuse_sealed(v, "vms_gather_munmap_vmas", "munmap")
        if last.vm_end > end:
            self.split_vma(mm, last, end)
            vmas = mm.overlapping(start, end)
        for v in vmas:
            self.zap_page_range(v, v.vm_start, v.vm_end)
            self.remove_vma(mm, v)

    def check_split(self, vma: Vma, addr: int) -> None:
        # __split_vma(): vm_ops->may_split may refuse
        if vma.vm_ops is not None and vma.vm_ops.may_split is not None:
            vma.vm_ops.may_split(vma, addr)

    def split_vma(self, mm: MmStruct, vma: Vma, addr: int) -> Vma:
        """__split_vma(): the new VMA is [addr, vm_end); returns it."""
        self.check_split(vma, addr)
        new = vma.clone()
        new.vm_start = addr
        new.vm_pgoff = vma.pgoff_at(addr)
        vma.vm_end = addr
        if new.vm_file is not None:
            new.vm_file.refcount += 1
        mm.insert(new)
        if new.vm_ops is not None and new.vm_ops.open is not None:
            new.vm_ops.open(new)
        return new

    def remove_vma(self, mm: MmStruct, vma: Vma, merged: bool = False) -> None:
        # remove_vma(): ->close, fput
        mm.remove(vma)
        if not merged and vma.vm_ops is not None and vma.vm_ops.close is not None:
            vma.vm_ops.close(vma)
        if vma.vm_file is not None:
            self.fput(vma.vm_file)
