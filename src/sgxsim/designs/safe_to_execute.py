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
from bisect import bisect_left, bisect_right
from typing import Any

from sgxsim.hw.consts import PAGE_SHIFT, PAGE_SIZE
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm import VM_ACCESS_FLAGS, VM_EXEC, VM_WRITE
from sgxsim.kernel.mm.vma import Vma
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.kernel.sgx.kernels import Linux60


class PageRanges:
    """A set of page numbers kept as sorted, disjoint, non-adjacent
    ``[lo, hi)`` runs, so that clearing the bit over a 1 TiB mapping costs
    one run, not 2**28 entries."""

    __slots__ = ("los", "his")

    def __init__(self) -> None:
        self.los: list[int] = []
        self.his: list[int] = []

    def add(self, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        i = bisect_left(self.his, lo)  # first run that ends at or after lo
        j = bisect_right(self.los, hi)  # runs from i to j-1 touch [lo, hi)
        if i < j:
            lo, hi = min(lo, self.los[i]), max(hi, self.his[j - 1])
        self.los[i:j], self.his[i:j] = [lo], [hi]

    def first_in(self, lo: int, hi: int) -> int | None:
        """The lowest page of the set in ``[lo, hi)``, or None."""
        i = bisect_right(self.his, lo)
        if i < len(self.los) and max(lo, self.los[i]) < hi:
            return max(lo, self.los[i])
        return None

    def runs(self) -> tuple:
        return tuple(zip(self.los, self.his, strict=True))


class SafeToExecuteDriver(SgxDriverSgx2):
    # design_state() is runs of page numbers: the checker's page symmetry
    # (check/symmetry.py) renames them with the pages.
    design_state_kind = "page-runs"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        # Per enclave: the pages whose "safe to execute" bit is clear.
        self.unsafe: dict[Any, PageRanges] = {}

    def design_state(self, encl: Any) -> tuple:
        s = self.unsafe.get(encl)
        return s.runs() if s is not None else ()

    def _clear_safe(self, encl: Any, start: int, end: int, why: str) -> None:
        self.unsafe.setdefault(encl, PageRanges()).add(start >> PAGE_SHIFT, -(-end // PAGE_SIZE))
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
            unsafe = self.unsafe.get(encl)
            bad = unsafe.first_in(start >> PAGE_SHIFT, -(-end // PAGE_SIZE)) if unsafe else None
            if bad is not None:
                raise refuse(errno.EACCES, "lsm", "safe_to_execute",
                             f"page {bad << PAGE_SHIFT:#x} is not safe to execute")
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

