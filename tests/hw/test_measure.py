"""MRENCLAVE: the public enarx vector and V1-V4 of sgx-hardware.md §9, each
computed both chunk by chunk (``eextend``) and page at once (``eextend_page``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sgxsim.hw.measure import Measurement

PAGE = 4096
ZERO_PAGE = bytes(PAGE)
V4_PAGE = bytes((7 * i + 3) & 0xFF for i in range(PAGE))

V1 = "9e197c8837c6d65632dbdd59cd7df4f1a25b68d8e4e5eb6ca3b20b05311fecb8"
V2 = "2deccee4c1a959e5c652e36a3b2ceffbacd65cc2e9f2328590177a149711dc89"
V3 = "2e1025dddd5bfdbc1c085d15feb88f775ea90701d6038dae1aad0f7f66d7b151"
V4 = "d35c302a865d8db7980374fb65212f830f6b563884d2fd1819b78843e1908609"
ENARX_MRENCLAVE = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"


def extend(m: Measurement, offset: int, page: bytes, by_chunk: bool) -> None:
    if by_chunk:
        for i in range(0, PAGE, 256):
            m.eextend(offset + i, page[i : i + 256])
    else:
        m.eextend_page(offset, page)


def test_v1_ecreate_only() -> None:
    m = Measurement()
    m.ecreate(0x2000, 1)
    assert m.digest().hex() == V1
    assert m.updates == 1


def test_v2_eadd_without_eextend() -> None:
    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0, 0x100)
    assert m.digest().hex() == V2


@pytest.mark.parametrize("by_chunk", [True, False], ids=["eextend", "eextend_page"])
def test_v3(by_chunk: bool) -> None:
    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0, 0x100)
    m.eadd(0x1000, 0x203)
    extend(m, 0x1000, ZERO_PAGE, by_chunk)
    assert m.digest().hex() == V3
    assert m.updates == 3 + 16 * 5


@pytest.mark.parametrize("by_chunk", [True, False], ids=["eextend", "eextend_page"])
def test_v4(by_chunk: bool) -> None:
    m = Measurement()
    m.ecreate(0x4000, 2)
    m.eadd(0x2000, 0x205)
    extend(m, 0x2000, V4_PAGE, by_chunk)
    assert m.digest().hex() == V4


def test_records_are_the_reference_bytes() -> None:
    # The V3 record hex of the reference, hashed by hand.
    ecreate = bytes.fromhex("4543524541544500" "01000000" "0020000000000000") + bytes(44)
    eadd = bytes.fromhex("4541444400000000" "0010000000000000" "0302000000000000") + bytes(40)
    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0x1000, 0x203)
    assert m.digest() == hashlib.sha256(ecreate + eadd).digest()


def test_digest_does_not_consume_and_copy_is_independent() -> None:
    m = Measurement()
    m.ecreate(0x2000, 1)
    c = m.copy()
    assert m.digest() == m.digest() == c.digest()
    c.eadd(0, 0x100)
    assert m.digest().hex() == V1 and c.digest().hex() == V2


def test_eextend_wrong_chunk_size() -> None:
    with pytest.raises(ValueError):
        Measurement().eextend(0, bytes(255))


@pytest.mark.parametrize("by_chunk", [True, False], ids=["eextend", "eextend_page"])
def test_enarx_vector(enarx_vector: Path, by_chunk: bool) -> None:
    image = (enarx_vector / "encl.bin").read_bytes()
    assert len(image) == 6 * PAGE
    m = Measurement()
    m.ecreate(0x8000, 1)
    for i in range(6):
        off = i * PAGE
        m.eadd(off, 0x100 if i == 0 else 0x207)
        extend(m, off, image[off : off + PAGE], by_chunk)
    assert m.digest().hex() == ENARX_MRENCLAVE
    assert (enarx_vector / "encl.ss").read_bytes()[960:992].hex() == ENARX_MRENCLAVE
