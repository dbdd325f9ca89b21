"""/dev/sgx_enclave and /dev/sgx_provision (arch/x86/kernel/cpu/sgx/driver.c).

:class:`SgxDriver` is the SGX subsystem of one kernel: main.c (allocator,
LRU, reclaimer), encl.c (enclaves, may_map, fault, access), ioctl.c and
driver.c (file operations), composed from the mixins of those modules, plus
the few kernel services the driver calls (``current``, ``find_vma``,
``vmf_insert_pfn``, ...) as small methods so a design can see and override
each use.  :class:`SgxDriverSgx2` is the same driver as Linux 6.0 has it.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from sgxsim.hw.consts import (
    PAGE_SHIFT,
    PAGE_SIZE,
    SGX_MISC_RESERVED_MASK,
    XFRM_LEGACY,
    PageType,
)
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import pte_pfn
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import (
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_TYPE,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_IO,
    VM_PFNMAP,
    FileOperations,
    VmOperations,
)
from sgxsim.kernel.sgx.encl import SgxEncl, SgxEnclOps, SgxEnclOpsSgx2
from sgxsim.kernel.sgx.ioctl import SgxIoctl, SgxIoctlSgx2
from sgxsim.kernel.sgx.main import SGX_EPC_PAGE_IS_FREE, SgxMain

U64 = (1 << 64) - 1
_PAGEINFO = struct.Struct("<4Q")
_SECINFO = struct.Struct("<Q56x")


class SgxVmOps(VmOperations):
    """sgx_vm_ops = {fault, mprotect, open, access}."""

    def __init__(self, drv: SgxDriver):
        self.drv = drv

    def open(self, vma: Any) -> None:
        self.drv.sgx_vma_open(vma)

    def mprotect(self, vma: Any, start: int, end: int, newflags: int) -> None:
        self.drv.sgx_vma_mprotect(vma, start, end, newflags)

    def fault(self, vmf: Any) -> int:
        try:
            return self.drv.sgx_vma_fault(vmf)
        finally:
            self.drv.ksgxd_service_after_fault(vmf)

    def access(self, vma: Any, addr: int, buf: bytearray, write: bool) -> int:
        return self.drv.sgx_vma_access(vma, addr, buf, write)


class SgxFops(FileOperations):
    """sgx_encl_fops."""

    def __init__(self, drv: SgxDriver):
        self.drv = drv

    def open(self, inode: Any, file: Any) -> None:
        self.drv.sgx_open(inode, file)

    def release(self, inode: Any, file: Any) -> None:
        self.drv.sgx_release(inode, file)

    def mmap(self, file: Any, vma: Any) -> None:
        try:
            self.drv.sgx_mmap(file, vma)
        finally:
            self.drv.ksgxd_service()

    def get_unmapped_area(self, file: Any, addr: int, length: int, pgoff: int,
                          flags: int) -> int:
        return self.drv.sgx_get_unmapped_area(file, addr, length, pgoff, flags)

    def unlocked_ioctl(self, file: Any, cmd: int, arg: Any) -> int:
        return self.drv.sgx_ioctl(file, cmd, arg)


class SgxProvisionFops(FileOperations):
    """sgx_provision_fops: only its identity matters (sgx_set_attribute)."""

    def __init__(self, drv: SgxDriver):
        self.drv = drv


class SgxDriver(SgxIoctl, SgxEnclOps, SgxMain):
    """The SGX1 driver as merged in Linux 5.11."""

    # 5.11/6.0 SGX_ATTR_RESERVED_MASK: BIT(3) | BIT(6) | GENMASK(63, 8); later
    # kernels freed bit 10 (AEX-notify, 6.2; see kernel/sgx/linux612.py).
    SGX_ATTR_RESERVED_MASK = (1 << 3) | (1 << 6) | (U64 & ~((1 << 8) - 1))
    ENCLAVE_DEV = "/dev/sgx_enclave"
    PROVISION_DEV = "/dev/sgx_provision"

    def __init__(self, kernel: Any, *, nr_low_pages: int | None = None,
                 nr_high_pages: int | None = None, nr_to_scan: int | None = None):
        self.kernel = kernel
        self.cpu = kernel.cpu
        self._init_epc(self.cpu.epc_pages)
        if nr_low_pages is not None:
            self.nr_low_pages = nr_low_pages
        if nr_high_pages is not None:
            self.nr_high_pages = nr_high_pages
        if nr_to_scan is not None:
            self.nr_to_scan = nr_to_scan
        self.vm_ops = SgxVmOps(self)
        self.fops = SgxFops(self)
        self.provision_fops = SgxProvisionFops(self)
        self.encls: list[SgxEncl] = []  # live enclaves (for invariants and teardown checks)
        # The kernel's stack and kmalloc: one RAM frame for PAGEINFO/SECINFO.
        self.kstack = self.cpu.phys.alloc_frame() << PAGE_SHIFT
        self.sgx_misc_reserved_mask = U64
        self.sgx_attributes_reserved_mask = U64
        self.sgx_xfrm_reserved_mask = ~XFRM_LEGACY & U64
        self.registered = False

    # -- driver.c ------------------------------------------------------------------
    def sgx_drv_init(self) -> None:
        """sgx_drv_init(): needs launch control and SGX1; derives the reserved
        masks from CPUID leaf 0x12 and registers both misc devices."""
        cpu = self.cpu
        if not cpu.flc:
            self.warn("SGX disabled: SGX launch control CPU feature is not available, "
                      "/dev/sgx_enclave disabled.")
            raise refuse(errno.ENODEV, "sgx", "sgx_drv_init", "no SGX launch control")
        if not cpu.sgx1:
            self.warn("SGX disabled: SGX1 instruction support not available, "
                      "/dev/sgx_enclave disabled.")
            raise refuse(errno.ENODEV, "sgx", "sgx_drv_init", "no SGX1")
        self.sgx_misc_reserved_mask = (~cpu.miscselect_valid & U64) | SGX_MISC_RESERVED_MASK
        self.sgx_attributes_reserved_mask = ((~cpu.attributes_valid & U64)
                                             | self.SGX_ATTR_RESERVED_MASK)
        self.sgx_xfrm_reserved_mask = ~cpu.xfrm_valid & U64  # OSXSAVE is always on
        self.misc_register(self.ENCLAVE_DEV, self.fops)
        self.sgx_drv_register_provision()
        self.registered = True

    def sgx_drv_register_provision(self) -> None:
        # 5.11: sgx_drv_init() registers /dev/sgx_provision after the enclave node.
        self.misc_register(self.PROVISION_DEV, self.provision_fops)

    def sgx_init(self) -> None:
        """The driver's part of sgx_init() at boot: sgx_drv_init(); without
        launch control or SGX1 (-ENODEV) there is no device node."""
        try:
            self.sgx_drv_init()
        except OSError:
            pass

    def sgx_open(self, inode: Any, file: Any) -> None:
        # sgx_open(): a fresh enclave per open.
        encl = SgxEncl(self)
        file.private_data = encl
        self.encls.append(encl)

    def sgx_release(self, inode: Any, file: Any) -> None:
        """sgx_release(): last file reference; drop every mm's reference,
        then the file's own."""
        encl: SgxEncl = file.private_data
        while encl.mm_list:
            encl_mm = encl.mm_list.pop(0)
            encl.mm_list_version += 1
            self.mmu_notifier_unregister(encl_mm, encl_mm.mm)
            self.sgx_encl_put(encl)
        self.sgx_encl_put(encl)

    def sgx_mmap(self, file: Any, vma: Any) -> None:
        """sgx_mmap(): may_map, mm_add, then mark the VMA as PFN-mapped I/O."""
        encl: SgxEncl = file.private_data
        self.sgx_encl_may_map(encl, vma.vm_start, vma.vm_end, vma.vm_flags)
        self.sgx_encl_mm_add(encl, vma.vm_mm)
        vma.vm_ops = self.vm_ops
        vma.vm_flags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP | VM_IO
        vma.vm_private_data = encl

    def sgx_get_unmapped_area(self, file: Any, addr: int, length: int, pgoff: int,
                              flags: int) -> int:
        """sgx_get_unmapped_area(): shared mappings only."""
        if (flags & MAP_TYPE) == MAP_PRIVATE:
            raise refuse(errno.EINVAL, "sgx", "sgx_get_unmapped_area",
                         "MAP_PRIVATE mapping of an enclave")
        if flags & MAP_FIXED:
            return addr
        return self.kernel.mm_get_unmapped_area(self.current().mm, None, addr, length, pgoff,
                                                flags)

    # -- kernel services the driver uses -----------------------------------------
    def misc_register(self, path: str, fops: Any) -> None:
        self.kernel.misc_register(path, fops)

    def current(self) -> Any:
        return self.kernel.current

    def signal_pending(self) -> bool:
        task = self.current()
        return task is not None and self.kernel.signal_pending(task)

    def current_personality(self) -> int:
        task = self.current()
        return task.persona if task is not None else 0

    def find_vma(self, mm: Any, addr: int) -> Any:
        return self.kernel.find_vma(mm, addr)

    def get_user_pages(self, task: Any, addr: int) -> int | None:
        """get_user_pages(addr, 1): the PFN, or None when it pins nothing."""
        try:
            return self.kernel.get_user_pages(task, addr)
        except OSError:
            return None

    def kcopy_from_user(self, paddr: int, uaddr: int, n: int, rule: str) -> bytes:
        """copy_from_user() into a kernel buffer; -EFAULT on a bad pointer.
        Returns the bytes copied (what the buffer now holds)."""
        data = self.kernel.copy_from_user(self.current(), uaddr & U64, n)
        self.cpu.phys.write(paddr, data)
        return data

    def fget(self, fd: int) -> Any:
        return self.kernel.fget(self.current(), fd)

    def vmf_insert_pfn(self, vma: Any, addr: int, pfn: int) -> int:
        return self.kernel.vmf_insert_pfn(vma, addr, pfn)

    def zap_vma_ptes(self, vma: Any, addr: int, size: int) -> None:
        self.kernel.zap_vma_ptes(vma, addr, size)

    def ptep_test_and_clear_young(self, mm: Any, addr: int) -> bool:
        """The accessed bit of the PTE of addr (apply_to_page_range callback)."""
        return self.kernel.ptep_test_and_clear_young(mm, addr)

    def mmget_not_zero(self, mm: Any) -> bool:
        return self.kernel.mmget_not_zero(mm)

    def mm_cpumask(self, mm: Any) -> set[int]:
        return self.kernel.mm_cpumask(mm)

    def send_ipis(self, cpus: set[int]) -> None:
        # sgx_ipi_cb(): the interrupt makes every LP in the enclave exit (AEX).
        self.kernel.send_ipis(cpus)

    def all_page_tables(self) -> list[Any]:
        """The PageTable of every live mm (for the invariant check)."""
        return self.kernel.all_page_tables()

    def mmu_notifier_register(self, encl_mm: Any, mm: Any) -> None:
        self.kernel.mmu_notifier_register(encl_mm, mm)

    def mmu_notifier_unregister(self, encl_mm: Any, mm: Any) -> None:
        self.kernel.mmu_notifier_unregister(encl_mm, mm)

    def cpu_has_sgx2(self) -> bool:
        # cpu_feature_enabled(X86_FEATURE_SGX2)
        return bool(self.cpu.sgx2)

    def trace_note(self, rule: str, outcome: str, detail: str) -> Any:
        return self.kernel.trace.note("sgx", rule, outcome, detail)

    def kmalloc(self, size: int) -> int:
        """kmalloc(PAGE_SIZE): a page-aligned RAM buffer (a physical address)."""
        assert size <= PAGE_SIZE
        return self.cpu.phys.alloc_frame() << PAGE_SHIFT

    def kfree(self, paddr: int) -> None:
        self.cpu.phys.free_frame(paddr >> PAGE_SHIFT)

    def kstack_pageinfo(self, addr: int, contents: int, metadata: int, secs: int) -> int:
        """A PAGEINFO on the kernel stack (32-byte aligned)."""
        _PAGEINFO.pack_into(self.cpu.phys.frames[self.kstack >> PAGE_SHIFT], 0,
                            addr & U64, contents & U64, metadata & U64, secs & U64)
        return self.kstack

    def kstack_secinfo(self, flags: int) -> int:
        """A zeroed SECINFO on the kernel stack (64-byte aligned)."""
        _SECINFO.pack_into(self.cpu.phys.frame(self.kstack >> PAGE_SHIFT), 64, flags & U64)
        return self.kstack + 64

    # -- invariants (used by tests and the checker) ------------------------------
    def check_invariants(self) -> list[str]:
        """Broken invariants, as text: resident children, EPC ownership, no
        PTE to a freed EPC page."""
        bad: list[str] = []
        owned: dict[int, Any] = {}
        for encl in self.encls:
            resident = sum(1 for p in encl.page_array.values() if p.epc_page is not None)
            if resident != encl.secs_child_cnt:
                bad.append(f"{encl}: secs_child_cnt {encl.secs_child_cnt} != resident {resident}")
            pages = list(encl.page_array.values()) + [encl.secs]
            for p in pages:
                if p.epc_page is not None:
                    if p.epc_page.owner is not p:
                        bad.append(f"EPC page {p.epc_page.index} owner is not {p}")
                    owned[p.epc_page.index] = p
            for va in encl.va_pages:
                owned[va.epc_page.index] = va
        for page in self.epc_pages:
            free = bool(page.flags & SGX_EPC_PAGE_IS_FREE)
            if free and page.index in owned:
                bad.append(f"EPC page {page.index} is free but owned by {owned[page.index]}")
        nr_free = sum(1 for p in self.epc_pages if p.flags & SGX_EPC_PAGE_IS_FREE)
        if nr_free != self.sgx_nr_free_pages or nr_free != len(self.free_page_list):
            bad.append(f"sgx_nr_free_pages {self.sgx_nr_free_pages} != free pages {nr_free}")
        bad.extend(self.check_epcm(owned))
        bad.extend(self.check_no_pte_to_free_epc())
        return bad

    def check_no_pte_to_free_epc(self) -> list[str]:
        """No page table of any process maps a free EPC page at the address
        the page had in its enclave (where sgx_zap_enclave_ptes() looks).

        A PTE somewhere else is one that mremap() moved with its SGX VMA:
        Linux allows a same-size move of a VM_PFNMAP|VM_DONTEXPAND VMA, moves
        its PTEs, and the driver never zaps them (docs/reference-findings.md,
        issue 12 finding 7).  The EPCM still keeps the page's last
        ENCLAVEADDRESS, which tells the two apart."""
        bad = []
        epc = self.cpu.epc
        for pt in self.all_page_tables():
            for vpn, pte in pt.ptes.items():
                pfn = pte_pfn(pte)
                if self.cpu.phys.is_epc_pfn(pfn):
                    page = self.epc_pages[pfn - EPC_BASE_PFN]
                    if page.flags & SGX_EPC_PAGE_IS_FREE and \
                            epc.addr[page.index] == vpn << PAGE_SHIFT:
                        bad.append(f"PTE {vpn << PAGE_SHIFT:#x} maps free EPC page {page.index}")
        return bad

    def check_epcm(self, owned: dict[int, Any]) -> list[str]:
        """EPCM ownership: every page the driver owns is valid with the type,
        address and SECS the driver believes; every free page is invalid."""
        bad = []
        epc = self.cpu.epc
        for page in self.epc_pages:
            valid = epc.is_valid(page.index)
            if page.flags & SGX_EPC_PAGE_IS_FREE and valid:
                bad.append(f"EPC page {page.index} is free but EPCM.VALID")
            elif page.index in owned and not valid:
                bad.append(f"EPC page {page.index} owned by {owned[page.index]} but invalid")
        for encl in self.encls:
            secs = encl.secs.epc_page
            for p in encl.page_array.values():
                if p.epc_page is None or not epc.is_valid(p.epc_page.index):
                    continue
                e = epc.epcm(p.epc_page.index)
                if e.pt != p.type or e.enclaveaddress != p.addr or (
                        secs is not None and e.enclavesecs != secs.index):
                    bad.append(f"EPCM of {p} says PT {e.pt} at {e.enclaveaddress:#x} "
                               f"under SECS {e.enclavesecs}")
            for va in encl.va_pages:
                if epc.epcm(va.epc_page.index).pt != PageType.PT_VA:
                    bad.append(f"VA page {va.epc_page.index} is not PT_VA in the EPCM")
        return bad


class SgxDriverSgx2(SgxIoctlSgx2, SgxEnclOpsSgx2, SgxDriver):
    """The driver with SGX2/EDMM, as merged in Linux 6.0.

    Modified: sgx_init, sgx_drv_register_provision (5.13: the provisioning
    device moved out of the driver)."""

    def sgx_init(self) -> None:
        """sgx_init(), since 5.13: /dev/sgx_provision is registered first, so
        it takes the first dynamic misc minor; then sgx_drv_init() (the
        enclave node) and sgx_vepc_init().  Only if both of those fail does
        the provisioning node go again."""
        self.misc_register(self.PROVISION_DEV, self.provision_fops)
        try:
            self.sgx_drv_init()
        except OSError:
            # sgx_vepc_init(): /dev/sgx_vepc needs VMX (KVM), which the model
            # has not: -ENODEV, so the provisioning node goes too.
            self.kernel.misc_deregister(self.PROVISION_DEV)

    def sgx_drv_register_provision(self) -> None:
        # 5.13: sgx_init() registered it already, before sgx_drv_init().
        pass


__all__ = ["SgxDriver", "SgxDriverSgx2", "SgxFops", "SgxVmOps"]
