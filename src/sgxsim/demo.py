"""A small enclave of sgxsim's own making, with deterministic contents, and
its measurement and SIGSTRUCT.

Layout (SECS.SIZE 0x4000, SSAFRAMESIZE 1), in EADD order:

======  ==========  ===========  =====================================
offset  type        permissions  contents
======  ==========  ===========  =====================================
0x0000  PT_TCS      (none)       TCS: OSSA 0x1000, NSSA 1, OENTRY 0x2000
0x1000  PT_REG      RW           SSA frame (zero)
0x2000  PT_REG      RX           code: ``mov eax, EEXIT; enclu``
0x3000  PT_REG      RW           data: byte i is ``(7*i + 3) & 0xff``
======  ==========  ===========  =====================================

Every page is measured (EADD, then sixteen EEXTENDs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sgxsim.hw.consts import (
    PAGE_SIZE,
    SECINFO_PERM_MASK,
    SECINFO_PT_MASK,
    SECINFO_PT_SHIFT,
    Enclu,
    PageType,
    SecinfoFlags,
    secinfo_flags,
)
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Tcs

SIZE = 0x4000
SSA_FRAME_SIZE = 1
ENTRY = 0x2000


@dataclass(frozen=True, slots=True)
class DemoPage:
    offset: int
    secinfo_flags: int
    data: bytes
    measure: bool = True


def _code_page() -> bytes:
    # mov eax, imm32 (EEXIT) ; enclu -- then int3 padding.
    code = b"\xb8" + struct.pack("<I", Enclu.EEXIT) + b"\x0f\x01\xd7"
    return code + b"\xcc" * (PAGE_SIZE - len(code))


def _data_page() -> bytes:
    return bytes((7 * i + 3) & 0xFF for i in range(PAGE_SIZE))


def demo_pages() -> list[DemoPage]:
    """The pages of the demo enclave, in EADD order."""
    rw = SecinfoFlags.R | SecinfoFlags.W
    rx = SecinfoFlags.R | SecinfoFlags.X
    tcs = Tcs(ossa=0x1000, nssa=1, oentry=ENTRY).pack()
    return [
        DemoPage(0x0000, secinfo_flags(PageType.PT_TCS), tcs),
        DemoPage(0x1000, secinfo_flags(PageType.PT_REG, rw), bytes(PAGE_SIZE)),
        DemoPage(0x2000, secinfo_flags(PageType.PT_REG, rx), _code_page()),
        DemoPage(0x3000, secinfo_flags(PageType.PT_REG, rw), _data_page()),
    ]


def measure(pages: list[DemoPage], size: int = SIZE, ssa_frame_size: int = SSA_FRAME_SIZE
            ) -> Measurement:
    """MRENCLAVE predicted record by record, as ECREATE/EADD/EEXTEND would
    build it (EADD of a TCS measures its flags with RWX forced to 0)."""
    m = Measurement()
    m.ecreate(size, ssa_frame_size)
    for p in pages:
        flags = p.secinfo_flags
        if (flags & SECINFO_PT_MASK) >> SECINFO_PT_SHIFT == PageType.PT_TCS:
            flags &= ~SECINFO_PERM_MASK
        m.eadd(p.offset, flags)
        if p.measure:
            m.eextend_page(p.offset, p.data)
    return m
