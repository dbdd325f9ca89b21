"""sgxsim's own test enclave (``sgxsim_encl.S``, linked by ``encl.lds``):
real x86-64 machine code for the enclave engine, assembled with the system's
gcc and ld at build time.

One ecall is one op: RDI points at a 64-byte op struct in untrusted memory,
``{u64 type; u64 a; u64 b; u64 ret; u8 out[32]}``; see the ``OP_*`` numbers.
Layout (enclave offsets): TCS1 0x0, TCS2 0x1000, text 0x2000, data from
0x3000 (SSA1, SSA2, two stacks, TLS1, TLS2 at the TCSs' OGSBASE, a scratch
page for EGETKEY/EREPORT, an 8-page ``buffer``), then the loader's heap page.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

OP_COMPUTE = 0  # ret = a loop of b iterations (4 instructions each) from a
OP_TOUCH = 1  # b iterations (6 instructions each) loading and storing in buffer's 8 pages
OP_PUT = 2  # *a = b
OP_GET = 3  # ret = *a
OP_EACCEPT = 4  # ret = EACCEPT(SECINFO.FLAGS = b, page a)
OP_EMODPE = 5  # EMODPE(SECINFO.FLAGS = b, page a)
OP_EGETKEY = 6  # ret = EGETKEY(KEYNAME = a); out[:16] = the key
OP_EREPORT = 7  # EREPORT(zero TARGETINFO and REPORTDATA); out[:32] = MRENCLAVE
OP_TLS = 8  # ret = the u64 at GS:0 (1111h on TCS1, 2222h on TCS2)
OP_SYSCALL, OP_INT80, OP_CPUID, OP_BADLEAF, OP_UD2, OP_DIVZERO = range(9, 15)
OP_EACCEPTCOPY = 15  # ret = EACCEPTCOPY(SECINFO.FLAGS = b, page a, source: buffer's first page)
OP_HLT = 16  # HLT: privileged, #GP(0) at CPL 3
COMPUTE_INSNS, TOUCH_INSNS = 4, 6  # instructions per loop iteration
OP_FORMAT = "<QQQQ32s"
OP_SIZE = struct.calcsize(OP_FORMAT)


def build(out_dir: Path) -> Path:
    """Assemble and link the enclave into ``out_dir/sgxsim_encl.elf``."""
    for tool in ("gcc", "ld"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building sgxsim's test enclave needs {tool} (Debian: gcc, binutils)")
    out_dir.mkdir(parents=True, exist_ok=True)
    obj, elf = out_dir / "sgxsim_encl.o", out_dir / "sgxsim_encl.elf"
    subprocess.run(["gcc", "-c", str(HERE / "sgxsim_encl.S"), "-o", str(obj)], check=True)
    subprocess.run(["ld", "-T", str(HERE / "encl.lds"), "--build-id=none", "-o", str(elf),
                    str(obj)], check=True)
    return elf


def call(env: Any, op: int, a: int = 0, b: int = 0, function: int | None = None
         ) -> tuple[int, int, bytes]:
    """One ecall through ``env``'s vDSO (a :class:`sgxsim.user.selftests.Env`):
    returns (the vDSO's return value, op.ret, op.out)."""
    from sgxsim.user.vdso import EENTER

    env.proc.poke(env.op, struct.pack(OP_FORMAT, op, a, b, 0, bytes(32)))
    rc = env.vdso.sgx_enter_enclave(env.op, 0, 0, EENTER if function is None else function,
                                    0, 0, env.run)
    _, _, _, ret, out = struct.unpack(OP_FORMAT, env.proc.peek(env.op, OP_SIZE))
    return rc, ret, out
