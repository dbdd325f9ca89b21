"""The EPC and its EPCM (SDM Table 38-27; reference sgx-hardware.md §2).

The EPCM is stored as parallel compact arrays indexed by EPC page number, so
that metadata costs a few bytes per page (18 here) whatever the EPC size;
page contents exist only for valid pages.  State the SDM keeps in hidden
SECS fields (the running measurement, EID, MRSIGNER, tracking state) lives in
a :class:`SecsState` per SECS page.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

from sgxsim.hw.consts import PAGE_SHIFT, PAGE_SIZE, PageType
from sgxsim.hw.measure import Measurement
from sgxsim.hw.memory import EPC_BASE

# The model's own bound on the EPC size, not a CPU's: a real EPC reaches
# 512 GiB per socket (3rd-generation Xeon Scalable on, 2**27 pages).  The
# EPCM arrays below and the driver's struct sgx_epc_page per page are dense,
# so 2**20 pages (4 GiB of EPC) already take about a second and 250 MB to
# boot; Machine() and sgxsim exec --epc-pages refuse more.
MODEL_EPC_PAGES_LIMIT = 1 << 20

# One byte of EPCM flags per page.
EPCM_VALID = 1 << 0
EPCM_R = 1 << 1
EPCM_W = 1 << 2
EPCM_X = 1 << 3
EPCM_BLOCKED = 1 << 4
EPCM_PENDING = 1 << 5
EPCM_MODIFIED = 1 << 6
EPCM_PR = 1 << 7
EPCM_RWX = EPCM_R | EPCM_W | EPCM_X
EPCM_STATE = EPCM_PENDING | EPCM_MODIFIED | EPCM_PR


def perms_to_epcm(secinfo_rwx: int) -> int:
    """SECINFO R/W/X (bits 0-2) to EPCM R/W/X bits."""
    return (secinfo_rwx & 0x7) << 1


def epcm_to_perms(flags: int) -> int:
    return (flags >> 1) & 0x7


class EpcmEntry(NamedTuple):
    """A read-only view of one EPCM entry (for the kernel's checks and tests)."""

    valid: bool
    r: bool
    w: bool
    x: bool
    pt: int
    enclavesecs: int
    enclaveaddress: int
    blocked: bool
    pending: bool
    modified: bool
    pr: bool

    @property
    def perms(self) -> int:
        return int(self.r) | int(self.w) << 1 | int(self.x) << 2


@dataclass(slots=True)
class SecsState:
    """What the CPU keeps about an enclave besides the architectural SECS bytes."""

    base: int
    size: int
    ssa_frame_size: int
    miscselect: int
    attributes: int
    xfrm: int
    eid: int
    measurement: Measurement
    initialized: bool = False
    mrenclave: bytes = bytes(32)
    mrsigner: bytes = bytes(32)
    isvprodid: int = 0
    isvsvn: int = 0
    padding: bytes = b""
    # Tracking (reference §7): the epoch counter, the LPs that were inside at
    # the last ETRACK and have not left since, the highest epoch whose
    # tracking has completed, and the LPs currently inside.
    epoch: int = 1
    tracking_set: set[int] = field(default_factory=set)
    completed_epoch: int = 0
    active: set[int] = field(default_factory=set)
    children: int = 0  # valid EPC pages whose ENCLAVESECS is this SECS


class Epc:
    """EPC page contents and the EPCM."""

    __slots__ = ("npages", "flags", "pt", "secs", "addr", "mod_epoch", "data", "secs_state")

    def __init__(self, npages: int):
        self.npages = npages
        self.flags = bytearray(npages)
        self.pt = bytearray(npages)
        self.secs = array("I", bytes(4 * npages))  # ENCLAVESECS as an EPC index
        self.addr = array("Q", bytes(8 * npages))  # ENCLAVEADDRESS
        self.mod_epoch = array("I", bytes(4 * npages))  # epoch of EBLOCK/EMODPR/EMODT
        self.data: dict[int, bytearray] = {}  # contents of valid pages only
        self.secs_state: dict[int, SecsState] = {}

    @staticmethod
    def paddr(index: int) -> int:
        return EPC_BASE + (index << PAGE_SHIFT)

    def index(self, paddr: int) -> int | None:
        """The EPC page number of a physical address, or None outside the EPC."""
        i = (paddr - EPC_BASE) >> PAGE_SHIFT
        return i if 0 <= i < self.npages and paddr >= EPC_BASE else None

    def is_valid(self, index: int) -> bool:
        return bool(self.flags[index] & EPCM_VALID)

    def epcm(self, index: int) -> EpcmEntry:
        f = self.flags[index]
        return EpcmEntry(
            valid=bool(f & EPCM_VALID),
            r=bool(f & EPCM_R),
            w=bool(f & EPCM_W),
            x=bool(f & EPCM_X),
            pt=self.pt[index],
            enclavesecs=self.secs[index],
            enclaveaddress=self.addr[index],
            blocked=bool(f & EPCM_BLOCKED),
            pending=bool(f & EPCM_PENDING),
            modified=bool(f & EPCM_MODIFIED),
            pr=bool(f & EPCM_PR),
        )

    def set_entry(self, index: int, pt: int, flags: int, secs: int = 0, addr: int = 0) -> None:
        self.flags[index] = flags | EPCM_VALID
        self.pt[index] = pt
        self.secs[index] = secs
        self.addr[index] = addr
        # A new entry has no EBLOCK/EMODPR/EMODT awaiting tracking: the epoch a
        # slot's previous page was blocked or modified at (another enclave's
        # counter, or a page EREMOVEd while blocked) says nothing about this one.
        # A page back from EWB/ELDU was tracked before its EWB could succeed.
        self.mod_epoch[index] = 0

    def invalidate(self, index: int) -> None:
        """VALID=0 (EREMOVE, EWB): the page's contents are gone."""
        if self.flags[index] & EPCM_VALID and self.pt[index] not in (PageType.PT_SECS, PageType.PT_VA):
            st = self.secs_state.get(self.secs[index])
            if st is not None:
                st.children -= 1
        self.flags[index] = 0
        self.data.pop(index, None)
        self.secs_state.pop(index, None)

    def page(self, index: int) -> bytearray:
        d = self.data.get(index)
        if d is None:
            d = self.data[index] = bytearray(PAGE_SIZE)
        return d
