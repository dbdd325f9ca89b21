"""The native test programs (tests/exec/native) and their Python twin.

``build(tmp)`` compiles the loader and the enclave with gcc and signs the
enclave with sgxsim's own signer; ``run_python`` runs a loader script on the
Python API (the same enclave machine code on the same engine) and prints the
lines the C loader prints, so the two outputs compare line for line.
"""

from __future__ import annotations

import errno
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgxsim.hw import uapi
from sgxsim.hw.consts import Enclu
from sgxsim.hw.sigstruct import generate_key
from sgxsim.kernel.mm.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from sgxsim.machine import Machine
from sgxsim.user.loader import encl_build, encl_load, encl_measure, map_segments
from sgxsim.user.vdso import Vdso

NATIVE = Path(__file__).with_name("native")
SCRIPT = NATIVE / "edmm.script"
HEAP = 0x1000
OPS = ("nop", "eaccept", "emodpe", "read", "write", "init_tcs", "spin")
SCRATCH = 0x6000_0000


@dataclass(frozen=True)
class Built:
    loader: Path
    enclave: Path
    sigstruct: Path

    def argv(self, script: Path = SCRIPT) -> list[str]:
        return [str(self.loader), str(self.enclave), str(self.sigstruct), hex(HEAP), str(script)]


def build(tmp: Path) -> Built:
    """gcc the loader and the enclave; MRENCLAVE and SIGSTRUCT from sgxsim's signer."""
    loader, elf, sig = tmp / "loader", tmp / "encl.elf", tmp / "encl.sig"
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", str(loader), str(NATIVE / "loader.c"),
                    "-lpthread"], check=True)
    subprocess.run(["gcc", "-nostdlib", "-static", f"-Wl,-T,{NATIVE / 'encl.lds'}",
                    "-Wl,--build-id=none", "-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack",
                    "-o", str(elf), str(NATIVE / "encl.S")], check=True)
    encl = encl_load(elf.read_bytes(), HEAP)
    encl_measure(encl, generate_key())
    sig.write_bytes(encl.sigstruct)
    return Built(loader, elf, sig)


def _hx(v: int) -> str:
    return f"{v:#x}" if v else "0"  # C's %#x


def _prot(s: str) -> int:
    return ((PROT_READ if "r" in s else 0) | (PROT_WRITE if "w" in s else 0)
            | (PROT_EXEC if "x" in s else 0))


def run_python(built: Built, runner: Any, kernel: str = "linux-6.0", sgx2: bool = True,
               script: Path = SCRIPT) -> list[str]:
    """The C loader's steps on the Python API; its output lines."""
    m = Machine(kernel, sgx2=sgx2)
    proc = m.spawn()
    encl = encl_load(built.enclave.read_bytes(), HEAP)
    encl.sigstruct = built.sigstruct.read_bytes()
    proc.mmap(SCRATCH, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    encl_build(proc, encl, SCRATCH + 4096)
    map_segments(proc, encl)
    base, fd = encl.encl_base, encl.fd
    vdso = Vdso(proc, runner)
    out = [f"build: size {encl.encl_size:#x}"]
    op_addr, run_addr = SCRATCH, SCRATCH + 0x100

    def sys(fn: Any, *args: Any) -> str:
        try:
            fn(*args)
            return " 0"
        except OSError as e:
            return f" -1 {errno.errorcode[e.errno]}"

    def ioctl(cmd: int, cls: Any, **fields: int) -> tuple[int, str, Any]:
        buf = bytearray(cls(**fields).pack())
        try:
            proc.ioctl(fd, cmd, buf)
            ret, name = 0, "-"
        except OSError as e:
            ret, name = -1, errno.errorcode[e.errno]
        return ret, name, cls.unpack(bytes(buf))

    for raw in script.read_text().splitlines():
        f = raw.split()
        if not f or f[0].startswith("#"):
            continue
        cmd, line = f[0], raw.strip()
        if cmd == "enter":
            tcs, op, a, b = int(f[1], 16), f[2], int(f[3], 16), int(f[4], 16)
            proc.poke(op_addr, struct.pack("<4Q", OPS.index(op), base + a, b, 0))
            proc.poke(run_addr, uapi.SgxEnclaveRun(tcs=base + tcs).pack())
            ret = vdso.sgx_enter_enclave(op_addr, 0, 0, int(Enclu.EENTER), 0, 0, run_addr)
            run = uapi.SgxEnclaveRun.unpack(proc.peek(run_addr, uapi.SgxEnclaveRun.SIZE))
            opret = struct.unpack("<4Q", proc.peek(op_addr, 32))[3]
            addr = run.exception_addr - base if run.exception_addr else 0
            out.append(f"{line} -> ret {ret} function {run.function} vector {run.exception_vector} "
                       f"error_code {_hx(run.exception_error_code)} addr {_hx(addr)} "
                       f"op.ret {_hx(opret)}")
            continue
        off, length = int(f[1], 16), int(f[2], 16)
        arg = f[3] if len(f) > 3 else ""
        if cmd == "mmap":
            res = sys(proc.mmap, base + off, length, _prot(arg), MAP_SHARED | MAP_FIXED, fd, 0)
        elif cmd == "mprotect":
            res = sys(proc.mprotect, base + off, length, _prot(arg))
        elif cmd == "munmap":
            res = sys(proc.munmap, base + off, length)
        elif cmd == "restrict":
            ret, name, s = ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
                                 uapi.SgxEnclaveRestrictPermissions, offset=off, length=length,
                                 permissions=_prot(arg))
            res = f" {ret} {name} result {s.result} count {_hx(s.count)}"
        elif cmd == "modtype":
            ret, name, s = ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, uapi.SgxEnclaveModifyTypes,
                                 offset=off, length=length, page_type=int(arg, 0))
            res = f" {ret} {name} result {s.result} count {_hx(s.count)}"
        elif cmd == "remove":
            ret, name, s = ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, uapi.SgxEnclaveRemovePages,
                                 offset=off, length=length)
            res = f" {ret} {name} count {_hx(s.count)}"
        else:
            res = " unknown step"
        out.append(f"{line} ->{res}")
    return out
