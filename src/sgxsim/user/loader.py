"""The selftests' loader (tools/testing/selftests/sgx/load.c, sigstruct.c):
an enclave ELF to segments and SECINFO flags, MRENCLAVE and a signed
SIGSTRUCT, and encl_build() through /dev/sgx_enclave."""

from __future__ import annotations

import errno
import io
import struct
from dataclasses import dataclass, field
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sgxsim.hw import sigstruct as S
from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_MASK, PAGE_SIZE, Attribute, PageType
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Secinfo, Secs
from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDWR,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)

ENCL_HEAP_SIZE_DEFAULT = PAGE_SIZE
SECINFO_TCS = PageType.PT_TCS << 8
SECINFO_REG = PageType.PT_REG << 8


@dataclass
class Segment:
    """struct encl_segment."""

    offset: int
    size: int
    prot: int
    flags: int  # SECINFO flags
    measure: bool
    src: bytes | None = None  # page contents (None: the anonymous heap source)


@dataclass
class Encl:
    """struct encl."""

    segments: list[Segment]
    src_size: int
    encl_size: int
    symbols: dict[str, int]
    mrenclave: bytes = b""
    sigstruct: bytes = b""
    fd: int = -1
    encl_base: int = 0
    heap_src: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def encl_load(elf_bytes: bytes, heap_size: int = ENCL_HEAP_SIZE_DEFAULT) -> Encl:
    """encl_load(): segments from PT_LOAD headers (the first must be RW: the
    TCS segment), then the unmeasured heap; SIZE is a power of two.  Bytes
    that are no enclave ELF are a ValueError, and so is what load.c would
    read beyond the file (a segment, a header table) or a segment below the
    TCS segment (a negative enclave offset)."""
    try:
        return _encl_load(elf_bytes, heap_size)
    except ELFError as e:
        raise ValueError(f"not a readable ELF file: {e}") from None
    except OverflowError:  # pyelftools seeking to an offset beyond any file
        raise ValueError("not a readable ELF file: an offset in its headers lies far past its end") from None


def _encl_load(elf_bytes: bytes, heap_size: int) -> Encl:
    elf = ELFFile(io.BytesIO(elf_bytes))
    hdr = elf.header
    # encl_load() reads the program headers, encl_get_entry() the section
    # headers, straight from the mapped file: both tables must lie in it.
    for what, off, num, entsize in (("program", hdr["e_phoff"], hdr["e_phnum"], hdr["e_phentsize"]),
                                    ("section", hdr["e_shoff"], hdr["e_shnum"], hdr["e_shentsize"])):
        if off + num * entsize > len(elf_bytes):
            raise ValueError(f"not a readable ELF file: the {what} header table (e_{what[0]}hoff {off:#x}, "
                             f"{num} entries) lies past the end of the file ({len(elf_bytes):#x} bytes)")
    # encl_map_bin() maps the whole file: past its end the last page reads
    # as zeros, past that page encl_measure() would fault (SIGBUS).
    mapped = (len(elf_bytes) + PAGE_SIZE - 1) & PAGE_MASK
    segments: list[Segment] = []
    src_offset = 0
    for j, ph in enumerate(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"):
        pf = ph["p_flags"]
        if pf & ~0x7:
            raise ValueError(f"segment {j}: unsupported p_flags {pf:#x}")
        prot = (PROT_READ if pf & 4 else 0) | (PROT_WRITE if pf & 2 else 0) | (
            PROT_EXEC if pf & 1 else 0)
        if j == 0:
            if prot != PROT_READ | PROT_WRITE:
                raise ValueError("the first segment must be the RW TCS segment")
            flags = SECINFO_TCS
            src_offset = ph["p_offset"] & ~(PAGE_SIZE - 1)
        else:
            flags = SECINFO_REG | prot  # PROT_* equal the SECINFO R/W/X bits
        # The segment's pages are the file's pages from p_offset's page on
        # (seg->src = encl->src + seg->offset), p_filesz rounded up.
        start = ph["p_offset"] & PAGE_MASK
        size = (ph["p_filesz"] + PAGE_SIZE - 1) & PAGE_MASK
        if start + size > mapped:
            raise ValueError(f"segment {j}: p_offset {ph['p_offset']:#x} + p_filesz {ph['p_filesz']:#x} "
                             f"lies past the end of the file ({len(elf_bytes):#x} bytes)")
        if start < src_offset:
            # seg->offset would be negative: no enclave offset (ADD_PAGES: EINVAL).
            raise ValueError(f"segment {j}: p_offset {ph['p_offset']:#x} lies below the TCS segment's "
                             f"({src_offset:#x}): a negative enclave offset")
        data = elf_bytes[start : start + size].ljust(size, b"\0")
        segments.append(Segment(start - src_offset, size, prot, flags, True, data))
    if not segments:
        raise ValueError("no PT_LOAD segment: not an enclave ELF")
    last = segments[-1]
    segments.append(Segment(last.offset + last.size, heap_size, PROT_READ | PROT_WRITE,
                            SECINFO_REG | PROT_READ | PROT_WRITE, False, None))
    src_size = segments[-1].offset + segments[-1].size
    encl_size = PAGE_SIZE
    while encl_size < src_size:
        encl_size <<= 1
    # encl_get_entry(): the first section of type SHT_SYMTAB.
    symtab = next((sec for sec in elf.iter_sections() if sec["sh_type"] == "SHT_SYMTAB"), None)
    symbols = {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name} if symtab else {}
    return Encl(segments, src_size, encl_size, symbols)


def encl_measure(encl: Encl, key: Any) -> None:
    """encl_measure(): MRENCLAVE record by record, then the signed SIGSTRUCT."""
    m = Measurement()
    m.ecreate(encl.encl_size, 1)
    for seg in encl.segments:
        for off in range(0, seg.size, PAGE_SIZE):
            m.eadd(seg.offset + off, seg.flags)
            if seg.measure:
                m.eextend_page(seg.offset + off, seg.src[off : off + PAGE_SIZE])
    encl.mrenclave = m.digest()
    encl.sigstruct = S.sign(S.build(encl.mrenclave), key).pack()


def _ioctl(proc: Any, fd: int, cmd: int, fields: bytes) -> bytearray:
    buf = bytearray(fields)
    proc.ioctl(fd, cmd, buf)
    return buf


def encl_build(proc: Any, encl: Encl, scratch: int) -> None:
    """encl_build(): reserve 2x SIZE, align the base, CREATE, ADD_PAGES per
    segment, INIT.  ``scratch`` is a user buffer of at least SIGSTRUCT size
    for the structures passed by pointer; sources are written there too."""
    fd = proc.open("/dev/sgx_enclave", O_RDWR)
    encl.fd = fd
    # The noexec-/dev probes of load.c.
    for prot in (PROT_READ, PROT_EXEC):
        a = proc.mmap(0, PAGE_SIZE, prot, MAP_SHARED, fd, 0)
        proc.munmap(a, PAGE_SIZE)
    area = proc.mmap(0, encl.encl_size * 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    base = (area + encl.encl_size - 1) & ~(encl.encl_size - 1)
    if base > area:
        proc.munmap(area, base - area)
    if area + encl.encl_size * 2 > base + encl.encl_size:
        proc.munmap(base + encl.encl_size, area + encl.encl_size * 2 - base - encl.encl_size)
    encl.encl_base = base
    secs = Secs(size=encl.encl_size, base=base, ssa_frame_size=1,
                attributes=Attribute.MODE64BIT, xfrm=3)
    proc.poke(scratch, secs.pack())
    _ioctl(proc, fd, uapi.SGX_IOC_ENCLAVE_CREATE, struct.pack("<Q", scratch))
    si_addr = scratch + PAGE_SIZE
    for seg in encl.segments:
        if seg.src is None:
            src = proc.mmap(0, seg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            encl.heap_src = src
        else:
            src = proc.mmap(0, seg.size, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS)
            proc.poke(src, seg.src)
        proc.poke(si_addr, Secinfo(flags=seg.flags).pack())
        arg = uapi.SgxEnclaveAddPages(src=src, offset=seg.offset, length=seg.size,
                                      secinfo=si_addr, flags=uapi.SGX_PAGE_MEASURE if seg.measure
                                      else 0)
        out = uapi.SgxEnclaveAddPages.unpack(_ioctl(proc, fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES,
                                                    arg.pack()))
        if out.count != seg.size:
            raise refuse(errno.EIO, "loader", "encl_build", "ADD_PAGES added less than asked")
        if seg.src is not None:
            proc.munmap(src, seg.size)
    sig_addr = scratch + 2 * PAGE_SIZE
    proc.poke(sig_addr, encl.sigstruct)
    _ioctl(proc, fd, uapi.SGX_IOC_ENCLAVE_INIT, struct.pack("<Q", sig_addr))


def map_segments(proc: Any, encl: Encl) -> None:
    """setup_test_encl(): map every segment MAP_SHARED|MAP_FIXED with its prot."""
    for seg in encl.segments:
        proc.mmap(encl.encl_base + seg.offset, seg.size, seg.prot, MAP_SHARED | MAP_FIXED, encl.fd, 0)
