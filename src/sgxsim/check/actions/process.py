"""``fork`` (--processes 2): the program forks once.  The child gets a copy
of the mm (kernel/process.py ``fork``): every enclave VMA is copied (the SGX
driver's VMAs are VM_PFNMAP, not VM_DONTCOPY) and opened through the
driver's ``vm_ops->open``, ``sgx_vma_open()``, which registers the child's
mm with the enclave (``sgx_encl_mm_add()``: an mmu notifier, an enclave
reference); then copy_page_range() copies the VMAs' PTEs as they are
(vma_needs_copy() copies a VM_PFNMAP VMA's).  The fd table is shared, so the
child reaches the same enclaves.  The child may
then mmap/mprotect/munmap/mseal/mremap and enter the enclave; the ioctls
stay with the parent unless ``--child-ioctls`` (sgx_ioctl() asks nothing of
the caller but the fd: any process holding it may issue them), and the
reclaimer is the kernel's, not a process's."""

from __future__ import annotations

from sgxsim.check.actions.base import CheckerAction
from sgxsim.check.model import Action


class Fork(CheckerAction):
    name = "fork"
    keys: dict = {}
    # Offered once per program, not per enclave or process.
    per_enclave = False

    def offers(self, scope, ctx):
        return [Action.make("fork")] if scope.processes > 1 and not ctx.forked else []

    def run(self, model, st, a, ev):
        if st.child is not None:
            raise ValueError("fork: the program forked already (it forks once)")
        st.child = st.proc.fork()
