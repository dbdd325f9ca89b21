"""Real enclave machine code on the model: an x86-64 CPU emulator (Unicorn)
whose every page is admitted by the model's access check.

:class:`EnclaveEngine` is a drop-in for :class:`sgxsim.user.enclave.EnclaveLibrary`:
``engine.run(cpu, lp)`` executes the code in the enclave's EPC pages from
``lp.regs`` until EEXIT, the way a logical processor in enclave mode does.

- **Memory is a TLB.**  Unicorn starts with nothing mapped.  The first access
  to a page (or an access the page's current rights do not cover) stops in a
  hook that asks :meth:`Cpu.translate` for that access: paging with A/D bits,
  then the EPCM inside ELRANGE.  An admitted page is mapped into Unicorn
  zero-copy (the EPC page or RAM frame itself) with exactly the rights the
  model admitted for the whole page.  The TLB is flushed (every page
  unmapped) at EENTER/ERESUME (each ``run``), after every ENCLU leaf and at
  every exit, which is where the model's kernel or leaves may change the
  paging structures, the EPCM or the pages themselves.
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

Limits of the emulator, not of the model: Unicorn 2.1 has no AVX, runs the
code at CPL 0 (privileged instructions other than HLT are not refused) and
does not model the XSAVE area of the SSA (only GPRSGX is saved and restored).
"""

from __future__ import annotations

import ctypes
from typing import Any

from unicorn import (
    UC_ARCH_X86,
    UC_ERR_INSN_INVALID,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_PROT,
    UC_HOOK_MEM_UNMAPPED,
    UC_MEM_FETCH_PROT,
    UC_MEM_FETCH_UNMAPPED,
    UC_MEM_READ_PROT,
    UC_MEM_READ_UNMAPPED,
    UC_MEM_WRITE_PROT,
    UC_MEM_WRITE_UNMAPPED,
    UC_MODE_64,
    Uc,
    UcError,
)
from unicorn import x86_const as X

from sgxsim.hw.access import FETCH, READ, WRITE
from sgxsim.hw.consts import PAGE_MASK, PAGE_SIZE
from sgxsim.hw.faults import CpuException, GeneralProtection, HwFault, InvalidOpcode
from sgxsim.trace import Decision

ENCLU_BYTES = b"\x0f\x01\xd7"
_NEVER = (1 << 64) - 1  # an "until" address no code can reach (not canonical)
_ACCESS = {UC_MEM_READ_UNMAPPED: READ, UC_MEM_READ_PROT: READ,
           UC_MEM_WRITE_UNMAPPED: WRITE, UC_MEM_WRITE_PROT: WRITE,
           UC_MEM_FETCH_UNMAPPED: FETCH, UC_MEM_FETCH_PROT: FETCH}
_NEED = {READ: 1, WRITE: 2, FETCH: 4}  # UC_PROT_* = the model's PERM_*

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
_INT_N, _INTO, _INT3 = 0xCD, 0xCE, 0xCC
VEC_BP, VEC_OF = 3, 4


def _ud(rule: str, detail: str) -> InvalidOpcode:
    return InvalidOpcode(Decision("hw", rule, "#UD", detail))


class _Core:
    """One emulated logical processor: a Unicorn instance and its TLB."""

    __slots__ = ("cpu", "lp", "uc", "tlb", "fault", "error", "fills", "_hooks")

    def __init__(self, cpu: Any, lp: Any):
        self.cpu = cpu
        self.lp = lp
        self.uc = uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # page -> (backing, its ctypes view (keeps the pointer valid), rights)
        self.tlb: dict[int, tuple[bytearray, Any, int]] = {}
        self.fault: HwFault | None = None  # delivered by a hook, after the AEX
        self.error: BaseException | None = None  # a model error inside a hook
        self.fills = 0
        self._hooks = [
            uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_tlb_miss),
            uc.hook_add(UC_HOOK_MEM_PROT, self._on_tlb_miss),
            uc.hook_add(UC_HOOK_INTR, self._on_interrupt),
            uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN),
            uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT),
        ]
        for insn, name in _ILLEGAL_INSNS.items():
            self._hooks.append(uc.hook_add(UC_HOOK_INSN, self._on_illegal, name, 1, 0, insn))

    # -- registers -------------------------------------------------------------------------
    def sync_out(self) -> None:
        """Unicorn's registers -> lp.regs (before the model looks at them)."""
        self.lp.regs.update(zip(_REG_NAMES, self.uc.reg_read_batch(_UC_REGS), strict=True))

    def sync_in(self) -> None:
        regs = self.lp.regs
        self.uc.reg_write_batch([(r, regs.get(n, 0)) for r, n in zip(_UC_REGS, _REG_NAMES,
                                                                       strict=True)])

    # -- the TLB ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Drop every translation (Flush_linear_context)."""
        uc = self.uc
        for va in self.tlb:
            uc.mem_unmap(va, PAGE_SIZE)
        self.tlb.clear()

    def _fill(self, va: int, backing: bytearray, perms: int) -> None:
        old = self.tlb.get(va)
        if old is not None and old[0] is backing:
            self.uc.mem_protect(va, PAGE_SIZE, perms)
            self.tlb[va] = (backing, old[1], perms)
            return
        if old is not None:
            self.uc.mem_unmap(va, PAGE_SIZE)
        view = (ctypes.c_char * PAGE_SIZE).from_buffer(backing)
        self.uc.mem_map_ptr(va, PAGE_SIZE, perms, ctypes.addressof(view))
        self.tlb[va] = (backing, view, perms)
        self.fills += 1

    def _deliver(self, fault: HwFault) -> None:
        """The model raised ``fault`` (after its AEX): stop before anything
        else executes.  Unmapping everything makes the rest of the current
        translation block fault on its first access, before any side effect."""
        self.fault = fault
        self.flush()
        self.uc.emu_stop()

    # -- hooks -----------------------------------------------------------------------------------
    def _on_tlb_miss(self, uc: Uc, kind: int, addr: int, size: int, value: int, _ud: Any) -> bool:
        access = _ACCESS.get(kind)
        if access is None or self.fault is not None or self.lp.enclave is None:
            return False
        try:
            # An access that spans two pages: the page its rights do not cover.
            va = addr & PAGE_MASK
            entry = self.tlb.get(va)
            if entry is not None and entry[2] & _NEED[access] and \
                    (addr + size - 1) & PAGE_MASK != va:
                va += PAGE_SIZE
            self.sync_out()
            try:
                backing, perms = self.cpu.translate(self.lp, max(va, addr), access)
            except HwFault as fault:
                self._deliver(fault)
                return False
            self._fill(va, backing, perms)
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

    def _on_in(self, uc: Uc, port: int, size: int, _ud: Any) -> int:
        self._on_illegal(uc, "IN")
        return 0

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _ud: Any) -> None:
        self._on_illegal(uc, "OUT")

    def _on_interrupt(self, uc: Uc, intno: int, _ud: Any) -> None:
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
            fault, at = CpuException(intno, Decision("hw", "exception", f"vector {intno}",
                                                     f"at {rip:#x}")), rip
        self._raise_inside(uc, at, fault)

    def _code_before(self, rip: int) -> bytes:
        try:
            return bytes(self.uc.mem_read(rip - 2, 2))
        except UcError:
            return b""

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        lp, uc = self.lp, self.uc
        self.flush()  # EENTER/ERESUME flush the linear context
        self.sync_in()
        try:
            while lp.enclave is not None:
                self.fault = self.error = None
                reason = None
                try:
                    uc.emu_start(lp.regs["rip"], _NEVER)
                except UcError as e:
                    reason = e
                if self.error is not None:
                    raise self.error
                if self.fault is not None:
                    raise self.fault
                self.sync_out()
                if reason is not None and reason.errno == UC_ERR_INSN_INVALID:
                    self._invalid_instruction()
                else:
                    self._stopped(reason)
                if lp.enclave is not None:
                    self.sync_in()
        finally:
            self.flush()  # and release the pages

    def _invalid_instruction(self) -> None:
        lp = self.lp
        rip = lp.regs["rip"]
        try:
            code = bytes(self.uc.mem_read(rip, len(ENCLU_BYTES)))
        except UcError:
            code = b""
        self.flush()
        if code == ENCLU_BYTES:
            self.cpu.enclu(lp)  # faults raise after the leaf's AEX
            return
        raise self.cpu.aex(lp, fault=_ud("decode", f"invalid or unsupported instruction "
                                                   f"{code.hex() or '??'} at {rip:#x}"))

    def _stopped(self, reason: UcError | None) -> None:
        """Unicorn stopped on its own: HLT (a #GP at CPL 3) or an emulator error."""
        lp = self.lp
        rip = lp.regs["rip"]
        try:
            hlt = reason is None and bytes(self.uc.mem_read(rip - 1, 1)) == b"\xf4"
        except UcError:
            hlt = False
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

    def __init__(self) -> None:
        self._cores: dict[tuple[int, int], _Core] = {}

    def core(self, cpu: Any, lp: Any) -> _Core:
        key = (id(cpu), lp.id)
        c = self._cores.get(key)
        if c is None or c.cpu is not cpu:
            c = self._cores[key] = _Core(cpu, lp)
        c.lp = lp
        return c

    def run(self, cpu: Any, lp: Any) -> None:
        """Execute from ``lp.regs`` (in enclave mode, just after EENTER or
        ERESUME) until EEXIT; a fault propagates after the CPU's AEX, like
        :meth:`EnclaveLibrary.run`."""
        self.core(cpu, lp).run()

    @property
    def fills(self) -> int:
        return sum(c.fills for c in self._cores.values())
