"""SIGSTRUCT signing and EINIT's signature check (sgx-hardware.md §10)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgxsim.hw import sigstruct as S
from sgxsim.hw.structs import Sigstruct

MRSIGNER = "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"


@pytest.fixture(scope="session")
def key():
    return S.generate_key()


@pytest.fixture
def shipped(enarx_vector):
    return Sigstruct.unpack((enarx_vector / "encl.ss").read_bytes())


def test_shipped_sigstruct_verifies(shipped):
    assert S.header_valid(shipped)
    assert S.check_signature(shipped)
    assert S.mrsigner(shipped).hex() == MRSIGNER


def test_resigning_with_the_shipped_key_is_byte_exact(enarx_vector, shipped):
    key = S.load_key((enarx_vector / "encl.pem").read_bytes())
    resigned = S.sign(S.build(shipped.enclavehash), key)
    assert resigned.pack() == (enarx_vector / "encl.ss").read_bytes()


@pytest.mark.parametrize("offset", [0, 17, 127, 900, 930, 960, 991, 1024, 1027])
def test_any_signed_byte_changed_fails(shipped, offset):
    raw = bytearray(shipped.pack())
    raw[offset] ^= 0x01
    assert not S.check_signature(Sigstruct.unpack(raw))


@pytest.mark.parametrize("field", ["signature", "modulus", "q1", "q2"])
def test_any_key_material_byte_changed_fails(shipped, field):
    value = bytearray(getattr(shipped, field))
    value[5] ^= 0x80
    assert not S.check_signature(shipped.replace(**{field: bytes(value)}))


def test_sign_then_verify(key):
    sig = S.sign(S.build(hashlib.sha256(b"x").digest(), isvprodid=7, isvsvn=3), key)
    assert S.check_signature(sig)
    n = int.from_bytes(sig.modulus, "little")
    s = int.from_bytes(sig.signature, "little")
    assert int.from_bytes(sig.q1, "little") == s * s // n
    assert int.from_bytes(sig.q2, "little") == s * (s * s % n) // n
    assert S.mrsigner(sig) == hashlib.sha256(sig.modulus).digest()


def test_wrong_keys_are_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa

    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError):
        S.sign(S.build(bytes(32)), k)


@pytest.mark.parametrize("change", [
    {"header": bytes(16)}, {"header2": bytes(16)}, {"vendor": 0x1234}, {"exponent": 65537},
    {"reserved1": b"\x01" + bytes(83)}, {"reserved4": b"\x01" + bytes(11)},
])
def test_header_checks(shipped, change):
    assert not S.header_valid(shipped.replace(**change))


def test_intel_vendor_is_valid(shipped):
    assert S.header_valid(shipped.replace(vendor=0x8086))


def test_padding_prefix():
    pad = S.pkcs1_padding()
    # 00 01, 330 bytes of FF, 00, then the SHA-256 DigestInfo prefix (19 bytes).
    assert len(pad) == 352 and pad[:2] == b"\x00\x01" and set(pad[2:332]) == {0xFF}
    assert pad[332] == 0 and pad[333:] == bytes.fromhex("3031300d060960864801650304020105000420")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=Sigstruct.SIZE, max_size=Sigstruct.SIZE))
def test_random_sigstructs_never_raise(raw):
    s = Sigstruct.unpack(raw)
    assert S.check_signature(s) in (True, False)
    assert S.header_valid(s) in (True, False)
    assert len(S.mrsigner(s)) == 32
