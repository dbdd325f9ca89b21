"""The kernel's SGX selftests (tools/testing/selftests/sgx/main.c) on the model,
with the same expected values, printed as TAP lines like the kselftest harness."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sgxsim.hw import sigstruct as S
from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.uapi import SgxEnclaveRun
from sgxsim.kernel.mm.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from sgxsim.machine import Machine
from sgxsim.user import test_encl as T
from sgxsim.user.elf import write_elf
from sgxsim.user.enclave import EnclaveLibrary
from sgxsim.user.loader import Encl, encl_build, encl_load, encl_measure, map_segments
from sgxsim.user.vdso import EENTER, EEXIT, ERESUME, Vdso

MAGIC = 0x1122334455667788
MAGIC2 = 0x8877665544332211
SGX_SECINFO_R, SGX_SECINFO_W, SGX_SECINFO_X = 0x1, 0x2, 0x4
SGX_SECINFO_PENDING, SGX_SECINFO_MODIFIED, SGX_SECINFO_PR = 0x8, 0x10, 0x20
SGX_SECINFO_REG, SGX_SECINFO_TCS, SGX_SECINFO_TRIM = 0x200, 0x100, 0x400
PAGE_TYPE_TCS, PAGE_TYPE_TRIM = 1, 4
SCRATCH = 0x6000_0000  # untrusted memory for op structs, run, ioctl buffers
EPC_PAGES = 96
OVERSUB_EPC_PAGES = 48


class Skip(Exception):
    pass


class Fail(AssertionError):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Fail(what)


@dataclass
class Env:
    machine: Machine
    proc: Any
    encl: Encl
    vdso: Vdso
    run: int  # address of struct sgx_enclave_run
    op: int  # address of the op struct

    @property
    def base(self) -> int:
        return self.encl.encl_base

    def data_offset(self) -> int:
        # encl_get_data_offset(): the data segment (encl_buffer comes first)
        return self.encl.segments[2].offset

    def data_start(self) -> int:
        # the second page of encl_buffer
        return self.base + self.data_offset() + PAGE_SIZE

    def seg(self, name: str):
        return {"tcs": 0, "text": 1, "data": 2, "heap": 3}[name]

    # -- the run struct and the ops -------------------------------------------------------
    def run_struct(self) -> SgxEnclaveRun:
        return SgxEnclaveRun.unpack(self.proc.peek(self.run, SgxEnclaveRun.SIZE))

    def set_run(self, **fields: int) -> None:
        r = self.run_struct().replace(**fields)
        self.proc.poke(self.run, r.pack())

    def clear_exception(self) -> None:
        self.set_run(exception_vector=0, exception_error_code=0, exception_addr=0)

    def call(self, op_type: int, *fields: int, function: int = EENTER) -> tuple[int, tuple]:
        fmt = T.OP_STRUCTS[op_type]
        self.proc.poke(self.op, struct.pack(fmt, op_type, *fields))
        ret = self.vdso.sgx_enter_enclave(self.op, 0, 0, function, 0, 0, self.run)
        return ret, struct.unpack(fmt, self.proc.peek(self.op, struct.calcsize(fmt)))[1:]

    def expect_eexit(self) -> None:
        r = self.run_struct()
        expect(r.function == EEXIT, f"function {r.function}, expected EEXIT")
        expect((r.exception_vector, r.exception_error_code, r.exception_addr) == (0, 0, 0),
               f"exception ({r.exception_vector}, {r.exception_error_code:#x}, "
               f"{r.exception_addr:#x}), expected none")

    def ioctl(self, cmd: int, *fields: int) -> tuple[int, tuple]:
        buf = bytearray(struct.pack(f"<{len(fields)}Q", *fields))
        try:
            self.proc.ioctl(self.encl.fd, cmd, buf)
            err = 0
        except OSError as e:
            err = e.errno
        return err, struct.unpack(f"<{len(fields)}Q", buf)

    def total_size(self) -> int:
        return sum(s.size for s in self.encl.segments)


_KEY = None


def signing_key():
    global _KEY
    if _KEY is None:
        _KEY = S.generate_key()
    return _KEY


def setup_test_encl(kernel: str, sgx1: bool, heap_size: int = PAGE_SIZE,
                    epc_pages: int = EPC_PAGES, elf: bytes | None = None) -> Env:
    """main.c's setup_test_encl().  ``elf``: a real test_encl.elf, whose
    machine code then runs on the enclave engine; by default the model's
    test enclave (user/test_encl.py) with its Python program."""
    m = Machine(kernel=kernel, epc_pages=epc_pages, sgx2=not sgx1)
    proc = m.spawn()
    library: Any
    if elf is None:
        library = EnclaveLibrary()
        img = T.image()
        elf = write_elf([(n, o, p, d) for n, (o, p, d) in img.items()], T.program().symbols)
    else:
        from sgxsim.exec.engine import EnclaveEngine

        library = EnclaveEngine()
    encl = encl_load(elf, heap_size)
    encl_measure(encl, signing_key())
    if isinstance(library, EnclaveLibrary):
        library.bind(encl.mrenclave, T.program())
    proc.mmap(SCRATCH, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    encl_build(proc, encl, SCRATCH + PAGE_SIZE)
    map_segments(proc, encl)
    env = Env(m, proc, encl, Vdso(proc, library), SCRATCH, SCRATCH + 0x800)
    env.set_run(tcs=encl.encl_base)
    return env


def probe_sgx2(env: Env, cmd: int) -> None:
    """The SGX2 probe of main.c: a zeroed struct gives ENOTTY (old kernel),
    ENODEV (no SGX2) or EINVAL (supported)."""
    err, _ = env.ioctl(cmd, 0, 0, 0, 0, 0) if cmd != uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES else \
        env.ioctl(cmd, 0, 0, 0)
    if err == errno.ENOTTY:
        raise Skip("Kernel does not support SGX_IOC_ENCLAVE_* SGX2 ioctls")
    if err == errno.ENODEV:
        raise Skip("System does not support SGX2")
    expect(err == errno.EINVAL, f"probe errno {err}")


def put_get(env: Env, function: int = EENTER) -> None:
    ret, _ = env.call(T.ENCL_OP_PUT_TO_BUFFER, MAGIC)
    expect(ret == 0, "put returned non-zero")
    env.expect_eexit()
    ret, (value,) = env.call(T.ENCL_OP_GET_FROM_BUFFER, 0)
    expect(ret == 0 and value == MAGIC, f"get returned {value:#x}")
    env.expect_eexit()


# -- the tests ---------------------------------------------------------------------------
def t_unclobbered_vdso(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    put_get(env)
    expect(env.run_struct().user_data == 0, "user_data")


def _oversub_env(kernel: str, sgx1: bool, elf: bytes | None = None) -> Env:
    return setup_test_encl(kernel, sgx1, heap_size=OVERSUB_EPC_PAGES * PAGE_SIZE,
                           epc_pages=OVERSUB_EPC_PAGES, elf=elf)


def t_unclobbered_vdso_oversubscribed(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = _oversub_env(kernel, sgx1, elf)
    put_get(env)
    drv = env.machine.kernel.sgx
    expect(drv.stats["ewb"] > 0, "no page was written back")


def t_unclobbered_vdso_oversubscribed_remove(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = _oversub_env(kernel, sgx1, elf)
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES)
    put_get(env)
    heap = env.encl.segments[-1]
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, heap.offset, heap.size,
                         PAGE_TYPE_TRIM, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == heap.size, f"MODIFY_TYPES {err} {out}")
    for off in range(0, heap.size, PAGE_SIZE):
        ret, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, env.base + heap.offset + off,
                                     SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED, 0)
        env.expect_eexit()
        expect(eret == 0, f"EACCEPT returned {eret}")
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, heap.offset, heap.size, 0)
    expect(err == 0 and out[2] == heap.size, f"REMOVE_PAGES {err} {out}")


def t_clobbered_vdso(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    put_get(env)


def t_clobbered_vdso_and_user_function(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)

    def handler(rdi, rsi, rdx, ursp, r8, r9, run):
        env.proc.poke(run + SgxEnclaveRun.OFF_USER_DATA, bytes(8))
        return 0

    env.set_run(user_handler=env.vdso.register_handler(handler), user_data=0xDEADBEEF)
    put_get(env)
    expect(env.run_struct().user_data == 0, "the handler did not run")


def t_tcs_entry(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    ret, _ = env.call(T.ENCL_OP_NOP)
    expect(ret == 0, "nop")
    env.expect_eexit()
    env.set_run(tcs=env.base + PAGE_SIZE)
    ret, _ = env.call(T.ENCL_OP_NOP)
    expect(ret == 0, "nop via TCS2")
    env.expect_eexit()


def _expect_fault(env: Env, function: int, code: int, addr: int) -> None:
    r = env.run_struct()
    expect((r.function, r.exception_vector, r.exception_error_code, r.exception_addr)
           == (function, 14, code, addr),
           f"got (function {r.function}, vector {r.exception_vector}, error code "
           f"{r.exception_error_code:#x}, address {r.exception_addr:#x}), expected "
           f"({function}, 14, {code:#x}, {addr:#x})")


def t_pte_permissions(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    ds = env.data_start()
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, ds)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    expect(v == MAGIC, "get")
    env.expect_eexit()
    env.proc.mprotect(ds, PAGE_SIZE, PROT_READ)
    ret, _ = env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC2, ds)
    expect(ret == 0, "vdso returned non-zero")
    r = env.run_struct()
    expect((r.exception_vector, r.exception_error_code, r.exception_addr) == (14, 0x7, ds),
           f"got ({r.exception_vector}, {r.exception_error_code:#x}, {r.exception_addr:#x})")
    env.clear_exception()
    env.proc.mprotect(ds, PAGE_SIZE, PROT_READ | PROT_WRITE)
    ret, _ = env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC2, ds, function=ERESUME)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    expect(v == MAGIC2, "get after ERESUME")
    env.expect_eexit()


def t_tcs_permissions(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS)
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, 0, PAGE_SIZE,
                         SGX_SECINFO_R, 0, 0)
    expect(err == errno.EINVAL and out[3] == 0 and out[4] == 0, f"{err} {out}")


def t_epcm_permissions(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS)
    ds = env.data_start()
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, ds)
    env.expect_eexit()
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, env.data_offset() + PAGE_SIZE,
                         PAGE_SIZE, SGX_SECINFO_R, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == PAGE_SIZE, f"RESTRICT {err} {out}")
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, ds,
                               SGX_SECINFO_R | SGX_SECINFO_REG | SGX_SECINFO_PR, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT returned {eret}")
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC2, ds)
    _expect_fault(env, ERESUME, 0x8007, ds)
    env.clear_exception()
    env.set_run(tcs=env.base + PAGE_SIZE)
    env.call(T.ENCL_OP_EMODPE, ds, SGX_SECINFO_R | SGX_SECINFO_W)
    env.expect_eexit()
    env.set_run(tcs=env.base)
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC2, ds, function=ERESUME)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    expect(v == MAGIC2, "get")
    env.expect_eexit()


def _augment_setup(env: Env) -> int:
    if not env.machine.cpu.sgx2:
        raise Skip("SGX2 not supported")
    total = env.total_size()
    expect(total + PAGE_SIZE < env.encl.encl_size, "no room")
    addr = env.base + total
    env.proc.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED | MAP_FIXED,
                  env.encl.fd, 0)
    return addr


def t_augment(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    addr = _augment_setup(env)
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, addr)
    r = env.run_struct()
    expect((r.function, r.exception_vector, r.exception_addr) == (ERESUME, 14, addr),
           f"({r.function}, {r.exception_vector}, {r.exception_addr:#x})")
    if r.exception_error_code == 0x6:
        env.proc.munmap(addr, PAGE_SIZE)
        raise Skip("Kernel does not support adding pages to initialized enclave")
    expect(r.exception_error_code == 0x8007, f"error code {r.exception_error_code:#x}")
    env.clear_exception()
    env.set_run(tcs=env.base + PAGE_SIZE)
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, addr, SGX_SECINFO_R | SGX_SECINFO_W |
                               SGX_SECINFO_REG | SGX_SECINFO_PENDING, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT {eret}")
    env.set_run(tcs=env.base)
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, addr, function=ERESUME)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, addr)
    expect(v == MAGIC, "get")
    env.expect_eexit()
    env.proc.munmap(addr, PAGE_SIZE)


def t_augment_via_eaccept(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    addr = _augment_setup(env)
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, addr, SGX_SECINFO_R | SGX_SECINFO_W |
                               SGX_SECINFO_REG | SGX_SECINFO_PENDING, 0)
    r = env.run_struct()
    if (r.exception_vector, r.exception_error_code, r.exception_addr) == (14, 4, addr):
        env.proc.munmap(addr, PAGE_SIZE)
        raise Skip("Kernel does not support adding pages to initialized enclave")
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT {eret}")
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, addr)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, addr)
    expect(v == MAGIC, "get")
    env.expect_eexit()
    env.proc.munmap(addr, PAGE_SIZE)


def t_tcs_create(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES)
    total = env.total_size()
    expect(total + 3 * PAGE_SIZE < env.encl.encl_size, "no room")
    stack_end = env.base + total
    tcs = stack_end + PAGE_SIZE
    ssa = stack_end + 2 * PAGE_SIZE
    env.proc.mmap(stack_end, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                  env.encl.fd, 0)
    acc = SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING
    for page in (stack_end, ssa, tcs):
        _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, page, acc, 0)
        r = env.run_struct()
        if page == stack_end and (r.exception_vector, r.exception_error_code,
                                  r.exception_addr) == (14, 4, stack_end):
            raise Skip("Kernel does not support adding pages to initialized enclave")
        env.expect_eexit()
        expect(eret == 0, f"EACCEPT {eret}")
    entry = env.encl.symbols.get("encl_dyn_entry", 0)
    expect(entry != 0, "encl_dyn_entry")
    env.call(T.ENCL_OP_INIT_TCS_PAGE, tcs, total + 2 * PAGE_SIZE, entry)
    env.expect_eexit()
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, total + PAGE_SIZE, PAGE_SIZE,
                         PAGE_TYPE_TCS, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == PAGE_SIZE, f"MODIFY_TYPES {err} {out}")
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, tcs, SGX_SECINFO_TCS | SGX_SECINFO_MODIFIED, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT TCS {eret}")
    env.set_run(tcs=tcs)
    env.call(T.ENCL_OP_PUT_TO_BUFFER, MAGIC)
    env.expect_eexit()
    _, (v,) = env.call(T.ENCL_OP_GET_FROM_BUFFER, 0)
    expect(v == MAGIC, "get via the new TCS")
    env.expect_eexit()
    # Phase 2: trim and remove the three pages.
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, total, 3 * PAGE_SIZE,
                         PAGE_TYPE_TRIM, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == 3 * PAGE_SIZE, f"TRIM {err} {out}")
    env.set_run(tcs=env.base)
    for page in (stack_end, tcs, ssa):
        _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, page,
                                   SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED, 0)
        env.expect_eexit()
        expect(eret == 0, f"EACCEPT TRIM {eret}")
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, total, 3 * PAGE_SIZE, 0)
    expect(err == 0 and out[2] == 3 * PAGE_SIZE, f"REMOVE {err} {out}")
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, tcs, acc, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT fresh {eret}")
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, tcs)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, tcs)
    expect(v == MAGIC, "get")
    env.expect_eexit()
    env.proc.munmap(stack_end, 3 * PAGE_SIZE)


def _trim_data_page(env: Env) -> int:
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES)
    ds = env.data_start()
    env.call(T.ENCL_OP_PUT_TO_ADDRESS, MAGIC, ds)
    env.expect_eexit()
    _, (v, _) = env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    expect(v == MAGIC, "get")
    env.expect_eexit()
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, env.data_offset() + PAGE_SIZE, PAGE_SIZE,
                         PAGE_TYPE_TRIM, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == PAGE_SIZE, f"TRIM {err} {out}")
    return ds


def t_remove_added_page_no_eaccept(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    _trim_data_page(env)
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, env.data_offset() + PAGE_SIZE,
                         PAGE_SIZE, 0)
    expect(err == errno.EPERM and out[2] == 0, f"REMOVE {err} {out}")


def t_remove_added_page_invalid_access(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    ds = _trim_data_page(env)
    env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    _expect_fault(env, ERESUME, 0x8005, ds)


def t_remove_added_page_invalid_access_after_eaccept(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    ds = _trim_data_page(env)
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, ds, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT {eret}")
    env.call(T.ENCL_OP_GET_FROM_ADDRESS, 0, ds)
    _expect_fault(env, ERESUME, 0x8005, ds)


def t_remove_untouched_page(kernel: str, sgx1: bool, elf: bytes | None = None) -> None:
    env = setup_test_encl(kernel, sgx1, elf=elf)
    probe_sgx2(env, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES)
    ds = env.data_start()
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, env.data_offset() + PAGE_SIZE, PAGE_SIZE,
                         PAGE_TYPE_TRIM, 0, 0)
    expect(err == 0 and out[3] == 0 and out[4] == PAGE_SIZE, f"TRIM {err} {out}")
    _, (_, _, eret) = env.call(T.ENCL_OP_EACCEPT, ds, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED, 0)
    env.expect_eexit()
    expect(eret == 0, f"EACCEPT {eret}")
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, env.data_offset() + PAGE_SIZE,
                         PAGE_SIZE, 0)
    expect(err == 0 and out[2] == PAGE_SIZE, f"REMOVE {err} {out}")


TESTS: list[tuple[str, Callable[..., None]]] = [
    ("unclobbered_vdso", t_unclobbered_vdso),
    ("unclobbered_vdso_oversubscribed", t_unclobbered_vdso_oversubscribed),
    ("unclobbered_vdso_oversubscribed_remove", t_unclobbered_vdso_oversubscribed_remove),
    ("clobbered_vdso", t_clobbered_vdso),
    ("clobbered_vdso_and_user_function", t_clobbered_vdso_and_user_function),
    ("tcs_entry", t_tcs_entry),
    ("pte_permissions", t_pte_permissions),
    ("tcs_permissions", t_tcs_permissions),
    ("epcm_permissions", t_epcm_permissions),
    ("augment", t_augment),
    ("augment_via_eaccept", t_augment_via_eaccept),
    ("tcs_create", t_tcs_create),
    ("remove_added_page_no_eaccept", t_remove_added_page_no_eaccept),
    ("remove_added_page_invalid_access", t_remove_added_page_invalid_access),
    ("remove_added_page_invalid_access_after_eaccept",
     t_remove_added_page_invalid_access_after_eaccept),
    ("remove_untouched_page", t_remove_untouched_page),
]


def run_one(fn: Callable[..., None], kernel: str, sgx1: bool,
            elf: bytes | None = None) -> tuple[str, str]:
    """("ok" | "not ok" | "skip", detail)."""
    try:
        fn(kernel, sgx1, elf=elf)
    except Skip as s:
        return "skip", str(s)
    except Fail as f:
        return "not ok", str(f)
    except (Exception, SystemExit) as e:  # a model error is a failed test, reported with its cause
        # (sys.exit() in a user's design too: the suite went on to exit with its status, silently)
        why = f"{e}" if isinstance(e, Exception) else f"sys.exit({e.code!r})"
        return "not ok", f"{type(e).__name__}: {why}"
    return "ok", ""


def tap(kernel: str = "linux-6.0", sgx1: bool = False, out=print, elf: bytes | None = None) -> int:
    """Run the suite; print TAP; return the number of failures.  ``elf``: run
    this test_encl.elf's machine code instead of the model's test enclave."""
    out("TAP version 13")
    out(f"1..{len(TESTS)}")
    failed = skipped = 0
    for n, (name, fn) in enumerate(TESTS, 1):
        verdict, detail = run_one(fn, kernel, sgx1, elf)
        if verdict == "ok":
            out(f"ok {n} enclave.{name}")
        elif verdict == "skip":
            skipped += 1
            out(f"ok {n} enclave.{name} # SKIP {detail}")
        else:
            failed += 1
            out(f"# {detail}")
            out(f"not ok {n} enclave.{name}")
    # The kselftest harness's totals line: a skip is not a pass.
    out(f"# Totals: pass:{len(TESTS) - failed - skipped} fail:{failed} xfail:0 xpass:0 skip:{skipped} "
        "error:0")
    return failed
