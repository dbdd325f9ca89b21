"""Memory-deny-write-execute (include/linux/mman.h: map_deny_write_exec, 6.3)."""

from __future__ import annotations

from sgxsim.kernel.mm.flags import MMF_HAS_MDWE, VM_EXEC, VM_WRITE
from sgxsim.kernel.mm.vma import MmStruct


def map_deny_write_exec(mm: MmStruct, old: int, new: int) -> str | None:
    """map_deny_write_exec(): why MDWE refuses ``new`` flags on a mapping that
    had ``old`` (mmap passes the same flags twice), or None."""
    if not mm.flags & MMF_HAS_MDWE or not new & VM_EXEC:
        return None
    if new & VM_WRITE:
        return "MDWE: a mapping may not be writable and executable"
    if not old & VM_EXEC:
        return "MDWE: a mapping that was not executable may not become executable"
    return None
