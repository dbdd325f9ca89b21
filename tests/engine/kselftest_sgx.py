"""The kernel's SGX selftest enclave (tools/testing/selftests/sgx/test_encl.elf),
built at test time from Debian's linux-source-6.12 with the selftests' own
Makefile.  The package is fetched by `make kernel-source` into
build/kernel-source (or here, when root); nothing of it is committed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "kernel-source"
PKG = "linux-source-6.12"
SELFTESTS = "tools/testing/selftests"
# What the test_encl.elf target of tools/testing/selftests/sgx/Makefile reads.
MEMBERS = (f"{SELFTESTS}/sgx", f"{SELFTESTS}/lib.mk", f"{SELFTESTS}/x86/check_cc.sh",
           f"{SELFTESTS}/x86/trivial_64bit_program.c", "tools/include", "scripts/subarch.include",
           "arch/x86/include/asm/sgx.h", "arch/x86/include/asm/enclu.h",
           "arch/x86/include/uapi/asm/sgx.h")


class Unavailable(Exception):
    """The kernel source could not be fetched (the only reason to skip)."""


def _deb() -> Path:
    debs = sorted(CACHE.glob(f"{PKG}_*.deb"))
    if not debs and os.geteuid() == 0 and shutil.which("apt-get"):
        CACHE.mkdir(parents=True, exist_ok=True)
        for cmd in (["apt-get", "download", "-qq", PKG], ["apt-get", "update", "-qq"],
                    ["apt-get", "download", "-qq", PKG]):
            subprocess.run(cmd, cwd=CACHE, capture_output=True)
            debs = sorted(CACHE.glob(f"{PKG}_*.deb"))
            if debs:
                break
    if not debs:
        raise Unavailable(f"{PKG} is not in {CACHE} and could not be downloaded (run make "
                          "kernel-source as root)")
    return debs[-1]


def source_tree() -> Path:
    """build/kernel-source/linux-source-6.12 with the members the build needs."""
    tree = CACHE / PKG
    if (tree / SELFTESTS / "sgx" / "Makefile").exists():
        return tree
    deb = _deb()
    work = CACHE / "extract"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                          capture_output=True).stdout
    (work / "data.tar").write_bytes(data)
    with tarfile.open(work / "data.tar") as t:
        t.extract(f"./usr/src/{PKG}.tar.xz", work, filter="data")
    src = work / "usr" / "src" / f"{PKG}.tar.xz"
    subprocess.run(["tar", "-xf", str(src), "-C", str(CACHE)] + [f"{PKG}/{m}" for m in MEMBERS],
                   check=True)
    shutil.rmtree(work)
    return tree


def test_encl_elf() -> Path:
    """Build test_encl.elf with the selftests' Makefile (its ENCL_CFLAGS and
    linker script) and return its path."""
    tree = source_tree()
    out = CACHE / "out"
    out.mkdir(exist_ok=True)
    elf = out / "test_encl.elf"
    if not elf.exists():
        subprocess.run(["make", "-s", "-C", str(tree / SELFTESTS / "sgx"), f"OUTPUT={out}",
                        str(elf)], check=True, capture_output=True)
    return elf
