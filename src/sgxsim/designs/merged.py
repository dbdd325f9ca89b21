"""The merged designs are the SGX driver's own kernels; they are named here so
that the design list reads in one place (not duplicated: the same classes).

``linux-5.11``: the check-only ``vm_ops->mprotect(vma, start, end, newflags)``
called after ``security_file_mprotect``, mm always does the fixup; the per-page
maximum from SECINFO (TCS → RW); ADD_PAGES refuses a source VMA without
VM_MAYEXEC; the fault refuses a VMA beyond the page's maximum (SIGBUS).
Source: the v40 review (seed ``001_…``), reference §3, §4.2.

``linux-6.0``: SGX2/EDMM on top: EAUG on fault with maximum RWX,
RESTRICT_PERMISSIONS / MODIFY_TYPES / REMOVE_PAGES, and the ELRANGE check of
``sgx_encl_may_map`` after INIT.  Reference §2.8, §3, §4.2, §5.1.
"""

from sgxsim.kernel.sgx.kernels import Linux60, Linux511

__all__ = ["Linux511", "Linux60"]
