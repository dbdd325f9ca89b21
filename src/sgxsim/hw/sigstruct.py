"""SIGSTRUCT: building, signing and verifying (SDM 38.13; reference
sgx-hardware.md §10, linux-sgx-driver.md §7.3).

The signature is RSASSA-PKCS1-v1_5 with SHA-256 over header‖body (bytes
[0, 128) and [900, 1028)) under an RSA-3072 key with public exponent 3.
Modulus, signature, Q1 and Q2 are stored as little-endian integers.  Q1 and Q2
let the CPU check s³ ≡ EM (mod n) without dividing; :func:`check_signature`
checks them exactly, as EINIT does.
"""

from __future__ import annotations

import functools
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sgxsim.hw.consts import SGX_MODULUS_SIZE, Attribute
from sgxsim.hw.structs import Sigstruct

KEY_BITS = 3072
EXPONENT = 3
# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
_SHA256_DIGESTINFO = bytes.fromhex("3031300d060960864801650304020105000420")
VENDOR_INTEL = 0x8086


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-3072 key with e = 3, as SGX requires."""
    return rsa.generate_private_key(public_exponent=EXPONENT, key_size=KEY_BITS)


def load_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("SIGSTRUCT keys are RSA keys")
    return key


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def build(
    mrenclave: bytes,
    *,
    attributes: int = Attribute.MODE64BIT,
    xfrm: int = 3,
    attributes_mask: int = 0,
    xfrm_mask: int = 0,
    miscselect: int = 0,
    misc_mask: int = 0,
    isvprodid: int = 0,
    isvsvn: int = 0,
    vendor: int = 0,
    date: int = 0,
    swdefined: int = 0,
) -> Sigstruct:
    """An unsigned SIGSTRUCT with the architectural header constants."""
    if len(mrenclave) != 32:
        raise ValueError("MRENCLAVE is 32 bytes")
    return Sigstruct(
        header=Sigstruct.HEADER,
        vendor=vendor,
        date=date,
        header2=Sigstruct.HEADER2,
        swdefined=swdefined,
        exponent=EXPONENT,
        miscselect=miscselect,
        misc_mask=misc_mask,
        attributes=int(attributes),
        xfrm=xfrm,
        attributes_mask=attributes_mask,
        xfrm_mask=xfrm_mask,
        enclavehash=bytes(mrenclave),
        isvprodid=isvprodid,
        isvsvn=isvsvn,
    )


def _le(n: int) -> bytes:
    return n.to_bytes(SGX_MODULUS_SIZE, "little")


def sign(sig: Sigstruct, key: rsa.RSAPrivateKey) -> Sigstruct:
    """Sign header‖body with ``key``; fill modulus, exponent, signature, Q1, Q2."""
    pub = key.public_key().public_numbers()
    if pub.e != EXPONENT or pub.n.bit_length() != KEY_BITS:
        raise ValueError("SIGSTRUCT needs an RSA-3072 key with public exponent 3")
    n = pub.n
    s = int.from_bytes(key.sign(sig.signed_data(), padding.PKCS1v15(), hashes.SHA256()), "big")
    q1 = s * s // n
    q2 = s * (s * s % n) // n
    return sig.replace(
        modulus=_le(n), exponent=EXPONENT, signature=_le(s), q1=_le(q1), q2=_le(q2)
    )


def pkcs1_encoding(digest: bytes) -> bytes:
    """EM = 00 01 FF.. 00 ‖ DigestInfo(SHA-256) ‖ digest, 384 bytes big-endian."""
    tail = _SHA256_DIGESTINFO + digest
    return b"\x00\x01" + b"\xff" * (SGX_MODULUS_SIZE - 3 - len(tail)) + b"\x00" + tail


def pkcs1_padding() -> bytes:
    """The SDM's HARDCODED_PKCS1_5_PADDING: the first 352 bytes of EM, which
    EINIT keeps as SECS.PADDING."""
    return pkcs1_encoding(bytes(32))[:352]


def check_signature(sig: Sigstruct) -> bool:
    """EINIT's RSA check: Q1 and Q2 exactly as the formulas give them, and
    s³ mod n equal to the PKCS#1 v1.5 encoding of SHA-256(header‖body).

    Malformed input (zero or even modulus, s ≥ n) is a failed check."""
    return _rsa_check(bytes(sig.modulus), bytes(sig.signature), bytes(sig.q1), bytes(sig.q2),
                      hashlib.sha256(sig.signed_data()).digest())


# The check is a function of these bytes alone, and its 3072-bit arithmetic
# costs ~100 us: a checker's search runs EINIT with the same few SIGSTRUCTs
# over and over.  A bounded cache of the answers (no state: a hit is what
# the arithmetic computes).
@functools.lru_cache(maxsize=256)
def _rsa_check(modulus: bytes, signature: bytes, q1_: bytes, q2_: bytes, digest: bytes) -> bool:
    n = int.from_bytes(modulus, "little")
    s = int.from_bytes(signature, "little")
    if n < 3 or s >= n:
        return False
    q1 = int.from_bytes(q1_, "little")
    q2 = int.from_bytes(q2_, "little")
    s2 = s * s
    if q1 != s2 // n or q2 != s * (s2 % n) // n:
        return False
    em = pow(s, EXPONENT, n).to_bytes(SGX_MODULUS_SIZE, "big")
    return em == pkcs1_encoding(digest)


def mrsigner(sig: Sigstruct) -> bytes:
    """MRSIGNER = SHA-256 of the 384 modulus bytes as stored (little-endian)."""
    return hashlib.sha256(sig.modulus).digest()


def header_valid(sig: Sigstruct) -> bool:
    """The SIGSTRUCT header checks of EINIT (SDM: EINIT; SGX_INVALID_SIG_STRUCT):
    HEADER and HEADER2 constants, VENDOR 0 or 0x8086, EXPONENT 3, reserved
    bytes zero."""
    return (
        sig.header == Sigstruct.HEADER
        and sig.header2 == Sigstruct.HEADER2
        and sig.vendor in (0, VENDOR_INTEL)
        and sig.exponent == EXPONENT
        and not any(sig.reserved1)
        and not any(sig.reserved2)
        and not any(sig.reserved3)
        and not any(sig.reserved4)
    )
