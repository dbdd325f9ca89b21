"""``propagate-source``: Sean Christopherson's 2019 counter-proposal — the
enclave VMA takes the protection of the source mapping at ADD_PAGES.

Proposal (seed ``004_…``, designs.md): ADD_PAGES takes mmap_lock for write
and applies the source VMA's VM_READ|VM_WRITE|VM_EXEC to the enclave VMA over
the target range with ``mprotect_fixup`` (splitting it if needed), so the LSM
judged the code when the source was mapped.  There is no per-page maximum
and no ``vm_ops->mprotect``: a later mprotect of the enclave VMA follows the
ordinary rules, with the LSM seeing only /dev/sgx_enclave (execmod/execmem
never apply to it).

Details left open, and the reading chosen:

* The enclave range must already be mapped: ADD_PAGES fails with -EINVAL
  when no enclave VMA of this mm covers the target page (the text assumes it
  is mapped).
* No per-page maximum anywhere: mmap is not compared to SECINFO and the
  fault path checks only the VMA (faults before INIT still SIGBUS).
* SGX1, as in the 2019 series; the rest is ``linux-5.11``'s.
"""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import VM_ACCESS_FLAGS
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver
from sgxsim.kernel.sgx.encl import SgxEncl, SgxEnclPage
from sgxsim.kernel.sgx.kernels import Linux511


class PropagateSourceDriver(SgxDriver):
    def sgx_encl_may_map(self, encl: SgxEncl, start: int, end: int, vm_flags: int) -> None:
        # No per-page maximum: only the checks that do not depend on pages.
        super().sgx_encl_may_map(encl, start, end, 0)

    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> None:
        # No vm_ops->mprotect in this design.
        return None

    def sgx_encl_vma_within_max(self, entry: SgxEnclPage, vm_flags: int) -> None:
        # No per-page maximum at fault time either: only the VMA counts.
        return None

    def _enclave_vma(self, encl: SgxEncl, addr: int) -> Any:
        v = self.find_vma(self.current().mm, addr)
        if v is None or v.vm_start > addr or v.vm_private_data is not encl:
            return None
        return v

    def sgx_encl_add_page(self, encl: SgxEncl, src: int, offset: int, secinfo_flags: int,
                          secinfo_paddr: int, flags: int) -> None:
        addr = encl.base + offset
        if self._enclave_vma(encl, addr) is None:
            raise refuse(errno.EINVAL, "sgx", "sgx_encl_add_page",
                         f"no enclave VMA covers {addr:#x} (propagate-source needs it mapped)")
        super().sgx_encl_add_page(encl, src, offset, secinfo_flags, secinfo_paddr, flags)
        # mmap_write_lock(); mprotect_fixup(enclave VMA, source VMA's RWX).
        svma = self.find_vma(self.current().mm, src)
        evma = self._enclave_vma(encl, addr)
        newflags = (evma.vm_flags & ~VM_ACCESS_FLAGS) | (svma.vm_flags & VM_ACCESS_FLAGS)
        self.trace_note("sgx_encl_add_page", "propagate",
                        f"enclave VMA over {addr:#x} gets source vm_flags {svma.vm_flags & VM_ACCESS_FLAGS:#x}")
        self.kernel.mprotect_fixup(evma, addr, addr + PAGE_SIZE, newflags)


@register("propagate-source")
class PropagateSource(Linux511):
    """ADD_PAGES propagates the source VMA's protection (module docstring).

    Modified: sgx_encl_may_map, sgx_vma_mprotect, sgx_encl_vma_within_max, sgx_encl_add_page.
    """

    sgx_driver_class = PropagateSourceDriver
