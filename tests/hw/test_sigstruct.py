"""SIGSTRUCT signing and EINIT's signature and header checks (sgx-hardware.md
§3.6, §4.4, §10) against the public enarx vector and generated keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.hw import sigstruct as sigs
from sgxsim.hw.consts import Attribute
from sgxsim.hw.structs import Sigstruct

ENARX_MRSIGNER = "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"
ENARX_MRENCLAVE = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"
SIGNED_RANGES = [*range(0, 128), *range(900, 1028)]


def le(b: bytes) -> int:
    return int.from_bytes(b, "little")


@pytest.fixture
def enarx_ss(enarx_vector: Path) -> bytes:
    return (enarx_vector / "encl.ss").read_bytes()


def flip(raw: bytes, i: int) -> Sigstruct:
    b = bytearray(raw)
    b[i] ^= 0x01
    return Sigstruct.unpack(bytes(b))


def test_enarx_verifies(enarx_ss: bytes) -> None:
    sig = Sigstruct.unpack(enarx_ss)
    assert sigs.header_valid(sig)
    assert sigs.check_signature(sig)
    assert sigs.mrsigner(sig).hex() == ENARX_MRSIGNER
    assert bytes(sig.enclavehash).hex() == ENARX_MRENCLAVE
    assert hashlib.sha256(bytes(sig.modulus)).hexdigest() == ENARX_MRSIGNER


def test_enarx_resign_reproduces_the_file(enarx_vector: Path, enarx_ss: bytes) -> None:
    key = sigs.load_key((enarx_vector / "encl.pem").read_bytes())
    sig = sigs.build(bytes.fromhex(ENARX_MRENCLAVE), attributes=Attribute.MODE64BIT, xfrm=3)
    assert sigs.sign(sig, key).pack() == enarx_ss


def test_enarx_q1_q2_and_rsa_equation(enarx_ss: bytes) -> None:
    sig = Sigstruct.unpack(enarx_ss)
    n, s = le(sig.modulus), le(sig.signature)
    assert le(sig.q1) == s * s // n
    assert le(sig.q2) == s * (s * s % n) // n
    em = pow(s, 3, n).to_bytes(384, "big")
    assert em[:352] == sigs.pkcs1_padding()
    assert em[352:] == hashlib.sha256(enarx_ss[0:128] + enarx_ss[900:1028]).digest()


def test_pkcs1_padding_shape() -> None:
    p = sigs.pkcs1_padding()
    assert len(p) == 352
    assert p[:2] == b"\x00\x01" and set(p[2:332]) == {0xFF} and p[332] == 0
    assert p[333:] == bytes.fromhex("3031300d060960864801650304020105000420")


@pytest.mark.parametrize("i", SIGNED_RANGES)
def test_flipping_a_signed_byte_breaks_the_signature(enarx_ss: bytes, i: int) -> None:
    assert not sigs.check_signature(flip(enarx_ss, i))


def test_flipping_signature_modulus_or_quotient_bytes_breaks_it(enarx_ss: bytes) -> None:
    for i in range(128, 512):  # MODULUS
        assert not sigs.check_signature(flip(enarx_ss, i)), i
    for i in range(516, 900):  # SIGNATURE
        assert not sigs.check_signature(flip(enarx_ss, i)), i
    for i in range(1040, 1808):  # Q1, Q2
        assert not sigs.check_signature(flip(enarx_ss, i)), i


def test_unsigned_bytes_outside_do_not_matter(enarx_ss: bytes) -> None:
    # EXPONENT and the trailing reserved bytes are not part of the RSA check.
    for i in [*range(512, 516), *range(1028, 1040)]:
        assert sigs.check_signature(flip(enarx_ss, i)), i


def test_sign_verify_round_trip(signing_key: rsa.RSAPrivateKey) -> None:
    mr = bytes(range(32))
    sig = sigs.sign(
        sigs.build(mr, attributes=Attribute.MODE64BIT | Attribute.DEBUG, xfrm=7,
                   attributes_mask=0xFF, xfrm_mask=3, miscselect=1, misc_mask=1,
                   isvprodid=7, isvsvn=9, vendor=0x8086, date=0x20261123, swdefined=5),
        signing_key,
    )
    assert sigs.header_valid(sig) and sigs.check_signature(sig)
    n = signing_key.public_key().public_numbers().n
    assert le(sig.modulus) == n and sig.exponent == 3
    s = le(sig.signature)
    assert le(sig.q1) == s * s // n and le(sig.q2) == s * (s * s % n) // n
    assert sigs.mrsigner(sig) == hashlib.sha256(n.to_bytes(384, "little")).digest()
    assert (sig.enclavehash, sig.isvprodid, sig.isvsvn, sig.vendor) == (mr, 7, 9, 0x8086)
    # The same body signed again gives the same bytes (PKCS#1 v1.5 is deterministic).
    assert sigs.sign(sig, signing_key).pack() == sig.pack()
    assert not sigs.check_signature(sig.replace(isvsvn=10))


def test_build_is_unsigned_with_constant_header() -> None:
    sig = sigs.build(bytes(32))
    assert bytes(sig.header) == Sigstruct.HEADER and bytes(sig.header2) == Sigstruct.HEADER2
    assert sig.exponent == 3 and sigs.header_valid(sig)
    assert sig.attributes == Attribute.MODE64BIT and sig.xfrm == 3
    assert not sigs.check_signature(sig)
    with pytest.raises(ValueError):
        sigs.build(bytes(31))


def test_sign_rejects_other_keys() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError):
        sigs.sign(sigs.build(bytes(32)), key)


def test_load_key_rejects_non_rsa() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(ValueError):
        sigs.load_key(pem)


@pytest.mark.parametrize(
    "change",
    [
        {"header": b"\x07" + Sigstruct.HEADER[1:]},
        {"header": Sigstruct.HEADER[:15] + b"\x01"},
        {"header": Sigstruct.HEADER[:12] + b"\x00\x00\x00\x80"},  # SDK RELEASETYPE bit
        {"header2": Sigstruct.HEADER2[:4] + b"\x61" + Sigstruct.HEADER2[5:]},
        {"vendor": 1},
        {"vendor": 0x8087},
        {"exponent": 65537},
        {"exponent": 0},
        {"reserved1": b"\x00" * 83 + b"\x01"},
        {"reserved2": b"\x00\x01"},
        {"reserved3": b"\x01" + b"\x00" * 15},
        {"reserved4": b"\x00" * 11 + b"\x80"},
    ],
)
def test_header_invalid(change: dict) -> None:
    sig = sigs.build(bytes(32))
    assert sigs.header_valid(sig)
    assert not sigs.header_valid(sig.replace(**change))


def test_header_valid_intel_vendor() -> None:
    assert sigs.header_valid(sigs.build(bytes(32), vendor=0x8086))


def test_malformed_rsa_inputs_are_false(enarx_ss: bytes) -> None:
    sig = Sigstruct.unpack(enarx_ss)
    n = le(sig.modulus)
    assert not sigs.check_signature(sig.replace(modulus=bytes(384)))
    assert not sigs.check_signature(sig.replace(signature=sig.modulus))  # s == n
    assert not sigs.check_signature(sig.replace(signature=b"\xff" * 384))  # s > n
    assert not sigs.check_signature(sig.replace(q1=(le(sig.q1) + 1).to_bytes(384, "little")))
    assert not sigs.check_signature(sig.replace(q2=(le(sig.q2) - 1).to_bytes(384, "little")))
    assert not sigs.check_signature(sig.replace(modulus=(1).to_bytes(384, "little")))
    assert n > 0


@settings(max_examples=100, suppress_health_check=[HealthCheck.large_base_example])
@given(raw=st.binary(min_size=1808, max_size=1808))
def test_random_sigstructs_never_raise(raw: bytes) -> None:
    sig = Sigstruct.unpack(raw)
    assert sigs.check_signature(sig) in (True, False)
    assert sigs.header_valid(sig) in (True, False)
    assert len(sigs.mrsigner(sig)) == 32


@settings(max_examples=50)
@given(n=st.integers(min_value=0, max_value=(1 << 3072) - 1), s=st.integers(min_value=0),
       q1=st.integers(min_value=0, max_value=(1 << 3072) - 1))
def test_random_numbers_never_raise(n: int, s: int, q1: int) -> None:
    s %= 1 << 3072
    sig = sigs.build(bytes(32)).replace(
        modulus=n.to_bytes(384, "little"), signature=s.to_bytes(384, "little"),
        q1=q1.to_bytes(384, "little"))
    assert sigs.check_signature(sig) is False
