"""The EPC and the EPCM (SDM Table 38-27; reference sgx-hardware.md §2, §7).

Page contents are sparse: a 4 KiB ``bytearray`` exists only for a VALID page.
The EPCM is a set of parallel compact arrays indexed by EPC page number, so
that a 1,048,576-page EPC costs ~18 bytes of metadata per page:

- ``flags``  (1 byte): VALID, R, W, X, BLOCKED, PENDING, MODIFIED, PR
- ``pt``     (1 byte): EPCM.PT
- ``secs``   (array('I')): ENCLAVESECS as the EPC index of the owning SECS
- ``addr``   (array('Q')): ENCLAVEADDRESS
- ``epoch``  (array('I')): the tracking epoch recorded by EBLOCK/EMODPR/EMODT

The hidden, implementation-placed SECS fields (EID, running measurement,
tracking state; reference §13 item 4) live in :class:`SecsState`, one per
valid SECS page, outside the 4 KiB image.
"""

from __future__ import annotations

from array import array

from sgxsim.hw.consts import PAGE_SHIFT, PAGE_SIZE
from sgxsim.hw.measure import Measurement
from sgxsim.hw.memory import EPC_BASE

# EPCM flag bits (one byte per page).  R/W/X share the SECINFO bit positions
# so that SECINFO.FLAGS & 7 is the permission field as is.
EPCM_R = 0x01
EPCM_W = 0x02
EPCM_X = 0x04
EPCM_RWX = 0x07
EPCM_BLOCKED = 0x08
EPCM_PENDING = 0x10
EPCM_MODIFIED = 0x20
EPCM_PR = 0x40
EPCM_VALID = 0x80


class SecsState:
    """The parts of a SECS the CPU keeps besides its 4 KiB image: identity,
    the running MRENCLAVE, the tracking state (reference §7) and the count
    of valid child pages (EREMOVE/EWB SGX_CHILD_PRESENT)."""

    __slots__ = (
        "eid", "base", "size", "ssa_frame_size", "miscselect", "attributes", "xfrm",
        "measurement", "mrenclave", "mrsigner", "isv_prod_id", "isv_svn", "padding",
        "children", "epoch", "tracking_set", "active",
    )

    def __init__(self, eid: int, base: int, size: int, ssa_frame_size: int, miscselect: int,
                 attributes: int, xfrm: int) -> None:
        self.eid = eid
        self.base = base
        self.size = size
        self.ssa_frame_size = ssa_frame_size
        self.miscselect = miscselect
        self.attributes = attributes
        self.xfrm = xfrm
        self.measurement = Measurement()
        self.mrenclave = bytes(32)
        self.mrsigner = bytes(32)
        self.isv_prod_id = 0
        self.isv_svn = 0
        self.padding = b""
        self.children = 0
        # Tracking (reference §7): epoch, the LPs inside at the last ETRACK
        # that have not left since, and the LPs inside now.
        self.epoch = 1
        self.tracking_set: set[int] = set()
        self.active: set[int] = set()


class Epc:
    """EPC page contents and the EPCM."""

    __slots__ = ("npages", "pages", "flags", "pt", "secs", "addr", "epoch", "secs_state")

    def __init__(self, npages: int) -> None:
        self.npages = npages
        self.pages: dict[int, bytearray] = {}
        self.flags = bytearray(npages)
        self.pt = bytearray(npages)
        self.secs = array("I", bytes(4 * npages))
        self.addr = array("Q", bytes(8 * npages))
        self.epoch = array("I", bytes(4 * npages))
        self.secs_state: dict[int, SecsState] = {}

    # -- addresses -----------------------------------------------------------
    def index(self, paddr: int) -> int:
        """EPC page index of a physical address, or -1 outside the EPC."""
        i = (paddr - EPC_BASE) >> PAGE_SHIFT
        return i if 0 <= i < self.npages and paddr >= EPC_BASE else -1

    @staticmethod
    def paddr(index: int) -> int:
        return EPC_BASE + (index << PAGE_SHIFT)

    # -- EPCM entry changes --------------------------------------------------
    def set_entry(self, i: int, pt: int, flags: int, secs: int, addr: int,
                  contents: bytes | bytearray | None = None) -> None:
        """Make page ``i`` VALID with the given EPCM fields and contents."""
        self.flags[i] = EPCM_VALID | flags
        self.pt[i] = pt
        self.secs[i] = secs
        self.addr[i] = addr
        self.epoch[i] = 0
        if type(contents) is not bytearray:  # a caller's fresh bytearray is taken as is
            contents = bytearray(contents) if contents is not None else bytearray(PAGE_SIZE)
        self.pages[i] = contents

    def invalidate(self, i: int) -> None:
        """EPCM(i).VALID := 0; the contents are gone with it."""
        self.flags[i] = 0
        self.pt[i] = 0
        self.secs[i] = 0
        self.addr[i] = 0
        self.epoch[i] = 0
        self.pages.pop(i, None)
        self.secs_state.pop(i, None)

    def valid(self, i: int) -> bool:
        return bool(self.flags[i] & EPCM_VALID)

    def page(self, i: int) -> bytearray:
        """Contents of a valid page."""
        return self.pages[i]

    def valid_count(self) -> int:
        return len(self.pages)
