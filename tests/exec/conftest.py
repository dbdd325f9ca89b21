"""Native programs of the exec tests, built once per session with gcc."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
NATIVE = HERE / "native"
PROGRAMS = ("badinput", "rawsyscall", "killme", "cpuid", "noexec", "segv", "sigmask",
            "sigmore", "devfile")
# sigmask.c fortified: its siglongjmp() calls are glibc's __longjmp_chk(); devfile.c's
# read() and pread() are __read_chk() and __pread_chk().
FLAGS = {"sigmask": ["-O2", "-D_FORTIFY_SOURCE=2"], "sigmore": ["-O2"],
         "devfile": ["-O2", "-D_FORTIFY_SOURCE=2"]}


@pytest.fixture(scope="session")
def native(tmp_path_factory) -> dict[str, Path]:
    """name -> executable; "static" is cpuid.c linked statically; "edmm" the Built loader."""
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the native test programs")
    out = tmp_path_factory.mktemp("native")
    progs = {}
    for name in PROGRAMS:
        exe = out / name
        subprocess.run(["gcc", "-Wall", "-Werror", "-pthread", *FLAGS.get(name, []), "-o", str(exe),
                        str(NATIVE / f"{name}.c")], check=True)
        progs[name] = exe
    static = out / "static"
    r = subprocess.run(["gcc", "-static", "-o", str(static), str(NATIVE / "cpuid.c")])
    if r.returncode == 0:
        progs["static"] = static
    import edmm

    progs["edmm"] = edmm.build(out)
    return progs
