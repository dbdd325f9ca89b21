"""The Linux kernel's own SGX selftests, fetched and built at test time.

``make interop`` and the benchmarks run tools/testing/selftests/sgx under
`sgxsim exec`.  The source comes from Debian's ``linux-source-6.12`` package
(``apt-get download``, into a cache directory; it is GPL and never part of
this repository) and is built with its own Makefile (gcc, libssl-dev: both
installed here when missing and we are root with apt-get, like the
Makefile's sgx-header target).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "linux-source-6.12"
TREE = "linux-source-6.12"
# What test_sgx and test_encl.elf need (make interop, tests/engine and the benchmarks
# share this tree).
MEMBERS = [f"{TREE}/{p}" for p in (
    "tools/testing/selftests/sgx", "tools/testing/selftests/lib.mk",
    "tools/testing/selftests/kselftest_harness.h", "tools/testing/selftests/kselftest.h",
    "tools/testing/selftests/x86/check_cc.sh", "tools/testing/selftests/x86/trivial_64bit_program.c",
    "tools/include", "arch/x86/include", "scripts/subarch.include")]


def cache_dir() -> Path:
    """build/kernel-source of the source tree (where `make kernel-source` puts
    the package), or $SGXSIM_CACHE."""
    env = os.environ.get("SGXSIM_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    return root / "build" / "kernel-source" if (root / "pyproject.toml").exists() else \
        Path.home() / ".cache" / "sgxsim"


def _run(cmd: list[str] | str, cwd: Path | None = None, shell: bool = False) -> None:
    r = subprocess.run(cmd, cwd=cwd, shell=shell, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{cmd if shell else ' '.join(cmd)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")


def _apt_install(pkg: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{pkg} is missing (install it: apt-get install {pkg})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
    r = subprocess.run(["apt-get", "install", "-y", "-qq", pkg], capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(f"apt-get install {pkg} failed:\n{r.stderr[-2000:]}")


def _have_openssl_headers() -> bool:
    r = subprocess.run(["gcc", "-E", "-x", "c", "-"], input="#include <openssl/pem.h>\n",
                       capture_output=True, text=True)
    return r.returncode == 0


def _fetch_deb(cache: Path) -> Path:
    debs = sorted(glob.glob(str(cache / f"{PACKAGE}_*.deb")))
    if debs:
        return Path(debs[-1])
    r = subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, capture_output=True, text=True)
    if r.returncode and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        r = subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"apt-get download {PACKAGE} failed:\n{r.stderr[-2000:]}")
    return Path(sorted(glob.glob(str(cache / f"{PACKAGE}_*.deb")))[-1])


@dataclass(frozen=True)
class Selftests:
    dir: Path  # holds test_sgx and test_encl.elf (run it from here)

    @property
    def program(self) -> Path:
        return self.dir / "test_sgx"


def build_selftests(cache: Path | None = None) -> Selftests:
    """Fetch, extract and build the selftests once; later calls reuse them."""
    cache = cache or cache_dir()
    out = cache / "kselftest-sgx"
    if (out / "test_sgx").exists() and (out / "test_encl.elf").exists():
        return Selftests(out)
    cache.mkdir(parents=True, exist_ok=True)
    if not shutil.which("gcc"):
        _apt_install("gcc")
    if not _have_openssl_headers():
        _apt_install("libssl-dev")
    src = cache / TREE
    if not (src / "tools/testing/selftests/kselftest_harness.h").exists():
        deb = _fetch_deb(cache)
        _run(f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{cache}' ./usr/src/{TREE}.tar.xz",
             shell=True)
        inner = cache / "usr" / "src" / f"{TREE}.tar.xz"
        _run(["tar", "-xf", str(inner), "-C", str(cache), *MEMBERS])
        shutil.rmtree(cache / "usr")
    out.mkdir(parents=True, exist_ok=True)
    _run(["make", "-s", "-C", str(src / "tools/testing/selftests/sgx"), f"OUTPUT={out}"])
    return Selftests(out)


# A test line and its optional directive word (TAP: SKIP or the to-do one; kselftest: XFAIL, ...).
TAP_LINE = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: # ([A-Z]+)\b\s*(.*))?$")


def parse_tap(text: str) -> dict[str, str]:
    """name -> "pass" | "fail" | "skip" from kselftest TAP output."""
    out = {}
    for line in text.splitlines():
        m = TAP_LINE.match(line.strip())
        if m:
            verdict = "skip" if m.group(4) == "SKIP" else ("pass" if m.group(1) == "ok" else "fail")
            out[m.group(3)] = verdict
    return out
