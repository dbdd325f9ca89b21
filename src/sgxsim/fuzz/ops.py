"""The fuzzer's steps: how one is drawn, and how it becomes Python source.

A step is a tuple ``(op, *args)`` of plain values.  Where a step names a
process, a file descriptor or an address, it holds a *selector* (an index
taken modulo what exists when the step runs, or a raw value), so that a step
list stays meaningful when the shrinker drops steps.  :func:`render` turns a
step into the lines of Python that perform it on the live state; the runner
executes exactly those lines, and a reproduction prints them.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from sgxsim.fuzz.helpers import HANDLERS
from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.structs import Secs
from sgxsim.user import test_encl as T

U64 = (1 << 64) - 1
SCRATCH = 0x1000_0000  # every process maps its scratch pages here (fork keeps them)
SCRATCH_PAGES = 8
PATHS = ("/dev/sgx_enclave", "/dev/sgx_provision", "/etc/passwd", "/nonexistent", "/",
         "/dev/sgx_vepc")
IOCTLS = list(uapi.IOCTLS.values())
ARG_KINDS = ("ptr", "bytearray", "bytes", "memoryview", "memoryview_ro", "int")

# Interesting raw values for lengths and addresses.
EDGES = (0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, 2 * PAGE_SIZE, 1 << 20, 1 << 30, 1 << 40,
         0x7FFF_FFFF_F000, 1 << 47, U64, U64 - PAGE_SIZE + 1, -1, -PAGE_SIZE, 0x10000, 0xF000)


# -- drawing ---------------------------------------------------------------------------------
def _length(r: random.Random) -> int:
    c = r.random()
    if c < 0.6:
        return r.randint(1, 8) * PAGE_SIZE
    if c < 0.75:
        return r.randint(0, 64) * PAGE_SIZE
    if c < 0.85:
        return r.randint(0, 3 * PAGE_SIZE)
    return r.choice(EDGES)


def _addr(r: random.Random) -> tuple:
    """("at", slot, page delta, byte offset) or ("raw", value)."""
    if r.random() < 0.85:
        delta = r.choice((0, 0, 0, 1, 2, -1, r.randint(-16, 16)))
        return ("at", r.randrange(64), delta, 0 if r.random() < 0.9 else r.randrange(PAGE_SIZE))
    return ("raw", r.choice(EDGES) if r.random() < 0.7 else r.getrandbits(48) & ~0xFFF)


def _prot(r: random.Random) -> int:
    return r.choice((1, 3, 5, 7, 0, 1, 3)) if r.random() < 0.9 else r.getrandbits(32) | 0x1000000


def _mmap_flags(r: random.Random, anon: bool) -> int:
    base = r.choice((0x01, 0x02, 0x01, 0x02, 0x03))  # SHARED, PRIVATE, VALIDATE
    if anon:
        base |= 0x20
    if r.random() < 0.4:
        base |= 0x10  # FIXED
    if r.random() < 0.1:
        base |= 0x100000  # FIXED_NOREPLACE
    if r.random() < 0.1:
        base |= 0x8000  # POPULATE
    if r.random() < 0.05:
        base |= 0x0100  # GROWSDOWN
    if r.random() < 0.03:
        base |= r.getrandbits(32)
    return base


def _blob(r: random.Random, cmd: int) -> tuple:
    """The ioctl's struct: ("fields", [(fmt, value-or-addr), ...], aux) where
    aux is what pointers point at: [(scratch page, kind, params)]."""
    pg = lambda n: n * PAGE_SIZE  # noqa: E731
    off = lambda: r.choice((0, 0, pg(1), pg(2), pg(r.randint(0, 16)), r.choice(EDGES)))  # noqa: E731
    ln = lambda: r.choice((pg(1), pg(1), pg(2), pg(r.randint(0, 4)), r.choice(EDGES)))  # noqa: E731
    if cmd == uapi.SGX_IOC_ENCLAVE_CREATE:
        size = r.choice((pg(2), pg(16), pg(64), 1 << 36, pg(3), 0))
        return ([("ptr", 1)], [(1, "secs", (size, r.choice((0, 0, 1, 2)), r.random() < 0.5,
                                              r.choice((1, 1, 0, 5))))])
    if cmd == uapi.SGX_IOC_ENCLAVE_ADD_PAGES:
        flags = r.choice((0, 1, 1, 2, U64))
        si = r.choice((0x201, 0x203, 0x205, 0x207, 0x100, 0x0, 0x801, 0x401, r.getrandbits(16)))
        return ([("addr", _addr(r)), ("int", off()), ("int", ln()), ("ptr", 2), ("int", flags),
                 ("int", r.choice((0, 0, 5)))], [(2, "secinfo", (si,))])
    if cmd == uapi.SGX_IOC_ENCLAVE_INIT:
        return ([("ptr", 3)], [(3, "sigstruct", (r.getrandbits(32),))])
    if cmd == uapi.SGX_IOC_ENCLAVE_PROVISION:
        return ([("fd", r.randrange(8))], [])
    if cmd in (uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES):
        val = r.choice((1, 3, 0, 7, 2, 3, 4, r.getrandbits(64))) if \
            cmd == uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS else r.choice((1, 2, 3, 4, 0, 9))
        return ([("int", off()), ("int", ln()), ("int", val), ("int", r.choice((0, 0, 7))),
                 ("int", r.choice((0, 0, pg(1))))], [])
    if cmd == uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES:
        return ([("int", off()), ("int", ln()), ("int", r.choice((0, 0, pg(1))))], [])
    return ([("int", r.getrandbits(64)) for _ in range(r.randint(0, 6))], [])


def draw(r: random.Random) -> tuple:
    """One random step."""
    p = r.randrange(16)
    c = r.random()
    if c < 0.03:
        return ("spawn",)
    if c < 0.05:
        return ("fork", p)
    if c < 0.06:
        return ("exit", p)
    if c < 0.07:
        return ("kill", p, r.choice((2, 9, 15)))
    if c < 0.08:
        return ("personality", p, r.choice((0x0400000, 0, 0xFFFFFFFF, r.getrandbits(32))))
    if c < 0.12:
        return ("open", p, r.randrange(len(PATHS)), r.choice((2, 0, 1, 0o2000002, 0o100)))
    if c < 0.14:
        return ("close", p, r.randrange(8))
    if c < 0.26:
        anon = r.random() < 0.5
        flags = _mmap_flags(r, anon)
        # Populating is real work per page: keep it to what a step can afford.
        length = _length(r) if not flags & 0x8000 else r.randint(0, 64) * PAGE_SIZE
        return ("mmap", p, _addr(r) if r.random() < 0.6 else ("raw", 0), length, _prot(r),
                flags, r.randrange(8) if not anon else -1,
                r.choice((0, 0, 0, PAGE_SIZE, 1, 1 << 40)))
    if c < 0.32:
        return ("munmap", p, _addr(r), _length(r))
    if c < 0.40:
        return ("mprotect", p, _addr(r), _length(r), _prot(r))
    if c < 0.45:
        return ("mremap", p, _addr(r), _length(r), _length(r),
                r.choice((0, 1, 3, 1, 3, 7, 5, 2, r.getrandbits(8))), _addr(r))
    if c < 0.55:
        kind = r.choice(("peek", "poke", "fetch"))
        return (kind, p, _addr(r), r.choice((1, 8, 64, PAGE_SIZE, 2 * PAGE_SIZE + 3)))
    if c < 0.70:
        cmd = r.choice(IOCTLS) if r.random() < 0.95 else r.getrandbits(32)
        return ("ioctl", p, r.randrange(8), cmd, r.choice(ARG_KINDS), _blob(r, cmd))
    if c < 0.77:
        return ("build", p, r.choice((1, 1, 4)))
    if c < 0.93:
        op = r.randrange(T.ENCL_OP_MAX + 2)
        fields = tuple(r.choice((0, 0x3000, 0x2000, 0x4000, r.getrandbits(64), ("at", r.randrange(64),
                                                                                0, 0)))
                       for _ in range(3))
        regs = tuple(r.choice((0, 0, U64, -1, r.getrandbits(64))) for _ in range(4))
        return ("enter", p, op, fields, regs, r.choice((2, 2, 2, 3, 0, 4, 1 << 32 | 2)),
                r.randrange(4), r.choice(("none", "none") + HANDLERS + ("bogus",)),
                r.random() < 0.08)
    return ("reclaim", r.choice(("pages", "ksgxd", "one", "one")), r.randrange(64))


# -- rendering -------------------------------------------------------------------------------------
class Live:
    """What the lines of a case have created so far: process variables, their
    scratch areas, enclaves, and the addresses seen (for selectors)."""

    def __init__(self) -> None:
        self.procs: list[str] = []  # variable names of live processes
        self.encls: dict[str, list[tuple[int, int]]] = {}  # proc var -> [(fd, base)]
        self.addrs: list[int] = []
        self.nvar = 0

    def new_var(self) -> str:
        self.nvar += 1
        return f"p{self.nvar}"

    def proc(self, sel: int) -> str | None:
        return self.procs[sel % len(self.procs)] if self.procs else None

    def addr(self, spec: tuple) -> int:
        if spec[0] == "raw":
            return spec[1]
        _, slot, delta, byte = spec
        if not self.addrs:
            return 0x10000 + delta * PAGE_SIZE + byte
        return self.addrs[slot % len(self.addrs)] + delta * PAGE_SIZE + byte

    def note(self, addr: int) -> None:
        if addr not in self.addrs:
            self.addrs.append(addr)
            del self.addrs[:-64]


def _bytes(data: bytes) -> str:
    if not data.strip(b"\0"):
        return f"bytes({len(data)})"
    h = data.hex()
    if len(h) <= 64:
        return f"bytes.fromhex({h!r})"
    chunks = "\n        ".join(repr(h[i:i + 64]) for i in range(0, len(h), 64))
    return f"bytes.fromhex(\n        {chunks})"


def _aux_bytes(kind: str, params: tuple, live: Live, pv: str) -> bytes:
    if kind == "secs":
        size, base_kind, debug, ssa = params
        encls = live.encls.get(pv) or [(0, 0)]
        base = {0: 0x7F00_0000_0000, 1: encls[-1][1] or 0x7F00_0000_0000, 2: 0x7F00_0000_1000}[base_kind]
        if size and base_kind != 2:
            base &= ~(size - 1)
        return Secs(size=size, base=base, ssa_frame_size=ssa, attributes=0x4 | (2 if debug else 0),
                    xfrm=3).pack()
    if kind == "secinfo":
        return struct.pack("<Q", params[0]).ljust(64, b"\0")
    if kind == "sigstruct":
        return random.Random(params[0]).randbytes(1808)
    raise ValueError(kind)


def render(step: tuple, live: Live, files: dict[str, list[int]]) -> list[str]:
    """The lines that perform ``step`` (empty: nothing to do in this state).
    ``files`` maps a process variable to its open descriptors, in order."""
    op = step[0]
    if op == "spawn":
        v = live.new_var()
        return [f"{v} = m.spawn()",
                f"{v}.mmap({SCRATCH:#x}, {SCRATCH_PAGES * PAGE_SIZE:#x}, 0x3, 0x32, -1, 0)"]
    if op == "reclaim":
        kind, idx = step[1], step[2]
        if kind == "pages":
            return ["reclaim_pages(m)"]
        if kind == "ksgxd":
            return ["run_ksgxd(m)"]
        return [f"reclaim_one(m, {idx})"]
    pv = live.proc(step[1])
    if pv is None:
        return []
    fds = files.get(pv, [])
    fd = lambda sel: fds[sel % len(fds)] if fds and sel >= 0 else sel  # noqa: E731
    a = lambda spec: hex(live.addr(spec))  # noqa: E731
    if op == "fork":
        v = live.new_var()
        return [f"{v} = {pv}.fork()"]
    if op == "exit":
        return [f"{pv}.exit()"]
    if op == "kill":
        return [f"{pv}.kill({step[2]})"]
    if op == "personality":
        return [f"{pv}.personality({step[2]:#x})"]
    if op == "open":
        return [f"{pv}.open({PATHS[step[2]]!r}, {step[3]:#o})"]
    if op == "close":
        return [f"{pv}.close({fd(step[2])})"] if fds else []
    if op == "mmap":
        _, _, addr, length, prot, flags, fdsel, off = step
        f = -1 if flags & 0x20 else fd(fdsel)
        return [f"_r = {pv}.mmap({a(addr)}, {length:#x}, {prot:#x}, {flags:#x}, {f}, {off:#x})"]
    if op == "munmap":
        return [f"{pv}.munmap({a(step[2])}, {step[3]:#x})"]
    if op == "mprotect":
        return [f"{pv}.mprotect({a(step[2])}, {step[3]:#x}, {step[4]:#x})"]
    if op == "mremap":
        _, _, addr, old, new, flags, addr2 = step
        return [f"_r = {pv}.mremap({a(addr)}, {old:#x}, {new:#x}, {flags:#x}, {a(addr2)})"]
    if op == "peek":
        return [f"{pv}.peek({a(step[2])}, {step[3]})"]
    if op == "fetch":
        return [f"{pv}.fetch({a(step[2])})"]
    if op == "poke":
        return [f"{pv}.poke({a(step[2])}, b'\\xa5' * {step[3]})"]
    if op == "ioctl":
        return _render_ioctl(step, pv, live, fd, fds)
    if op == "build":
        return [f"_r = build_enclave({pv}, {SCRATCH:#x}, {step[2]})"]
    if op == "enter":
        return _render_enter(step, pv, live)
    raise ValueError(f"unknown step {op!r}")


def _render_ioctl(step: tuple, pv: str, live: Live, fd: Any, fds: list[int]) -> list[str]:
    _, _, fdsel, cmd, kind, (fields, aux) = step
    if not fds:
        return []
    encls = live.encls.get(pv)
    if encls and fdsel % 4:  # mostly the enclave this process built
        fd = lambda sel: sel if sel < 0 else encls[sel % len(encls)][0]  # noqa: E731
    scratch = SCRATCH
    lines = []
    for page, akind, params in aux:
        lines.append(f"{pv}.poke({scratch + page * PAGE_SIZE:#x}, "
                     f"{_bytes(_aux_bytes(akind, params, live, pv))})")
    vals = []
    for fk, v in fields:
        if fk == "ptr":
            vals.append(scratch + v * PAGE_SIZE)
        elif fk == "addr":
            vals.append(live.addr(v) & U64)
        elif fk == "fd":
            vals.append(fd(v) & U64)
        else:
            vals.append(v & U64)
    payload = struct.pack(f"<{len(vals)}Q", *vals)
    if kind == "ptr":
        lines.append(f"{pv}.poke({scratch + 4 * PAGE_SIZE:#x}, {_bytes(payload)})")
        arg = hex(scratch + 4 * PAGE_SIZE)
    elif kind == "int":
        arg = hex(vals[0] if vals else 0)
    else:
        wrap = {"bytearray": "bytearray({})", "bytes": "{}", "memoryview": "memoryview(bytearray({}))",
                "memoryview_ro": "memoryview({})"}[kind]
        arg = wrap.format(_bytes(payload))
    lines.append(f"{pv}.ioctl({fd(fdsel)}, {cmd & 0xFFFFFFFF:#x}, {arg})")
    return lines


def _render_enter(step: tuple, pv: str, live: Live) -> list[str]:
    _, _, op, fields, regs, function, tcs_sel, hkind, bad_run = step
    scratch = SCRATCH
    encls = live.encls.get(pv)
    base = encls[-1][1] if encls else live.addr(("at", tcs_sel, 0, 0))
    vals = [op] + [live.addr(f) if isinstance(f, tuple) else (base + f if f in (0x2000, 0x3000, 0x4000)
                                                                else f) for f in fields]
    opbuf = scratch + 5 * PAGE_SIZE
    run = scratch + 6 * PAGE_SIZE
    tcs = base + (0x1000 if tcs_sel == 1 else 0) if tcs_sel < 2 else live.addr(("at", tcs_sel, 0, 0))
    lines = [f"{pv}.poke({opbuf:#x}, {_bytes(struct.pack('<4Q', *(v & U64 for v in vals)))})"]
    if hkind == "none":
        h = "0"
    elif hkind == "bogus":
        h = "0x1234"
    else:
        h = f"vdso({pv}).register_handler(handler({hkind!r}))"
    reserved = "b'\\x01'" if bad_run else "b''"
    lines.append(f"{pv}.poke({run:#x}, run_struct({tcs:#x}, {h}, {reserved}))")
    rdi, rsi, rdx, r9 = regs
    lines.append(f"vdso({pv}).sgx_enter_enclave({opbuf if rdi == 0 else rdi:#x}, {rsi:#x}, "
                 f"{rdx:#x}, {function:#x}, 0, {r9:#x}, {run:#x})")
    return lines
