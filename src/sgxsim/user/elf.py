"""A minimal ELF64 writer for enclave images: PT_LOAD segments linked at 0,
section headers for them, and a symbol table (what load.c and main.c read)."""

from __future__ import annotations

import struct

PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")


def _prot_to_pflags(prot: int) -> int:
    return (PF_R if prot & 1 else 0) | (PF_W if prot & 2 else 0) | (PF_X if prot & 4 else 0)


def write_elf(segments: list[tuple[str, int, int, bytes]], symbols: dict[str, int]) -> bytes:
    """``segments``: (name, vaddr, prot, bytes), page aligned, in order."""
    nseg = len(segments)
    ph_off = _EHDR.size
    data_off = (ph_off + nseg * _PHDR.size + 0xFFF) & ~0xFFF
    body = bytearray()
    phdrs, placed = [], []
    for name, vaddr, prot, data in segments:
        off = data_off + len(body)
        body += data
        body += bytes((-len(body)) % 0x1000)
        phdrs.append(_PHDR.pack(PT_LOAD, _prot_to_pflags(prot), off, vaddr, vaddr, len(data),
                                len(data), 0x1000))
        placed.append((name, off, vaddr, prot, len(data)))
    # .strtab and .symtab
    strtab = bytearray(b"\0")
    syms = bytearray(_SYM.pack(0, 0, 0, 0, 0, 0))
    for name, value in sorted(symbols.items(), key=lambda kv: kv[1]):
        idx = len(strtab)
        strtab += name.encode() + b"\0"
        syms += _SYM.pack(idx, 0x10, 0, 1, value, 0)  # STB_GLOBAL, STT_NOTYPE, in section 1
    shstr = bytearray(b"\0")

    def shname(n: str) -> int:
        i = len(shstr)
        shstr.extend(n.encode() + b"\0")
        return i

    sections = [_SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    for name, off, vaddr, prot, size in placed:
        fl = SHF_ALLOC | (SHF_WRITE if prot & 2 else 0) | (SHF_EXECINSTR if prot & 4 else 0)
        sections.append(_SHDR.pack(shname("." + name), SHT_PROGBITS, fl, vaddr, off, size, 0, 0,
                                   0x1000, 0))
    tail_off = data_off + len(body)
    sym_off = tail_off
    str_off = sym_off + len(syms)
    strtab_index = len(sections) + 1
    sections.append(_SHDR.pack(shname(".symtab"), SHT_SYMTAB, 0, 0, sym_off, len(syms),
                               strtab_index, 1, 8, _SYM.size))
    sections.append(_SHDR.pack(shname(".strtab"), SHT_STRTAB, 0, 0, str_off, len(strtab), 0, 0,
                               1, 0))
    shstr_name = shname(".shstrtab")
    shstr_off = str_off + len(strtab)
    sections.append(_SHDR.pack(shstr_name, SHT_STRTAB, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0))
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = _EHDR.pack(ident, 2, 62, 1, 0, ph_off, sh_off, 0, _EHDR.size, _PHDR.size, nseg,
                      _SHDR.size, len(sections), len(sections) - 1)
    out = bytearray(ehdr) + b"".join(phdrs)
    out += bytes(data_off - len(out))
    out += body + syms + strtab + shstr
    out += bytes(sh_off - len(out))
    out += b"".join(sections)
    return bytes(out)
