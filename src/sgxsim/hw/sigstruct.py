"""SIGSTRUCT: build, sign, verify, MRSIGNER (SDM 38.13, EINIT; reference
sgx-hardware.md §3.6, §4.4 steps 3/5/9, §10).

The signature is RSASSA-PKCS1-v1_5 with SHA-256 under an RSA-3072 key with
public exponent 3, over the header block [0,128) and the body block
[900,1028).  MODULUS, SIGNATURE, Q1 and Q2 are little-endian integers.
EINIT checks the signature with the help of Q1 and Q2 so that it needs no
division; :func:`check_signature` checks both quotients exactly and the
RSA equation itself.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sgxsim.hw.consts import SGX_MODULUS_SIZE, XFRM_LEGACY, Attribute
from sgxsim.hw.structs import Sigstruct

RSA_EXPONENT = 3
RSA_BITS = SGX_MODULUS_SIZE * 8
VENDOR_INTEL = 0x8086
VALID_VENDORS = (0, VENDOR_INTEL)

# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_PS_LEN = SGX_MODULUS_SIZE - 3 - len(SHA256_DIGEST_INFO) - 32
# The reserved ranges of SIGSTRUCT that EINIT requires to be zero.
_RESERVED_FIELDS = ("reserved1", "reserved2", "reserved3", "reserved4")


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-3072 signing key with public exponent 3."""
    return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)


def load_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (e.g. the kernel selftest's sign_key.pem)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def build(
    mrenclave: bytes,
    *,
    attributes: int = Attribute.MODE64BIT,
    xfrm: int = XFRM_LEGACY,
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
    """An unsigned SIGSTRUCT for an enclave whose MRENCLAVE is ``mrenclave``."""
    if len(mrenclave) != 32:
        raise ValueError(f"MRENCLAVE is 32 bytes, got {len(mrenclave)}")
    return Sigstruct(
        header=Sigstruct.HEADER,
        vendor=vendor,
        date=date,
        header2=Sigstruct.HEADER2,
        swdefined=swdefined,
        exponent=RSA_EXPONENT,
        miscselect=miscselect,
        misc_mask=misc_mask,
        attributes=int(attributes),
        xfrm=xfrm,
        attributes_mask=int(attributes_mask),
        xfrm_mask=xfrm_mask,
        enclavehash=bytes(mrenclave),
        isvprodid=isvprodid,
        isvsvn=isvsvn,
    )


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _quotients(s: int, n: int) -> tuple[int, int]:
    """q1 = floor(s^2 / n), q2 = floor(s * (s^2 mod n) / n)."""
    q1, r = divmod(s * s, n)
    return q1, (s * r) // n


def sign(sig: Sigstruct, key: rsa.RSAPrivateKey) -> Sigstruct:
    """Sign header||body with ``key``; fill MODULUS, EXPONENT, SIGNATURE, Q1, Q2."""
    pub = key.public_key().public_numbers()
    if pub.e != RSA_EXPONENT or key.key_size != RSA_BITS:
        raise ValueError(f"SIGSTRUCT needs RSA-{RSA_BITS} with e={RSA_EXPONENT}")
    n = pub.n
    # The signed bytes do not include MODULUS/EXPONENT, so set them first or after alike.
    out = sig.replace(modulus=n.to_bytes(SGX_MODULUS_SIZE, "little"), exponent=RSA_EXPONENT)
    s_be = key.sign(out.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    s = int.from_bytes(s_be, "big")
    q1, q2 = _quotients(s, n)
    return out.replace(
        signature=s.to_bytes(SGX_MODULUS_SIZE, "little"),
        q1=q1.to_bytes(SGX_MODULUS_SIZE, "little"),
        q2=q2.to_bytes(SGX_MODULUS_SIZE, "little"),
    )


def pkcs1_padding() -> bytes:
    """The 352-byte PKCS#1 v1.5 prefix (00 01 FF.. 00 DigestInfo) that EINIT
    expects in the decoded signature and stores as SECS.PADDING."""
    return b"\x00\x01" + b"\xff" * _PS_LEN + b"\x00" + SHA256_DIGEST_INFO


def encoded_message(sig: Sigstruct) -> bytes:
    """EM = PKCS#1 v1.5 encoding of SHA-256(header||body), big-endian, 384 bytes."""
    return pkcs1_padding() + hashlib.sha256(sig.signed_data()).digest()


def check_signature(sig: Sigstruct) -> bool:
    """EINIT's RSA check (SDM: EINIT "verify signature using q1/q2"): Q1 and Q2
    exactly as the formulas give them, and s^3 mod n == EM.  The exponent
    field is not consulted here (the hardware always uses 3; EXPONENT is a
    header check).  Malformed input gives False, never an exception."""
    n = _le(sig.modulus)
    s = _le(sig.signature)
    if n == 0 or s >= n:
        return False
    q1, q2 = _quotients(s, n)
    if _le(sig.q1) != q1 or _le(sig.q2) != q2:
        return False
    # pow(s, 3, n) from the quotients, the way the hardware does it:
    # s^2 mod n = s^2 - q1*n;  s^3 mod n = s*(s^2 mod n) - q2*n.
    r = s * (s * s - q1 * n) - q2 * n
    em = int.from_bytes(encoded_message(sig), "big")
    return r == em


def mrsigner(sig: Sigstruct) -> bytes:
    """MRSIGNER = SHA-256 of the 384 MODULUS bytes as stored (EINIT step 9)."""
    return hashlib.sha256(bytes(sig.modulus)).digest()


def header_valid(sig: Sigstruct) -> bool:
    """EINIT's SGX_INVALID_SIG_STRUCT checks on the copied SIGSTRUCT: HEADER
    and HEADER2 constants (all 16 bytes each), VENDOR 0 or 0x8086, EXPONENT 3,
    reserved fields zero."""
    if bytes(sig.header) != Sigstruct.HEADER or bytes(sig.header2) != Sigstruct.HEADER2:
        return False
    if sig.vendor not in VALID_VENDORS:
        return False
    if sig.exponent != RSA_EXPONENT:
        return False
    return not any(any(getattr(sig, f)) for f in _RESERVED_FIELDS)
