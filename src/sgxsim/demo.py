"""``sgxsim demo``: measure and sign a small enclave of the project's own making.

The enclave: a TCS page, two code pages (RX) and a data page (RW), with
deterministic contents; everything measured.  MRENCLAVE is computed record by
record with :class:`~sgxsim.hw.measure.Measurement`, a fresh RSA-3072/e=3 key
signs the SIGSTRUCT.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sgxsim.hw import sigstruct as S
from sgxsim.hw.consts import PAGE_SIZE, PageType, SecinfoFlags, secinfo_flags
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Tcs
from sgxsim.outfile import write_output

RX = SecinfoFlags.R | SecinfoFlags.X
RW = SecinfoFlags.R | SecinfoFlags.W


def demo_pages() -> list[tuple[int, int, bytes]]:
    """(offset, SECINFO flags, contents) of the demo enclave."""
    tcs = Tcs(ossa=3 * PAGE_SIZE, nssa=1, oentry=PAGE_SIZE, fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF)

    def filler(tag: bytes) -> bytes:
        return b"".join(hashlib.sha256(tag + i.to_bytes(4, "little")).digest() for i in range(128))

    return [
        (0, secinfo_flags(PageType.PT_TCS), tcs.pack()),
        (PAGE_SIZE, secinfo_flags(PageType.PT_REG, RX), filler(b"text0")),
        (2 * PAGE_SIZE, secinfo_flags(PageType.PT_REG, RX), filler(b"text1")),
        (3 * PAGE_SIZE, secinfo_flags(PageType.PT_REG, RW), bytes(PAGE_SIZE)),
    ]


def measure(pages: list[tuple[int, int, bytes]], ssa_frame_size: int = 1) -> bytes:
    size = PAGE_SIZE
    while size < len(pages) * PAGE_SIZE:
        size <<= 1
    m = Measurement()
    m.ecreate(size, ssa_frame_size)
    for offset, flags, data in pages:
        m.eadd(offset, flags)
        m.eextend_page(offset, data)
    return m.digest()


def build_signed(out: Path) -> Path:
    """``out``/demo.sigstruct and ``out``/demo.pem (the key); a file that
    cannot be written is an :class:`~sgxsim.outfile.OutputError`."""
    mrenclave = measure(demo_pages())
    key = S.generate_key()
    sig = S.sign(S.build(mrenclave, date=0x20261123), key)
    path = write_output(out / "demo.sigstruct", sig.pack())
    write_output(out / "demo.pem", S.key_pem(key))
    return path
