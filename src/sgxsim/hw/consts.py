"""Architectural constants of SGX (SDM Vol. 3D; arch/x86/include/asm/sgx.h)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)


class PageType(IntEnum):
    """EPCM.PT (SDM Table 38-27)."""

    PT_SECS = 0
    PT_TCS = 1
    PT_REG = 2
    PT_VA = 3
    PT_TRIM = 4
    PT_SS_FIRST = 5
    PT_SS_REST = 6


class SecinfoFlags(IntFlag):
    """SECINFO.FLAGS bits (SDM Table 38-19); PT lives in bits 15:8."""

    R = 0x1
    W = 0x2
    X = 0x4
    PENDING = 0x8
    MODIFIED = 0x10
    PR = 0x20


SECINFO_PERM_MASK = 0x7
SECINFO_PT_SHIFT = 8
SECINFO_PT_MASK = 0xFF00
# Bits the architecture reserves in SECINFO.FLAGS (7:6 and 63:16).
SECINFO_RESERVED_MASK = ~(0x3F | SECINFO_PT_MASK) & 0xFFFFFFFFFFFFFFFF


def secinfo_flags(pt: int, perms: int = 0, state: int = 0) -> int:
    return (int(pt) << SECINFO_PT_SHIFT) | int(perms) | int(state)


class Attribute(IntFlag):
    """SECS.ATTRIBUTES.FLAGS (SDM Table 38-3)."""

    INIT = 1 << 0
    DEBUG = 1 << 1
    MODE64BIT = 1 << 2
    PROVISIONKEY = 1 << 4
    EINITTOKENKEY = 1 << 5
    CET = 1 << 6
    KSS = 1 << 7
    AEXNOTIFY = 1 << 10


# Linux SGX_ATTR_RESERVED_MASK: BIT(3) | BIT(6) | GENMASK(9, 8) | GENMASK(63, 11).
SGX_ATTR_RESERVED_MASK = (1 << 3) | (1 << 6) | (0x3 << 8) | (((1 << 64) - 1) & ~((1 << 11) - 1))
SGX_MISC_RESERVED_MASK = ((1 << 64) - 1) & ~1  # GENMASK_ULL(63, 1)
MISC_EXINFO = 1 << 0

XFRM_LEGACY = 0x3  # x87 | SSE


class Encls(IntEnum):
    """ENCLS leaf numbers (EAX)."""

    ECREATE = 0x00
    EADD = 0x01
    EINIT = 0x02
    EREMOVE = 0x03
    EDBGRD = 0x04
    EDBGWR = 0x05
    EEXTEND = 0x06
    ELDB = 0x07
    ELDU = 0x08
    EBLOCK = 0x09
    EPA = 0x0A
    EWB = 0x0B
    ETRACK = 0x0C
    EAUG = 0x0D
    EMODPR = 0x0E
    EMODT = 0x0F


class Enclu(IntEnum):
    """ENCLU leaf numbers (EAX)."""

    EREPORT = 0
    EGETKEY = 1
    EENTER = 2
    ERESUME = 3
    EEXIT = 4
    EACCEPT = 5
    EMODPE = 6
    EACCEPTCOPY = 7


class SgxReturn(IntEnum):
    """Status codes returned in RAX (SDM; Linux ``enum sgx_return_code``)."""

    SGX_SUCCESS = 0
    SGX_INVALID_SIG_STRUCT = 1
    SGX_INVALID_ATTRIBUTE = 2
    SGX_BLKSTATE = 3
    SGX_INVALID_MEASUREMENT = 4
    SGX_NOTBLOCKABLE = 5
    SGX_PG_INVLD = 6
    SGX_EPC_PAGE_CONFLICT = 7
    SGX_INVALID_SIGNATURE = 8
    SGX_MAC_COMPARE_FAIL = 9
    SGX_PAGE_NOT_BLOCKED = 10
    SGX_NOT_TRACKED = 11
    SGX_VA_SLOT_OCCUPIED = 12
    SGX_CHILD_PRESENT = 13
    SGX_ENCLAVE_ACT = 14
    SGX_ENTRYEPOCH_LOCKED = 15
    SGX_INVALID_EINITTOKEN = 16
    SGX_PREV_TRK_INCMPL = 17
    SGX_PG_IS_SECS = 18
    SGX_PAGE_ATTRIBUTES_MISMATCH = 19
    SGX_PAGE_NOT_MODIFIABLE = 20
    SGX_PAGE_NOT_DEBUGGABLE = 21
    SGX_INVALID_COUNTER = 25
    SGX_PG_NONEPC = 26
    SGX_TRACK_NOT_REQUIRED = 27
    SGX_INVALID_CPUSVN = 32
    SGX_INVALID_ISVSVN = 64
    SGX_UNMASKED_EVENT = 128
    SGX_INVALID_KEYNAME = 256


# IA32_SGXLEPUBKEYHASH0..3 and their reset value (Intel's launch enclave key).
MSR_IA32_SGXLEPUBKEYHASH0 = 0x8C
LEPUBKEYHASH_RESET = bytes.fromhex(
    "acb77012053e05a63d413b8bbae8fb6c5d73b3f2996d91c43bbbf90959c0f8d4"
)

SSA_GPRSGX_SIZE = 184
SGX_MODULUS_SIZE = 384
SIGSTRUCT_SIZE = 1808
EINITTOKEN_SIZE = 304
SECS_SIZE = 4096
SECINFO_SIZE = 64
PAGEINFO_SIZE = 32
PCMD_SIZE = 128
VA_SLOT_COUNT = 512
EEXTEND_CHUNK = 256
