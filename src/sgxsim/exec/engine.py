"""Real enclave machine code on the model: an x86-64 CPU emulator (Unicorn)
whose every page is admitted by the model's access check.

:class:`EnclaveEngine` is a drop-in for :class:`sgxsim.user.enclave.EnclaveLibrary`:
``engine.run(cpu, lp)`` executes the code in the enclave's EPC pages from
``lp.regs`` until EEXIT, the way a logical processor in enclave mode does.

- **Memory is a TLB.**  Unicorn runs with a virtual TLB (``UC_TLB_VIRTUAL``):
  every TLB miss (first access to a page after a flush, or an access the
  cached rights do not cover, e.g. the first write after reads) calls a hook
  that asks :meth:`Cpu.translate` for that access: paging with A/D bits,
  then the EPCM inside ELRANGE.  The admitted page's storage (the EPC page
  or RAM frame itself, zero-copy) sits at a "physical" slot of Unicorn's
  memory, and the TLB entry gets exactly the rights the model admitted for
  the whole page.  The TLB is flushed at EENTER/ERESUME (each ``run``) and
  after every ENCLU leaf, which is where the model's kernel or leaves may
  change the paging structures, the EPCM or the pages; translated code is
  kept per physical slot, so a flush costs no retranslation.
- **A refused access** raises in ``translate`` after the CPU's AEX (the
  registers were synchronised first, so the SSA holds the state *before* the
  instruction); the hook then stops Unicorn before the instruction executes
  and the fault propagates to the caller (the vDSO / kernel fault path).
  ERESUME restores the state and runs the instruction again.
- **ENCLU** (0F 01 D7) is an invalid instruction to Unicorn; it stops there
  and the engine executes it with :meth:`Cpu.enclu` (leaf in EAX, operands in
  RBX/RCX/RDX).  Any other instruction Unicorn cannot decode is #UD.
- **Instructions illegal in an enclave** (SDM Vol. 3D "Illegal Instructions"):
  SYSCALL, SYSENTER, CPUID, IN, OUT, INT n and INTO raise #UD through an AEX.
  Other exceptions the code raises (#DE, #BP, ...) are delivered by vector.
- **Timer interrupts** (optional, ``timeslice_us``): an AEX, the kernel's
  turn (``on_interrupt``), then the AEP's ERESUME, so a long-running enclave
  can be interrupted or abandoned.
- **Code the model rewrites.**  Unicorn does not see the model's own writes
  to a page (EDBGWR, leaf outputs); after the model ran, a page code was
  translated from is compared with the bytes it was translated from, and a
  change discards all translated code.

Limits of the emulator, not of the model: Unicorn 2.1 has no AVX, runs the
code at CPL 0 (privileged instructions other than HLT are not refused) and
does not model the XSAVE area of the SSA (only GPRSGX is saved and restored).
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from unicorn import (
    UC_ARCH_X86,
    UC_ERR_INSN_INVALID,
    UC_ERR_OK,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_TLB_FILL,
    UC_MEM_FETCH,
    UC_MEM_READ,
    UC_MEM_WRITE,
    UC_MODE_64,
    Uc,
    UcError,
)
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_PROT_ALL, UC_TLB_VIRTUAL

from sgxsim.hw.access import FETCH, READ, WRITE
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.faults import (
    VEC_GP,
    VEC_UD,
    CpuException,
    GeneralProtection,
    HwFault,
    InvalidOpcode,
)
from sgxsim.trace import Decision

ENCLU_BYTES = b"\x0f\x01\xd7"
_U64 = (1 << 64) - 1
# emu_start's "until": a non-canonical page no instruction can reach.  Unicorn
# asks the TLB about the page before it now and then (when it checks whether a
# translation block ends there); that is not an enclave access.
_NEVER = 0x7FFF_FFFF_FFFF_F000
_NEVER_PAGES = (_NEVER - PAGE_SIZE, _NEVER)
_ACCESS = {UC_MEM_READ: READ, UC_MEM_WRITE: WRITE, UC_MEM_FETCH: FETCH}
_PROT_R, _PROT_X = 1, 4  # UC_PROT_* = the model's PERM_*
# Unicorn's "physical" memory: one slot per page the model admitted, above
# anything else; at most SLOTS stay mapped between runs.
_SLOT_BASE = 1 << 44
SLOTS = 8192

# lp.regs names and Unicorn's registers, in one order.
_REG_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
              "r12", "r13", "r14", "r15", "rip", "rflags", "fsbase", "gsbase")
_UC_REGS = (X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RBX,
            X.UC_X86_REG_RSP, X.UC_X86_REG_RBP, X.UC_X86_REG_RSI, X.UC_X86_REG_RDI,
            X.UC_X86_REG_R8, X.UC_X86_REG_R9, X.UC_X86_REG_R10, X.UC_X86_REG_R11,
            X.UC_X86_REG_R12, X.UC_X86_REG_R13, X.UC_X86_REG_R14, X.UC_X86_REG_R15,
            X.UC_X86_REG_RIP, X.UC_X86_REG_RFLAGS, X.UC_X86_REG_FS_BASE, X.UC_X86_REG_GS_BASE)
# The instructions Unicorn lets us hook that are illegal in enclave mode.
_ILLEGAL_INSNS = {X.UC_X86_INS_SYSCALL: "SYSCALL", X.UC_X86_INS_SYSENTER: "SYSENTER",
                  X.UC_X86_INS_CPUID: "CPUID"}
_INT_N, _INTO = 0xCD, 0xCE
VEC_OF = 4


def _ud(rule: str, detail: str) -> InvalidOpcode:
    return InvalidOpcode(Decision("hw", rule, "#UD", detail))


class _Timer(threading.Thread):
    """The timeslice's clock: while armed, stops the emulation every
    ``seconds`` (a stop that lands before emu_start began is lost, so it
    repeats); ``fired`` tells whether it stopped anything since it was armed.

    One thread per core for its whole life, armed and disarmed around each
    emu_start: starting a thread per run cost more than the enclave call
    itself.  Arming only sets a deadline: the thread, in a timed wait since
    an earlier run, wakes at its timeout and waits again for the rest, so a
    run of calls does not wake it per call; it is woken only after a
    timeslice without a run.  It holds the core weakly and ends with it."""

    def __init__(self, seconds: float, core: _Core):
        super().__init__(daemon=True)
        self.seconds = seconds
        self.core = weakref.ref(core)
        self.fired = False
        self.armed = False
        self.idle = False  # waiting without a timeout: only arm() wakes it
        self.deadline = 0.0
        self.ended = False
        self.cond = threading.Condition()

    def arm(self) -> None:
        with self.cond:
            self.fired = False
            self.deadline = time.monotonic() + self.seconds
            self.armed = True
            if self.idle:
                self.cond.notify()

    def disarm(self) -> None:
        # Under the lock: once this returns, no stop of this run can land
        # in a later one.
        with self.cond:
            self.armed = False

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify()

    def run(self) -> None:
        with self.cond:
            while not self.ended:
                if not self.armed:
                    self.idle = True
                    self.cond.wait()
                    self.idle = False
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                core = self.core()
                if core is None:
                    return
                self.fired = True
                core.uc.emu_stop()
                del core  # not kept alive by the wait below
                self.deadline = time.monotonic() + self.seconds


class _Core:
    """One emulated logical processor: a Unicorn instance and its TLB."""

    __slots__ = ("cpu", "lp", "uc", "slots", "code", "next_slot", "pages", "until_page", "fault",
                 "timeslice_us", "on_interrupt", "timer", "__weakref__",
                 "error", "fills", "_hooks", "_ids", "_vals", "_ptrs")

    def __init__(self, cpu: Any, lp: Any, timeslice_us: int = 0,
                 on_interrupt: Callable[[Any, Any], None] | None = None):
        self.cpu = cpu
        self.lp = lp
        self.timeslice_us = timeslice_us
        self.on_interrupt = on_interrupt
        self.timer: _Timer | None = None  # started at the first run with a timeslice
        self.fault: HwFault | None = None  # delivered by a hook, after the AEX
        self.error: BaseException | None = None  # a model error inside a hook
        self.fills = 0
        self.pages: dict[int, bytearray] = {}  # vpn -> backing, filled since the last flush
        self.until_page = bytearray(b"\x0f\x0b" * (PAGE_SIZE // 2))  # UD2 (see _NEVER)
        # One preallocated register file for the batch calls: the binding's
        # reg_read_batch builds its argument arrays per call (~90 us for 20 registers).
        n = len(_UC_REGS)
        self._ids = (ctypes.c_int * n)(*_UC_REGS)
        self._vals = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._vals)
        self._ptrs = (ctypes.c_void_p * n)(*(base + 8 * i for i in range(n)))
        self._new_uc()

    def _new_uc(self) -> None:
        """A fresh Unicorn: nothing mapped, nothing translated."""
        old = getattr(self, "uc", None)
        if old is not None:
            # Close the old one now: its hooks make it cyclic garbage, and a
            # garbage-collection pass that closes it in the middle of the next
            # emulation stops that emulation (Unicorn 2.1).
            close = getattr(old, "_Uc__finalizer", None)
            if close is not None:
                close()
        self.uc = uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        # id(backing) -> [slot address, backing, its ctypes view (keeps the
        # pointer valid), the bytes code was translated from (X pages)]
        self.slots: dict[int, list] = {}
        self.code: dict[int, list] = {}  # the slots of X pages (see _check_code)
        self.next_slot = _SLOT_BASE
        self.pages.clear()
        self._hooks = [
            uc.hook_add(UC_HOOK_TLB_FILL, self._on_tlb_fill),
            uc.hook_add(UC_HOOK_INTR, self._on_interrupt),
            uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN),
            uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT),
        ]
        for insn, name in _ILLEGAL_INSNS.items():
            self._hooks.append(uc.hook_add(UC_HOOK_INSN, self._on_illegal, name, 1, 0, insn))
        # Mapped before any emulation: a mapping made while emu_start sets up
        # (its lookup of "until") makes that emu_start return at once.
        self._slot(self.until_page, 0)

    # -- registers -------------------------------------------------------------------------
    def sync_out(self) -> None:
        """Unicorn's registers -> lp.regs (before the model looks at them)."""
        if self.uc._do_reg_read_batch(self._ids, self._ptrs, len(_UC_REGS)) != UC_ERR_OK:
            raise UcError(self.uc.errno)
        self.lp.regs.update(zip(_REG_NAMES, self._vals, strict=True))

    def sync_in(self) -> None:
        """lp.regs -> Unicorn's registers."""
        regs = self.lp.regs
        self._vals[:] = [regs.get(n, 0) & _U64 for n in _REG_NAMES]
        if self.uc._do_reg_write_batch(self._ids, self._ptrs, len(_UC_REGS)) != UC_ERR_OK:
            raise UcError(self.uc.errno)

    # -- the TLB ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Drop every translation (Flush_linear_context): the next access to
        any page is a TLB miss that goes through the model's check again."""
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        self.pages.clear()

    def read(self, la: int, n: int) -> bytes:
        """Bytes at ``la`` from the pages admitted since the last flush (the
        instruction bytes Unicorn fetched); b"" where a page is not admitted."""
        out = b""
        while n > 0:
            page = self.pages.get(la >> 12)
            if page is None:
                return b""
            off = la & (PAGE_SIZE - 1)
            take = min(n, PAGE_SIZE - off)
            out += bytes(page[off : off + take])
            la, n = la + take, n - take
        return out

    def _trim(self) -> None:
        """Between runs: drop stale code; let go of the model's pages when
        more than SLOTS are mapped (pages the model has freed stay in a slot
        until then).  Unicorn keeps translated code reachable by linear
        address after an unmap, so letting go means a fresh emulator."""
        self._check_code()
        if len(self.slots) > SLOTS:
            self._new_uc()

    def release(self) -> None:
        """Unmap every slot and let go of the model's pages."""
        self._new_uc()

    def _slot(self, backing: bytearray, perms: int) -> int:
        """The slot address of ``backing``, mapping it on first use."""
        key = id(backing)
        slot = self.slots.get(key)
        if slot is not None and slot[1] is backing:
            if perms & _PROT_X:
                slot[3] = bytes(backing)  # what Unicorn translates from (see _check_code)
                self.code[key] = slot
            return slot[0]
        addr = self.next_slot
        self.next_slot += PAGE_SIZE
        view = (ctypes.c_char * PAGE_SIZE).from_buffer(backing)
        self.uc.mem_map_ptr(addr, PAGE_SIZE, UC_PROT_ALL, ctypes.addressof(view))
        slot = self.slots[key] = [addr, backing, view,
                                  bytes(backing) if perms & _PROT_X else None]
        if perms & _PROT_X:
            self.code[key] = slot
        else:
            self.code.pop(key, None)
        return addr

    def _check_code(self) -> None:
        """Outside emulation, after the model ran (kernel, leaves): if the
        model changed in place the bytes of a page Unicorn translated code
        from (EDBGWR does; EGETKEY/EREPORT outputs may), that code must go."""
        if any(slot[1] != slot[3] for slot in self.code.values()):
            # Unicorn finds translated code by linear address as well, and
            # neither unmapping nor its cache controls drop all of it: start
            # over with a fresh emulator (rare: only when the model wrote code).
            self._new_uc()

    def _deliver(self, fault: HwFault) -> None:
        """The model raised ``fault`` (after its AEX): stop before anything
        else executes.  Unmapping everything makes the rest of the current
        translation block fault on its first access, before any side effect."""
        self.fault = fault
        self.flush()
        self.uc.emu_stop()

    # -- hooks -----------------------------------------------------------------------------------
    def _on_tlb_fill(self, uc: Uc, vaddr: int, kind: int, entry: Any, _data: Any) -> bool:
        if vaddr & ~(PAGE_SIZE - 1) in _NEVER_PAGES:
            # Unicorn looking up "until", not an access (see _NEVER): a page of UD2.
            entry.paddr = self._slot(self.until_page, 0) | (vaddr & (PAGE_SIZE - 1))
            entry.perms = _PROT_R | _PROT_X
            return True
        access = _ACCESS.get(kind)
        if access is None or self.fault is not None or self.lp.enclave is None:
            uc.emu_stop()
            return False
        try:
            self.sync_out()  # an AEX saves the state before this instruction
            try:
                if (vaddr >> 47) not in (0, (1 << 17) - 1):
                    # Unicorn does not check canonical form; the CPU does, before paging.
                    raise self.cpu.aex(self.lp, fault=GeneralProtection(Decision(
                        "hw", "canonical address check", "#GP(0)",
                        f"non-canonical address {vaddr:#x}")))
                backing, perms = self.cpu.translate(self.lp, vaddr, access)
            except HwFault as fault:
                self._deliver(fault)
                return False
            entry.paddr = self._slot(backing, perms) | (vaddr & (PAGE_SIZE - 1))
            entry.perms = perms
            self.pages[vaddr >> 12] = backing
            self.fills += 1
            return True
        except BaseException as e:  # a model error: report it after stopping
            self.error = e
            uc.emu_stop()
            return False

    def _raise_inside(self, uc: Uc, rip: int, fault: HwFault) -> None:
        """An exception of the instruction at ``rip``: AEX with RIP = ``rip``."""
        try:
            self.sync_out()
            self.lp.regs["rip"] = rip
            self._deliver(self.cpu.aex(self.lp, fault=fault))
        except BaseException as e:
            self.error = e
            uc.emu_stop()

    def _on_illegal(self, uc: Uc, name: str) -> bool:
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        self._raise_inside(uc, rip, _ud("SDM: illegal instruction in enclave mode",
                                        f"{name} at {rip:#x} in enclave mode"))
        return True  # CPUID: do not execute it

    def _on_in(self, uc: Uc, port: int, size: int, _data: Any) -> int:
        self._on_illegal(uc, "IN")
        return 0

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _data: Any) -> None:
        self._on_illegal(uc, "OUT")

    def _on_interrupt(self, uc: Uc, intno: int, _data: Any) -> None:
        if self.fault is not None or self.error is not None:
            uc.emu_stop()  # the #PF of a refused TLB fill, already delivered
            return
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        prev = self._code_before(rip)
        if prev[-2:] == bytes((_INT_N, intno & 0xFF)):
            fault, at = _ud("SDM: illegal instruction in enclave mode",
                            f"INT {intno:#x} at {rip - 2:#x} in enclave mode"), rip - 2
        elif intno == VEC_OF and prev[-1:] == bytes((_INTO,)):
            fault, at = _ud("SDM: illegal instruction in enclave mode",
                            f"INTO at {rip - 1:#x} in enclave mode"), rip - 1
        else:
            # A fault (RIP at the instruction) or INT3's trap (RIP after it).
            why = Decision("hw", "exception", f"vector {intno}", f"at {rip:#x}")
            fault = (GeneralProtection(why) if intno == VEC_GP else InvalidOpcode(why)
                     if intno == VEC_UD else CpuException(intno, why))
            at = rip
        self._raise_inside(uc, at, fault)

    def _code_before(self, rip: int) -> bytes:
        return self.read(rip - 2, 2) or self.read(rip - 1, 1)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        lp = self.lp
        self._trim()
        self.flush()  # EENTER/ERESUME flush the linear context
        self.sync_in()
        spurious = 0
        try:
            while lp.enclave is not None:
                self.fault = self.error = None
                reason = None
                timer = self._start_timer()
                try:
                    self.uc.emu_start(lp.regs["rip"], _NEVER)
                except UcError as e:
                    reason = e
                finally:
                    if timer is not None:
                        timer.disarm()
                if self.error is not None:
                    raise self.error
                if self.fault is not None:
                    raise self.fault
                self.sync_out()
                if reason is not None and reason.errno == UC_ERR_INSN_INVALID:
                    self._invalid_instruction()
                elif reason is None and timer is not None and timer.fired:
                    self._interrupt()
                elif (reason is None and spurious < 3
                      and self.read(lp.regs["rip"] - 1, 1) != b"\xf4"):
                    spurious += 1  # Unicorn returned without a stop request: go on
                    continue
                else:
                    self._stopped(reason)
                spurious = 0
                if lp.enclave is not None:
                    self.sync_in()
        finally:
            self.flush()

    def _start_timer(self) -> _Timer | None:
        """The timer of the timeslice, armed: it stops the emulation from
        another thread (emu_start's own timeout sometimes never fires,
        Unicorn 2.1.4)."""
        if not self.timeslice_us:
            return None
        timer = self.timer
        if timer is None:
            timer = self.timer = _Timer(self.timeslice_us / 1e6, self)
            weakref.finalize(self, timer.end)
            timer.start()
        timer.arm()
        return timer

    def _interrupt(self) -> None:
        """The timeslice ended: a timer interrupt.  The CPU takes an AEX (no
        exception, SSA.EXITINFO not valid), the kernel handles the interrupt
        (``on_interrupt(cpu, lp)``, which may raise to abandon the call) and
        returns to the AEP, where the vDSO's ENCLU executes ERESUME with the
        synthetic state the AEX left (RAX = ERESUME, RBX = TCS, RCX = AEP)."""
        cpu, lp = self.cpu, self.lp
        self.flush()
        cpu.aex(lp, vector=None)
        if self.on_interrupt is not None:
            self.on_interrupt(cpu, lp)
        regs = lp.regs
        regs["rip"] = regs["rcx"]
        cpu.enclu(lp)

    def _invalid_instruction(self) -> None:
        lp = self.lp
        rip = lp.regs["rip"]
        code = self.read(rip, len(ENCLU_BYTES))
        self.flush()
        if code == ENCLU_BYTES:
            self.cpu.enclu(lp)  # faults raise after the leaf's AEX
            self._check_code()
            return
        raise self.cpu.aex(lp, fault=_ud("decode", f"invalid or unsupported instruction "
                                                   f"{code.hex() or '??'} at {rip:#x}"))

    def _stopped(self, reason: UcError | None) -> None:
        """Unicorn stopped on its own: HLT (a #GP at CPL 3) or an emulator error."""
        lp = self.lp
        rip = lp.regs["rip"]
        hlt = reason is None and self.read(rip - 1, 1) == b"\xf4"
        self.flush()
        if hlt:
            lp.regs["rip"] = rip - 1
            raise self.cpu.aex(lp, fault=GeneralProtection(Decision(
                "hw", "SDM: HLT", "#GP(0)", f"HLT at CPL 3 ({rip - 1:#x})")))
        raise self.cpu.aex(lp, fault=GeneralProtection(Decision(
            "hw", "emulator", "#GP(0)", f"the emulator stopped at {rip:#x}: {reason}")))


class EnclaveEngine:
    """Runs enclave machine code; one emulated core per logical processor.

    A drop-in for :class:`sgxsim.user.enclave.EnclaveLibrary` (``run(cpu,
    lp)``), so :class:`sgxsim.user.vdso.Vdso` and everything built on it run
    real code with it.  ``fills`` counts TLB fills (a measure of how often
    the model's access check ran)."""

    def __init__(self, timeslice_us: int = 0,
                 on_interrupt: Callable[[Any, Any], None] | None = None) -> None:
        """``timeslice_us``: run at most this long between timer interrupts
        (0: no interrupts); at each one the CPU takes an AEX, then
        ``on_interrupt(cpu, lp)`` runs (the kernel's turn: it may raise to
        abandon the call, e.g. for a pending kill), then the AEP's ERESUME."""
        self._cores: dict[tuple[int, int], _Core] = {}
        self.timeslice_us = timeslice_us
        self.on_interrupt = on_interrupt

    def core(self, cpu: Any, lp: Any) -> _Core:
        key = (id(cpu), lp.id)
        c = self._cores.get(key)
        if c is None or c.cpu is not cpu:
            c = self._cores[key] = _Core(cpu, lp, self.timeslice_us, self.on_interrupt)
        c.lp = lp
        return c

    def run(self, cpu: Any, lp: Any) -> None:
        """Execute from ``lp.regs`` (in enclave mode, just after EENTER or
        ERESUME) until EEXIT; a fault propagates after the CPU's AEX, like
        :meth:`EnclaveLibrary.run`."""
        self.core(cpu, lp).run()

    def release(self) -> None:
        """Unmap everything and drop the references to the model's pages
        (the engine keeps them mapped without rights between runs)."""
        for c in self._cores.values():
            c.release()

    @property
    def fills(self) -> int:
        return sum(c.fills for c in self._cores.values())
