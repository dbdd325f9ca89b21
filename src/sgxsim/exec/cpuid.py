"""CPUID as the modelled CPU answers it.

CPUID cannot be made to fault on this host (``arch_prctl(ARCH_SET_CPUID)``
needs CPUID faulting, which virtual machines rarely offer: ENODEV), so the
bridge rewrites the program's own CPUID instructions before ``main()``: a
disassembler (Capstone) sweeps the executable's code sections, and every
``cpuid`` (0f a2) becomes ``ud2`` (0f 0b), which is as long and always
raises SIGILL.  The preload library's SIGILL handler asks the server, which
answers leaf 0x12 (SGX capabilities, EPC sections) and the SGX bits of leaf
7 from the model's CPU and every other leaf from the real CPU.

Only the executable is patched (not its shared libraries): libc's own CPUID
use (ld.so's feature detection) concerns no SGX leaf.
"""

from __future__ import annotations

import os
from functools import lru_cache

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

CPUID = b"\x0f\xa2"
UD2 = b"\x0f\x0b"
SGX_LEAF = 0x12
FEATURE_LEAF = 7
LEAF7_EBX_SGX = 1 << 2
LEAF7_ECX_SGX_LC = 1 << 30


@lru_cache(maxsize=32)
def cpuid_sites(path: str, mtime_ns: int) -> tuple[int, ...]:
    """Link-time addresses of the CPUID instructions in ``path``'s code."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.skipdata = True  # keep sweeping past bytes that are not instructions
    out = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR or sec["sh_type"] != "SHT_PROGBITS":
                continue
            code = sec.data()
            if CPUID not in code:
                continue
            for insn in cs.disasm_lite(code, sec["sh_addr"]):
                if insn[2] == "cpuid":
                    out.append(insn[0])
    return tuple(out)


def load_bias(path: str, maps: list) -> int:
    """Where ``path`` was loaded: 0 for ET_EXEC, else the start of its first mapping."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf["e_type"] == "ET_EXEC":
            return 0
        first = min(s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
    starts = [m.start for m in maps if m.path == path]
    if not starts:
        raise ValueError(f"{path} is not mapped")
    return min(starts) - (first & ~0xFFF)


def patch_cpuid(pid: int, mem, maps: list) -> set[int]:
    """Rewrite the executable's CPUID instructions into UD2; return their addresses."""
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        sites = cpuid_sites(exe, os.stat(exe).st_mtime_ns)
        if not sites:
            return set()
        bias = load_bias(exe, maps)
    except (OSError, ELFError, ValueError):
        return set()
    patched = set()
    for va in sites:
        addr = bias + va
        if mem.read_real(addr, 2) == CPUID:
            mem.write_real(addr, UD2)
            patched.add(addr)
    return patched


def answer(cpu, leaf: int, subleaf: int, real: tuple[int, int, int, int]) -> tuple[int, ...]:
    """CPUID(leaf, subleaf) of the modelled CPU: leaf 0x12 and leaf 7's SGX
    bits from the model, the rest from the real CPU (``real``)."""
    if leaf == SGX_LEAF:
        return tuple(cpu.cpuid(leaf, subleaf))
    if leaf == FEATURE_LEAF and subleaf == 0:
        _, mebx, mecx, _ = cpu.cpuid(leaf, subleaf)
        eax, ebx, ecx, edx = real
        ebx = (ebx & ~LEAF7_EBX_SGX) | (mebx & LEAF7_EBX_SGX)
        ecx = (ecx & ~LEAF7_ECX_SGX_LC) | (mecx & LEAF7_ECX_SGX_LC)
        return eax, ebx, ecx, edx
    return real
