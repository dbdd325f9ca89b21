"""Issue 12: costs that must follow the work, not the address range.

* munmap of a populated 1 GiB mapping against its MAP_POPULATE, in one run
  (munmap removes the PTEs in one slice: linear, not quadratic);
* a 1 TiB PROT_EXEC mapping of /dev/sgx_enclave against a one-page one, on
  every design (nothing may be allocated or walked per page of the range).
"""

from __future__ import annotations

import os
import time

from sgxsim import (
    MAP_ANONYMOUS,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Machine,
)
from sgxsim.kernel import registry

TITLE = "Robustness (issue 12)"
GIB, TIB = 1 << 30, 1 << 40
REPS = 2000


def _populate_vs_munmap() -> tuple[float, float, float]:
    p = Machine(kernel="linux").spawn()
    t = time.perf_counter()
    a = p.mmap(0, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE)
    populate = time.perf_counter() - t
    t = time.perf_counter()
    p.munmap(a, GIB)
    munmap = time.perf_counter() - t
    p.mmap(a, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE)
    t = time.perf_counter()
    p.exit()
    return populate, munmap, time.perf_counter() - t


def _sgx_mmap(kernel: str, length: int) -> float:
    """Seconds per mmap + munmap of ``length`` of a fresh /dev/sgx_enclave fd."""
    p = Machine(kernel=kernel).spawn()
    fd = p.open("/dev/sgx_enclave", os.O_RDWR)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(REPS):
            a = p.mmap(0, length, PROT_READ | PROT_EXEC, MAP_SHARED, fd)
            p.munmap(a, length)
        best = min(best, (time.perf_counter() - t) / REPS)
    return best


def run() -> str:
    populate, munmap, exit_ = _populate_vs_munmap()
    rows = ["| operation | seconds | / MAP_POPULATE | target |", "|---|---|---|---|",
            f"| mmap 1 GiB MAP_POPULATE (262,144 pages) | {populate:.2f} | 1.00x | |",
            f"| munmap of it | {munmap:.2f} | {munmap / populate:.2f}x | <= 1x |",
            f"| exit with it mapped | {exit_:.2f} | {exit_ / populate:.2f}x | <= 1x |",
            "", "| design | one page | 1 TiB | 1 TiB / one page | target |", "|---|---|---|---|---|"]
    for name in registry.names():
        if not hasattr(Machine(kernel=name).kernel, "sgx"):
            continue
        one, big = _sgx_mmap(name, 4096), _sgx_mmap(name, TIB)
        rows.append(f"| {name} | {one * 1e6:.1f} µs | {big * 1e6:.1f} µs | {big / one:.2f}x | <= 2x |")
    rows.append("")
    rows.append(f"PROT_READ|PROT_EXEC, MAP_SHARED, of a freshly opened /dev/sgx_enclave, mmap + munmap, "
                f"best of 3 x {REPS}.")
    return "\n".join(rows)
