"""The enclave-load LSM upcall shared by the 2019 designs: which execute
right the LSM grants for an enclave page loaded from a source mapping.

Modelled on the RFC's ``security_enclave_load()``: with the SELinux-like
policy, executing enclave code that did not come from an executable mapping
needs FILE execmod on the source file (a file-backed source) or PROCESS
execmem (an anonymous source).  Without an LSM everything is granted.
"""

from __future__ import annotations

from typing import Any

from sgxsim.kernel.mm import VM_EXEC


def security_enclave_load(kernel: Any, task: Any, vma: Any) -> tuple[bool, str]:
    """(may the page be executable, why)."""
    if vma.vm_flags & VM_EXEC:
        return True, "source VMA is VM_EXEC"
    for mod in kernel.security.modules:
        try:
            if vma.vm_file is not None:
                mod._file_perm(task, vma.vm_file, ["execmod"])
            else:
                mod._process_perm(task, "execmem")
        except OSError as e:
            return False, getattr(e, "why", None) and str(e.why) or str(e)
    return True, "the LSM grants execmod/execmem"
