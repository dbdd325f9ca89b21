"""Every architectural structure against the layout tables of
sgx-hardware.md §3: sizes, alignments, offsets; pack/unpack round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.hw import structs as S
from sgxsim.hw.structs import Struct

# (struct, size, align, {field: (offset, size)}) spelled from the reference tables.
LAYOUTS: list[tuple[type[Struct], int, int, dict[str, tuple[int, int]]]] = [
    (S.Secs, 4096, 4096, {
        "size": (0, 8), "base": (8, 8), "ssa_frame_size": (16, 4), "miscselect": (20, 4),
        "reserved1": (24, 24), "attributes": (48, 8), "xfrm": (56, 8), "mrenclave": (64, 32),
        "reserved2": (96, 32), "mrsigner": (128, 32), "reserved3": (160, 32),
        "config_id": (192, 64), "isv_prod_id": (256, 2), "isv_svn": (258, 2),
        "config_svn": (260, 2), "reserved4": (262, 3834),
    }),
    (S.Secinfo, 64, 64, {"flags": (0, 8), "reserved": (8, 56)}),
    (S.Pageinfo, 32, 32, {"linaddr": (0, 8), "srcpge": (8, 8), "secinfo": (16, 8),
                          "secs": (24, 8)}),
    (S.Tcs, 4096, 4096, {
        "state": (0, 8), "flags": (8, 8), "ossa": (16, 8), "cssa": (24, 4), "nssa": (28, 4),
        "oentry": (32, 8), "aep": (40, 8), "ofsbase": (48, 8), "ogsbase": (56, 8),
        "fslimit": (64, 4), "gslimit": (68, 4), "reserved": (72, 4024),
    }),
    (S.Pcmd, 128, 128, {"secinfo": (0, 64), "enclave_id": (64, 8), "reserved": (72, 40),
                        "mac": (112, 16)}),
    (S.Sigstruct, 1808, 4096, {
        "header": (0, 16), "vendor": (16, 4), "date": (20, 4), "header2": (24, 16),
        "swdefined": (40, 4), "reserved1": (44, 84), "modulus": (128, 384),
        "exponent": (512, 4), "signature": (516, 384), "miscselect": (900, 4),
        "misc_mask": (904, 4), "cet_attributes": (908, 1), "cet_attributes_mask": (909, 1),
        "reserved2": (910, 2), "isvfamilyid": (912, 16), "attributes": (928, 8),
        "xfrm": (936, 8), "attributes_mask": (944, 8), "xfrm_mask": (952, 8),
        "enclavehash": (960, 32), "reserved3": (992, 16), "isvextprodid": (1008, 16),
        "isvprodid": (1024, 2), "isvsvn": (1026, 2), "reserved4": (1028, 12),
        "q1": (1040, 384), "q2": (1424, 384),
    }),
    (S.Einittoken, 304, 512, {
        "valid": (0, 4), "reserved1": (4, 44), "attributes": (48, 8), "xfrm": (56, 8),
        "mrenclave": (64, 32), "reserved2": (96, 32), "mrsigner": (128, 32),
        "reserved3": (160, 32), "cpusvnle": (192, 16), "isvprodidle": (208, 2),
        "isvsvnle": (210, 2), "reserved4": (212, 24), "maskedmiscselectle": (236, 4),
        "maskedattributesle": (240, 8), "maskedxfrmle": (248, 8), "keyid": (256, 32),
        "mac": (288, 16),
    }),
    (S.SsaGpr, 184, 1, {
        "rax": (0, 8), "rcx": (8, 8), "rdx": (16, 8), "rbx": (24, 8), "rsp": (32, 8),
        "rbp": (40, 8), "rsi": (48, 8), "rdi": (56, 8), "r8": (64, 8), "r9": (72, 8),
        "r10": (80, 8), "r11": (88, 8), "r12": (96, 8), "r13": (104, 8), "r14": (112, 8),
        "r15": (120, 8), "rflags": (128, 8), "rip": (136, 8), "ursp": (144, 8),
        "urbp": (152, 8), "exitinfo": (160, 4), "reserved": (164, 4), "fsbase": (168, 8),
        "gsbase": (176, 8),
    }),
    (S.SsaExinfo, 16, 1, {"maddr": (0, 8), "errcd": (8, 4), "reserved": (12, 4)}),
    (S.Report, 432, 512, {
        "cpusvn": (0, 16), "miscselect": (16, 4), "reserved1": (20, 28),
        "attributes": (48, 8), "xfrm": (56, 8), "mrenclave": (64, 32), "reserved2": (96, 32),
        "mrsigner": (128, 32), "reserved3": (160, 96), "isvprodid": (256, 2),
        "isvsvn": (258, 2), "reserved4": (260, 60), "reportdata": (320, 64),
        "keyid": (384, 32), "mac": (416, 16),
    }),
    (S.Targetinfo, 512, 512, {
        "mrenclave": (0, 32), "attributes": (32, 8), "xfrm": (40, 8), "reserved1": (48, 4),
        "miscselect": (52, 4), "reserved2": (56, 456),
    }),
    (S.Keyrequest, 512, 512, {
        "keyname": (0, 2), "keypolicy": (2, 2), "isvsvn": (4, 2), "reserved1": (6, 2),
        "cpusvn": (8, 16), "attributemask": (24, 8), "xfrmmask": (32, 8), "keyid": (40, 32),
        "miscmask": (72, 4), "configsvn": (76, 2), "reserved2": (78, 434),
    }),
]
IDS = [cls.__name__ for cls, *_ in LAYOUTS]


@pytest.mark.parametrize(("cls", "size", "align", "fields"), LAYOUTS, ids=IDS)
def test_layout(cls: type[Struct], size: int, align: int,
                fields: dict[str, tuple[int, int]]) -> None:
    assert cls.SIZE == size
    assert cls.ALIGN == align
    assert {name: (off, sz) for name, off, sz, _ in cls.FIELDS} == fields
    for name, (off, _sz) in fields.items():
        assert getattr(cls, f"OFF_{name.upper()}") == off


@pytest.mark.parametrize(("cls", "size", "align", "fields"), LAYOUTS, ids=IDS)
def test_each_field_lands_at_its_offset(cls: type[Struct], size: int, align: int,
                                        fields: dict[str, tuple[int, int]]) -> None:
    # Write a distinct non-zero value into each field alone and find it in the bytes.
    for name, off, sz, kind in cls.FIELDS:
        pattern = bytes((i % 251) + 1 for i in range(sz))
        value = int.from_bytes(pattern, "little") if kind == "u" else pattern
        raw = cls(**{name: value}).pack()
        assert len(raw) == size
        assert raw[off : off + sz] == pattern, name
        assert raw[:off] == bytes(off) and raw[off + sz :] == bytes(size - off - sz), name
        assert getattr(cls.unpack(raw), name) == value


def test_sigstruct_signed_data_is_header_and_body() -> None:
    raw = bytes(i & 0xFF for i in range(1808))
    assert S.Sigstruct.unpack(raw).signed_data() == raw[0:128] + raw[900:1028]


def test_sigstruct_header_constants() -> None:
    assert S.Sigstruct.HEADER == bytes([6, 0, 0, 0, 0xE1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    assert S.Sigstruct.HEADER2 == bytes([1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0])


def test_overlapping_or_gapped_layout_is_rejected() -> None:
    with pytest.raises(TypeError):
        class Overlap(Struct):  # noqa: F841
            SIZE = 16
            FIELDS = (("a", 0, 8, "u"), ("b", 4, 8, "u"))
    with pytest.raises(TypeError):
        class Gap(Struct):  # noqa: F841
            SIZE = 16
            FIELDS = (("a", 0, 4, "u"), ("b", 8, 8, "u"))


def test_unknown_field_rejected() -> None:
    with pytest.raises(TypeError):
        S.Secinfo(flagz=1)
    with pytest.raises(TypeError):
        S.Secinfo().replace(flagz=1)


def test_pack_out_of_range_is_value_error() -> None:
    with pytest.raises(ValueError):
        S.Secinfo(flags=1 << 64).pack()
    with pytest.raises(ValueError):
        S.Secinfo(reserved=b"\x00" * 57).pack()
    with pytest.raises(ValueError):
        S.Secinfo(reserved=b"\x00" * 55).pack()


@pytest.mark.parametrize("cls", [c for c, *_ in LAYOUTS], ids=IDS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.large_base_example, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_bytes_round_trip(cls: type[Struct], data: st.DataObject) -> None:
    raw = data.draw(st.binary(min_size=cls.SIZE, max_size=cls.SIZE))
    obj = cls.unpack(raw)
    assert obj.pack() == raw
    assert cls.unpack(bytearray(raw) + b"tail").pack() == raw  # longer input is cut
    assert obj == cls.unpack(memoryview(raw))


@pytest.mark.parametrize("cls", [c for c, *_ in LAYOUTS], ids=IDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_short_input_raises_value_error(cls: type[Struct], data: st.DataObject) -> None:
    raw = data.draw(st.binary(max_size=cls.SIZE - 1))
    with pytest.raises(ValueError):
        cls.unpack(raw)
