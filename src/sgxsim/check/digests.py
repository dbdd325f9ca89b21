"""The explorer's seen-set: 16-byte stable digests of states.

A state's key (the model's canonical fingerprint with the ghost's key) is a
nest of tuples of ints, strings, bytes, bools, ``None``, named tuples and
enum members.  Its encoding is a pickle (protocol 4) in *fast* mode: without
the memo, equal values give equal bytes whichever objects hold them, and
nothing depends on ``hash()`` randomisation or the process, so the encoding
is the same on every run and machine of one Python (``repr`` would be too,
at four times the cost).  Its blake2b-128 is the state's digest; two
different states share one with probability ~2^-128 per pair, far below
anything a search of billions of states could meet.

:class:`DigestSet` keeps digests in one ``bytearray`` (open addressing,
linear probing, at most 70% full): 16 bytes per slot, so between 23 and 46
bytes per state, against ~5.7 KB for a Python set of fingerprint tuples.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
from collections.abc import Hashable

DIGEST_SIZE = 16
_EMPTY = bytes(DIGEST_SIZE)
# The all-zero digest marks a free slot; a state whose digest is all zeros
# (probability 2^-128) is stored as this one instead.
_ZERO_STAND_IN = b"\x00" * (DIGEST_SIZE - 1) + b"\x01"


class _Encoder(threading.local):
    """One pickler and its buffer per thread, used again for every key (a
    fast-mode pickler keeps nothing between dumps: each dump writes the
    bytes a fresh one would; making them costs as much as the dump)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.pickler = pickle.Pickler(self.buf, 4)
        self.pickler.fast = True  # no memo: the bytes depend on the values only


_ENCODER = _Encoder()


def digest(key: Hashable) -> bytes:
    """The 16-byte stable digest of a state key (see the module docstring)."""
    enc = _ENCODER
    buf = enc.buf
    buf.seek(0)
    buf.truncate()
    enc.pickler.dump(key)
    # getvalue(): cheaper than a buffer export (and its release) for ~1 KB.
    d = hashlib.blake2b(buf.getvalue(), digest_size=DIGEST_SIZE).digest()
    return d if d != _EMPTY else _ZERO_STAND_IN


class DigestSet:
    """A set of 16-byte digests in one bytearray."""

    __slots__ = ("_table", "_wrap", "_n", "_limit")

    def __init__(self, capacity: int = 1024):
        slots = 64
        while slots * 7 // 10 < capacity:
            slots *= 2
        self._alloc(slots)
        self._n = 0

    def _alloc(self, slots: int) -> None:
        self._table = bytearray(slots * DIGEST_SIZE)
        self._wrap = slots * DIGEST_SIZE - 1  # a byte offset & this: the same slot, wrapped
        self._limit = slots * 7 // 10

    def _slot(self, d: bytes) -> int:
        """The byte offset of the slot holding ``d``, or of the free slot
        where it would go (the low bytes of ``d`` pick the first slot)."""
        table, wrap = self._table, self._wrap
        pos = (int.from_bytes(d, "little") * DIGEST_SIZE) & wrap
        while True:
            got = table[pos:pos + DIGEST_SIZE]
            if got == d or got == _EMPTY:
                return pos
            pos = (pos + DIGEST_SIZE) & wrap

    def add(self, d: bytes) -> bool:
        """Add ``d``; return whether it was new (the probe inlined: this is
        called for every transition)."""
        table, wrap = self._table, self._wrap
        pos = (int.from_bytes(d, "little") * DIGEST_SIZE) & wrap
        while True:
            got = table[pos:pos + DIGEST_SIZE]
            if got == d:
                return False
            if got == _EMPTY:
                break
            pos = (pos + DIGEST_SIZE) & wrap
        table[pos:pos + DIGEST_SIZE] = d
        self._n += 1
        if self._n > self._limit:
            self._grow()
        return True

    def __contains__(self, d: bytes) -> bool:
        pos = self._slot(d)
        return self._table[pos:pos + DIGEST_SIZE] == d

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        t = self._table
        for pos in range(0, len(t), DIGEST_SIZE):
            d = bytes(t[pos:pos + DIGEST_SIZE])
            if d != _EMPTY:
                yield d

    @property
    def nbytes(self) -> int:
        """Bytes the table occupies."""
        return len(self._table)

    def _grow(self) -> None:
        old = self._table
        self._alloc((self._wrap + 1) // DIGEST_SIZE * 2)
        self._n = 0
        for pos in range(0, len(old), DIGEST_SIZE):
            d = old[pos:pos + DIGEST_SIZE]
            if d != _EMPTY:
                p = self._slot(d)
                self._table[p:p + DIGEST_SIZE] = d
                self._n += 1
