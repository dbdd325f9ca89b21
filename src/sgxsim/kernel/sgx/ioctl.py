"""The enclave ioctls (arch/x86/kernel/cpu/sgx/ioctl.c).

:class:`SgxIoctl` is SGX1 as merged in Linux 5.11 (CREATE, ADD_PAGES, INIT,
PROVISION); :class:`SgxIoctlSgx2` adds the SGX2 ioctls of Linux 6.0
(RESTRICT_PERMISSIONS, MODIFY_TYPES, REMOVE_PAGES).  Both are mixins of the
driver class; every function of ioctl.c is a method of the same name.

Argument structs are the uapi bytes (``sgxsim.hw.uapi``); results written
back (``count``, ``result``) are copied to the caller's struct before the
errno propagates, as ``copy_to_user`` does in C.
"""

from __future__ import annotations

import errno
import hashlib
from typing import Any

from sgxsim.hw import uapi
from sgxsim.hw.consts import (
    EINITTOKEN_SIZE,
    MSR_IA32_SGXLEPUBKEYHASH0,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    SECINFO_SIZE,
    SIGSTRUCT_SIZE,
    Attribute,
    PageType,
    SgxReturn,
)
from sgxsim.hw.faults import VEC_PF, HwFault
from sgxsim.hw.structs import Secinfo, Sigstruct, nonzero
from sgxsim.kernel.errors import ENOIOCTLCMD, ERESTARTSYS, refuse
from sgxsim.kernel.mm import VM_MAYEXEC, VM_READ, VM_WRITE
from sgxsim.kernel.sgx.encl import (
    PROT_READ,
    PROT_WRITE,
    SGX_ENCL_CREATED,
    SGX_ENCL_DEBUG,
    SGX_ENCL_INITIALIZED,
    SGX_ENCL_IOCTL,
    SgxEncl,
    calc_vm_prot_bits,
)
from sgxsim.kernel.sgx.encls import (
    EnclsFault,
    encls,
    encls_failed,
    encls_faulted,
    encls_trapnr,
    encls_why,
    sgx_code_name,
)

U64 = (1 << 64) - 1

# asm/sgx.h (kernel side)
SGX_SECINFO_PERMISSION_MASK = 0x7
SGX_SECINFO_R, SGX_SECINFO_W, SGX_SECINFO_X = 0x1, 0x2, 0x4
SGX_SECINFO_PAGE_TYPE_MASK = 0xFF << 8
SGX_SECINFO_REG = PageType.PT_REG << 8
SGX_SECINFO_TCS = PageType.PT_TCS << 8
SGX_SECINFO_RESERVED_MASK = ~(SGX_SECINFO_PERMISSION_MASK | SGX_SECINFO_PAGE_TYPE_MASK) & U64
SGX_PAGE_TYPE_MASK = 0xFF
SGX_PAGE_MEASURE = 0x01
SGX_EEXTEND_BLOCK_SIZE = 256
SGX_EINIT_SPIN_COUNT = 20
SGX_EINIT_SLEEP_COUNT = 50
# 5.11 and 6.0 predate AEX-notify: the attributes an unprivileged enclave may
# have are DEBUG|MODE64BIT|KSS (SGX_ATTR_UNPRIV_MASK adds ASYNC_EXIT_NOTIFY in 6.2).
SGX_ATTR_ALLOWED_MASK = Attribute.DEBUG | Attribute.MODE64BIT | Attribute.KSS
# Plain ints for the SGX2 page loops (an IntEnum member lookup costs more
# than the comparison).
_PT_REG, _PT_TCS, _PT_TRIM = int(PageType.PT_REG), int(PageType.PT_TCS), int(PageType.PT_TRIM)
_TCS_TRIM = (_PT_TCS, _PT_TRIM)


# The handlers' names by command, per driver class: sgx_ioctl_table() built
# once per class instead of once per ioctl.  The handler is still looked up on
# the instance, so an override counts; a table whose entries are not methods
# of the driver by their own name is asked every time (None here), as is a
# table set on one driver instance.  A class's table must not depend on the
# instance's state (the kernel's is a static switch).
_HANDLER_NAMES: dict[type, dict[int, str] | None] = {}


def _handler(drv: Any, cmd: int) -> Any:
    """sgx_ioctl_table()[cmd] (None: unknown command)."""
    cls = type(drv)
    if "sgx_ioctl_table" in getattr(drv, "__dict__", ()):  # a table of this driver alone
        return drv.sgx_ioctl_table().get(cmd)
    if cls not in _HANDLER_NAMES:
        table = drv.sgx_ioctl_table()
        names = {c: getattr(h, "__name__", "") for c, h in table.items()}
        same = all(getattr(drv, n, None) == table[c] for c, n in names.items())
        _HANDLER_NAMES[cls] = names if same else None
    names = _HANDLER_NAMES[cls]
    if names is None:
        return drv.sgx_ioctl_table().get(cmd)
    name = names.get(cmd)
    return None if name is None else getattr(drv, name)


def _rule(name: str):  # noqa: ANN202 - tiny helper for refusals
    def fail(err: int, detail: str = "") -> OSError:
        return refuse(err, "sgx", name, detail)
    return fail


class SgxIoctl:
    """ioctl.c, SGX1 (Linux 5.11)."""

    # -- dispatcher ------------------------------------------------------------
    def sgx_ioctl_table(self) -> dict[int, Any]:
        return {
            uapi.SGX_IOC_ENCLAVE_CREATE: self.sgx_ioc_enclave_create,
            uapi.SGX_IOC_ENCLAVE_ADD_PAGES: self.sgx_ioc_enclave_add_pages,
            uapi.SGX_IOC_ENCLAVE_INIT: self.sgx_ioc_enclave_init,
            uapi.SGX_IOC_ENCLAVE_PROVISION: self.sgx_ioc_enclave_provision,
        }

    def sgx_ioctl(self, file: Any, cmd: int, arg: Any) -> int:
        """sgx_ioctl(): one ioctl at a time per enclave (-EBUSY), unknown
        commands -ENOIOCTLCMD (ENOTTY in user space)."""
        encl: SgxEncl = file.private_data
        if encl.test_bit(SGX_ENCL_IOCTL):  # test_and_set_bit()
            raise refuse(errno.EBUSY, "sgx", "sgx_ioctl", "another ioctl runs on this enclave")
        encl.set_bit(SGX_ENCL_IOCTL)
        try:
            handler = _handler(self, cmd & 0xFFFFFFFF)
            if handler is None:
                raise refuse(ENOIOCTLCMD, "sgx", "sgx_ioctl", f"unknown command {cmd:#x}")
            ret = handler(encl, arg)
        except OSError:
            encl.clear_bit(SGX_ENCL_IOCTL)
            self.ksgxd_service()
            raise
        # Not reached when the task died in the ioctl (an oops) or sleeps
        # in it for ever: then the bit stays set, and every later ioctl on
        # the enclave is -EBUSY.
        encl.clear_bit(SGX_ENCL_IOCTL)
        self.ksgxd_service()
        return ret

    # -- CREATE ------------------------------------------------------------------
    def sgx_encl_create(self, encl: SgxEncl, secs_paddr: int) -> None:
        """sgx_encl_create(): VA page, backing store, SECS page, ECREATE."""
        fail = _rule("sgx_encl_create")
        secs = self.cpu.phys.read(secs_paddr, 64)
        size = int.from_bytes(secs[0:8], "little")
        base = int.from_bytes(secs[8:16], "little")
        attributes = int.from_bytes(secs[48:56], "little")
        # ECREATE would catch it too; this keeps encl_size from overflowing.
        if size == 0 or size & (size - 1):
            raise fail(errno.EINVAL, f"SECS.SIZE {size:#x} is not a power of 2")
        va_page = self.sgx_encl_grow(encl, True)
        if va_page is not None:
            encl.va_pages.insert(0, va_page)
        try:
            encl_size = size + PAGE_SIZE  # the extra page goes to the SECS
            self.shmem_file_setup(encl, encl_size + (encl_size >> 5))
            try:
                secs_epc = self.sgx_alloc_epc_page(encl.secs, True)
            except OSError:
                encl.backing = None  # fput()
                raise
        except OSError:
            self.sgx_encl_shrink(encl, va_page)
            raise
        encl.secs.epc_page = secs_epc
        pginfo = self.kstack_pageinfo(0, secs_paddr, self.kstack_secinfo(0), 0)
        ret = encls(self.cpu.ecreate, pginfo, secs_epc.paddr)
        if ret:
            self.sgx_encl_free_epc_page(encl.secs.epc_page)
            encl.secs.epc_page = None
            self.shmem_file_put(encl)
            self.sgx_encl_shrink(encl, va_page)
            raise fail(errno.EIO, f"ECREATE returned {ret:#x}: {encls_why(ret)}")
        if attributes & Attribute.DEBUG:
            encl.set_bit(SGX_ENCL_DEBUG)
        encl.secs.encl = encl
        encl.secs.type = PageType.PT_SECS
        encl.base = base
        encl.size = size
        encl.attributes = attributes
        encl.attributes_mask = self.sgx_attr_unpriv_mask()
        encl.set_bit(SGX_ENCL_CREATED)  # last

    def sgx_attr_unpriv_mask(self) -> int:
        # encl->attributes_mask at CREATE.
        return SGX_ATTR_ALLOWED_MASK

    def shmem_file_setup(self, encl: SgxEncl, size: int) -> None:
        # shmem_file_setup("SGX backing", size, VM_NORESERVE): loff_t size.
        size &= U64
        if size >= 1 << 63:
            raise refuse(errno.EINVAL, "sgx", "shmem_file_setup",
                         f"backing size {size:#x} exceeds MAX_LFS_FILESIZE")
        encl.backing = {}

    def shmem_file_put(self, encl: SgxEncl) -> None:
        # fput(encl->backing)
        if encl.backing:
            for pfn in encl.backing.values():
                self.cpu.phys.free_frame(pfn)
        encl.backing = None

    def sgx_ioc_enclave_create(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_create()"""
        fail = _rule("sgx_ioc_enclave_create")
        if encl.created:
            raise fail(errno.EINVAL, "enclave already created")
        create_arg = uapi.SgxEnclaveCreate.unpack(arg.copy_from(uapi.SgxEnclaveCreate.SIZE))
        secs = self.kmalloc(PAGE_SIZE)
        try:
            self.kcopy_from_user(secs, create_arg.src, PAGE_SIZE, "sgx_ioc_enclave_create")
            self.sgx_encl_create(encl, secs)
        finally:
            self.kfree(secs)
        return 0

    # -- ADD_PAGES ---------------------------------------------------------------
    @staticmethod
    def sgx_validate_secinfo(secinfo: Secinfo) -> str | None:
        """sgx_validate_secinfo(): the reason for -EINVAL, or None."""
        perm = secinfo.flags & SGX_SECINFO_PERMISSION_MASK
        pt = secinfo.flags & SGX_SECINFO_PAGE_TYPE_MASK
        if pt != SGX_SECINFO_REG and pt != SGX_SECINFO_TCS:
            return f"page type {pt >> 8} is neither REG nor TCS"
        if perm & SGX_SECINFO_W and not perm & SGX_SECINFO_R:
            return "W without R"
        if pt == SGX_SECINFO_TCS and perm:
            return "a TCS must have no permissions"
        if secinfo.flags & SGX_SECINFO_RESERVED_MASK:
            return f"reserved SECINFO flags {secinfo.flags & SGX_SECINFO_RESERVED_MASK:#x}"
        if nonzero(secinfo.reserved):
            return "reserved SECINFO bytes are not zero"
        return None

    @staticmethod
    def sgx_validate_offset_length(encl: SgxEncl, offset: int, length: int) -> str | None:
        """sgx_validate_offset_length(): the reason for -EINVAL, or None."""
        if offset & (PAGE_SIZE - 1):
            return f"offset {offset:#x} not page aligned"
        if not length or length & (PAGE_SIZE - 1):
            return f"length {length:#x} zero or not page aligned"
        if (offset + length - PAGE_SIZE) & U64 >= encl.size:
            return f"[{offset:#x}, +{length:#x}) leaves the enclave (size {encl.size:#x})"
        return None

    def _sgx_encl_add_page(self, encl: SgxEncl, encl_page: Any, epc_page: Any,
                           secinfo_paddr: int, src: int) -> None:
        """__sgx_encl_add_page(): the noexec guard, then EADD from the user page."""
        rule = "__sgx_encl_add_page"
        # Through the driver's kernel services (a design may override them);
        # encls() inline: this runs once per page added.
        task = self.current()
        vma = self.find_vma(task.mm, src)
        if vma is None:
            raise refuse(errno.EFAULT, "sgx", rule, f"no VMA at or above source {src:#x}")
        if not vma.vm_flags & VM_MAYEXEC:
            raise refuse(errno.EACCES, "sgx", rule,
                         f"source VMA at {vma.vm_start:#x} lacks VM_MAYEXEC (noexec)")
        if self.kernel.trace.enabled:  # an "allow" note: only a trace reads it
            self.trace_note("__sgx_encl_add_page", "allow",
                            f"source {src:#x} in VMA [{vma.vm_start:#x}, {vma.vm_end:#x}) "
                            f"vm_flags {vma.vm_flags:#x}")
        src_pfn = self.get_user_pages(task, src)
        if src_pfn is None:
            raise refuse(errno.EFAULT, "sgx", rule, f"get_user_pages({src:#x}) failed")
        pginfo = self.kstack_pageinfo(encl_page.desc & PAGE_MASK,  # encl_page.addr, inline
                                      src_pfn << PAGE_SHIFT, secinfo_paddr,
                                      encl.secs.epc_page.paddr)
        ret = 0
        try:  # encls(): the leaf has no status; a fault becomes its encoding
            self.cpu.eadd(pginfo, epc_page.paddr)
        except HwFault as fault:
            ret = EnclsFault(fault)
        if ret:
            raise refuse(errno.EIO, "sgx", rule, f"EADD returned {ret:#x}: {encls_why(ret)}")

    def _sgx_encl_extend(self, encl: SgxEncl, epc_page: Any) -> None:
        """__sgx_encl_extend(): EEXTEND each 256-byte block of the page.  The
        sixteen leaves go to the CPU as one ``eextend_page`` call: the same
        checks (every block of a page passes or fails them alike) and the
        same measurement records, without sixteen trips through Python."""
        ret = 0
        try:  # encls(), inline, as for EADD
            self.cpu.eextend_page(encl.secs.epc_page.paddr, epc_page.paddr)
        except HwFault as fault:
            ret = EnclsFault(fault)
        if ret:
            if encls_failed(ret):
                self.warn(f"EEXTEND returned {ret:#x}")
            raise refuse(errno.EIO, "sgx", "__sgx_encl_extend", f"EEXTEND returned {ret:#x}")

    def sgx_encl_add_page(self, encl: SgxEncl, src: int, offset: int, secinfo_flags: int,
                          secinfo_paddr: int, flags: int) -> None:
        """sgx_encl_add_page(): allocate, insert, EADD, (EEXTEND), track."""
        encl_page = self.sgx_encl_page_alloc(encl, offset, secinfo_flags)
        epc_page = self.sgx_alloc_epc_page(encl_page, True)
        try:
            va_page = self.sgx_encl_grow(encl, True)
        except OSError:
            self.sgx_encl_free_epc_page(epc_page)
            raise
        if va_page is not None:
            encl.va_pages.insert(0, va_page)
        index = encl_page.desc >> PAGE_SHIFT  # PFN_DOWN(encl_page->desc)
        # Insert before EADD: EADD cannot be undone.
        if index in encl.page_array:
            self.sgx_encl_shrink(encl, va_page)
            self.sgx_encl_free_epc_page(epc_page)
            raise refuse(errno.EBUSY, "sgx", "sgx_encl_add_page",
                         f"page {encl_page.addr:#x} was already added")
        encl.page_array[index] = encl_page
        try:
            self._sgx_encl_add_page(encl, encl_page, epc_page, secinfo_paddr, src)
            encl_page.encl = encl
            encl_page.epc_page = epc_page
            encl_page.type = (secinfo_flags & SGX_SECINFO_PAGE_TYPE_MASK) >> 8
            encl.secs_child_cnt += 1
            if flags & SGX_PAGE_MEASURE:
                self._sgx_encl_extend(encl, epc_page)
        except OSError:
            # err_out: as in C, secs_child_cnt is not decremented after a
            # failed EEXTEND (see findings.md).
            del encl.page_array[index]
            self.sgx_encl_shrink(encl, va_page)
            self.sgx_encl_free_epc_page(epc_page)
            encl_page.epc_page = None
            raise
        self.sgx_mark_page_reclaimable(epc_page)  # encl_page->epc_page

    def sgx_ioc_enclave_add_pages(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_add_pages(): validate, then add page by page;
        ``count`` reports the bytes added."""
        rule = "sgx_ioc_enclave_add_pages"
        if not encl.created or encl.initialized:
            raise refuse(errno.EINVAL, "sgx", rule, "enclave not created or already initialized")
        add_arg = uapi.SgxEnclaveAddPages.unpack(arg.copy_from(uapi.SgxEnclaveAddPages.SIZE))
        if add_arg.src & (PAGE_SIZE - 1):
            raise refuse(errno.EINVAL, "sgx", rule, f"src {add_arg.src:#x} not page aligned")
        why = self.sgx_validate_offset_length(encl, add_arg.offset, add_arg.length)
        if why:
            raise refuse(errno.EINVAL, "sgx", "sgx_validate_offset_length", why)
        secinfo_paddr = self.kstack_secinfo(0)
        # The kernel's copy is what was copied: parsed as it is written.
        secinfo = Secinfo.unpack(self.kcopy_from_user(secinfo_paddr, add_arg.secinfo,
                                                      SECINFO_SIZE, rule))
        why = self.sgx_validate_secinfo(secinfo)
        if why:
            raise refuse(errno.EINVAL, "sgx", "sgx_validate_secinfo", why)
        err: OSError | None = None
        src, offset, length, flags = add_arg.src, add_arg.offset, add_arg.length, add_arg.flags
        secinfo_flags, add_page = secinfo.flags, self.sgx_encl_add_page
        signal_pending = self.signal_pending
        c = 0
        while c < length:
            if signal_pending():
                if not c:
                    err = refuse(ERESTARTSYS, "sgx", rule, "signal pending before the first page")
                break
            try:
                add_page(encl, (src + c) & U64, (offset + c) & U64, secinfo_flags, secinfo_paddr,
                         flags)
            except OSError as e:
                err = e
                break
            c += PAGE_SIZE
        add_arg.count = c
        arg.copy_to(add_arg.pack())
        if err is not None:
            raise err
        return 0

    # -- INIT --------------------------------------------------------------------
    def sgx_update_lepubkeyhash(self, mrsigner: bytes) -> None:
        # sgx_update_lepubkeyhash(): IA32_SGXLEPUBKEYHASH0..3 := MRSIGNER.
        for i in range(4):
            self.cpu.wrmsr(MSR_IA32_SGXLEPUBKEYHASH0 + i,
                           int.from_bytes(mrsigner[8 * i:8 * i + 8], "little"))

    def sgx_encl_init(self, encl: SgxEncl, sigstruct_paddr: int, token_paddr: int) -> None:
        """sgx_encl_init(): attribute checks, then the EINIT retry loop."""
        fail = _rule("sgx_encl_init")
        sig = Sigstruct.unpack(self.cpu.phys.read(sigstruct_paddr, SIGSTRUCT_SIZE))
        if encl.attributes & ~encl.attributes_mask:
            raise fail(errno.EACCES, f"attributes {encl.attributes & ~encl.attributes_mask:#x} "
                       "not allowed (PROVISIONKEY needs the PROVISION ioctl)")
        if sig.attributes & sig.attributes_mask & self.sgx_attributes_reserved_mask:
            raise fail(errno.EINVAL, "SIGSTRUCT enforces reserved attribute bits")
        if sig.miscselect & sig.misc_mask & self.sgx_misc_reserved_mask:
            raise fail(errno.EINVAL, "SIGSTRUCT enforces reserved MISCSELECT bits")
        if sig.xfrm & sig.xfrm_mask & self.sgx_xfrm_reserved_mask:
            raise fail(errno.EINVAL, "SIGSTRUCT enforces reserved XFRM bits")
        mrsigner = hashlib.sha256(sig.modulus).digest()  # sgx_get_key_hash()
        ret = SgxReturn.SGX_UNMASKED_EVENT
        for _ in range(SGX_EINIT_SLEEP_COUNT):
            for _ in range(SGX_EINIT_SPIN_COUNT):
                self.sgx_update_lepubkeyhash(mrsigner)
                ret = encls(self.cpu.einit, sigstruct_paddr, encl.secs.epc_page.paddr,
                            token_paddr)
                if ret != SgxReturn.SGX_UNMASKED_EVENT:
                    break
            if ret != SgxReturn.SGX_UNMASKED_EVENT:
                break
            # msleep_interruptible(SGX_EINIT_SLEEP_TIME)
            if self.signal_pending():
                raise fail(ERESTARTSYS, "signal pending between EINIT retries")
        if encls_faulted(ret):
            if encls_failed(ret):
                self.warn(f"EINIT faulted {ret:#x}")
            raise fail(errno.EIO, f"EINIT faulted: {encls_why(ret)}")
        if ret:
            raise fail(errno.EPERM, f"EINIT returned {ret} ({sgx_code_name(ret)})")
        encl.set_bit(SGX_ENCL_INITIALIZED)

    def sgx_ioc_enclave_init(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_init()"""
        fail = _rule("sgx_ioc_enclave_init")
        if not encl.created or encl.initialized:
            raise fail(errno.EINVAL, "enclave not created or already initialized")
        init_arg = uapi.SgxEnclaveInit.unpack(arg.copy_from(uapi.SgxEnclaveInit.SIZE))
        sigstruct = self.kmalloc(PAGE_SIZE)
        token = sigstruct + PAGE_SIZE // 2
        try:
            self.cpu.phys.write(token, bytes(EINITTOKEN_SIZE))
            self.kcopy_from_user(sigstruct, init_arg.sigstruct, SIGSTRUCT_SIZE,
                                 "sgx_ioc_enclave_init")
            vendor = int.from_bytes(self.cpu.phys.read(sigstruct + 16, 4), "little")
            if vendor not in (0x0000, 0x8086):
                raise fail(errno.EINVAL, f"SIGSTRUCT vendor {vendor:#x}")
            self.sgx_encl_init(encl, sigstruct, token)
        finally:
            self.kfree(sigstruct)
        return 0

    # -- PROVISION ---------------------------------------------------------------
    def sgx_set_attribute(self, allowed_attributes: list[int], attribute_fd: int) -> None:
        """sgx_set_attribute(): the fd must be an open /dev/sgx_provision."""
        file = self.fget(attribute_fd & 0xFFFFFFFF)
        if file is None:
            raise refuse(errno.EINVAL, "sgx", "sgx_set_attribute", f"fd {attribute_fd} not open")
        if file.f_op is not self.provision_fops:
            raise refuse(errno.EINVAL, "sgx", "sgx_set_attribute",
                         f"fd {attribute_fd} is not /dev/sgx_provision")
        allowed_attributes[0] |= Attribute.PROVISIONKEY

    def sgx_ioc_enclave_provision(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_provision(): no enclave-state check at all."""
        params = uapi.SgxEnclaveProvision.unpack(arg.copy_from(uapi.SgxEnclaveProvision.SIZE))
        mask = [encl.attributes_mask]
        self.sgx_set_attribute(mask, params.fd)
        encl.attributes_mask = mask[0]
        return 0


class SgxIoctlSgx2(SgxIoctl):
    """ioctl.c with the SGX2 ioctls (Linux 6.0)."""

    def sgx_ioctl_table(self) -> dict[int, Any]:
        table = super().sgx_ioctl_table()
        table.update({
            uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS: self.sgx_ioc_enclave_restrict_permissions,
            uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES: self.sgx_ioc_enclave_modify_types,
            uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES: self.sgx_ioc_enclave_remove_pages,
        })
        return table

    def sgx_ioc_sgx2_ready(self, encl: SgxEncl) -> None:
        # sgx_ioc_sgx2_ready(): before the argument is even copied.
        if not self.cpu_has_sgx2():
            raise refuse(errno.ENODEV, "sgx", "sgx_ioc_sgx2_ready", "the CPU lacks SGX2")
        if not encl.initialized:
            raise refuse(errno.EINVAL, "sgx", "sgx_ioc_sgx2_ready", "enclave not initialized")

    def sgx_enclave_etrack(self, encl: SgxEncl) -> None:
        """sgx_enclave_etrack(): ETRACK (retried once after IPIs), then IPIs."""
        secs = encl.secs.epc_page.paddr
        ret = encls(self.cpu.etrack, secs)
        self.stats["etrack"] += 1
        if ret:
            self.warn(f"ETRACK returned {ret} ({ret:#x})")
            self.sgx_ipi_encl_cpus(encl)
            ret = encls(self.cpu.etrack, secs)
            self.stats["etrack"] += 1
            if ret:
                self.warn(f"ETRACK repeat returned {ret} ({ret:#x})")
                raise refuse(errno.EFAULT, "sgx", "sgx_enclave_etrack", f"ETRACK {ret:#x}")
        self.sgx_ipi_encl_cpus(encl)

    def _sgx2_load(self, encl: SgxEncl, addr: int, rule: str) -> Any:
        # The common prefix of the SGX2 page loops: -EBUSY -> -EAGAIN, else -EFAULT.
        self.sgx_reclaim_direct()
        if encl.lock_held_by is not None:  # mutex_lock(&encl->lock)
            self.sgx_encl_lock_blocked(encl, rule)
        try:
            return self.sgx_encl_load_page(encl, addr)
        except OSError as e:
            err = errno.EAGAIN if e.errno == errno.EBUSY else errno.EFAULT
            raise refuse(err, "sgx", rule, f"sgx_encl_load_page({addr:#x}): {e.strerror}") from e

    def _sgx2_args(self, encl: SgxEncl, arg: Any, cls: Any, rule: str) -> Any:
        self.sgx_ioc_sgx2_ready(encl)
        params = cls.unpack(arg.copy_from(cls.SIZE))
        why = self.sgx_validate_offset_length(encl, params.offset, params.length)
        if why:
            raise refuse(errno.EINVAL, "sgx", "sgx_validate_offset_length", why)
        return params

    # -- RESTRICT_PERMISSIONS ----------------------------------------------------
    def sgx_enclave_restrict_permissions(self, encl: SgxEncl, modp: Any) -> None:
        """sgx_enclave_restrict_permissions(): EMODPR + ETRACK per page;
        vm_max_prot_bits, PTEs and VMAs are left alone."""
        secinfo = self.kstack_secinfo(modp.permissions & SGX_SECINFO_PERMISSION_MASK)
        c = 0
        try:
            while c < modp.length:
                addr = (encl.base + modp.offset + c) & U64
                entry = self._sgx2_load(encl, addr, "sgx_enclave_restrict_permissions")
                if entry.type != _PT_REG:
                    raise refuse(errno.EINVAL, "sgx", "sgx_enclave_restrict_permissions",
                                 f"page {addr:#x} has type {entry.type}, not REG")
                ret = encls(self.cpu.emodpr, secinfo, entry.epc_page.paddr)
                if encls_faulted(ret):
                    self.warn(f"EMODPR encountered exception {encls_trapnr(ret)}")
                    raise refuse(errno.EFAULT, "sgx", "SDM: EMODPR", encls_why(ret))
                if encls_failed(ret):
                    modp.result = ret
                    raise refuse(errno.EFAULT, "sgx", "SDM: EMODPR",
                                 f"EMODPR returned {ret} ({sgx_code_name(ret)})")
                self.sgx_enclave_etrack(encl)
                c += PAGE_SIZE
        finally:
            modp.count = c

    def sgx_ioc_enclave_restrict_permissions(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_restrict_permissions()"""
        fail = _rule("sgx_ioc_enclave_restrict_permissions")
        params = self._sgx2_args(encl, arg, uapi.SgxEnclaveRestrictPermissions,
                                 "sgx_ioc_enclave_restrict_permissions")
        if params.permissions & ~SGX_SECINFO_PERMISSION_MASK:
            raise fail(errno.EINVAL, f"permissions {params.permissions:#x} beyond RWX")
        if params.permissions & SGX_SECINFO_W and not params.permissions & SGX_SECINFO_R:
            raise fail(errno.EINVAL, "W without R")
        if params.result or params.count:
            raise fail(errno.EINVAL, "result and count must be zero on input")
        try:
            self.sgx_enclave_restrict_permissions(encl, params)
        finally:
            arg.copy_to(params.pack())
        return 0

    # -- MODIFY_TYPES --------------------------------------------------------------
    def sgx_enclave_modify_types(self, encl: SgxEncl, modt: Any) -> None:
        """sgx_enclave_modify_types(): EMODT to TCS or TRIM, then ETRACK."""
        rule = "sgx_enclave_modify_types"
        page_type = modt.page_type & SGX_PAGE_TYPE_MASK
        if page_type not in _TCS_TRIM:
            raise refuse(errno.EINVAL, "sgx", rule, f"new type {page_type} is not TCS or TRIM")
        secinfo = self.kstack_secinfo(page_type << 8)
        c = 0
        try:
            while c < modt.length:
                addr = (encl.base + modt.offset + c) & U64
                entry = self._sgx2_load(encl, addr, rule)
                if not (entry.type == _PT_REG
                        or (entry.type == _PT_TCS and page_type == _PT_TRIM)):
                    raise refuse(errno.EINVAL, "sgx", rule,
                                 f"page {addr:#x}: type {entry.type} -> {page_type} not allowed")
                max_prot_restore = entry.vm_max_prot_bits
                if entry.type == _PT_REG and page_type == _PT_TCS:
                    if ~entry.vm_max_prot_bits & (VM_READ | VM_WRITE):
                        raise refuse(errno.EPERM, "sgx", rule,
                                     f"page {addr:#x} was not vetted RW, cannot become a TCS")
                    entry.vm_max_prot_bits = calc_vm_prot_bits(PROT_READ | PROT_WRITE)
                    try:
                        self.sgx_unmark_page_reclaimable(entry.epc_page)
                    except OSError:
                        entry.vm_max_prot_bits = max_prot_restore
                        raise refuse(errno.EAGAIN, "sgx", rule,
                                     f"page {addr:#x} is being reclaimed") from None
                    self.sgx_zap_enclave_ptes(encl, addr)
                    self.sgx_mark_page_reclaimable(entry.epc_page)
                ret = encls(self.cpu.emodt, secinfo, entry.epc_page.paddr)
                if encls_faulted(ret) or encls_failed(ret):
                    entry.vm_max_prot_bits = max_prot_restore
                    if encls_faulted(ret):
                        self.warn(f"EMODT encountered exception {encls_trapnr(ret)}")
                        raise refuse(errno.EFAULT, "sgx", "SDM: EMODT", encls_why(ret))
                    modt.result = ret
                    raise refuse(errno.EFAULT, "sgx", "SDM: EMODT",
                                 f"EMODT returned {ret} ({sgx_code_name(ret)})")
                self.sgx_enclave_etrack(encl)
                entry.type = page_type
                c += PAGE_SIZE
        finally:
            modt.count = c

    def sgx_ioc_enclave_modify_types(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_modify_types()"""
        fail = _rule("sgx_ioc_enclave_modify_types")
        params = self._sgx2_args(encl, arg, uapi.SgxEnclaveModifyTypes,
                                 "sgx_ioc_enclave_modify_types")
        if params.page_type & ~SGX_PAGE_TYPE_MASK:
            raise fail(errno.EINVAL, f"page_type {params.page_type:#x} beyond 0xff")
        if params.result or params.count:
            raise fail(errno.EINVAL, "result and count must be zero on input")
        try:
            self.sgx_enclave_modify_types(encl, params)
        finally:
            arg.copy_to(params.pack())
        return 0

    # -- REMOVE_PAGES --------------------------------------------------------------
    def sgx_encl_remove_pages(self, encl: SgxEncl, params: Any) -> None:
        """sgx_encl_remove_pages(): EREMOVE trimmed pages the enclave accepted
        (probed with EMODPR: an accepted TRIM page makes it #PF)."""
        rule = "sgx_encl_remove_pages"
        secinfo = self.kstack_secinfo(SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_X)
        c = 0
        try:
            while c < params.length:
                addr = (encl.base + params.offset + c) & U64
                entry = self._sgx2_load(encl, addr, rule)
                if entry.type != _PT_TRIM:
                    raise refuse(errno.EPERM, "sgx", rule,
                                 f"page {addr:#x} has type {entry.type}, not TRIM")
                ret = encls(self.cpu.emodpr, secinfo, entry.epc_page.paddr)
                if not encls_faulted(ret) or encls_trapnr(ret) != VEC_PF:
                    raise refuse(errno.EPERM, "sgx", rule,
                                 f"page {addr:#x} not accepted by the enclave "
                                 f"(EMODPR probe returned {ret:#x})")
                try:
                    self.sgx_unmark_page_reclaimable(entry.epc_page)
                except OSError:
                    raise refuse(errno.EBUSY, "sgx", rule,
                                 f"page {addr:#x} is being reclaimed") from None
                self.sgx_zap_enclave_ptes(encl, addr)
                self.sgx_encl_free_epc_page(entry.epc_page)
                encl.secs_child_cnt -= 1
                entry.epc_page = None
                del encl.page_array[entry.addr >> PAGE_SHIFT]
                self.sgx_encl_shrink(encl, None)
                c += PAGE_SIZE
        finally:
            params.count = c

    def sgx_ioc_enclave_remove_pages(self, encl: SgxEncl, arg: Any) -> int:
        """sgx_ioc_enclave_remove_pages()"""
        params = self._sgx2_args(encl, arg, uapi.SgxEnclaveRemovePages,
                                 "sgx_ioc_enclave_remove_pages")
        if params.count:
            raise refuse(errno.EINVAL, "sgx", "sgx_ioc_enclave_remove_pages",
                         "count must be zero on input")
        try:
            self.sgx_encl_remove_pages(encl, params)
        finally:
            arg.copy_to(params.pack())
        return 0
