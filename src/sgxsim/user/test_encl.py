"""The kernel selftests' test enclave (tools/testing/selftests/sgx), in the
model: the same layout (two TCS, text, data with the 8 KiB encl_buffer,
SSA and stack pages), the same op structs and op numbers, and the program
its code runs.

Layout (offsets from the enclave base):
  0x0000 TCS1, 0x1000 TCS2                    segment "tcs"  (RW, SECINFO TCS)
  0x2000 text: encl_entry, encl_dyn_entry,    segment "text" (RX)
         encl_body and the op handlers
  0x3000 encl_buffer (8 KiB)                  segment "data" (RW)
  0x5000 SSA of TCS1, 0x6000 SSA of TCS2
  0x7000 stack of TCS1, 0x8000 stack of TCS2
"""

from __future__ import annotations

import struct

from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.structs import Secinfo, Tcs
from sgxsim.user.enclave import EnclaveCpu, EnclaveProgram

TEXT = 0x2000
ENCL_BUFFER = 0x3000
SSA1, SSA2 = 0x5000, 0x6000
STACK1, STACK2 = 0x7000, 0x8000

ENCL_ENTRY = TEXT + 0x000
ENCL_DYN_ENTRY = TEXT + 0x040
ENCL_BODY = TEXT + 0x080
ENCL_EXIT = TEXT + 0x0C0
OP_BASE = TEXT + 0x100
OP_STRIDE = 0x40

ENCL_OP_PUT_TO_BUFFER = 0
ENCL_OP_GET_FROM_BUFFER = 1
ENCL_OP_PUT_TO_ADDRESS = 2
ENCL_OP_GET_FROM_ADDRESS = 3
ENCL_OP_NOP = 4
ENCL_OP_EACCEPT = 5
ENCL_OP_EMODPE = 6
ENCL_OP_INIT_TCS_PAGE = 7
ENCL_OP_MAX = 8

# Struct layouts (defines.h): every op starts with struct encl_op_header {u64 type}.
OP_STRUCTS = {
    ENCL_OP_PUT_TO_BUFFER: "<QQ",  # header, value
    ENCL_OP_GET_FROM_BUFFER: "<QQ",
    ENCL_OP_PUT_TO_ADDRESS: "<QQQ",  # header, value, addr
    ENCL_OP_GET_FROM_ADDRESS: "<QQQ",
    ENCL_OP_NOP: "<Q",
    ENCL_OP_EACCEPT: "<QQQQ",  # header, epc_addr, flags, ret
    ENCL_OP_EMODPE: "<QQQ",  # header, epc_addr, flags
    ENCL_OP_INIT_TCS_PAGE: "<QQQQ",  # header, tcs_page, ssa, entry
}

# Registers the program keeps across instructions (saved in the SSA on AEX).
R_RET = "r15"  # the address EEXIT returns to (RCX at EENTER)
R_OP = "rdi"  # the op struct in untrusted memory


def tcs_image(ossa: int, oentry: int = ENCL_ENTRY) -> bytes:
    return Tcs(ossa=ossa, nssa=1, oentry=oentry, fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF).pack()


def _secinfo_slot(c: EnclaveCpu) -> int:
    """A 64-byte aligned SECINFO on this thread's stack (the stack page below
    the saved RSP)."""
    return (c.regs["rsp"] - 0x100) & ~0x3F


# -- the code ----------------------------------------------------------------------------
def encl_entry(c: EnclaveCpu) -> int:
    # test_encl_bootstrap.S: stack = encl_stack + (RBX - base); keep RCX for EEXIT
    tcs_off = c.regs["rbx"] - c.base
    c.regs["rsp"] = c.base + STACK1 + PAGE_SIZE + tcs_off
    c.regs[R_RET] = c.regs["rcx"]
    return c.base + ENCL_BODY


def encl_dyn_entry(c: EnclaveCpu) -> int:
    # encl_dyn_entry: the stack is the page right before the TCS
    c.regs["rsp"] = c.regs["rbx"] - 1
    c.regs[R_RET] = c.regs["rcx"]
    return c.base + ENCL_BODY


def encl_body(c: EnclaveCpu) -> int:
    # encl_body(): dispatch on the op header's type
    op_type = c.load_u64(c.regs[R_OP])
    if op_type >= ENCL_OP_MAX:
        return c.base + ENCL_EXIT
    return c.base + OP_BASE + op_type * OP_STRIDE


def encl_exit(c: EnclaveCpu) -> None:
    c.regs["rax"] = 4
    c.eexit(c.regs[R_RET])
    return None


def _field(c: EnclaveCpu, index: int) -> int:
    return c.load_u64(c.regs[R_OP] + 8 * index)


def do_put_to_buffer(c: EnclaveCpu) -> int:
    c.store_u64(c.base + ENCL_BUFFER, _field(c, 1))
    return c.base + ENCL_EXIT


def do_get_from_buffer(c: EnclaveCpu) -> int:
    value = c.load_u64(c.base + ENCL_BUFFER)
    c.store_u64(c.regs[R_OP] + 8, value)
    return c.base + ENCL_EXIT


def do_put_to_address(c: EnclaveCpu) -> int:
    c.store_u64(_field(c, 2), _field(c, 1))
    return c.base + ENCL_EXIT


def do_get_from_address(c: EnclaveCpu) -> int:
    value = c.load_u64(_field(c, 2))
    c.store_u64(c.regs[R_OP] + 8, value)
    return c.base + ENCL_EXIT


def do_nop(c: EnclaveCpu) -> int:
    return c.base + ENCL_EXIT


def do_eaccept(c: EnclaveCpu) -> int:
    epc_addr, flags = _field(c, 1), _field(c, 2)
    si = _secinfo_slot(c)
    c.store(si, Secinfo(flags=flags).pack())
    ret = c.eaccept(si, epc_addr)
    c.store_u64(c.regs[R_OP] + 24, ret)
    return c.base + ENCL_EXIT


def do_emodpe(c: EnclaveCpu) -> int:
    epc_addr, flags = _field(c, 1), _field(c, 2)
    si = _secinfo_slot(c)
    c.store(si, Secinfo(flags=flags).pack())
    c.emodpe(si, epc_addr)
    return c.base + ENCL_EXIT


def do_init_tcs_page(c: EnclaveCpu) -> int:
    tcs_page, ssa, entry = _field(c, 1), _field(c, 2), _field(c, 3)
    c.store(tcs_page, tcs_image(ssa, entry))
    return c.base + ENCL_EXIT


_OPS = [do_put_to_buffer, do_get_from_buffer, do_put_to_address, do_get_from_address, do_nop,
        do_eaccept, do_emodpe, do_init_tcs_page]


def program() -> EnclaveProgram:
    code = {ENCL_ENTRY: encl_entry, ENCL_DYN_ENTRY: encl_dyn_entry, ENCL_BODY: encl_body,
            ENCL_EXIT: encl_exit}
    for i, fn in enumerate(_OPS):
        code[OP_BASE + i * OP_STRIDE] = fn
    symbols = {"encl_entry": ENCL_ENTRY, "encl_dyn_entry": ENCL_DYN_ENTRY,
               "encl_body": ENCL_BODY, "encl_buffer": ENCL_BUFFER, "encl_ssa_tcs1": SSA1,
               "encl_ssa_tcs2": SSA2, "encl_stack": STACK1 + PAGE_SIZE}
    return EnclaveProgram("test_encl", code, symbols)


def image() -> dict[str, tuple[int, int, bytes]]:
    """The three segments' (offset, prot, bytes) as the linker script lays them out."""
    text = bytearray(PAGE_SIZE)
    # The "code bytes": a recognisable filler (0xDEADBEEF, as the linker pads text).
    text[:] = struct.pack("<I", 0xDEADBEEF) * (PAGE_SIZE // 4)
    for off in program().code:
        text[off - TEXT : off - TEXT + 4] = struct.pack("<I", off)
    data = bytearray(6 * PAGE_SIZE)
    data[0] = 1  # encl_buffer = {1}
    return {
        "tcs": (0, 0x3, tcs_image(SSA1) + tcs_image(SSA2)),
        "text": (TEXT, 0x5, bytes(text)),
        "data": (ENCL_BUFFER, 0x3, bytes(data)),
    }
