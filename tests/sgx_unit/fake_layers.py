"""Test doubles for the layers under the SGX driver, so the driver's own
logic (check order, errno, counts, reclaim bookkeeping) is tested in
isolation: a scripted CPU (ENCLS leaves with just the EPCM state the driver
depends on) and the kernel services the driver calls.  The end-to-end tests
on the real machine are in tests/sgx.

While the mm layer is not merged, the few constants and the two base
classes the driver imports from it are provided here with their Linux values.
"""

from __future__ import annotations

import copy
import errno
import struct
import types

import sgxsim.kernel.mm as kmm
from sgxsim.hw import uapi  # noqa: F401  (re-exported for the tests)
from sgxsim.hw.faults import GeneralProtection, PageFault
from sgxsim.hw.measure import Measurement
from sgxsim.hw.memory import EPC_BASE, PhysMem
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

# include/linux/mm.h, mman.h values (only where the mm layer lacks them).
_MM = dict(VM_READ=1, VM_WRITE=2, VM_EXEC=4, VM_SHARED=8, VM_MAYREAD=0x10, VM_MAYWRITE=0x20,
           VM_MAYEXEC=0x40, VM_IO=0x4000, VM_PFNMAP=0x400, VM_DONTEXPAND=0x40000,
           VM_DONTDUMP=0x04000000, VM_ACCESS_FLAGS=7, VM_FAULT_OOM=1, VM_FAULT_SIGBUS=2,
           VM_FAULT_NOPAGE=0x100, MAP_TYPE=0xF, MAP_PRIVATE=2, MAP_SHARED=1, MAP_FIXED=0x10)
for _k, _v in _MM.items():
    if not hasattr(kmm, _k):
        setattr(kmm, _k, _v)
if not hasattr(kmm, "FileOperations"):
    kmm.FileOperations = type("FileOperations", (), {})
if not hasattr(kmm, "VmOperations"):
    kmm.VmOperations = type("VmOperations", (), {})


class Epcm:
    """The EPCM entry and contents of one EPC page, as far as the driver can tell."""

    def __init__(self) -> None:
        self.valid = False
        self.pt = 0
        self.perm = 0
        self.secs = -1
        self.addr = 0
        self.pending = self.modified = self.pr = self.blocked = False
        self.data = bytearray(4096)
        self.meas: Measurement | None = None
        self.initd = False
        self.size = self.base = 0


class FakeCpu:
    """ENCLS with SDM outcomes for the cases the driver's tests reach."""

    def __init__(self, n: int, sgx2: bool = True):
        self.phys = PhysMem(n)
        self.epc_pages = n
        self.sgx1, self.sgx2, self.flc = True, sgx2, True
        self.miscselect_valid, self.attributes_valid, self.xfrm_valid = 1, 0xFF, 0x3
        self.msrs: dict[int, int] = {}
        self.e = [Epcm() for _ in range(n)]
        self.unmasked_events = 0
        self.va: dict[int, Epcm] = {}
        self.leaves: dict[str, int] = {}
        self.epc = types.SimpleNamespace(is_valid=lambda i: self.e[i].valid)

    def _count(self, leaf: str) -> None:
        self.leaves[leaf] = self.leaves.get(leaf, 0) + 1

    def wrmsr(self, msr: int, value: int) -> None:
        self.msrs[msr] = value

    def rdmsr(self, msr: int) -> int:
        return self.msrs[msr]

    def idx(self, pa: int) -> int:
        if not self.phys.is_epc(pa) or pa & 0xFFF:
            raise GeneralProtection("operand is not an EPC page")
        return (pa - EPC_BASE) >> 12

    def pageinfo(self, pa: int) -> tuple[int, int, int, int]:
        return struct.unpack("<4Q", self.phys.read(pa, 32))

    def children(self, i: int) -> bool:
        return any(q.valid and q.pt not in (0, 3) and q.secs == i for q in self.e)

    def ecreate(self, pginfo: int, epc: int) -> None:
        self._count("ecreate")
        i = self.idx(epc)
        p = self.e[i]
        if p.valid:
            raise GeneralProtection("EPC page in use")
        secs = self.phys.read(self.pageinfo(pginfo)[1], 4096)
        size, base, ssa = struct.unpack_from("<QQI", secs)
        if base % size:
            raise GeneralProtection("base not aligned to size")
        p.__init__()
        p.valid, p.pt, p.size, p.base = True, 0, size, base
        p.meas = Measurement()
        p.meas.ecreate(size, ssa)

    def eadd(self, pginfo: int, epc: int) -> None:
        self._count("eadd")
        addr, src, si, secs = self.pageinfo(pginfo)
        i, s = self.idx(epc), self.e[self.idx(secs)]
        if self.e[i].valid or s.initd or not s.base <= addr < s.base + s.size:
            raise GeneralProtection("EADD")
        flags = struct.unpack("<Q", self.phys.read(si, 8))[0]
        p = self.e[i]
        p.__init__()
        p.valid, p.pt, p.secs = True, flags >> 8 & 0xFF, self.idx(secs)
        p.addr, p.perm = addr, flags & 7
        p.data = bytearray(self.phys.read(src, 4096))
        assert s.meas is not None
        s.meas.eadd(addr - s.base, flags)

    def eextend(self, secs: int, chunk: int) -> None:
        s = self.e[self.idx(secs)]
        p = self.e[(chunk - EPC_BASE) >> 12]
        off = chunk & 0xFFF
        assert s.meas is not None
        s.meas.eextend(p.addr - s.base + off, bytes(p.data[off:off + 256]))

    def einit(self, sig: int, secs: int, token: int) -> int:
        self._count("einit")
        if self.unmasked_events:
            self.unmasked_events -= 1
            return 128  # SGX_UNMASKED_EVENT
        s = self.e[self.idx(secs)]
        assert s.meas is not None
        if self.phys.read(sig + 960, 32) != s.meas.digest():
            return 4  # SGX_INVALID_MEASUREMENT
        s.initd = True
        return 0

    def eremove(self, epc: int) -> int:
        self._count("eremove")
        i = self.idx(epc)
        p = self.e[i]
        if p.valid and p.pt == 0 and self.children(i):
            return 13  # SGX_CHILD_PRESENT
        p.valid = False
        return 0

    def epa(self, epc: int) -> None:
        p = self.e[self.idx(epc)]
        p.__init__()
        p.valid, p.pt = True, 3

    def eblock(self, epc: int) -> int:
        self.e[self.idx(epc)].blocked = True
        return 0

    def etrack(self, secs: int) -> int:
        return 0

    def ewb(self, pginfo: int, epc: int, va: int) -> int:
        self._count("ewb")
        _, contents, pcmd, _ = self.pageinfo(pginfo)
        i = self.idx(epc)
        p = self.e[i]
        if p.pt != 0 and not p.blocked:
            return 10  # SGX_PAGE_NOT_BLOCKED
        if p.pt == 0 and self.children(i):
            return 13
        self.phys.write(contents, bytes(p.data))
        self.phys.write(pcmd, struct.pack("<Q", p.pt | 0x100) + bytes(120))
        self.va[va] = copy.copy(p)
        p.valid = False
        return 0

    def eldu(self, pginfo: int, epc: int, va: int) -> int:
        self._count("eldu")
        _, contents, _, secs = self.pageinfo(pginfo)
        i = self.idx(epc)
        if self.e[i].valid:
            raise GeneralProtection("EPC page in use")
        old = self.va.pop(va, None)
        if old is None:
            return 9  # SGX_MAC_COMPARE_FAIL
        old.data = bytearray(self.phys.read(contents, 4096))
        if secs:
            old.secs = self.idx(secs)
        old.blocked, old.valid = False, True
        self.e[i] = old
        return 0

    def eaug(self, pginfo: int, epc: int) -> None:
        self._count("eaug")
        addr, _, _, secs = self.pageinfo(pginfo)
        i, s = self.idx(epc), self.e[self.idx(secs)]
        if not s.base <= addr < s.base + s.size:
            raise GeneralProtection("EAUG outside ELRANGE")
        p = self.e[i]
        p.__init__()
        p.valid, p.pt, p.perm, p.pending, p.secs, p.addr = True, 2, 3, True, self.idx(secs), addr

    def emodpr(self, si: int, epc: int) -> int:
        p = self.e[self.idx(epc)]
        flags = struct.unpack("<Q", self.phys.read(si, 8))[0]
        if p.pt == 4 and not p.modified:  # accepted TRIM page
            raise PageFault(0, 0)
        if p.pending or p.modified or p.pr:
            return 20  # SGX_PAGE_NOT_MODIFIABLE
        p.perm &= flags
        p.pr = True
        return 0

    def emodt(self, si: int, epc: int) -> int:
        p = self.e[self.idx(epc)]
        flags = struct.unpack("<Q", self.phys.read(si, 8))[0]
        if p.pending or p.modified or p.pr:
            return 20
        p.pt, p.modified, p.perm = flags >> 8 & 0xFF, True, 0
        return 0

    def eaccept(self, epc: int) -> None:
        """What the enclave's EACCEPT does to the EPCM (for the tests)."""
        p = self.e[self.idx(epc)]
        p.pending = p.modified = p.pr = False

    def edbgrd(self, addr: int) -> tuple[int, int]:
        p = self.e[self.idx(addr & ~0xFFF)]
        o = addr & 0xFFF
        return 0, int.from_bytes(p.data[o:o + 8], "little")

    def edbgwr(self, addr: int, value: int) -> int:
        p = self.e[self.idx(addr & ~0xFFF)]
        o = addr & 0xFFF
        p.data[o:o + 8] = value.to_bytes(8, "little")
        return 0


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
        self.mm = Mm()
        self.personality = 0
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

    def __init__(self, cpu: FakeCpu):
        self.cpu = cpu
        self.current = Task()
        self.trace = Trace()
        self.devs: dict[str, object] = {}

    def misc_register(self, path, fops):
        self.devs[path] = fops

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
        return set()

    def send_ipis(self, cpus):
        pass

    def mmu_notifier_register(self, obj, mm):
        mm.notifiers.append(obj)

    def mmu_notifier_unregister(self, obj, mm):
        if obj in mm.notifiers:
            mm.notifiers.remove(obj)

    def mm_get_unmapped_area(self, mm, file, addr, length, pgoff, flags):
        return 0x4000_0000

    def all_page_tables(self):
        return [self.current.mm.pgtable]
