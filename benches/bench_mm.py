"""The mm model against the kernel of this machine, side by side: the real
side is a small C program the benchmark builds, so the kernel is timed without
ctypes; the model side runs the same calls through Process."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from sgxsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_PRIVATE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Machine,
)

TITLE = "Memory manager (issue 3)"
N = 20000
BASE = 0x2000_0000_0000

C_SRC = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
  const int n = %(n)d; const long pg = 4096; char *base = (char *)%(base)dUL;
  char *a = mmap(base, 3 * pg, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    mprotect(a + pg, pg, PROT_READ);
    mprotect(a + pg, pg, PROT_READ | PROT_WRITE);
  }
  double split = (now() - t0) / (2.0 * n);
  t0 = now();
  for (int i = 0; i < n; i++) { char *b = mmap(base + 64 * pg, 16 * pg, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0); munmap(b, 16 * pg); }
  double mm16 = (now() - t0) / n;
  char *c = mmap(base + 128 * pg, (long)n * pg, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  t0 = now();
  for (int i = 0; i < n; i++) c[(long)i * pg] = 1;
  double touch = (now() - t0) / n;
  printf("%%.9f %%.9f %%.9f\n", split, mm16, touch);
  return 0;
}
"""


def real_side() -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d, "mm.c"), Path(d, "mm")
        src.write_text(C_SRC % {"n": N, "base": BASE})
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    a, b, c = (float(x) for x in out.split())
    return a, b, c


def model_side() -> dict[str, float]:
    m = Machine(kernel="linux")
    p = m.spawn()
    pg = 4096
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    a = p.mmap(BASE, 3 * pg, PROT_READ | PROT_WRITE, anon)
    n = N // 4
    t0 = time.perf_counter()
    for _ in range(n):
        p.mprotect(a + pg, pg, PROT_READ)
        p.mprotect(a + pg, pg, PROT_READ | PROT_WRITE)
    split = (time.perf_counter() - t0) / (2 * n)
    t0 = time.perf_counter()
    for _ in range(n):
        b = p.mmap(BASE + 64 * pg, 16 * pg, PROT_READ | PROT_WRITE, anon)
        p.munmap(b, 16 * pg)
    mm16 = (time.perf_counter() - t0) / n
    c = p.mmap(BASE + 128 * pg, n * pg, PROT_READ | PROT_WRITE, anon)
    t0 = time.perf_counter()
    for i in range(n):
        p.poke(c + i * pg, b"\1")
    touch = (time.perf_counter() - t0) / n
    # A 64 GiB PROT_NONE reservation with nothing populated, against one page.
    big = p.mmap(BASE + (1 << 30), 64 << 30, PROT_NONE, anon | MAP_NORESERVE)
    t0 = time.perf_counter()
    for _ in range(200):
        p.mprotect(big, 64 << 30, PROT_READ)
        p.mprotect(big, 64 << 30, PROT_NONE)
    huge = (time.perf_counter() - t0) / 400
    return {"split": split, "mm16": mm16, "touch": touch, "huge": huge}


def run() -> str:
    r_split, r_mm16, r_touch = real_side()
    md = model_side()
    rows = [
        "| operation | real kernel | model | model / real | target |",
        "|---|---|---|---|---|",
        f"| mprotect of one page splitting a VMA | {r_split * 1e6:.2f} µs | "
        f"{md['split'] * 1e6:.2f} µs | {md['split'] / r_split:.1f}x | <= 10x |",
        f"| mmap + munmap of 16 pages | {r_mm16 * 1e6:.2f} µs | {md['mm16'] * 1e6:.2f} µs | "
        f"{md['mm16'] / r_mm16:.1f}x | <= 10x |",
        f"| first-touch fault | {r_touch * 1e6:.2f} µs | {md['touch'] * 1e6:.2f} µs | "
        f"{md['touch'] / r_touch:.1f}x | <= 10x |",
        f"| model: mprotect over 64 GiB PROT_NONE / one-page mprotect | | "
        f"{md['huge'] * 1e6:.2f} µs vs {md['split'] * 1e6:.2f} µs | "
        f"{md['huge'] / md['split']:.2f}x | <= 2x |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    print(run())
