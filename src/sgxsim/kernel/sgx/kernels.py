"""The kernels with the SGX driver: ``linux-5.11`` (SGX1, the merged
``vm_ops->mprotect`` hook), ``linux-6.0`` (SGX2/EDMM) and ``linux-6.12`` (the
long-term kernel: AEX-Notify's attribute, the EDMM fixes, MDWE and mseal).

Each is the generic kernel plus the driver registered at boot
(``sgx_init``); 6.0 only swaps the driver class for the SGX2 one.  A
design subclasses one of these and, usually, its driver class.
"""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.linux import Linux
from sgxsim.kernel.mm.flags import FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_LSEEK, FMODE_READ, FMODE_WRITE
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver, SgxDriverSgx2
from sgxsim.kernel.sgx.linux612 import SgxDriver612


@register("linux-5.11")
class Linux511(Linux):
    """Linux 5.11: the SGX driver as first merged (SGX1 only).

    Modified: boot, misc_minor_alloc, dentry_open_fmode, file_can_odirect, vfs_llseek
    (boot registers the driver; the three file rules are 5.11's VFS).
    """

    # No MDWE, no mseal, no multi-VMA mremap (docs/linux-6.12.md).
    mm_release = (5, 11)
    sgx_driver_class: type[SgxDriver] = SgxDriver
    # Keyword arguments for the driver (small EPC watermarks in tests).
    sgx_driver_options: dict[str, Any] = {}

    # Up to 6.1, misc_register() took dynamic minors from a 128-bit map,
    # counting down from 127 (6.12 allocates from an IDA above 255).
    DYNAMIC_MINORS = 128

    def misc_minor_alloc(self) -> int:
        # misc_register(), 6.1 and before: find_first_zero_bit() of misc_minors,
        # minor DYNAMIC_MINORS - i - 1.
        taken = self.misc_minors
        for i in range(self.DYNAMIC_MINORS):
            minor = self.DYNAMIC_MINORS - i - 1
            if minor not in taken:
                taken.add(minor)
                return minor
        raise refuse(errno.EBUSY, "kernel", "misc_register", "no free dynamic misc minor")

    def dentry_open_fmode(self, file: Any) -> None:
        # do_dentry_open(), 5.11: FMODE_CAN_READ/WRITE only; FMODE_LSEEK stays
        # without ->llseek (vfs_llseek() falls back to no_llseek()) and there
        # is no FMODE_CAN_ODIRECT yet (5.19).
        fops = file.f_op
        if file.f_mode & FMODE_READ and fops.read_iter is not None:
            file.f_mode |= FMODE_CAN_READ
        if file.f_mode & FMODE_WRITE and fops.write_iter is not None:
            file.f_mode |= FMODE_CAN_WRITE

    def file_can_odirect(self, file: Any) -> bool:
        # do_dentry_open(), setfl(), 5.11: the mapping's a_ops->direct_IO, asked each time
        return bool(file.f_op.direct_io)

    def vfs_llseek(self, file: Any, offset: int, whence: int) -> int:
        # vfs_llseek(), 5.11: ->llseek only with FMODE_LSEEK, else no_llseek()
        if file.f_mode & FMODE_LSEEK and file.f_op.llseek is not None:
            return file.f_op.llseek(file, offset, whence)
        raise refuse(errno.ESPIPE, "vfs", "no_llseek",
                     f"{file.path}: not seekable (no llseek in its file operations)")

    def boot(self) -> None:
        super().boot()
        self.sgx = self.sgx_driver_class(self, **self.sgx_driver_options)
        self.sgx.sgx_init()  # the driver's release decides the order of its device nodes


@register("linux-6.0")
class Linux60(Linux511):
    """Linux 6.0: SGX2 (EDMM) added to the same driver.

    Modified: sgx_ioctl_table, sgx_encl_may_map_range, sgx_vma_fault_eaug, sgx_init,
    sgx_drv_register_provision, sgx_encl_eldu_put_backing, dentry_open_fmode, file_can_odirect,
    vfs_llseek (5.13 moved the provisioning node to sgx_init(); 5.18 and 5.19 free the backing
    after ELDU; 6.0's VFS: FMODE_LSEEK follows ->llseek, FMODE_CAN_ODIRECT).
    """

    sgx_driver_class = SgxDriverSgx2
    # fs/open.c, fs/read_write.c as of 6.0 (the generic kernel's): do_dentry_open()
    # drops FMODE_LSEEK without ->llseek and vfs_llseek() tests only that.
    dentry_open_fmode = Linux.dentry_open_fmode
    file_can_odirect = Linux.file_can_odirect
    vfs_llseek = Linux.vfs_llseek
    mm_release = (6, 0)


@register("linux-6.12")
class Linux612(Linux60):
    """Linux 6.12: the 6.0 driver with what changed up to 6.12
    (``SgxDriver612``); its mm has MDWE (6.3) and mseal (6.10).

    Modified: sgx_attr_unpriv_mask, sgx_validate_offset_length, sgx_encl_eaug_load_secs,
    sgx_encl_eaug_grow_failed, misc_minor_alloc."""

    # misc_register(): by 6.12 dynamic minors come from an IDA above 255 (the
    # generic kernel's misc_minor_alloc(), not 5.11's bitmap).
    misc_minor_alloc = Linux.misc_minor_alloc

    sgx_driver_class = SgxDriver612
    mm_release = (6, 12)
