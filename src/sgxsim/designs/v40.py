"""``v40``: the hook as in revisions v34..v40 — ``vm_ops->mprotect`` replaces
``mprotect_fixup``.

Proposal (seed ``001_…``, the v40 review; reference designs.md §9
"v34..v40"): ``do_mprotect_pkey`` calls ``vma->vm_ops->mprotect(vma, &prev,
start, end, newflags)`` *instead of* ``mprotect_fixup`` (after
``security_file_mprotect``); the SGX driver's ``sgx_vma_mprotect`` runs
``sgx_encl_may_map`` and then calls ``mprotect_fixup`` itself.  Merged Linux
(5.11) replaced this by a check-only hook after which mm always does the
fixup.

Behaviour equals ``linux-5.11`` as long as the driver calls the fixup, and the
checker must give the same verdicts (designs.md "Interface differences").
The interface's danger is shown by the variant ``v40-checkonly``: a driver
written to the check-only contract under v40 skips the fixup, mprotect
returns 0 and the VMA keeps its old protection (``mprotect-honest`` breaks).
"""

from __future__ import annotations

from typing import Any

from sgxsim.kernel.mm.vma import Vma
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver, SgxVmOps
from sgxsim.kernel.sgx.kernels import Linux511


class V40VmOps(SgxVmOps):
    def mprotect(self, vma: Any, start: int, end: int, newflags: int) -> Vma:
        # vm_ops->mprotect(vma, &prev, start, end, newflags): returns prev.
        return self.drv.sgx_vma_mprotect(vma, start, end, newflags)


class V40Driver(SgxDriver):
    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.vm_ops = V40VmOps(self)

    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> Vma:
        # sgx_vma_mprotect() of v40: check, then mprotect_fixup() itself.
        self.sgx_encl_may_map(vma.vm_private_data, start, end, newflags)
        return self.kernel.mprotect_fixup(vma, start, end, newflags)


class V40CheckOnlyDriver(V40Driver):
    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> Vma:
        # A driver written to the merged check-only contract: no fixup.
        self.sgx_encl_may_map(vma.vm_private_data, start, end, newflags)
        return vma


@register("v40")
class V40(Linux511):
    """vm_ops->mprotect replaces mprotect_fixup (module docstring).

    Modified: mprotect_vma, sgx_vma_mprotect, vm_ops.mprotect.
    """

    sgx_driver_class = V40Driver

    def mprotect_vma(self, vma: Vma, nstart: int, tmp: int, newflags: int, reqprot: int,
                     prot: int) -> Vma:
        # do_mprotect_pkey() of v40.
        self.check_vm_may(newflags)
        self.security.security_file_mprotect(self.current, vma, reqprot, prot)
        if vma.vm_ops is not None and vma.vm_ops.mprotect is not None:
            return vma.vm_ops.mprotect(vma, nstart, tmp, newflags)
        return self.mprotect_fixup(vma, nstart, tmp, newflags)


@register("v40-checkonly")
class V40CheckOnly(V40):
    """v40 with a driver that implements only the check (module docstring).

    Modified: sgx_vma_mprotect.
    """

    sgx_driver_class = V40CheckOnlyDriver
