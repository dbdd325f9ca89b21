"""MRENCLAVE: SHA-256 over 64-byte records (SDM 38.7; reference
sgx-hardware.md §9).

The leaves ECREATE, EADD and EEXTEND feed a :class:`Measurement` kept with the
SECS; tools can drive the same object record by record to predict an
enclave's MRENCLAVE.
"""

from __future__ import annotations

import hashlib
import struct

from sgxsim.hw.consts import EEXTEND_CHUNK

TAG_ECREATE = 0x0045544145524345  # "ECREATE\0"
TAG_EADD = 0x0000000044444145  # "EADD\0\0\0\0"
TAG_EEXTEND = 0x00444E4554584545  # "EEXTEND\0"

_ECREATE = struct.Struct("<QIQ44x")
_EADD = struct.Struct("<QQQ40x")
_EEXTEND = struct.Struct("<QQ48x")


class Measurement:
    """The running MRENCLAVE hash of one enclave."""

    __slots__ = ("_h", "updates")

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.updates = 0  # number of 64-byte blocks hashed

    def ecreate(self, size: int, ssa_frame_size: int) -> None:
        """The ECREATE record: SSAFRAMESIZE (u32) and SIZE (u64)."""
        self._h.update(_ECREATE.pack(TAG_ECREATE, ssa_frame_size, size))
        self.updates += 1

    def eadd(self, offset: int, secinfo_flags: int) -> None:
        """The EADD record: the page offset in ELRANGE and the first 48 bytes
        of the SECINFO (FLAGS, then reserved bytes that must be zero)."""
        self._h.update(_EADD.pack(TAG_EADD, offset, secinfo_flags))
        self.updates += 1

    def eextend(self, offset: int, chunk: bytes | bytearray | memoryview) -> None:
        """One EEXTEND: the header record, then the 256 bytes as four blocks."""
        if len(chunk) != EEXTEND_CHUNK:
            raise ValueError(f"EEXTEND measures {EEXTEND_CHUNK} bytes, got {len(chunk)}")
        # One update of header + data: the same 320 bytes, one C call.
        self._h.update(_EEXTEND.pack(TAG_EEXTEND, offset) + chunk)
        self.updates += 5

    def eextend_page(self, offset: int, page: bytes | bytearray | memoryview) -> None:
        """Sixteen EEXTENDs over one 4 KiB page, as one hash update."""
        mv = memoryview(page)
        parts = []
        for i in range(0, len(mv), EEXTEND_CHUNK):
            parts.append(_EEXTEND.pack(TAG_EEXTEND, offset + i))
            parts.append(mv[i : i + EEXTEND_CHUNK])
        self._h.update(b"".join(parts))
        self.updates += 5 * (len(mv) // EEXTEND_CHUNK)

    def digest(self) -> bytes:
        """MRENCLAVE as EINIT finalises it (the hash state is not consumed)."""
        return self._h.copy().digest()

    def __deepcopy__(self, memo: dict) -> Measurement:
        # hashlib objects do not pickle; a Machine snapshot copies the hash state.
        return self.copy()

    def copy(self) -> Measurement:
        m = Measurement()
        m._h = self._h.copy()
        m.updates = self.updates
        return m
