"""``sgx2-rfc``: SGX2 as first posted — existing VMAs may exceed the EPCM
permissions, and PTEs are installed as VMA ∩ page maximum.

Proposal (seed ``003_…``, "x86/sgx: Support VMA permissions exceeding
enclave permissions", Dec 2021, never merged in this form): keep
``sgx_encl_may_map`` on mmap and mprotect, but remove the fault path's check
that the VMA does not exceed the page's maximum; instead install the PTE
with the permissions "the VMA and enclave agree on".

Details left open, and the reading chosen:

* "Enclave permissions" at fault time: the series tracked runtime EPCM
  permissions per page (``vm_run_prot_bits``).  The model uses the page's
  ``vm_max_prot_bits`` as the driver keeps it in ``linux-6.0`` (EAUG pages RWX,
  MODIFY_TYPES to TCS → RW); RESTRICT_PERMISSIONS changes neither, so a
  restricted page keeps its PTE permissions and the EPCM decides, as in the
  merged 6.0 driver.
* The PTE for VM_SHARED enclave VMAs is writable when both agree on write
  (no COW), as the changelog says.
* The rest (EAUG, the SGX2 ioctls, the ELRANGE check) is ``linux-6.0``'s.
"""

from __future__ import annotations

from typing import Any

from sgxsim.hw.consts import PAGE_SHIFT
from sgxsim.kernel.mm import VM_ACCESS_FLAGS, VM_SHARED
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.kernel.sgx.encl import SgxEnclPage
from sgxsim.kernel.sgx.kernels import Linux60


class Sgx2RfcDriver(SgxDriverSgx2):
    def sgx_encl_vma_within_max(self, entry: SgxEnclPage, vm_flags: int) -> None:
        # sgx_encl_load_page() of the RFC: the VMA may exceed the maximum.
        return None

    def vmf_insert_pfn(self, vma: Any, addr: int, pfn: int) -> int:
        # sgx_vma_fault() of the RFC: vmf_insert_pfn_prot() with the
        # permissions the VMA and the page's maximum agree on.
        encl = vma.vm_private_data
        entry = encl.page_array.get(addr >> PAGE_SHIFT) if encl is not None else None
        prot_bits = vma.vm_flags & VM_ACCESS_FLAGS
        if entry is not None:
            prot_bits &= entry.vm_max_prot_bits
        # "Add VM_SHARED so that PTE is made writable right away" (no COW).
        return self.kernel.vmf_insert_pfn_prot(vma, addr, pfn, prot_bits | (vma.vm_flags & VM_SHARED))


@register("sgx2-rfc")
class Sgx2Rfc(Linux60):
    """SGX2 with VMAs allowed to exceed the EPCM permissions (module docstring).

    Modified: sgx_encl_vma_within_max, vmf_insert_pfn.
    """

    sgx_driver_class = Sgx2RfcDriver
