"""A machine: the CPU, a kernel (by name), its processes."""

from __future__ import annotations

from typing import Any

from sgxsim.hw.cpu import Cpu
from sgxsim.kernel.process import Process
from sgxsim.kernel.registry import kernel_class
from sgxsim.trace import Trace


class Machine:
    """``Machine(kernel="linux-6.0", epc_pages=256, sgx2=True, policy="none")``.

    ``kernel`` names a kernel or a design (``sgxsim.kernel.registry.names()``);
    ``policy`` is ``"none"``, ``"selinux"`` or an LSM module object.
    """

    def __init__(self, kernel: str = "linux-6.0", *, epc_pages: int = 256, sgx2: bool = True,
                 flc: bool = True, nr_cpus: int = 2, policy: Any = "none", trace: bool = False,
                 seed: int = 0, pku: bool = True, aexnotify: bool | None = None, **kernel_options: Any):
        self.trace = Trace(enabled=trace)
        self.cpu = Cpu(epc_pages, sgx2=sgx2, flc=flc, nr_cpus=nr_cpus, trace=self.trace,
                       seed=seed, pku=pku, aexnotify=aexnotify)
        cls = kernel_class(kernel)
        self.kernel = cls(self.cpu, policy=policy, trace=self.trace, **kernel_options)
        self.kernel_name = kernel

    @property
    def vfs(self):
        return self.kernel.vfs

    @property
    def processes(self) -> list[Process]:
        return list(self.kernel.tasks)

    def spawn(self, label: str = "user_t") -> Process:
        lp = self.cpu.lps[len(self.kernel.tasks) % len(self.cpu.lps)]
        return Process(self.kernel, lp, label=label)
