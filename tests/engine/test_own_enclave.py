"""sgxsim's own enclave (src/sgxsim/exec/encl/sgxsim_encl.S), real machine code
on the engine: computation, op structs outside ELRANGE, EACCEPT of an EAUG
page, an EPCM-refused write reported with the SGX bit, EMODPE, ERESUME that
re-runs the refused instruction, GS from the TCS, EGETKEY/EREPORT, and the
instructions an enclave may not execute."""

from __future__ import annotations

import pytest

from sgxsim.exec import encl as E
from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE, SgxReturn
from sgxsim.hw.faults import PF_SGX
from sgxsim.hw.structs import Keyrequest, SsaGpr
from sgxsim.kernel.mm.flags import MAP_FIXED, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE
from sgxsim.user import selftests as S
from sgxsim.user.vdso import EENTER, EEXIT, ERESUME

U64 = (1 << 64) - 1
BUFFER = 0xA000  # the 8-page buffer's enclave offset (sgxsim_encl.S)
SSA1 = 0x3000
TCS2 = 0x1000


def _env(elf: bytes, kernel: str = "linux-6.0", sgx1: bool = False) -> S.Env:
    return S.setup_test_encl(kernel, sgx1, elf=elf)


def _exited(env: S.Env) -> None:
    env.expect_eexit()


def _fault(env: S.Env) -> tuple[int, int, int, int]:
    r = env.run_struct()
    return r.function, r.exception_vector, r.exception_error_code, r.exception_addr


def test_symbols_match_the_layout_the_tests_assume(own_encl):
    env = _env(own_encl)
    assert env.encl.symbols["buffer"] == BUFFER and env.encl.symbols["tcs2"] == TCS2
    assert env.encl.symbols["ssa1"] == SSA1


def test_compute_loop(own_encl):
    env = _env(own_encl)
    a, n = 5, 1000
    want = a
    for c in range(n, 0, -1):
        want = ((want + c) & U64) ^ 0x5A
    assert E.call(env, E.OP_COMPUTE, a, n)[:2] == (0, want)
    _exited(env)


def test_touch_loop_reads_and_writes_enclave_pages(own_encl):
    env = _env(own_encl)
    pages = [0] * 8
    rax, n = 7, 50
    for i in range(n):
        rax = (rax + pages[i % 8]) & U64
        pages[i % 8] = rax
    assert E.call(env, E.OP_TOUCH, 7, n)[:2] == (0, rax)
    # The enclave wrote its own EPC pages (read back through the debug path:
    # the model's memory, not Unicorn's).
    cpu = env.machine.cpu
    lp = env.proc.lp
    lp.cr3 = env.proc.mm.pgtable
    assert env.machine.kernel.sgx is not None
    got = [int.from_bytes(_epc_bytes(env, BUFFER + i * PAGE_SIZE, 8), "little") for i in range(8)]
    assert got == pages
    assert cpu.stats["eexit"] >= 1


def _epc_bytes(env: S.Env, offset: int, n: int) -> bytes:
    """Enclave memory as the EPC holds it (the PTE's PFN is the EPC page)."""
    cpu = env.machine.cpu
    pte = env.proc.mm.pgtable.get((env.base + offset) >> 12)
    i = cpu.epc.index((pte >> 12 & ((1 << 40) - 1)) << 12)
    return bytes(cpu.epc.page(i)[offset & 0xFFF : (offset & 0xFFF) + n])


def test_op_struct_and_data_outside_elrange(own_encl):
    env = _env(own_encl)
    out = S.SCRATCH + 3 * PAGE_SIZE  # untrusted memory, not the op struct's page
    assert E.call(env, E.OP_PUT, out, 0x1122334455667788)[0] == 0
    _exited(env)
    assert env.proc.peek(out, 8) == (0x1122334455667788).to_bytes(8, "little")
    env.proc.poke(out, (42).to_bytes(8, "little"))
    assert E.call(env, E.OP_GET, out)[:2] == (0, 42)


def test_pte_fault_fixed_by_the_kernel_then_eresume(own_encl):
    # pte_permissions with real code: a write to a read-only PTE is #PF 0x7
    # (no SGX bit); after mprotect RW, ERESUME re-runs the store.
    env = _env(own_encl)
    page = env.base + BUFFER
    assert E.call(env, E.OP_PUT, page, 0x11)[0] == 0  # faults the PTE in
    env.proc.mprotect(page, PAGE_SIZE, PROT_READ)
    assert E.call(env, E.OP_PUT, page, 0xAB)[0] == 0
    assert _fault(env) == (ERESUME, 14, 0x7, page)
    assert _epc_bytes(env, BUFFER, 8) == (0x11).to_bytes(8, "little")  # no store yet
    env.clear_exception()
    env.proc.mprotect(page, PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert E.call(env, E.OP_PUT, page, 0xAB, function=ERESUME)[0] == 0
    _exited(env)
    assert E.call(env, E.OP_GET, page)[1] == 0xAB


def test_epcm_refused_write_emodpe_and_eresume(own_encl):
    env = _env(own_encl)
    page = env.base + BUFFER + PAGE_SIZE
    assert E.call(env, E.OP_PUT, page, 1)[0] == 0
    err, out = env.ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, BUFFER + PAGE_SIZE,
                         PAGE_SIZE, S.SGX_SECINFO_R, 0, 0)
    assert err == 0 and out[4] == PAGE_SIZE
    pr = S.SGX_SECINFO_R | S.SGX_SECINFO_REG | S.SGX_SECINFO_PR
    assert E.call(env, E.OP_EACCEPT, page, pr)[:2] == (0, 0)
    # The write is refused by the EPCM: #PF with the SGX bit, in the run struct.
    assert E.call(env, E.OP_PUT, page, 2)[0] == 0
    func, vec, code, addr = _fault(env)
    assert (func, vec, addr) == (ERESUME, 14, page) and code == 0x8007 and code & PF_SGX
    assert _epc_bytes(env, BUFFER + PAGE_SIZE, 8) == (1).to_bytes(8, "little")
    # TCS1 is suspended in its SSA; TCS2 extends the EPCM permissions again.
    env.clear_exception()
    env.set_run(tcs=env.base + TCS2)
    assert E.call(env, E.OP_EMODPE, page, S.SGX_SECINFO_R | S.SGX_SECINFO_W)[0] == 0
    _exited(env)
    env.set_run(tcs=env.base)
    assert E.call(env, E.OP_PUT, page, 2, function=ERESUME)[0] == 0  # the store, again
    _exited(env)
    assert E.call(env, E.OP_GET, page)[1] == 2


def test_eaccept_of_an_eaug_page(own_encl):
    env = _env(own_encl)
    addr = env.base + env.total_size()
    env.proc.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED | MAP_FIXED,
                  env.encl.fd, 0)
    pending = S.SGX_SECINFO_R | S.SGX_SECINFO_W | S.SGX_SECINFO_REG | S.SGX_SECINFO_PENDING
    eaug = env.machine.kernel.sgx.stats.get("eaug", 0)
    assert E.call(env, E.OP_EACCEPT, addr, pending)[:2] == (0, 0)  # EAUG on fault, ERESUME
    _exited(env)
    assert env.machine.cpu.stats.get("eresume", 0) >= 1
    assert env.machine.kernel.sgx.stats.get("eaug", eaug) >= eaug
    assert E.call(env, E.OP_PUT, addr, 0x55)[0] == 0
    _exited(env)
    assert E.call(env, E.OP_GET, addr)[1] == 0x55


def test_eacceptcopy_of_an_eaug_page(own_encl):
    env = _env(own_encl)
    addr = env.base + env.total_size()
    env.proc.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED | MAP_FIXED,
                  env.encl.fd, 0)
    E.call(env, E.OP_PUT, env.base + BUFFER + 16, 0xC0FFEE)
    rx = S.SGX_SECINFO_R | S.SGX_SECINFO_X | S.SGX_SECINFO_REG
    assert E.call(env, E.OP_EACCEPTCOPY, addr, rx)[:2] == (0, 0)
    _exited(env)
    assert E.call(env, E.OP_GET, addr + 16)[1] == 0xC0FFEE  # the copy
    E.call(env, E.OP_PUT, addr, 1)  # EPCM now R|X: the write is refused
    assert _fault(env) == (ERESUME, 14, 0x8007, addr)


def test_gs_base_comes_from_the_tcs(own_encl):
    env = _env(own_encl)
    lp = env.proc.lp
    lp.regs["gsbase"] = 0x7777_0000
    assert E.call(env, E.OP_TLS)[1] == 0x1111
    env.set_run(tcs=env.base + TCS2)
    assert E.call(env, E.OP_TLS)[1] == 0x2222
    assert lp.regs["gsbase"] == 0x7777_0000  # EEXIT gave the untrusted GS base back


def test_egetkey_and_ereport(own_encl):
    env = _env(own_encl)
    _, ret, out = E.call(env, E.OP_EGETKEY, Keyrequest.KEYNAME_REPORT)
    assert ret == 0
    st = env.machine.cpu.epc.secs_state
    secs = next(s for s in st.values() if s.mrenclave == env.encl.mrenclave)
    assert out[:16] == env.machine.cpu.report_key(secs.mrenclave, secs.attributes)
    _, ret, _ = E.call(env, E.OP_EGETKEY, Keyrequest.KEYNAME_PROVISION)
    assert ret == SgxReturn.SGX_INVALID_ATTRIBUTE  # no PROVISIONKEY in ATTRIBUTES
    _, _, out = E.call(env, E.OP_EREPORT)
    assert out == env.encl.mrenclave


@pytest.mark.parametrize("op,vector,at", [
    (E.OP_SYSCALL, 6, "op_syscall"), (E.OP_INT80, 6, "op_int80"), (E.OP_CPUID, 6, None),
    (E.OP_UD2, 6, "op_ud2"),
    (E.OP_BADLEAF, 13, None),  # SDM: ENCLU: an invalid leaf is #GP(0)
    (E.OP_HLT, 13, "op_hlt"),  # privileged at CPL 3
    (E.OP_DIVZERO, 0, None),
])
def test_illegal_instructions_and_exceptions(own_encl, op, vector, at):
    env = _env(own_encl)
    assert E.call(env, op)[0] == 0
    assert _fault(env)[:2] == (ERESUME, vector)
    # The AEX saved the state of the faulting instruction (its RIP), and TCS1
    # is now busy with CSSA = NSSA (EENTER #GPs).
    if at is not None:
        gpr = SsaGpr.unpack(_epc_bytes(env, SSA1 + PAGE_SIZE - SsaGpr.SIZE, SsaGpr.SIZE))
        assert gpr.rip == env.base + env.encl.symbols[at]
    env.clear_exception()
    E.call(env, E.OP_COMPUTE, 0, 1)
    assert _fault(env)[:2] == (EENTER, 13)


def test_sgx2_leaves_are_invalid_on_an_sgx1_cpu(own_encl):
    env = _env(own_encl, sgx1=True)
    E.call(env, E.OP_EMODPE, env.base + BUFFER, S.SGX_SECINFO_R | S.SGX_SECINFO_W)
    assert _fault(env)[:2] == (ERESUME, 13)


def test_eexit_function_and_registers(own_encl):
    env = _env(own_encl)
    E.call(env, E.OP_COMPUTE, 1, 3)
    assert env.run_struct().function == EEXIT
    assert env.proc.lp.enclave is None


def test_timer_interrupts_aex_and_eresume_transparently(own_encl):
    from sgxsim.exec.engine import EnclaveEngine

    env = _env(own_encl)
    ticks = []
    env.vdso.library = EnclaveEngine(timeslice_us=2000, on_interrupt=lambda cpu, lp: ticks.append(
        (lp.enclave, lp.regs["rax"])))
    a, n = 3, 30_000_000
    rc, ret, _ = E.call(env, E.OP_COMPUTE, a, n)
    assert rc == 0 and env.run_struct().function == EEXIT
    assert ticks and all(t == (None, 3) for t in ticks)  # outside the enclave, RAX = ERESUME
    # The same result as without interrupts, and one more AEX per interrupt
    # (both runs also take the page faults of the first touches).
    env2 = _env(own_encl)
    assert E.call(env2, E.OP_COMPUTE, a, n)[1] == ret
    stats, stats2 = env.machine.cpu.stats, env2.machine.cpu.stats
    assert stats["aex"] - stats2["aex"] == len(ticks)
    assert stats["eresume"] - stats2["eresume"] == len(ticks)


def test_an_interrupt_handler_may_abandon_the_call(own_encl):
    from sgxsim.exec.engine import EnclaveEngine

    class Killed(Exception):
        pass

    def kill(cpu, lp):
        raise Killed

    env = _env(own_encl)
    env.vdso.library = EnclaveEngine(timeslice_us=1000, on_interrupt=kill)
    with pytest.raises(Killed):
        E.call(env, E.OP_COMPUTE, 1, 1 << 40)
    assert env.proc.lp.enclave is None
    env.vdso.library = EnclaveEngine()
    E.call(env, E.OP_COMPUTE, 1, 1)  # TCS1 holds the interrupted state: CSSA = NSSA
    assert _fault(env)[:2] == (EENTER, 13)


def test_code_changed_in_place_by_the_model_is_not_run_stale(own_encl):
    # Unicorn keeps code translated from a page across flushes; when the model
    # writes the page's bytes itself (EDBGWR does, in place), the old
    # translation must not run again.
    env = _env(own_encl)
    n = 10

    def expect(k):
        v = 5
        for c in range(n, 0, -1):
            v = ((v + c) & U64) ^ k
        return v

    assert E.call(env, E.OP_COMPUTE, 5, n)[1] == expect(0x5A)
    code_off = env.encl.symbols["op_compute"]
    page = bytearray(_epc_bytes(env, code_off & ~0xFFF, PAGE_SIZE))
    at = page.find(b"\x48\x83\xf0\x5a")  # xor rax, 0x5a
    assert at > 0
    cpu = env.machine.cpu
    pte = env.proc.mm.pgtable.get((env.base + (code_off & ~0xFFF)) >> 12)
    cpu.epc.page(cpu.epc.index((pte >> 12 & ((1 << 40) - 1)) << 12))[at + 3] = 0x33
    assert E.call(env, E.OP_COMPUTE, 5, n)[1] == expect(0x33)
