"""LSM hook points (security/security.c) and the policies behind them.

``Security`` holds a list of modules; each hook asks every module in order
and the first refusal decides, as ``call_int_hook`` does.  Designs add
modules or hooks of their own.
"""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import MMAP_MIN_ADDR, PROT_EXEC, PROT_READ, READ_IMPLIES_EXEC


class LsmModule:
    """Base of a module: every hook allows."""

    name = "none"

    def mmap_file(self, task: Any, file: Any, reqprot: int, prot: int, flags: int) -> None:
        return None

    def file_mprotect(self, task: Any, vma: Any, reqprot: int, prot: int) -> None:
        return None

    def enclave_load(self, task: Any, vma: Any, prot: int) -> None:
        return None

    def enclave_map(self, task: Any, file: Any, prot: int) -> None:
        return None

    def grants(self, subject: str, perm: str, target: str | None = None) -> bool:
        """Observation (no audit, no refusal): whether this module grants
        ``subject`` the process permission ``perm`` (``target`` None) or the
        file permission ``perm`` on files labelled ``target``."""
        return True


class Security:
    def __init__(self, modules: list[LsmModule] | None = None):
        self.modules = modules or []

    def security_mmap_file(self, task: Any, file: Any, reqprot: int, prot: int,
                           flags: int) -> None:
        # security_mmap_file(): raises OSError to refuse.  The modules see
        # what the mapping will get, mmap_prot(), beside the request.
        prot = self.mmap_prot(task, file, prot)
        for m in self.modules:
            m.mmap_file(task, file, reqprot, prot, flags)

    @staticmethod
    def mmap_prot(task: Any, file: Any, prot: int) -> int:
        # mmap_prot(): PROT_READ alone from a READ_IMPLIES_EXEC task implies
        # PROT_EXEC (as do_mmap() will add it), except from a noexec mount.
        if prot & (PROT_READ | PROT_EXEC) != PROT_READ:
            return prot
        if not task.persona & READ_IMPLIES_EXEC:
            return prot
        if file is None or not file.mount.noexec:
            return prot | PROT_EXEC
        return prot

    def security_mmap_addr(self, task: Any, addr: int) -> None:
        # security_mmap_addr() -> cap_mmap_addr() (the capability module,
        # always first): below mmap_min_addr needs CAP_SYS_RAWIO, which the
        # model's (unprivileged) tasks do not have.
        if addr < MMAP_MIN_ADDR:
            raise refuse(errno.EPERM, "lsm", "cap_mmap_addr",
                         f"{addr:#x} is below mmap_min_addr {MMAP_MIN_ADDR:#x} "
                         "and the task lacks CAP_SYS_RAWIO")

    def security_file_mprotect(self, task: Any, vma: Any, reqprot: int, prot: int) -> None:
        # security_file_mprotect()
        for m in self.modules:
            m.file_mprotect(task, vma, reqprot, prot)

    # The enclave hooks of the 2019 proposals (seeds 000, 004; lsm.md): no
    # merged kernel calls them, designs do.  ``prot`` is VM_READ|VM_WRITE|VM_EXEC.
    def security_enclave_load(self, task: Any, vma: Any, prot: int) -> None:
        # security_enclave_load(): may an enclave page added from the source
        # mapping ``vma`` ever be mapped with ``prot``?  Raises OSError to refuse.
        for m in self.modules:
            m.enclave_load(task, vma, prot)

    def security_enclave_map(self, task: Any, file: Any, prot: int) -> None:
        # security_enclave_map(): may enclave memory of ``file`` be mapped with
        # ``prot`` (at mmap and mprotect)?  Raises OSError to refuse.
        for m in self.modules:
            m.enclave_map(task, file, prot)

    def grants(self, subject: str, perm: str, target: str | None = None) -> bool:
        """Whether every module grants ``perm`` (see ``LsmModule.grants``);
        with no module nothing is withheld.  For observers (the checker)."""
        for m in self.modules:  # all(), without a generator per call (the checker asks often)
            if not m.grants(subject, perm, target):
                return False
        return True

    def find(self, name: str) -> LsmModule | None:
        return next((m for m in self.modules if m.name == name), None)


def make_policy(policy: Any) -> list[LsmModule]:
    """``"none"``, ``"selinux"`` (the default table) or a module / list of modules."""
    if policy in (None, "none"):
        return []
    if policy == "selinux":
        from sgxsim.kernel.security.selinux import SelinuxPolicy

        return [SelinuxPolicy.default()]
    if isinstance(policy, LsmModule):
        return [policy]
    if isinstance(policy, list):
        return policy
    raise ValueError(f"unknown policy {policy!r}: use 'none', 'selinux' or an LsmModule")
