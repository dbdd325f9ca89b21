"""Architectural SGX structures, byte-exact (SDM Vol. 3D ch. 38; reference
sgx-hardware.md §3).

Each structure is a class whose fields are listed with their byte offsets;
``X.unpack(data)`` parses exactly ``X.SIZE`` bytes and ``x.pack()`` gives them
back, reserved bytes included, so that checks on reserved areas see what
software really wrote.
"""

from __future__ import annotations

import operator
import struct
from typing import Any, ClassVar

_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def nonzero(field: bytes | bytearray) -> bool:
    """Whether a raw field has a byte that is not zero (``any(field)``,
    without a Python-level loop over a reserved area)."""
    return field.count(0) != len(field)


class Struct:
    """Base of a fixed-layout little-endian structure.

    Subclasses set ``FIELDS = ((name, offset, size, kind), ...)`` where kind is
    ``"u"`` (unsigned integer of 1/2/4/8 bytes) or ``"b"`` (raw bytes).  The
    fields must tile ``[0, SIZE)`` exactly; a layout with a gap or overlap is
    rejected when the class is defined.
    """

    SIZE: ClassVar[int]
    ALIGN: ClassVar[int] = 1
    FIELDS: ClassVar[tuple[tuple[str, int, int, str], ...]]
    _codec: ClassVar[struct.Struct]
    _names: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[dict[str, Any]]
    _byte_fields: ClassVar[tuple[tuple[str, int], ...]]
    _values: ClassVar[Any]  # every field's value, in layout order, in one call

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fmt, pos = "<", 0
        for name, off, size, kind in cls.FIELDS:
            if off != pos:
                raise TypeError(f"{cls.__name__}.{name}: offset {off} but layout is at {pos}")
            fmt += _INT_FORMATS[size] if kind == "u" else f"{size}s"
            pos += size
        if pos != cls.SIZE:
            raise TypeError(f"{cls.__name__}: fields end at {pos}, SIZE is {cls.SIZE}")
        cls._codec = struct.Struct(fmt)
        cls._names = tuple(f[0] for f in cls.FIELDS)
        cls._values = operator.attrgetter(*cls._names) if len(cls._names) > 1 else \
            (lambda o, _n=cls._names[0]: (getattr(o, _n),))
        cls._defaults = {n: (0 if k == "u" else bytes(s)) for n, _, s, k in cls.FIELDS}
        cls._byte_fields = tuple((n, s) for n, _, s, k in cls.FIELDS if k == "b")
        for name, off, _, _ in cls.FIELDS:
            setattr(cls, f"OFF_{name.upper()}", off)

    @classmethod
    def span(cls, first: str, last: str) -> tuple[int, struct.Struct]:
        """The offset of field ``first`` and a codec for the fields
        ``first`` .. ``last`` (in layout order), for the hot paths that read
        or write a run of fields in place (``codec.unpack_from(buf, base +
        offset)``, ``codec.pack_into(...)``) instead of the whole structure."""
        names = cls._names
        fields = cls.FIELDS[names.index(first) : names.index(last) + 1]
        fmt = "<" + "".join(_INT_FORMATS[size] if kind == "u" else f"{size}s"
                            for _, _, size, kind in fields)
        return fields[0][1], struct.Struct(fmt)

    def __init__(self, **values: Any) -> None:
        d = self.__dict__
        d.update(self._defaults)
        d.update(values)
        if len(d) != len(self._defaults):
            unknown = sorted(set(values) - set(self._defaults))
            for k in unknown:
                del d[k]
            raise TypeError(f"{type(self).__name__}: unknown fields {unknown}")

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Any:
        """Parse exactly ``SIZE`` bytes (a longer buffer is cut, a shorter
        one is a ``ValueError``)."""
        try:
            values = cls._codec.unpack_from(data)
        except struct.error:
            raise ValueError(f"{cls.__name__} needs {cls.SIZE} bytes, got {len(data)}") from None
        obj = object.__new__(cls)
        # The codec is built from FIELDS: one value per name (no strict check).
        obj.__dict__ = dict(zip(cls._names, values, strict=False))
        return obj

    def pack(self) -> bytes:
        # struct's "Ns" would silently pad or cut a wrong-sized byte field.
        for name, size in self._byte_fields:
            if len(getattr(self, name)) != size:
                raise ValueError(f"{type(self).__name__}.{name} is {size} bytes")
        try:
            return self._codec.pack(*type(self)._values(self))
        except struct.error as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None

    def replace(self, **values: Any) -> Any:
        new = type(self).unpack(self.pack())
        for k, v in values.items():
            if k not in self._defaults:
                raise TypeError(f"{type(self).__name__}: unknown field {k}")
            object.__setattr__(new, k, v)
        return new

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pack() == self.pack()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        parts = []
        for name, _, _, kind in self.FIELDS:
            v = getattr(self, name)
            if name.startswith("reserved") and not any(v if kind == "b" else [v]):
                continue
            parts.append(f"{name}={v:#x}" if kind == "u" else f"{name}={bytes(v).hex()}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Secs(Struct):
    """SECS (SDM Table 38-2), 4096 bytes, 4 KiB aligned."""

    SIZE = 4096
    ALIGN = 4096
    FIELDS = (
        ("size", 0, 8, "u"),
        ("base", 8, 8, "u"),
        ("ssa_frame_size", 16, 4, "u"),
        ("miscselect", 20, 4, "u"),
        ("reserved1", 24, 24, "b"),
        ("attributes", 48, 8, "u"),
        ("xfrm", 56, 8, "u"),
        ("mrenclave", 64, 32, "b"),
        ("reserved2", 96, 32, "b"),
        ("mrsigner", 128, 32, "b"),
        ("reserved3", 160, 32, "b"),
        ("config_id", 192, 64, "b"),
        ("isv_prod_id", 256, 2, "u"),
        ("isv_svn", 258, 2, "u"),
        ("config_svn", 260, 2, "u"),
        ("reserved4", 262, 3834, "b"),
    )


class Secinfo(Struct):
    """SECINFO, 64 bytes, 64-byte aligned: FLAGS and 56 reserved bytes."""

    SIZE = 64
    ALIGN = 64
    FIELDS = (("flags", 0, 8, "u"), ("reserved", 8, 56, "b"))


class Pageinfo(Struct):
    """PAGEINFO, 32 bytes, 32-byte aligned."""

    SIZE = 32
    ALIGN = 32
    FIELDS = (
        ("linaddr", 0, 8, "u"),
        ("srcpge", 8, 8, "u"),
        ("secinfo", 16, 8, "u"),  # SECINFO, or PCMD for EWB/ELDx
        ("secs", 24, 8, "u"),
    )


class Tcs(Struct):
    """TCS (SDM Table 38-5), 4096 bytes."""

    SIZE = 4096
    ALIGN = 4096
    FIELDS = (
        ("state", 0, 8, "u"),
        ("flags", 8, 8, "u"),
        ("ossa", 16, 8, "u"),
        ("cssa", 24, 4, "u"),
        ("nssa", 28, 4, "u"),
        ("oentry", 32, 8, "u"),
        ("aep", 40, 8, "u"),
        ("ofsbase", 48, 8, "u"),
        ("ogsbase", 56, 8, "u"),
        ("fslimit", 64, 4, "u"),
        ("gslimit", 68, 4, "u"),
        ("reserved", 72, 4024, "b"),
    )

    FLAGS_DBGOPTIN = 1 << 0
    FLAGS_AEXNOTIFY = 1 << 1


class Pcmd(Struct):
    """PCMD, 128 bytes, 128-byte aligned."""

    SIZE = 128
    ALIGN = 128
    FIELDS = (
        ("secinfo", 0, 64, "b"),
        ("enclave_id", 64, 8, "u"),
        ("reserved", 72, 40, "b"),
        ("mac", 112, 16, "b"),
    )


class Sigstruct(Struct):
    """SIGSTRUCT (SDM Table 38-19), 1808 bytes; header [0,128), body [900,1028)."""

    SIZE = 1808
    ALIGN = 4096
    FIELDS = (
        ("header", 0, 16, "b"),
        ("vendor", 16, 4, "u"),
        ("date", 20, 4, "u"),
        ("header2", 24, 16, "b"),
        ("swdefined", 40, 4, "u"),
        ("reserved1", 44, 84, "b"),
        ("modulus", 128, 384, "b"),
        ("exponent", 512, 4, "u"),
        ("signature", 516, 384, "b"),
        ("miscselect", 900, 4, "u"),
        ("misc_mask", 904, 4, "u"),
        ("cet_attributes", 908, 1, "u"),
        ("cet_attributes_mask", 909, 1, "u"),
        ("reserved2", 910, 2, "b"),
        ("isvfamilyid", 912, 16, "b"),
        ("attributes", 928, 8, "u"),
        ("xfrm", 936, 8, "u"),
        ("attributes_mask", 944, 8, "u"),
        ("xfrm_mask", 952, 8, "u"),
        ("enclavehash", 960, 32, "b"),
        ("reserved3", 992, 16, "b"),
        ("isvextprodid", 1008, 16, "b"),
        ("isvprodid", 1024, 2, "u"),
        ("isvsvn", 1026, 2, "u"),
        ("reserved4", 1028, 12, "b"),
        ("q1", 1040, 384, "b"),
        ("q2", 1424, 384, "b"),
    )

    HEADER = bytes.fromhex("06000000e10000000000010000000000")
    HEADER2 = bytes.fromhex("01010000600000006000000001000000")

    def signed_data(self) -> bytes:
        raw = self.pack()
        return raw[0:128] + raw[900:1028]


class Einittoken(Struct):
    """EINITTOKEN (SDK token_t), 304 bytes, 512-byte aligned."""

    SIZE = 304
    ALIGN = 512
    FIELDS = (
        ("valid", 0, 4, "u"),
        ("reserved1", 4, 44, "b"),
        ("attributes", 48, 8, "u"),
        ("xfrm", 56, 8, "u"),
        ("mrenclave", 64, 32, "b"),
        ("reserved2", 96, 32, "b"),
        ("mrsigner", 128, 32, "b"),
        ("reserved3", 160, 32, "b"),
        ("cpusvnle", 192, 16, "b"),
        ("isvprodidle", 208, 2, "u"),
        ("isvsvnle", 210, 2, "u"),
        ("reserved4", 212, 24, "b"),
        ("maskedmiscselectle", 236, 4, "u"),
        ("maskedattributesle", 240, 8, "u"),
        ("maskedxfrmle", 248, 8, "u"),
        ("keyid", 256, 32, "b"),
        ("mac", 288, 16, "b"),
    )


class SsaGpr(Struct):
    """GPRSGX, the last 184 bytes of an SSA frame (SDM Table 38-9)."""

    SIZE = 184
    FIELDS = (
        ("rax", 0, 8, "u"), ("rcx", 8, 8, "u"), ("rdx", 16, 8, "u"), ("rbx", 24, 8, "u"),
        ("rsp", 32, 8, "u"), ("rbp", 40, 8, "u"), ("rsi", 48, 8, "u"), ("rdi", 56, 8, "u"),
        ("r8", 64, 8, "u"), ("r9", 72, 8, "u"), ("r10", 80, 8, "u"), ("r11", 88, 8, "u"),
        ("r12", 96, 8, "u"), ("r13", 104, 8, "u"), ("r14", 112, 8, "u"), ("r15", 120, 8, "u"),
        ("rflags", 128, 8, "u"),
        ("rip", 136, 8, "u"),
        ("ursp", 144, 8, "u"),
        ("urbp", 152, 8, "u"),
        ("exitinfo", 160, 4, "u"),  # vector 7:0, exit_type 10:8, valid bit 31
        ("reserved", 164, 4, "u"),
        ("fsbase", 168, 8, "u"),
        ("gsbase", 176, 8, "u"),
    )

    EXITINFO_VALID = 1 << 31
    EXIT_TYPE_HW = 3  # hardware exception
    EXIT_TYPE_SW = 6  # software exception


class SsaExinfo(Struct):
    """EXINFO in the MISC region (MISCSELECT.EXINFO), just below GPRSGX."""

    SIZE = 16
    FIELDS = (("maddr", 0, 8, "u"), ("errcd", 8, 4, "u"), ("reserved", 12, 4, "u"))


class Report(Struct):
    """REPORT (SDK report_t), 432 bytes, 512-byte aligned output."""

    SIZE = 432
    ALIGN = 512
    FIELDS = (
        ("cpusvn", 0, 16, "b"),
        ("miscselect", 16, 4, "u"),
        ("reserved1", 20, 28, "b"),
        ("attributes", 48, 8, "u"),
        ("xfrm", 56, 8, "u"),
        ("mrenclave", 64, 32, "b"),
        ("reserved2", 96, 32, "b"),
        ("mrsigner", 128, 32, "b"),
        ("reserved3", 160, 96, "b"),
        ("isvprodid", 256, 2, "u"),
        ("isvsvn", 258, 2, "u"),
        ("reserved4", 260, 60, "b"),
        ("reportdata", 320, 64, "b"),
        ("keyid", 384, 32, "b"),
        ("mac", 416, 16, "b"),
    )


class Targetinfo(Struct):
    """TARGETINFO, 512 bytes, 512-byte aligned."""

    SIZE = 512
    ALIGN = 512
    FIELDS = (
        ("mrenclave", 0, 32, "b"),
        ("attributes", 32, 8, "u"),
        ("xfrm", 40, 8, "u"),
        ("reserved1", 48, 4, "b"),
        ("miscselect", 52, 4, "u"),
        ("reserved2", 56, 456, "b"),
    )


class Keyrequest(Struct):
    """KEYREQUEST, 512 bytes, 512-byte aligned."""

    SIZE = 512
    ALIGN = 512
    FIELDS = (
        ("keyname", 0, 2, "u"),
        ("keypolicy", 2, 2, "u"),
        ("isvsvn", 4, 2, "u"),
        ("reserved1", 6, 2, "b"),
        ("cpusvn", 8, 16, "b"),
        ("attributemask", 24, 8, "u"),
        ("xfrmmask", 32, 8, "u"),
        ("keyid", 40, 32, "b"),
        ("miscmask", 72, 4, "u"),
        ("configsvn", 76, 2, "u"),
        ("reserved2", 78, 434, "b"),
    )

    KEYNAME_EINITTOKEN = 0
    KEYNAME_PROVISION = 1
    KEYNAME_PROVISION_SEAL = 2
    KEYNAME_REPORT = 3
    KEYNAME_SEAL = 4
    POLICY_MRENCLAVE = 0x1
    POLICY_MRSIGNER = 0x2
    POLICY_NOISVPRODID = 0x4
    POLICY_CONFIGID = 0x8
    POLICY_ISVFAMILYID = 0x10
    POLICY_ISVEXTPRODID = 0x20
