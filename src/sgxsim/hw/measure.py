"""MRENCLAVE: SHA-256 over 64-byte records (SDM 38.7; reference
sgx-hardware.md §9).

The leaves ECREATE, EADD and EEXTEND feed a :class:`Measurement` kept with the
SECS; tools can drive the same object record by record to predict an
enclave's MRENCLAVE.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from itertools import chain

from sgxsim.hw.consts import EEXTEND_CHUNK

TAG_ECREATE = 0x0045544145524345  # "ECREATE\0"
TAG_EADD = 0x0000000044444145  # "EADD\0\0\0\0"
TAG_EEXTEND = 0x00444E4554584545  # "EEXTEND\0"

_ECREATE = struct.Struct("<QIQ44x")
_EADD = struct.Struct("<QQQ40x")
_EEXTEND = struct.Struct("<QQ48x")


@functools.cache
def _records(n: int) -> struct.Struct:
    """``n`` EEXTEND records (header and chunk each) packed in one call."""
    return struct.Struct("<" + f"QQ48x{EEXTEND_CHUNK}s" * n)


_PAGE_CHUNKS = 4096 // EEXTEND_CHUNK
_PAGE_PIECES = 3 * _PAGE_CHUNKS  # a page's records as pieces (see _PAGE_PREFIXES)
# A 4 KiB page cut into its sixteen 256-byte chunks by one C call.
_CHUNKS = struct.Struct(f"{EEXTEND_CHUNK}s" * _PAGE_CHUNKS)
_PAGE_TAGS = (TAG_EEXTEND,) * _PAGE_CHUNKS
# The sixteen EEXTEND header records of a page, packed by one call and cut
# apart by another (any offset).
_HEADERS = struct.Struct("<" + "QQ48x" * _PAGE_CHUNKS)
_CUT_HEADERS = struct.Struct("64s" * _PAGE_CHUNKS)
# A page's records as 48 pieces, three per record: the header's first ten
# bytes, its last 54, the chunk.  At a page-aligned offset the header of
# chunk k is the tag, then OFFSET + 256k as u64: byte 0 is zero, byte 1 holds
# k and bits 12-15 of the offset, bytes 2-7 the offset's bits 16-63 (the same
# in all sixteen), then 48 zero bytes.  So the first pieces come from a table
# by bits 12-15 and the second is one bytes object shared by the sixteen: no
# packing (a loader measures each offset once; packing the headers cost more
# than the rest of the records).
_PAGE_PREFIXES: list[list[bytes]] = []
for _hi in range(16):
    _PAGE_PREFIXES.append([b""] * (3 * _PAGE_CHUNKS))
    _PAGE_PREFIXES[-1][0::3] = [struct.pack("<QBB", TAG_EEXTEND, 0, _hi << 4 | k)
                                for k in range(_PAGE_CHUNKS)]
del _hi
_ZERO48 = bytes(48)
# The 48-piece lists (chunk slots empty) of the first offsets measured in this
# process (a checker measures its few pages again and again).  Read only: a
# page's records fill a copy.
_PAGE_HEADERS: dict[int, list[bytes]] = {}
_PAGE_HEADERS_MAX = 256


def _page_template(offset: int) -> list[bytes]:
    """The page at ``offset``'s records as 48 pieces with the chunk slots
    (every third) empty; kept for the first offsets.  Read only."""
    if not offset & 0xFFF and 0 <= offset < 1 << 64:
        template = _PAGE_PREFIXES[offset >> 12 & 0xF].copy()
        template[1::3] = ((offset >> 16).to_bytes(6, "little") + _ZERO48,) * _PAGE_CHUNKS
    else:  # any other offset: the headers packed whole (struct.error if no u64)
        template = [b""] * (3 * _PAGE_CHUNKS)
        template[0::3] = _CUT_HEADERS.unpack(_HEADERS.pack(*chain.from_iterable(
            zip(_PAGE_TAGS, range(offset, offset + 4096, EEXTEND_CHUNK), strict=False))))
    if len(_PAGE_HEADERS) < _PAGE_HEADERS_MAX:
        _PAGE_HEADERS[offset] = template
    return template


def _page_pieces(offset: int, page: bytes | bytearray | memoryview) -> list[bytes]:
    """The sixteen EEXTEND records of a 4 KiB page at ``offset`` as 48 pieces:
    the chunks cut by one unpack and put into a copy of the template by one
    slice assignment."""
    records = (_PAGE_HEADERS.get(offset) or _page_template(offset)).copy()
    records[2::3] = _CHUNKS.unpack(page)
    return records


def _page_records(offset: int, page: bytes | bytearray | memoryview) -> bytes:
    """The sixteen EEXTEND records of a 4 KiB page at ``offset``, joined."""
    return b"".join(_page_pieces(offset, page))


# Pages whose records are joined for one hash update when a log is hashed
# (about 40 KiB: one update per record would cost a call each, one join of a
# whole log a buffer of its size).
_HASH_BATCH = 8


def _hash_entries(h, entries) -> None:
    """Feed log entries to ``h``: the same bytes as one update per piece,
    joined a few pages at a time (SHA-256 is a stream: how the input is cut
    into updates does not change the digest)."""
    pieces: list[bytes] = []
    extend, append = pieces.extend, pieces.append
    headers, cut = _PAGE_HEADERS.get, _CHUNKS.unpack
    n = 0
    for entry in entries:
        if entry.__class__ is tuple:  # _page_pieces(*entry), inline
            offset, page = entry
            # The template goes in as it is and its chunk slots (every
            # third of the last 48 pieces) are filled in place: no copy.
            extend(headers(offset) or _page_template(offset))
            pieces[-_PAGE_PIECES + 2::3] = cut(page)
            n += 1
            if n == _HASH_BATCH:
                h.update(b"".join(pieces))
                pieces.clear()
                n = 0
        else:
            append(entry)
    if pieces:
        h.update(b"".join(pieces))


# The bytes of records a measured page stands for in the log.
_PAGE_RECORDS = _PAGE_CHUNKS * (64 + EEXTEND_CHUNK)
# The last offset whose sixteen records' offsets fit in their u64 field.
_LAST_PAGE_OFFSET = (1 << 64) - 4096


def _piece(entry: bytes | tuple[int, bytes]) -> bytes:
    """A log entry as the records it stands for: a page kept as (offset,
    contents) becomes its sixteen EEXTEND records."""
    return _page_records(*entry) if entry.__class__ is tuple else entry


# Below this many bytes hashed a measurement keeps its input, so that it can be
# pickled (hashlib states cannot); deep copies never need it.
_PICKLE_LOG_LIMIT = 1 << 20


class Measurement:
    """The running MRENCLAVE hash of one enclave.

    While the records fit the log, they are only appended to it and hashed
    when a digest is asked for (the first ``_hashed`` pieces of the log are
    in ``_h``): a build that is never finalised, as most of a checker's are,
    never hashes.  The log is a list of immutable pieces, so appending a
    record never copies the records before it (a thawed enclave's log is
    one piece, shared with the pickle it came from).  A measured page is
    kept as ``(offset, contents)`` and cut into its records only when they
    are hashed or joined: its headers are a function of the offset, so the
    log holds the page once, 4 KiB instead of 5."""

    __slots__ = ("_h", "updates", "_log", "_hashed", "_size")

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.updates = 0  # number of 64-byte blocks hashed
        self._log: list[bytes | tuple[int, bytes]] | None = []
        self._hashed = 0
        self._size = 0  # bytes in the log

    def _feed(self, entry: bytes | tuple[int, bytes], size: int | None = None) -> None:
        """Hash or log one entry: records, or a page as (offset, contents)
        standing for ``size`` bytes of records."""
        log = self._log
        if log is not None:
            size = self._size + (len(entry) if size is None else size)
            if size <= _PICKLE_LOG_LIMIT:
                log.append(entry)
                self._size = size
                return
            h = self._hash()  # catches up with the log first
            self._log = None
        else:
            h = self._h
        h.update(_piece(entry))

    def __deepcopy__(self, memo) -> Measurement:
        return self.copy()

    def _records(self) -> bytes:
        """The log as one piece (joined once, then kept joined)."""
        log = self._log
        if len(log) > 1:
            hashed_all = self._hashed == len(log)
            log[:] = [b"".join(map(_piece, log))]
            if hashed_all:
                self._hashed = 1
            elif self._hashed:
                self._h, self._hashed = None, 0  # partly hashed: rehash from the piece when needed
        return _piece(log[0]) if log else b""

    def __getstate__(self):
        if self._log is None:
            raise TypeError("a measurement of more than 1 MiB of records cannot be pickled")
        return (self._records(), self.updates)

    def __setstate__(self, state) -> None:
        # The hash is rebuilt from the log when first needed: copies that are
        # never extended or digested (most, in a search) never rehash.
        log, self.updates = state
        self._h = None
        self._hashed = 0
        log = bytes(log)
        self._log = [log] if log else []
        self._size = len(log)

    def _hash(self):
        """The hash state over every record so far."""
        h, log = self._h, self._log
        if h is None:
            h = self._h = hashlib.sha256()
            self._hashed = 0
        if log is not None and self._hashed < len(log):
            _hash_entries(h, log[self._hashed:])
            self._hashed = len(log)
        return h

    def same_records(self, other: Measurement) -> bool:
        """Whether both measured the same records (so their digests agree)."""
        if self._log is not None and other._log is not None:
            return self._size == other._size and self._records() == other._records()
        return self.digest() == other.digest()

    def ecreate(self, size: int, ssa_frame_size: int) -> None:
        """The ECREATE record: SSAFRAMESIZE (u32) and SIZE (u64)."""
        self._feed(_ECREATE.pack(TAG_ECREATE, ssa_frame_size, size))
        self.updates += 1

    def eadd(self, offset: int, secinfo_flags: int) -> None:
        """The EADD record: the page offset in ELRANGE and the first 48 bytes
        of the SECINFO (FLAGS, then reserved bytes that must be zero)."""
        record = _EADD.pack(TAG_EADD, offset, secinfo_flags)
        self.updates += 1
        log = self._log
        if log is not None and self._size + 64 <= _PICKLE_LOG_LIMIT:
            log.append(record)  # _feed()'s logging case, inline: one per page added
            self._size += 64
        else:
            self._feed(record)

    def eextend(self, offset: int, chunk: bytes | bytearray | memoryview) -> None:
        """One EEXTEND: the header record, then the 256 bytes as four blocks."""
        if len(chunk) != EEXTEND_CHUNK:
            raise ValueError(f"EEXTEND measures {EEXTEND_CHUNK} bytes, got {len(chunk)}")
        record = _EEXTEND.pack(TAG_EEXTEND, offset) + chunk
        self.updates += 5
        self._feed(record)

    def eextend_page(self, offset: int, page: bytes | bytearray | memoryview) -> None:
        """One EEXTEND per 256-byte chunk of ``page`` (measured at ``offset``,
        ``offset + 256``, ...), fed to the hash as one update."""
        if len(page) == 4096:
            if not 0 <= offset <= _LAST_PAGE_OFFSET:  # checked now: a logged page is cut later
                raise ValueError(f"EEXTEND offset {offset:#x} of a page leaves 64 bits")
            # A whole page: its records made by _page_records() (the same
            # bytes as the loop below), now or, while it is logged, when they
            # are hashed or joined.
            self.updates += 5 * _PAGE_CHUNKS
            log = self._log
            if log is None:
                self._h.update(_page_records(offset, page))
            elif self._size + _PAGE_RECORDS <= _PICKLE_LOG_LIMIT:
                log.append((offset, bytes(page)))  # _feed()'s logging case, inline
                self._size += _PAGE_RECORDS
            else:
                self._feed((offset, bytes(page)), _PAGE_RECORDS)
            return
        data = bytes(page)
        n = len(data) // EEXTEND_CHUNK
        if n * EEXTEND_CHUNK != len(data):
            raise ValueError("EEXTEND measures whole 256-byte chunks")
        args: list = []
        for k in range(0, len(data), EEXTEND_CHUNK):
            args += (TAG_EEXTEND, offset + k, data[k : k + EEXTEND_CHUNK])
        buf = _records(n).pack(*args)
        self.updates += 5 * n
        self._feed(buf)

    def digest(self) -> bytes:
        """MRENCLAVE as EINIT finalises it (the hash state is not consumed)."""
        return self._hash().copy().digest()

    def copy(self) -> Measurement:
        m = Measurement.__new__(Measurement)
        m._h = self._hash().copy()
        m.updates = self.updates
        m._log = None if self._log is None else list(self._log)  # the pieces are immutable
        m._hashed = self._hashed
        m._size = self._size
        return m
