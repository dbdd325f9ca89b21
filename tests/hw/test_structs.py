"""Byte-exact layouts of the architectural structures (sgx-hardware.md §3)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.hw import structs as S

# (structure, size, {field: offset}) spelled from the reference tables.
LAYOUTS = [
    (S.Secs, 4096, {"size": 0, "base": 8, "ssa_frame_size": 16, "miscselect": 20,
                    "attributes": 48, "xfrm": 56, "mrenclave": 64, "mrsigner": 128,
                    "config_id": 192, "isv_prod_id": 256, "isv_svn": 258, "config_svn": 260}),
    (S.Secinfo, 64, {"flags": 0, "reserved": 8}),
    (S.Pageinfo, 32, {"linaddr": 0, "srcpge": 8, "secinfo": 16, "secs": 24}),
    (S.Tcs, 4096, {"state": 0, "flags": 8, "ossa": 16, "cssa": 24, "nssa": 28, "oentry": 32,
                   "aep": 40, "ofsbase": 48, "ogsbase": 56, "fslimit": 64, "gslimit": 68,
                   "reserved": 72}),
    (S.Pcmd, 128, {"secinfo": 0, "enclave_id": 64, "reserved": 72, "mac": 112}),
    (S.Sigstruct, 1808, {"header": 0, "vendor": 16, "date": 20, "header2": 24,
                         "swdefined": 40, "modulus": 128, "exponent": 512, "signature": 516,
                         "miscselect": 900, "misc_mask": 904, "isvfamilyid": 912,
                         "attributes": 928, "xfrm": 936, "attributes_mask": 944,
                         "xfrm_mask": 952, "enclavehash": 960, "isvextprodid": 1008,
                         "isvprodid": 1024, "isvsvn": 1026, "q1": 1040, "q2": 1424}),
    (S.Einittoken, 304, {"valid": 0, "attributes": 48, "mrenclave": 64, "mrsigner": 128,
                         "cpusvnle": 192, "isvprodidle": 208, "isvsvnle": 210,
                         "maskedmiscselectle": 236, "maskedattributesle": 240,
                         "keyid": 256, "mac": 288}),
    (S.SsaGpr, 184, {"rax": 0, "rcx": 8, "rdx": 16, "rbx": 24, "rsp": 32, "rbp": 40,
                     "rsi": 48, "rdi": 56, "r8": 64, "r15": 120, "rflags": 128, "rip": 136,
                     "ursp": 144, "urbp": 152, "exitinfo": 160, "fsbase": 168,
                     "gsbase": 176}),
    (S.Report, 432, {"cpusvn": 0, "miscselect": 16, "attributes": 48, "mrenclave": 64,
                     "mrsigner": 128, "isvprodid": 256, "isvsvn": 258, "reportdata": 320,
                     "keyid": 384, "mac": 416}),
    (S.Targetinfo, 512, {"mrenclave": 0, "attributes": 32, "miscselect": 52}),
    (S.Keyrequest, 512, {"keyname": 0, "keypolicy": 2, "isvsvn": 4, "cpusvn": 8,
                         "attributemask": 24, "keyid": 40, "miscmask": 72, "configsvn": 76}),
]

ALL = [cls for cls, _, _ in LAYOUTS] + [S.SsaExinfo]


@pytest.mark.parametrize("cls,size,offsets", LAYOUTS, ids=lambda x: getattr(x, "__name__", ""))
def test_layout(cls, size, offsets):
    assert cls.SIZE == size
    assert len(cls().pack()) == size
    actual = {name: off for name, off, _, _ in cls.FIELDS}
    for name, off in offsets.items():
        assert actual[name] == off, name


def test_field_values_land_at_their_offsets():
    raw = S.Secs(size=0x8000, base=0x7F0000000000, ssa_frame_size=1, attributes=4, xfrm=3).pack()
    assert int.from_bytes(raw[0:8], "little") == 0x8000
    assert int.from_bytes(raw[8:16], "little") == 0x7F0000000000
    assert int.from_bytes(raw[16:20], "little") == 1
    assert int.from_bytes(raw[48:56], "little") == 4
    assert int.from_bytes(raw[56:64], "little") == 3


def test_overlapping_layout_is_rejected():
    with pytest.raises(TypeError):
        class Bad(S.Struct):  # noqa: F841
            SIZE = 16
            FIELDS = (("a", 0, 8, "u"), ("b", 4, 8, "u"))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.large_base_example, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_bytes_round_trip(cls, data):
    raw = data.draw(st.binary(min_size=cls.SIZE, max_size=cls.SIZE))
    assert cls.unpack(raw).pack() == raw


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_short_input_is_a_value_error(cls, data):
    raw = data.draw(st.binary(max_size=cls.SIZE - 1))
    with pytest.raises(ValueError):
        cls.unpack(raw)


def test_out_of_range_value_is_a_value_error():
    with pytest.raises(ValueError):
        S.Secinfo(flags=1 << 64).pack()
    with pytest.raises(TypeError):
        S.Secinfo(nonsense=1)
