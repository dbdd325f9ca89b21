"""Page faults and user-memory access (arch/x86/mm/fault.c, mm/memory.c,
mm/filemap.c, mm/shmem.c, mm/gup.c)."""

from __future__ import annotations

import errno
import signal
from typing import Any

from sgxsim.hw.faults import (
    PF_INSTR,
    PF_PK,
    PF_PROT,
    PF_RSVD,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    GeneralProtection,
    PageFault,
)
from sgxsim.hw.paging import (
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_RW,
    PTE_SPECIAL,
    make_pte,
    pte_pfn,
)
from sgxsim.kernel.errors import (
    BUS_ADRERR,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SI_KERNEL,
    Oops,
    Signal,
    refuse,
)
from sgxsim.kernel.mm.flags import (
    MMAP_MIN_ADDR,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_EXEC,
    VM_FAULT_ERROR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
    VM_GROWSDOWN,
    VM_IO,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from sgxsim.kernel.mm.vma import Vma, VmOperations, pte_accessible, vm_get_page_prot
from sgxsim.trace import Decision

MAX_FAULT_RETRIES = 64
_SIGNAME = {int(s): s.name for s in signal.Signals}  # signal.Signals(signo).name, looked up
STACK_GUARD_GAP = 256 << PAGE_SHIFT
RLIMIT_STACK = 8 << 20  # the default soft limit


class VmFault:
    """struct vm_fault."""

    __slots__ = ("vma", "address", "pgoff", "flags", "why")

    def __init__(self, vma: Vma, address: int, flags: int):
        self.vma = vma
        self.address = address = address & PAGE_MASK
        self.pgoff = vma.vm_pgoff + ((address - vma.vm_start) >> PAGE_SHIFT)  # vma.pgoff_at()
        self.flags = flags  # FAULT_FLAG_WRITE etc.: here the #PF error code
        self.why: Decision | None = None


class FileVmOps(VmOperations):
    """generic_file_vm_ops: pages come from the page cache (filemap_fault)."""

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def fault(self, vmf: VmFault) -> int:
        return self.kernel.filemap_fault(vmf)


class ShmemVmOps(FileVmOps):
    """shmem_anon_vm_ops: a shared anonymous mapping's pages."""


class FaultMixin:
    """The fault path and user-memory helpers of the generic kernel."""

    # -- frames ----------------------------------------------------------------------
    def alloc_anon_frame(self, data: bytes | None = None) -> int:
        pfn = self.cpu.phys.alloc_frame(data)
        self.page_refs[pfn] = 1
        return pfn

    def get_frame(self, pfn: int) -> None:
        if pfn in self.page_refs:
            self.page_refs[pfn] += 1

    def put_frame(self, pfn: int) -> None:
        n = self.page_refs.get(pfn)
        if n is None:
            return  # page cache, zero page, EPC: not owned by a mapping
        if n <= 1:
            del self.page_refs[pfn]
            self.cpu.phys.free_frame(pfn)
        else:
            self.page_refs[pfn] = n - 1

    def page_exclusive(self, pte: int) -> bool:
        return self.page_refs.get(pte_pfn(pte)) == 1 and not pte & PTE_SPECIAL

    # -- the #PF handler -----------------------------------------------------------------
    def do_user_addr_fault(self, task: Any, pf: PageFault) -> None:
        """do_user_addr_fault(): fix the fault (return) or raise a Signal."""
        addr, ec = pf.addr, pf.error_code
        mm = task.mm
        if ec & PF_RSVD:
            raise self._fault_signal(pf, signal.SIGSEGV, SEGV_ACCERR, "do_user_addr_fault", "reserved bit")
        vma = mm.find_vma(addr)
        if vma is None:
            raise self._fault_signal(pf, signal.SIGSEGV, SEGV_MAPERR, "do_user_addr_fault",
                                     f"{addr:#x} not mapped")
        if vma.vm_start > addr:
            if not vma.vm_flags & VM_GROWSDOWN or not self.expand_stack(vma, addr):
                raise self._fault_signal(pf, signal.SIGSEGV, SEGV_MAPERR, "do_user_addr_fault",
                          f"{addr:#x} not mapped")
        why = self.access_error(ec, vma)
        if why:
            raise self._fault_signal(pf, signal.SIGSEGV, SEGV_ACCERR, "access_error", why)
        ret = self.handle_mm_fault(vma, addr, ec)
        if ret & VM_FAULT_ERROR:
            detail = "" if not isinstance(ret, tuple) else ""
            if ret & VM_FAULT_OOM:
                raise self._fault_signal(pf, signal.SIGKILL, 0, "pagefault_out_of_memory", "VM_FAULT_OOM")
            if ret & VM_FAULT_SIGBUS:
                raise self._fault_signal(pf, signal.SIGBUS, BUS_ADRERR, "handle_mm_fault",
                          self._last_fault_why or detail or "VM_FAULT_SIGBUS")
            if ret & VM_FAULT_SIGSEGV:
                raise self._fault_signal(pf, signal.SIGSEGV, SEGV_ACCERR, "handle_mm_fault", "VM_FAULT_SIGSEGV")

    def _fault_signal(self, pf: PageFault, signo: int, code: int, rule: str, detail: str) -> Signal:
        """The signal do_user_addr_fault() sends for ``pf``, its decision traced
        (a method, not a closure built on every fault: most faults are fixed)."""
        why = Decision("mm", rule, _SIGNAME[signo], detail)
        self.trace.add(why)
        return Signal(signo, code, pf.addr, why, pf.vector, pf.error_code)  # trapno, error_code

    @staticmethod
    def access_error(ec: int, vma: Vma) -> str:
        # access_error() (arch/x86/mm/fault.c): a reason, or "" when allowed
        if ec & PF_PK:
            return "protection key"
        if ec & PF_SGX:
            return "SGX-induced #PF: the EPCM denied the access"
        if ec & PF_WRITE:
            return "" if vma.vm_flags & VM_WRITE else "write to a VMA without VM_WRITE"
        if ec & PF_PROT:
            return "protection fault on a read or fetch"
        if not pte_accessible(vma.vm_flags):
            return "VMA is PROT_NONE"
        return ""

    def expand_stack(self, vma: Vma, addr: int) -> bool:
        # expand_downwards() / acct_stack_growth(): RLIMIT_STACK and the guard gap
        mm = vma.vm_mm
        addr &= PAGE_MASK
        if addr < MMAP_MIN_ADDR:  # expand_downwards(): -EPERM
            return False
        if vma.vm_end - addr > RLIMIT_STACK:
            return False
        prev = mm.prev_of(vma)
        if prev is not None and addr - STACK_GUARD_GAP < prev.vm_end:
            return False
        vma.vm_start = addr
        vma.vm_pgoff = addr >> PAGE_SHIFT
        mm.reindex()
        return True

    def handle_mm_fault(self, vma: Vma, addr: int, ec: int) -> int:
        """handle_mm_fault(): install a PTE or report VM_FAULT_*."""
        self._last_fault_why = ""
        mm = vma.vm_mm
        pt = mm.pgtable
        vpn = addr >> PAGE_SHIFT
        pte = pt.ptes.get(vpn, 0)  # pt.get()
        write = bool(ec & PF_WRITE)
        if pte & PTE_PRESENT:
            if write and not pte & PTE_RW:
                return self.do_wp_page(vma, addr, pte)
            pt.set(vpn, pte | PTE_ACCESSED)  # spurious: another path fixed it
            return 0
        if vma.vm_ops is not None and vma.vm_ops.fault is not None:
            vmf = VmFault(vma, addr, ec)
            ret = vma.vm_ops.fault(vmf)
            if vmf.why is not None:
                self._last_fault_why = str(vmf.why)
                self.trace.add(vmf.why)
            if ret & VM_FAULT_ERROR or vma.vm_flags & VM_PFNMAP:
                return ret
            return ret
        return self.do_anonymous_page(vma, addr, write)

    def do_anonymous_page(self, vma: Vma, addr: int, write: bool) -> int:
        # do_anonymous_page(): reads map the zero page, writes a fresh frame
        pt = vma.vm_mm.pgtable
        prot = vm_get_page_prot(vma.vm_flags)
        if not write:
            pt.set(addr >> PAGE_SHIFT, make_pte(self.zero_pfn, prot & ~PTE_RW))
            return 0
        if vma.anon_vma is None:
            vma.anon_vma = vma.vm_mm.new_anon_vma()  # anon_vma_prepare()
        pfn = self.alloc_anon_frame()
        pt.set(addr >> PAGE_SHIFT, make_pte(pfn, prot | PTE_RW | PTE_DIRTY | PTE_ACCESSED))
        return 0

    def do_wp_page(self, vma: Vma, addr: int, pte: int) -> int:
        # do_wp_page(): reuse an exclusive anonymous page, else copy it (COW)
        pt = vma.vm_mm.pgtable
        vpn = addr >> PAGE_SHIFT
        if vma.vm_flags & VM_SHARED:
            # wp_pfn_shared()/wp_page_shared(): no vm_ops->pfn_mkwrite or
            # page_mkwrite objects here, so wp_page_reuse() makes it writable.
            if self.trace.enabled:
                self.trace.note("mm", "wp_page_reuse", "allow",
                                f"write to read-only PTE at {addr:#x} of a shared mapping: made writable")
            pt.set(vpn, pte | PTE_RW | PTE_DIRTY | PTE_ACCESSED)
            return 0
        pfn = pte_pfn(pte)
        if self.page_refs.get(pfn) == 1:
            pt.set(vpn, pte | PTE_RW | PTE_DIRTY | PTE_ACCESSED)
            return 0
        if vma.anon_vma is None:
            vma.anon_vma = vma.vm_mm.new_anon_vma()
        src = self.cpu.phys.frames.get(pfn)
        new = self.alloc_anon_frame(bytes(src) if src is not None else None)
        self.put_frame(pfn)
        prot = vm_get_page_prot(vma.vm_flags)
        pt.set(vpn, make_pte(new, prot | PTE_RW | PTE_DIRTY | PTE_ACCESSED))
        return 0

    # -- file and shmem pages ------------------------------------------------------------------
    def page_cache_pfn(self, inode: Any, index: int) -> int:
        pfn = inode.pages.get(index)
        if pfn is None:
            off = index * PAGE_SIZE
            pfn = self.cpu.phys.alloc_frame(bytes(inode.data[off : off + PAGE_SIZE]).ljust(
                PAGE_SIZE, b"\0"))
            inode.pages[index] = pfn
        return pfn

    def filemap_fault(self, vmf: VmFault) -> int:
        # filemap_fault() / shmem_fault(): beyond EOF is SIGBUS
        vma = vmf.vma
        inode = vma.vm_file.inode
        if not inode.private and vmf.pgoff >= (inode.size + PAGE_SIZE - 1) // PAGE_SIZE:
            vmf.why = Decision("mm", "filemap_fault", "VM_FAULT_SIGBUS",
                               f"page {vmf.pgoff} is beyond the end of {vma.vm_file.path}")
            return VM_FAULT_SIGBUS
        pfn = self.page_cache_pfn(inode, vmf.pgoff)
        prot = vm_get_page_prot(vma.vm_flags)
        write = bool(vmf.flags & PF_WRITE)
        pt = vma.vm_mm.pgtable
        if write and not vma.vm_flags & VM_SHARED:
            # do_cow_fault(): a private copy
            if vma.anon_vma is None:
                vma.anon_vma = vma.vm_mm.new_anon_vma()
            new = self.alloc_anon_frame(bytes(self.cpu.phys.frames[pfn]))
            pt.set(vmf.address >> PAGE_SHIFT, make_pte(new, prot | PTE_RW | PTE_DIRTY))
        else:
            bits = prot | (PTE_DIRTY if write else 0)
            pt.set(vmf.address >> PAGE_SHIFT, make_pte(pfn, bits))
        return VM_FAULT_NOPAGE

    def shmem_zero_setup(self, vma: Vma) -> None:
        # shmem_zero_setup(): a private shmem file named "/dev/zero (deleted)"
        from sgxsim.kernel.vfs import S_IFREG, File, Inode

        # Sparse: the object is as large as the mapping, its pages are zero
        # until faulted in (cost grows with the pages touched, not the size).
        inode = Inode(0, S_IFREG | 0o600, size=vma.vm_end - vma.vm_start, label="tmpfs_t",
                      private=True)
        f = File(inode, "/dev/zero (deleted)", 3, 2, self.vfs.reg_ops, self.vfs.mount_of("/"))
        vma.vm_file = f
        vma.vm_ops = self.shmem_vm_ops

    # -- driver helpers -----------------------------------------------------------------------
    def vmf_insert_pfn(self, vma: Vma, addr: int, pfn: int) -> int:
        # vmf_insert_pfn(): a special PTE with the VMA's protection (vm_page_prot)
        return self.vmf_insert_pfn_prot(vma, addr, pfn, vma.vm_flags)

    def vmf_insert_pfn_prot(self, vma: Vma, addr: int, pfn: int, vm_flags: int) -> int:
        # vmf_insert_pfn_prot(vma, addr, pfn, vm_get_page_prot(vm_flags))
        prot = vm_get_page_prot(vm_flags)
        if vm_flags & VM_WRITE and vm_flags & VM_SHARED:
            prot |= PTE_RW
        vma.vm_mm.pgtable.set(addr >> PAGE_SHIFT, make_pte(pfn, prot | PTE_SPECIAL))
        return VM_FAULT_NOPAGE

    def zap_vma_ptes(self, vma: Vma, addr: int, size: int) -> None:
        # zap_vma_ptes()
        start, end = max(addr, vma.vm_start), min(addr + size, vma.vm_end)
        if start < end:
            self.zap_page_range(vma, start, end)

    def zap_page_range(self, vma: Vma, start: int, end: int) -> None:
        pt = vma.vm_mm.pgtable
        for _, pte in pt.clear_range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            if not pte & PTE_SPECIAL:
                self.put_frame(pte_pfn(pte))

    def ptep_test_and_clear_young(self, mm: Any, addr: int) -> bool:
        pt = mm.pgtable
        vpn = addr >> PAGE_SHIFT
        pte = pt.get(vpn)
        if pte & PTE_ACCESSED:
            pt.set(vpn, pte & ~PTE_ACCESSED)
            return True
        return False

    def find_vma(self, mm: Any, addr: int) -> Vma | None:
        return mm.find_vma(addr)

    # -- user memory ---------------------------------------------------------------------------
    def user_access(self, task: Any, fn: Any, addr: int, *args: Any) -> Any:
        """Run a user-mode access ``fn(lp, addr, *args)`` on the task's LP;
        fix faults through the fault path and retry (:meth:`user_fault`)."""
        lp = task.lp
        lp.cr3 = task.mm.pgtable
        try:
            return fn(lp, addr, *args)
        except (PageFault, GeneralProtection) as fault:
            return self.user_fault(task, fault, fn, addr, *args)

    def user_fault(self, task: Any, fault: PageFault | GeneralProtection, fn: Any, addr: int,
                   *args: Any) -> Any:
        """The fault of the user-mode access ``fn(lp, addr, *args)``: fix it
        through the fault path and retry, as returning from the #PF handler
        does, until the access completes (its result), the kernel sends a
        signal, or MAX_FAULT_RETRIES faults made no progress (SIGBUS)."""
        lp = task.lp
        tries = MAX_FAULT_RETRIES
        while True:
            if isinstance(fault, GeneralProtection):
                # exc_general_protection() -> gp_user_force_sig_segv(): a
                # plain force_sig(SIGSEGV), so SI_KERNEL and no address.
                raise Signal(signal.SIGSEGV, SI_KERNEL, 0, Decision(
                    "mm", "exc_general_protection", "SIGSEGV", fault.why.detail), trapno=fault.vector) from None
            self.do_user_addr_fault(task, fault)
            tries -= 1
            if not tries:
                raise Signal(signal.SIGBUS, BUS_ADRERR, addr, Decision(
                    "mm", "handle_mm_fault", "SIGBUS", "fault retried without progress")) from None
            try:
                return fn(lp, addr, *args)
            except (PageFault, GeneralProtection) as again:
                fault = again

    def get_user_pages(self, task: Any, addr: int, write: bool = False) -> int:
        """get_user_pages(): fault the page in as the kernel would and return
        its frame; EFAULT for unmapped, inaccessible or VM_IO/VM_PFNMAP memory."""
        mm = task.mm
        vma = mm.find_vma(addr)  # vma_lookup()
        if vma is None or vma.vm_start > addr:
            raise refuse(errno.EFAULT, "mm", "get_user_pages", f"{addr:#x} not mapped")
        if vma.vm_flags & (VM_IO | VM_PFNMAP):
            raise refuse(errno.EFAULT, "mm", "check_vma_flags", "VM_IO/VM_PFNMAP memory")
        need = VM_WRITE if write else VM_READ
        if not vma.vm_flags & need:
            raise refuse(errno.EFAULT, "mm", "check_vma_flags", "VMA does not allow the access")
        ptes = mm.pgtable.ptes  # read in place, as PageTable.get() does
        vpn = addr >> PAGE_SHIFT
        faults = 0
        while faults < MAX_FAULT_RETRIES:
            pte = ptes.get(vpn, 0)  # follow_page_mask()
            if pte & PTE_PRESENT and (not write or pte & PTE_RW):
                return pte_pfn(pte)
            ret = self.handle_mm_fault(vma, addr, PF_USER | (PF_WRITE if write else 0))
            if ret & VM_FAULT_ERROR:
                raise refuse(errno.EFAULT, "mm", "get_user_pages", "the fault failed")
            faults += 1
        raise refuse(errno.EFAULT, "mm", "get_user_pages", "no progress")

    def copy_from_user(self, task: Any, addr: int, n: int) -> bytes:
        # copy_from_user(): EFAULT where a user read would fault
        try:
            if 0 < n <= PAGE_SIZE - (addr & (PAGE_SIZE - 1)):
                return self._kernel_user_read(task, addr, n)  # within one page: one access
            out = bytearray()
            while n > 0:
                take = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
                out += self._kernel_user_read(task, addr, take)
                addr += take
                n -= take
        except Oops:
            raise  # the task died in the fault (make_task_dead()): no exception-table fixup
        except (Signal, OverflowError) as e:
            raise refuse(errno.EFAULT, "mm", "copy_from_user", str(e)) from None
        return bytes(out)

    def copy_to_user(self, task: Any, addr: int, data: bytes) -> None:
        try:
            mv = memoryview(bytes(data))
            while mv:
                take = min(len(mv), PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
                self._kernel_user_write(task, addr, bytes(mv[:take]))
                addr += take
                mv = mv[take:]
        except Oops:
            raise  # the task died in the fault (make_task_dead()): no exception-table fixup
        except (Signal, OverflowError) as e:
            raise refuse(errno.EFAULT, "mm", "copy_to_user", str(e)) from None

    def _kernel_user_read(self, task: Any, addr: int, n: int) -> bytes:
        if addr < 0 or addr + n > 1 << 47:
            raise OverflowError(f"{addr:#x} is not a user address")
        return self.user_access(task, self.cpu.load, addr, n)  # user=True: a user access

    def _kernel_user_write(self, task: Any, addr: int, data: bytes) -> None:
        if addr < 0 or addr + len(data) > 1 << 47:
            raise OverflowError(f"{addr:#x} is not a user address")
        self.user_access(task, self.cpu.store, addr, data)  # user=True: a user access

    def populate(self, addr: int, length: int) -> None:
        """MAP_POPULATE: __mm_populate() fault every page in, VMA by VMA,
        ignoring failures; cost follows the pages populated."""
        task = self.current
        for vma in task.mm.overlapping(addr, addr + length):
            # populate_vma_page_range(): PROT_NONE is -EFAULT; check_vma_flags():
            # GUP refuses VM_IO|VM_PFNMAP (an SGX mapping is never populated).
            if not pte_accessible(vma.vm_flags) or vma.vm_flags & (VM_IO | VM_PFNMAP):
                continue
            # FOLL_WRITE only for private writable mappings (break COW now).
            write = PF_WRITE if vma.vm_flags & (VM_WRITE | VM_SHARED) == VM_WRITE else 0
            for a in range(max(addr, vma.vm_start), min(addr + length, vma.vm_end), PAGE_SIZE):
                if vma.vm_mm is not task.mm or task.mm.vma_lookup(a) is not vma:
                    break  # a fault handler changed the mapping
                if not task.mm.pgtable.get(a >> PAGE_SHIFT) & PTE_PRESENT:
                    self.handle_mm_fault(vma, a, PF_USER | write)


__all__ = ["FaultMixin", "FileVmOps", "ShmemVmOps", "VmFault", "VM_EXEC", "PF_INSTR"]
