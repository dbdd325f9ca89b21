"""Enclave machine code on the model (issue 9): instructions per second of
sgxsim's own enclave on the engine (every page admitted by the model's access
check, ENCLU by the model's leaves) side by side with bare Unicorn running the
same code bytes on plainly mapped memory."""

from __future__ import annotations

import struct
import tempfile
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_TLB_FILL, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_TLB_VIRTUAL

from sgxsim.exec import encl as E
from sgxsim.user import selftests as S

TITLE = "Enclave engine: real enclave code on the model vs bare Unicorn (issue 9)"
LOOPS = {E.OP_COMPUTE: (4_000_000, E.COMPUTE_INSNS, "compute loop (add, xor, dec, jnz)"),
         E.OP_TOUCH: (2_500_000, E.TOUCH_INSNS,
                      "loop loading and storing in 8 admitted EPC pages")}
SENTINEL = 0x7000_0000  # bare run: where body() returns


def _bare(env: S.Env, op: int, a: int, n: int, virtual_tlb: bool = False) -> float:
    """The enclave image's bytes in a plain Unicorn at the same addresses,
    body(op) called directly; seconds.  ``virtual_tlb``: Unicorn's virtual TLB
    mode with an identity fill, the mode the engine runs in."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    if virtual_tlb:
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)

        def identity(uc, vaddr, access, entry, _):
            entry.paddr, entry.perms = vaddr, UC_PROT_ALL
            return True

        uc.hook_add(UC_HOOK_TLB_FILL, identity)
    cpu = env.machine.cpu
    for seg in env.encl.segments:
        for off in range(0, seg.size, 4096):
            la = env.base + seg.offset + off
            pte = env.proc.mm.pgtable.get(la >> 12)
            uc.mem_map(la, 4096, UC_PROT_ALL)
            if pte:
                i = cpu.epc.index((pte >> 12 & ((1 << 40) - 1)) << 12)
                uc.mem_write(la, bytes(cpu.epc.page(i)))
    scratch = S.SCRATCH
    uc.mem_map(scratch, 4 * 4096, UC_PROT_ALL)
    uc.mem_map(SENTINEL, 4096, UC_PROT_ALL)
    uc.mem_write(env.op, struct.pack(E.OP_FORMAT, op, a, n, 0, bytes(32)))
    rsp = scratch + 4 * 4096 - 64
    uc.mem_write(rsp, SENTINEL.to_bytes(8, "little"))
    uc.reg_write(X.UC_X86_REG_RSP, rsp)
    uc.reg_write(X.UC_X86_REG_RDI, env.op)
    t = time.perf_counter()
    uc.emu_start(env.base + env.encl.symbols["body"], SENTINEL)
    return time.perf_counter() - t


def _model(env: S.Env, op: int, a: int, n: int) -> float:
    t = time.perf_counter()
    rc, _, _ = E.call(env, op, a, n)
    dt = time.perf_counter() - t
    assert rc == 0 and env.run_struct().function == 4, "the enclave did not EEXIT"
    return dt


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        elf = E.build(Path(tmp)).read_bytes()
    env = S.setup_test_encl("linux-6.0", False, elf=elf)
    rows = ["| loop | instructions | model (engine) | bare Unicorn | model / bare | target "
            "| bare Unicorn, virtual TLB | model / that |",
            "|---|---|---|---|---|---|---|---|"]
    for op, (n, per, what) in LOOPS.items():
        _model(env, op, 1, 1000)  # warm: translate the code, fault the pages in
        insns = n * per
        model = min(_model(env, op, 1, n) for _ in range(3))
        bare = min(_bare(env, op, 1, n) for _ in range(3))
        vbare = min(_bare(env, op, 1, n, virtual_tlb=True) for _ in range(3))
        rows.append(f"| {what} | {insns / 1e6:.0f} M | {insns / model / 1e6:.0f} M/s | "
                    f"{insns / bare / 1e6:.0f} M/s | {bare / model:.2f} | >= 0.33 | "
                    f"{insns / vbare / 1e6:.0f} M/s | {vbare / model:.2f} |")
    fills = env.vdso.library.fills
    t = time.perf_counter()
    calls = 2000
    for _ in range(calls):
        E.call(env, E.OP_COMPUTE, 1, 1)
    per_call = (time.perf_counter() - t) / calls
    fills_per_call = (env.vdso.library.fills - fills) / (calls + 2 * len(LOOPS) * 4)
    rows.append("")
    rows.append("| measure | value |")
    rows.append("|---|---|")
    rows.append(f"| one ecall (EENTER, a 1-iteration op, EEXIT) through the model's vDSO | "
                f"{per_call * 1e6:.0f} µs |")
    rows.append(f"| TLB fills per ecall (pages admitted by the model's check) | "
                f"{fills_per_call:.1f} |")
    note = ("\n\nBoth columns run the same code bytes of `src/sgxsim/exec/encl/sgxsim_encl.S` "
            "in the same process; the model column is one ecall through "
            "`Vdso.sgx_enter_enclave` (EENTER, TLB fills through `Cpu.translate`, EEXIT), "
            "the bare columns call `body` on memory mapped RWX up front, in Unicorn's default "
            "TLB mode and in the virtual TLB mode the engine uses (an identity fill). "
            "Best of three. The store loop runs faster on the engine than on bare Unicorn "
            "in both modes (its result is checked against a Python model of the loop in "
            "tests/engine); mapping exact rights or host memory in the bare run does not "
            "close the gap, and the cause inside Unicorn was not investigated.")
    return "\n".join(rows) + note
