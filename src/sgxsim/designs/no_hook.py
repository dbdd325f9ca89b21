"""``no-hook``: the SGX driver of the early revisions, with the mmap-time check
only.

Proposal: ``sgx_mmap()`` refuses a mapping whose protection exceeds the
SECINFO maximum of an already added page (``sgx_encl_may_map``), but there is
no ``vm_ops->mprotect``, so mprotect on an enclave VMA is mediated by nothing
but the VM_MAY* bits and the LSM on the device file.  Source: the driver
before the 2019 RFC (seed ``000_…`` motivates the hook by this gap;
``designs.md`` row ``no-hook``).

Details left open, and the reading chosen:

* The fault path.  ``designs.md`` says "fault: none beyond the VMA": the fault
  handler inserts the PFN with the VMA's protection without comparing the VMA
  to the page's maximum (``sgx_encl_vma_within_max`` checks nothing).  The
  EPCM still decides each access inside the enclave.
* Everything else (ADD_PAGES with the VM_MAYEXEC check on the source, SGX1
  only, the mmap-time check) is ``linux-5.11``'s, so the difference between the
  two designs is exactly the hook and the fault check.
"""

from __future__ import annotations

from typing import Any

from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver
from sgxsim.kernel.sgx.encl import SgxEnclPage
from sgxsim.kernel.sgx.kernels import Linux511


class NoHookDriver(SgxDriver):
    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> None:
        # No vm_ops->mprotect in this design: do_mprotect_pkey() goes straight
        # from security_file_mprotect() to mprotect_fixup().
        return None

    def sgx_encl_vma_within_max(self, entry: SgxEnclPage, vm_flags: int) -> None:
        # sgx_encl_load_page() of the early driver: no VMA-vs-maximum check.
        return None


@register("no-hook")
class NoHook(Linux511):
    """The SGX driver with the mmap-time check only (see the module docstring).

    Modified: sgx_vma_mprotect, sgx_encl_vma_within_max.
    """

    sgx_driver_class = NoHookDriver
