"""Test doubles for the kernel services under the SGX driver (one task, its
mm with a real page table, files, copy_from_user, vmf_insert_pfn, ...): the
driver runs on the real CPU model (sgxsim.hw.cpu) with every kernel service
it calls visible and scriptable.  The end-to-end tests on the real machine
(Machine, Process, the generic mm) are in tests/sgx.
"""

from __future__ import annotations

import errno

import sgxsim.kernel.mm as kmm
from sgxsim.hw import uapi  # noqa: F401  (re-exported for the tests)
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.paging import (
    PTE_ACCESSED,
    PTE_RW,
    PTE_SPECIAL,
    PTE_USER,
    PageTable,
    make_pte,
    pte_pfn,
)
from sgxsim.kernel.errors import refuse
from sgxsim.trace import Trace


class Vma:
    def __init__(self, mm, start, end, flags, file=None):
        self.vm_mm, self.vm_start, self.vm_end, self.vm_flags = mm, start, end, flags
        self.vm_file, self.vm_ops, self.vm_private_data = file, None, None


class Mm:
    def __init__(self):
        self.vmas: list[Vma] = []
        self.pgtable = PageTable()
        self.notifiers: list = []
        self.users = 1


class Task:
    def __init__(self):
        self.pid = 1
        self.mm = Mm()
        self.persona = 0
        self.pending = False
        self.files: dict[int, File] = {}


class File:
    def __init__(self, fops):
        self.f_op = fops
        self.private_data = None


class UserArg:
    """The ioctl argument as a kernel-side buffer (None: a bad pointer)."""

    def __init__(self, buf: bytearray | None):
        self.buf = buf

    def copy_from(self, n: int) -> bytes:
        if self.buf is None or len(self.buf) < n:
            raise refuse(errno.EFAULT, "mm", "copy_from_user")
        return bytes(self.buf[:n])

    def copy_to(self, data: bytes) -> None:
        if self.buf is None:
            raise refuse(errno.EFAULT, "mm", "copy_to_user")
        self.buf[:len(data)] = data


class FakeKernel:
    """The kernel services the driver calls, over one task."""

    def __init__(self, cpu: Cpu):
        self.cpu = cpu
        self.current = Task()
        self.trace = Trace()
        self.devs: dict[str, object] = {}
        self.oopses: list[str] = []

    def misc_register(self, path, fops):
        self.devs[path] = fops

    def oops(self, msg, held=(), *, mmap_locked=False):
        """The kernel hit a BUG: logged, the task killed (as Linux.oops; the
        fake task has nothing to tear down)."""
        import signal

        from sgxsim.kernel.errors import Oops
        from sgxsim.trace import Decision

        self.oopses.append(msg)
        raise Oops(signal.SIGKILL, 0, 0, Decision("kernel", "oops", "SIGKILL", msg))

    def signal_pending(self, task):
        return task.pending

    def find_vma(self, mm, addr):
        for v in sorted(mm.vmas, key=lambda v: v.vm_start):
            if v.vm_end > addr:
                return v
        return None

    def get_user_pages(self, task, addr):
        v = self.find_vma(task.mm, addr)
        if v is None or addr < v.vm_start or not v.vm_flags & 1 or v.vm_flags & 0x4400:
            raise refuse(errno.EFAULT, "mm", "get_user_pages")
        pt = task.mm.pgtable
        pte = pt.get(addr >> 12)
        if not pte:
            pte = make_pte(self.cpu.phys.alloc_frame(), PTE_RW | PTE_USER | PTE_ACCESSED)
            pt.set(addr >> 12, pte)
        return pte_pfn(pte)

    def copy_from_user(self, task, addr, n):
        out = b""
        while n:
            pfn = self.get_user_pages(task, addr)
            o = addr & 0xFFF
            k = min(n, 4096 - o)
            out += bytes(self.cpu.phys.frame(pfn)[o:o + k])
            addr += k
            n -= k
        return out

    def poke(self, addr, data):
        for i, b in enumerate(data):
            self.cpu.phys.frame(self.get_user_pages(self.current, addr + i))[(addr + i) & 0xFFF] = b

    def fget(self, task, fd):
        return task.files.get(fd)

    def vmf_insert_pfn(self, vma, addr, pfn):
        rw = PTE_RW if vma.vm_flags & kmm.VM_WRITE else 0
        vma.vm_mm.pgtable.set(addr >> 12, make_pte(pfn, PTE_USER | PTE_SPECIAL | rw))
        return kmm.VM_FAULT_NOPAGE

    def zap_vma_ptes(self, vma, addr, size):
        vma.vm_mm.pgtable.clear(addr >> 12)

    def ptep_test_and_clear_young(self, mm, addr):
        pte = mm.pgtable.get(addr >> 12)
        if pte & PTE_ACCESSED:
            mm.pgtable.set(addr >> 12, pte & ~PTE_ACCESSED)
            return True
        return False

    def mmget_not_zero(self, mm):
        return mm.users > 0

    def mm_cpumask(self, mm):
        return {lp.id for lp in self.cpu.lps if lp.cr3 is mm.pgtable}

    def send_ipis(self, cpus):
        self.cpu.ipi(cpus)

    def mmu_notifier_register(self, obj, mm):
        mm.notifiers.append(obj)

    def mmu_notifier_unregister(self, obj, mm):
        if obj in mm.notifiers:
            mm.notifiers.remove(obj)

    def mm_get_unmapped_area(self, mm, file, addr, length, pgoff, flags):
        return 0x4000_0000

    def all_page_tables(self):
        return [self.current.mm.pgtable]
