"""``safe-to-execute``: Andy Lutomirski's 2019 proposal — a per-page
"safe to execute" bit that the LSM consults when enclave memory is mapped.

Proposal (seed ``004_…``, quoted in designs.md): every enclave page carries a
bit "safe to execute"; a blank enclave's pages are all safe.  ADD_PAGES from
a source mapping that is not executable clears it, and after INIT
successfully mapping a page writable clears it.  The LSM, at mmap and
mprotect of an enclave range, allows mapping it executable only if every page
in the range is safe, writable only if no executable mapping of the page
exists, and writable and executable together only with FILE execmod on
/dev/sgx_enclave.

Details left open, and the reading chosen:

* The bit belongs to the enclave *address* (ELRANGE page), so pages added by
  EAUG after INIT start safe ("blank") and a writable mapping over a page
  not yet EAUGed clears its bit too.
* "Successfully mapped writable" = mmap/mprotect returns 0 with VM_WRITE
  over the page (not the first write fault); before INIT it clears nothing.
* "No executable mapping exists": a VMA with VM_EXEC over the page in any mm
  that mapped the enclave, other than the VMA being changed.
* The LSM check runs where ``sgx_encl_may_map`` runs (mmap and the mprotect
  hook); the rest is ``linux-6.0``'s (so EMODPE stays invisible: the bit is
  the only gate).
"""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.hw.consts import PAGE_SHIFT, PAGE_SIZE
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import VM_ACCESS_FLAGS, VM_EXEC, VM_WRITE
from sgxsim.kernel.mm.vma import Vma
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.kernel.sgx.kernels import Linux60


class SafeToExecuteDriver(SgxDriverSgx2):
    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        # Per enclave: the page numbers whose "safe to execute" bit is clear.
        self.unsafe: dict[Any, set[int]] = {}

    def design_state(self, encl: Any) -> tuple:
        return tuple(sorted(self.unsafe.get(encl, ())))

    def _clear_safe(self, encl: Any, start: int, end: int, why: str) -> None:
        s = self.unsafe.setdefault(encl, set())
        for vpn in range(start >> PAGE_SHIFT, -(-end // PAGE_SIZE)):
            s.add(vpn)
        self.trace_note("safe_to_execute", "clear", f"[{start:#x}, {end:#x}): {why}")

    def _sgx_encl_add_page(self, encl: Any, encl_page: Any, epc_page: Any, secinfo_paddr: int,
                           src: int) -> None:
        super()._sgx_encl_add_page(encl, encl_page, epc_page, secinfo_paddr, src)
        vma = self.find_vma(self.current().mm, src)
        if not vma.vm_flags & VM_EXEC:
            self._clear_safe(encl, encl_page.addr, encl_page.addr + PAGE_SIZE,
                             "added from a source VMA without VM_EXEC")

    def sgx_encl_may_map(self, encl: Any, start: int, end: int, vm_flags: int,
                         changing: Any = None) -> None:
        super().sgx_encl_may_map(encl, start, end, vm_flags)
        # The LSM's enclave mapping check.
        task = self.current()
        for f in self._enclave_files(task, encl)[:1]:
            # security_enclave_map(): W and X together need FILE execmod on
            # /dev/sgx_enclave.
            self.kernel.security.security_enclave_map(task, f, vm_flags & VM_ACCESS_FLAGS)
        if vm_flags & VM_EXEC:
            bad = self.unsafe.get(encl, set()) & set(range(start >> PAGE_SHIFT, -(-end // PAGE_SIZE)))
            if bad:
                raise refuse(errno.EACCES, "lsm", "safe_to_execute",
                             f"page {min(bad) << PAGE_SHIFT:#x} is not safe to execute")
        if vm_flags & VM_WRITE:
            for encl_mm in encl.mm_list:
                for v in encl_mm.mm.vmas:
                    if (v is not changing and v.vm_private_data is encl and v.vm_flags & VM_EXEC
                            and v.vm_start < end and start < v.vm_end):
                        raise refuse(errno.EACCES, "lsm", "safe_to_execute",
                                     f"an executable mapping [{v.vm_start:#x}, {v.vm_end:#x}) exists")

    @staticmethod
    def _enclave_files(task: Any, encl: Any) -> list:
        return [f for f in task.files.values() if getattr(f, "private_data", None) is encl]

    def sgx_vma_mprotect(self, vma: Any, start: int, end: int, newflags: int) -> None:
        self.sgx_encl_may_map(vma.vm_private_data, start, end, newflags, changing=vma)

    def sgx_mmap(self, file: Any, vma: Any) -> None:
        super().sgx_mmap(file, vma)
        encl = file.private_data
        if vma.vm_flags & VM_WRITE and encl.initialized:
            self._clear_safe(encl, vma.vm_start, vma.vm_end, "mapped writable after INIT")


@register("safe-to-execute")
class SafeToExecute(Linux60):
    """Per-page "safe to execute" bit (module docstring).

    Modified: mprotect_vma, _sgx_encl_add_page, sgx_encl_may_map, sgx_vma_mprotect, sgx_mmap.
    Hooks called: security_enclave_map.
    """

    sgx_driver_class = SafeToExecuteDriver

    def mprotect_vma(self, vma: Vma, nstart: int, tmp: int, newflags: int, reqprot: int,
                     prot: int) -> Vma:
        encl = vma.vm_private_data if vma.vm_ops is self.sgx.vm_ops else None
        out = super().mprotect_vma(vma, nstart, tmp, newflags, reqprot, prot)
        if encl is not None and newflags & VM_WRITE and encl.initialized:
            self.sgx._clear_safe(encl, nstart, tmp, "mprotected writable after INIT")
        return out

