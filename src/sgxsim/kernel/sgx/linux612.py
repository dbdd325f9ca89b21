"""The SGX driver of Linux 6.12 (the long-term kernel): what changed in
``arch/x86/kernel/cpu/sgx/`` since 6.0 that changes a result, each override
naming the release that changed it.  docs/linux-6.12.md lists every
difference between the two trees, modelled or judged irrelevant."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.hw.consts import Attribute
from sgxsim.kernel.mm import VM_FAULT_NOPAGE, VM_FAULT_SIGBUS
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.kernel.sgx.encl import SgxEncl

U64 = (1 << 64) - 1


class SgxDriver612(SgxDriverSgx2):
    """SGX2 driver with AEX-Notify's attribute policy and the EDMM fixes."""

    # 6.2 (AEX-Notify): bits 8 and 9 stay reserved, bit 10 is
    # SGX_ATTR_ASYNC_EXIT_NOTIFY and no longer reserved.
    SGX_ATTR_RESERVED_MASK = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 9) | (U64 & ~((1 << 11) - 1))

    def sgx_attr_unpriv_mask(self) -> int:
        # 6.2: sgx_encl_create() sets encl->attributes_mask = SGX_ATTR_UNPRIV_MASK,
        # which adds ASYNC_EXIT_NOTIFY to DEBUG | MODE64BIT | KSS.
        return Attribute.DEBUG | Attribute.MODE64BIT | Attribute.KSS | Attribute.AEXNOTIFY

    @staticmethod
    def sgx_validate_offset_length(encl: SgxEncl, offset: int, length: int) -> str | None:
        # 6.1: sgx_validate_offset_length() refuses an offset + length that
        # wraps (6.0 let offset 2^64 - 4096, length 8192 through).
        why = SgxDriverSgx2.sgx_validate_offset_length(encl, offset, length)
        if why is None and offset + length > U64:
            return "offset + length overflows"
        return why

    def sgx_encl_eaug_load_secs(self, vmf: Any, encl: SgxEncl) -> int | None:
        # 6.5 (SECS reclaim vs. EAUG fault race): sgx_encl_eaug_page() makes
        # the SECS resident first; -EBUSY retries the fault.
        try:
            self.sgx_encl_load_secs(encl)
        except OSError as e:
            if e.errno == errno.EBUSY:
                return VM_FAULT_NOPAGE
            vmf.why = self.trace_note("sgx_encl_load_secs", "SIGBUS", str(e))
            return VM_FAULT_SIGBUS
        return None

    def sgx_encl_eaug_grow_failed(self, vmf: Any, e: OSError) -> int:
        # 6.1 (VA page allocation failure for EAUG on #PF): -EBUSY from
        # sgx_encl_grow() retries the fault instead of SIGBUS.
        if e.errno == errno.EBUSY:
            return VM_FAULT_NOPAGE
        return super().sgx_encl_eaug_grow_failed(vmf, e)
