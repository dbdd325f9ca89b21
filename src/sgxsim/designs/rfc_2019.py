"""``rfc-2019``: the May 2019 RFC — an SGX hook before the LSM in mprotect,
and an LSM upcall when pages are added.

Proposal (seed ``000_…``; reference designs.md §9, first bullet): the driver
gets ``vm_ops->may_mprotect(vma, start, end, prot)`` called from
``do_mprotect_pkey`` *before* ``security_file_mprotect``, refusing a
protection above the pages' maximum; and ADD_PAGES makes an LSM upcall with
the source VMA so the LSM decides whether the page may ever be executable.

Details left open, and the reading chosen:

* The upcall's answer is folded into the page's ``vm_max_prot_bits``: X is
  kept only if the source VMA is VM_EXEC, or the LSM grants FILE execmod on
  the source file (PROCESS execmem for an anonymous source): the hook
  ``security_enclave_load`` (``sgxsim.kernel.security``).  mmap (``sgx_encl_may_map``) and the
  hook then enforce it like the SECINFO maximum.
* The RFC did not clear X when a page is later written; the checker is
  expected to show that (``exec-origin`` through written pages).
* The fault path is ``linux-5.11``'s (SIGBUS for a VMA above the maximum);
  SGX1 only.
"""

from __future__ import annotations

from typing import Any

from sgxsim.kernel.mm import VM_EXEC
from sgxsim.kernel.mm.vma import Vma
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver
from sgxsim.kernel.sgx.kernels import Linux511


class Rfc2019Driver(SgxDriver):
    def _sgx_encl_add_page(self, encl: Any, encl_page: Any, epc_page: Any, secinfo_paddr: int,
                           src: int) -> None:
        super()._sgx_encl_add_page(encl, encl_page, epc_page, secinfo_paddr, src)
        # security_enclave_load(): the LSM sees the source VMA.
        task = self.current()
        vma = self.find_vma(task.mm, src)
        try:
            self.kernel.security.security_enclave_load(task, vma, encl_page.vm_max_prot_bits)
        except OSError as e:
            if encl_page.vm_max_prot_bits & VM_EXEC:
                encl_page.vm_max_prot_bits &= ~VM_EXEC
                self.trace_note("security_enclave_load", "deny-exec", str(getattr(e, "why", e)))


@register("rfc-2019")
class Rfc2019(Linux511):
    """The 2019 RFC (module docstring).

    Modified: mprotect_vma, _sgx_encl_add_page.
    Hooks called: security_enclave_load.
    """

    sgx_driver_class = Rfc2019Driver

    def mprotect_vma(self, vma: Vma, nstart: int, tmp: int, newflags: int, reqprot: int,
                     prot: int) -> Vma:
        # do_mprotect_pkey() of the RFC: VM_MAY*, vm_ops->may_mprotect(),
        # security_file_mprotect(), mprotect_fixup().
        self.check_vm_may(newflags)
        if vma.vm_ops is not None and vma.vm_ops.mprotect is not None:
            vma.vm_ops.mprotect(vma, nstart, tmp, newflags)
        self.security.security_file_mprotect(self.current, vma, reqprot, prot)
        return self.mprotect_fixup(vma, nstart, tmp, newflags)
