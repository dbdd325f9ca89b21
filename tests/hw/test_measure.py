"""MRENCLAVE known answers (sgx-hardware.md §9)."""

from __future__ import annotations

import pytest

from sgxsim.hw.measure import Measurement

V1 = "9e197c8837c6d65632dbdd59cd7df4f1a25b68d8e4e5eb6ca3b20b05311fecb8"
V2 = "2deccee4c1a959e5c652e36a3b2ceffbacd65cc2e9f2328590177a149711dc89"
V3 = "2e1025dddd5bfdbc1c085d15feb88f775ea90701d6038dae1aad0f7f66d7b151"
V4 = "d35c302a865d8db7980374fb65212f830f6b563884d2fd1819b78843e1908609"
ENARX = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"


def test_self_derived_vectors():
    m = Measurement()
    m.ecreate(0x2000, 1)
    assert m.digest().hex() == V1
    m.eadd(0, 0x100)
    assert m.digest().hex() == V2
    m.eadd(0x1000, 0x203)
    for j in range(16):
        m.eextend(0x1000 + j * 256, bytes(256))
    assert m.digest().hex() == V3
    m4 = Measurement()
    m4.ecreate(0x4000, 2)
    m4.eadd(0x2000, 0x205)
    m4.eextend_page(0x2000, bytes((7 * i + 3) & 0xFF for i in range(4096)))
    assert m4.digest().hex() == V4


@pytest.mark.parametrize("per_page", [False, True])
def test_enarx_vector(enarx_vector, per_page):
    data = (enarx_vector / "encl.bin").read_bytes()
    m = Measurement()
    m.ecreate(0x8000, 1)
    for i in range(len(data) // 4096):
        m.eadd(i * 4096, 0x100 if i == 0 else 0x207)
        page = data[i * 4096 : (i + 1) * 4096]
        if per_page:
            m.eextend_page(i * 4096, page)
        else:
            for j in range(16):
                m.eextend(i * 4096 + j * 256, page[j * 256 : (j + 1) * 256])
    assert m.digest().hex() == ENARX
    assert m.updates == 1 + 6 * (1 + 16 * 5)


def test_digest_does_not_consume_and_order_matters():
    a, b = Measurement(), Measurement()
    a.ecreate(0x2000, 1)
    b.ecreate(0x2000, 1)
    assert a.digest() == a.digest() == b.digest()
    a.eadd(0, 0x203)
    a.eadd(0x1000, 0x203)
    b.eadd(0x1000, 0x203)
    b.eadd(0, 0x203)
    assert a.digest() != b.digest()


def test_eextend_needs_256_bytes():
    m = Measurement()
    with pytest.raises(ValueError):
        m.eextend(0, bytes(255))


def test_copy_deepcopy_and_pickle():
    import copy
    import pickle

    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0, 0x100)
    for clone in (m.copy(), copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.digest().hex() == V2
        clone.eadd(0x1000, 0x203)
        assert clone.digest() != m.digest()
    big = Measurement()
    big.ecreate(1 << 30, 1)
    for off in range(0, 300 * 4096, 4096):
        big.eextend_page(off, bytes(4096))
    assert copy.deepcopy(big).digest() == big.digest()
    with pytest.raises(TypeError):
        pickle.dumps(big)


V4_PAGE = bytes((7 * i + 3) & 0xFF for i in range(4096))


def _extend(m: Measurement, offset: int, page: bytes, by_chunk: bool) -> None:
    if by_chunk:
        for j in range(16):
            m.eextend(offset + j * 256, page[j * 256 : (j + 1) * 256])
    else:
        m.eextend_page(offset, page)


@pytest.mark.parametrize("by_chunk", [True, False], ids=["eextend", "eextend_page"])
def test_v3_v4_both_ways(by_chunk):
    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0, 0x100)
    m.eadd(0x1000, 0x203)
    _extend(m, 0x1000, bytes(4096), by_chunk)
    assert m.digest().hex() == V3 and m.updates == 3 + 16 * 5
    m4 = Measurement()
    m4.ecreate(0x4000, 2)
    m4.eadd(0x2000, 0x205)
    _extend(m4, 0x2000, V4_PAGE, by_chunk)
    assert m4.digest().hex() == V4


def test_records_are_the_reference_bytes():
    import hashlib

    # The V3 record hex of sgx-hardware.md §9, hashed by hand.
    ecreate = bytes.fromhex("4543524541544500" "01000000" "0020000000000000") + bytes(44)
    eadd = bytes.fromhex("4541444400000000" "0010000000000000" "0302000000000000") + bytes(40)
    m = Measurement()
    m.ecreate(0x2000, 1)
    m.eadd(0x1000, 0x203)
    assert m.digest() == hashlib.sha256(ecreate + eadd).digest()


def _reference(ops) -> str:
    """The digest of the same records, each fed to one SHA-256 in turn."""
    import hashlib
    import struct

    h = hashlib.sha256()
    h.update(struct.pack("<QIQ44x", 0x0045544145524345, 1, 0x10000))
    for op, off, data in ops:
        if op == "eadd":
            h.update(struct.pack("<QQQ40x", 0x44444145, off, 0x203))
        else:
            for k in range(0, len(data), 256):
                h.update(struct.pack("<QQ48x", 0x00444E4554584545, off + k) + data[k : k + 256])
    return h.hexdigest()


@pytest.mark.parametrize("limit", [1 << 20, 12000], ids=["log", "past-the-log"])
def test_log_pieces_copies_and_pickles_keep_the_digest(limit, monkeypatch):
    # The log is kept in pieces (a measured page as its contents); digests,
    # copies, pickles and same_records taken at any point agree with one hash
    # over the records in order, also once the records outgrow the log (a
    # small limit: two pages) and are hashed as they come.  A page changed
    # after it was measured does not change the measurement.
    import copy
    import pickle

    from sgxsim.hw import measure

    monkeypatch.setattr(measure, "_PICKLE_LOG_LIMIT", limit)

    from hypothesis import given, settings
    from hypothesis import strategies as st

    op = st.tuples(st.sampled_from(["eadd", "eextend", "eextend_page", "digest", "pickle",
                                    "copy"]), st.integers(0, 15), st.integers(0, 255))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(op, max_size=12))
    def run(steps):
        m = Measurement()
        m.ecreate(0x10000, 1)
        done: list = []
        for what, page, byte in steps:
            off = page * 4096
            if what == "eadd":
                m.eadd(off, 0x203)
                done.append(("eadd", off, b""))
            elif what == "eextend":
                m.eextend(off, bytes([byte]) * 256)
                done.append(("eextend", off, bytes([byte]) * 256))
            elif what == "eextend_page":
                page = bytearray([byte]) * 4096
                m.eextend_page(off, page)
                page[:8] = b"changed!"
                done.append(("eextend", off, bytes([byte]) * 4096))
            elif what == "digest":
                assert m.digest().hex() == _reference(done)
            elif what == "pickle":
                if m._log is None:  # past the log: no records to pickle
                    with pytest.raises(TypeError):
                        pickle.dumps(m)
                    continue
                m = pickle.loads(pickle.dumps(m))
            else:
                other = copy.deepcopy(m) if byte & 1 else m.copy()
                assert other.same_records(m) and m.same_records(other)
                m = other
        assert m.digest().hex() == _reference(done)
        if m._log is not None:
            assert pickle.loads(pickle.dumps(m)).digest() == m.digest()

    run()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("size", [4096, 256, 768, 8192])
@pytest.mark.parametrize("cache", [0, 256])
def test_eextend_page_any_buffer_and_length_is_the_chunk_records(kind, size, cache, monkeypatch):
    # A whole page goes the cut-and-interleave way (headers packed, or kept
    # for the first offsets and joined), other lengths the record loop: all
    # are the EEXTEND records chunk by chunk.
    from sgxsim.hw import measure

    monkeypatch.setattr(measure, "_PAGE_HEADERS", {})
    monkeypatch.setattr(measure, "_PAGE_HEADERS_MAX", cache)
    data = bytes((5 * i + size) & 0xFF for i in range(size))
    for off in (0, 0x1000, 0x7000, 0x1000):  # the last one: from the kept headers if any
        by_page, by_chunk = Measurement(), Measurement()
        by_page.eextend_page(off, kind(bytearray(data)) if kind is memoryview else kind(data))
        for k in range(0, size, 256):
            by_chunk.eextend(off + k, data[k : k + 256])
        assert by_page.digest() == by_chunk.digest() and by_page.updates == by_chunk.updates
        assert by_page.same_records(by_chunk)
    assert len(measure._PAGE_HEADERS) == (min(cache, 3) if size == 4096 else 0)


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("pages", [1, 7, 8, 9, 24])
def test_log_hashed_a_few_pages_per_update_is_the_record_stream(batch, pages, monkeypatch):
    # A log is hashed with the records of _HASH_BATCH pages joined per update
    # (and the records that are not pages between them): the digest is the
    # one of the records fed one by one, whatever the batch and wherever the
    # pages end within it; a digest taken midway and a pickle agree too.
    import pickle

    from sgxsim.hw import measure

    monkeypatch.setattr(measure, "_HASH_BATCH", batch)
    m = Measurement()
    m.ecreate(0x10000, 1)
    done: list = []
    for p in range(pages):
        off = p * 4096
        m.eadd(off, 0x203)
        done.append(("eadd", off, b""))
        data = bytes((p + i) & 0xFF for i in range(4096))
        if p % 5 == 4:  # some pages measured chunk by chunk, as records
            for k in range(0, 4096, 256):
                m.eextend(off + k, data[k : k + 256])
        else:
            m.eextend_page(off, bytearray(data))
        done.append(("eextend", off, data))
        if p == pages // 2:
            assert m.digest().hex() == _reference(done)
    assert m.digest().hex() == _reference(done)
    assert pickle.loads(pickle.dumps(m)).digest().hex() == _reference(done)


@pytest.mark.parametrize("cache", [0, 256])
def test_page_records_from_the_prefix_table_are_the_packed_records(cache, monkeypatch):
    # A page-aligned offset's headers come from the table by bits 12-15 and
    # one shared piece for bits 16-63; any other offset's are packed.  Both,
    # made now or kept, are the records packed field by field; an offset past
    # u64 is refused as struct refuses it.
    import struct

    from sgxsim.hw import measure

    monkeypatch.setattr(measure, "_PAGE_HEADERS", {})
    monkeypatch.setattr(measure, "_PAGE_HEADERS_MAX", cache)
    page = bytes((7 * i + 3) & 0xFF for i in range(4096))
    offsets = [0, 0x1000, 0xF000, 0x10000, 0x9000, 0xABCDE000, 0x7FFF_FFFF_F000,
               (1 << 64) - 4096, 0x100, 0x1234, (1 << 64) - 8192 + 256]
    for off in offsets + offsets:  # the second time from the kept lists, if any
        args: list = []
        for k in range(16):
            args += (measure.TAG_EEXTEND, off + 256 * k, page[256 * k : 256 * k + 256])
        assert measure._page_records(off, page) == measure._records(16).pack(*args), hex(off)
    for bad in (-4096, 1 << 64, (1 << 64) - 256):
        with pytest.raises(struct.error):
            measure._page_records(bad, page)
        # Refused when measured, not later when a logged page is cut.
        m = measure.Measurement()
        with pytest.raises(ValueError, match="leaves 64 bits"):
            m.eextend_page(bad, page)
        assert m.updates == 0 and m.digest() == measure.Measurement().digest()
