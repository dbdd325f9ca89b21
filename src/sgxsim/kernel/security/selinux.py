"""An SELinux-like policy over labels: file_map_prot_check() and
selinux_file_mprotect() of security/selinux/hooks.c (reference lsm.md)."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    MAP_SHARED,
    MAP_TYPE,
    PROT_EXEC,
    PROT_WRITE,
    VM_EXEC,
    VM_SHARED,
    VM_WRITE,
)
from sgxsim.kernel.security import LsmModule

_NONE: frozenset[str] = frozenset()  # no permission (a default not built on every check)


class SelinuxPolicy(LsmModule):
    """Allowed permissions: PROCESS perms per process label, FILE perms per
    (process label, file label).  ``default_noexec`` is true on x86-64."""

    name = "selinux"

    def __init__(self, process: dict[str, set[str]], files: dict[tuple[str, str], set[str]],
                 default_noexec: bool = True):
        self.process = {k: set(v) for k, v in process.items()}
        self.files = {k: set(v) for k, v in files.items()}
        self.default_noexec = default_noexec

    @classmethod
    def default(cls) -> SelinuxPolicy:
        """user_t may read/write/execute its files and the SGX device and may
        read/write /tmp files; no execmem, execheap, execstack or execmod."""
        rwx = {"read", "write", "execute"}
        return cls(process={"user_t": set()},
                   files={("user_t", "user_home_t"): rwx, ("user_t", "sgx_device_t"): rwx,
                          ("user_t", "tmp_t"): {"read", "write"},
                          ("user_t", "unlabeled_t"): rwx, ("user_t", "device_t"): rwx,
                          ("user_t", "tmpfs_t"): rwx})

    def allow(self, subject: str, perm: str, target: str | None = None) -> None:
        if target is None:
            self.process.setdefault(subject, set()).add(perm)
        else:
            self.files.setdefault((subject, target), set()).add(perm)

    def grants(self, subject: str, perm: str, target: str | None = None) -> bool:
        if target is None:
            return perm in self.process.get(subject, _NONE)
        return perm in self.files.get((subject, target), _NONE)

    # -- avc -------------------------------------------------------------------------------
    def _process_perm(self, task: Any, perm: str) -> None:
        if perm not in self.process.get(task.label, _NONE):
            raise refuse(errno.EACCES, "lsm", "selinux", f"{task.label}: process {perm} denied")

    def _file_perm(self, task: Any, file: Any, perms: list[str]) -> None:
        have = self.files.get((task.label, file.inode.label), _NONE)
        for p in perms:
            if p not in have:
                raise refuse(errno.EACCES, "lsm", "selinux",
                             f"{task.label} -> {file.inode.label} ({file.path}): file {p} denied")

    # -- hooks -------------------------------------------------------------------------------
    def file_map_prot_check(self, task: Any, file: Any, prot: int, shared: bool) -> None:
        # file_map_prot_check()
        if self.default_noexec and prot & PROT_EXEC and (
                file is None or file.inode.private or (not shared and prot & PROT_WRITE)):
            self._process_perm(task, "execmem")
        if file is not None:
            perms = ["read"]
            if shared and prot & PROT_WRITE:
                perms.append("write")
            if prot & PROT_EXEC:
                perms.append("execute")
            self._file_perm(task, file, perms)

    def mmap_file(self, task: Any, file: Any, reqprot: int, prot: int, flags: int) -> None:
        # selinux_mmap_file() (checkreqprot = 0)
        self.file_map_prot_check(task, file, prot, (flags & MAP_TYPE) == MAP_SHARED)

    def file_mprotect(self, task: Any, vma: Any, reqprot: int, prot: int) -> None:
        # selinux_file_mprotect()
        if self.default_noexec and prot & PROT_EXEC and not vma.vm_flags & VM_EXEC:
            mm = vma.vm_mm
            if vma.vm_file is None and mm.start_brk and vma.vm_start <= mm.brk \
                    and vma.vm_end >= mm.start_brk:
                self._process_perm(task, "execheap")
            elif vma.vm_file is None and vma.vm_start <= mm.start_stack < vma.vm_end:
                self._process_perm(task, "execstack")
            elif vma.vm_file is not None and vma.anon_vma is not None:
                self._file_perm(task, vma.vm_file, ["execmod"])
        self.file_map_prot_check(task, vma.vm_file, prot, bool(vma.vm_flags & VM_SHARED))

    # -- enclave hooks of the 2019 proposals --------------------------------------------------
    def enclave_load(self, task: Any, vma: Any, prot: int) -> None:
        # selinux_enclave_load() (2019 RFC): enclave code that did not come
        # from an executable mapping needs FILE execmod on the source file, or
        # PROCESS execmem for an anonymous source.
        if prot & VM_EXEC and not vma.vm_flags & VM_EXEC:
            if vma.vm_file is not None:
                self._file_perm(task, vma.vm_file, ["execmod"])
            else:
                self._process_perm(task, "execmem")

    def enclave_map(self, task: Any, file: Any, prot: int) -> None:
        # selinux_enclave_map() (the 2019 "SGX vs LSM" thread): enclave
        # memory writable and executable together needs FILE execmod on the
        # enclave file.
        if prot & VM_WRITE and prot & VM_EXEC:
            self._file_perm(task, file, ["execmod"])
