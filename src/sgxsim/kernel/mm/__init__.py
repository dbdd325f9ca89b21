"""The Linux memory manager: VMAs, mmap/munmap/mprotect/mremap, page faults."""

from sgxsim.kernel.mm.fault import FaultMixin, FileVmOps, ShmemVmOps, VmFault
from sgxsim.kernel.mm.flags import *  # noqa: F403
from sgxsim.kernel.mm.flags import __dict__ as _flags
from sgxsim.kernel.mm.mmap import MmapMixin
from sgxsim.kernel.mm.mprotect import MprotectMixin
from sgxsim.kernel.mm.mremap import MremapMixin
from sgxsim.kernel.mm.vma import AnonVma, FileOperations, MmStruct, Vma, VmOperations

__all__ = [k for k in _flags if k.isupper()] + [
    "AnonVma", "FaultMixin", "FileOperations", "FileVmOps", "MmStruct", "MmapMixin",
    "MprotectMixin", "MremapMixin", "ShmemVmOps", "Vma", "VmFault", "VmOperations",
]
