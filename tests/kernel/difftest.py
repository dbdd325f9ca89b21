"""Differential testing of the mm model against the kernel of this machine.

Sequences of mmap/munmap/mprotect/mremap/personality run once for real (see
realkernel.py) and once in the model; after every step the result (value or
-errno) and the mappings inside the window must be equal.  Only operations
whose addresses are determined are generated (MAP_FIXED and
MAP_FIXED_NOREPLACE inside the window, mremap without a free choice of
destination), so the two address spaces stay comparable.
"""

from __future__ import annotations

import errno
import random

from tests.kernel.realkernel import FDKEYS, FILES, PAGE, WINDOW, WINDOW_PAGES

from sgxsim import Machine

PROTS = [0, 1, 3, 5, 7, 2, 4]


def _host_pku() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " ospke" in f.read()
    except OSError:
        return False


HOST_PKU = _host_pku()
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE = 0x100000, 0x100, 0x4000
PROT_GROWSDOWN = 0x01000000
READ_IMPLIES_EXEC = 0x0400000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MAP_SHARED_VALIDATE, MAP_TYPE = 0x3, 0xF
# Flags MAP_SHARED_VALIDATE accepts beyond the usual ones (MAP_32BIT,
# MAP_ABOVE4G, MAP_HUGE_2MB) and one it refuses (MAP_FIXED_NOREPLACE).
SHARED_VALIDATE_EXTRA = [0x40, 0x80, 21 << 26, MAP_FIXED_NOREPLACE, 0]
# prot and flags are unsigned long: bits above 31 reach the kernel's checks.
HIGH_BITS = [1 << 31, 1 << 32, 1 << 40, 1 << 63]
PR_SET_MDWE, PR_GET_MDWE = 65, 66
# Share of steps that are mseal / prctl(MDWE) / fork: most sequences get one.
IRREVERSIBLE_SHARE = 0.14


def gen_sequence(rng: random.Random, steps: int = 20) -> list[list]:
    seq: list[list] = []

    def page_off() -> int:
        return rng.randrange(0, WINDOW_PAGES - 8) * PAGE

    def length() -> int:
        r = rng.random()
        if r < 0.05:
            return 0
        if r < 0.08:
            return rng.choice([PAGE - 1, PAGE + 1, 1, 1 << 62, (1 << 64) - PAGE])
        return rng.randrange(1, 9) * PAGE

    for _ in range(steps):
        if rng.random() < IRREVERSIBLE_SHARE:
            seq.append(gen_irreversible(rng, page_off, length))
            continue
        k = rng.random()
        if k < 0.38:
            anon = rng.random() < 0.45
            shared = rng.random() < 0.4
            flags = (MAP_SHARED if shared else MAP_PRIVATE) | (
                MAP_FIXED_NOREPLACE if rng.random() < 0.25 else MAP_FIXED)
            if rng.random() < 0.03:
                flags = rng.choice([0, 0x3 | MAP_FIXED, 0xF | MAP_FIXED, flags | MAP_GROWSDOWN])
            if rng.random() < 0.1:
                flags |= MAP_NORESERVE
            if rng.random() < 0.08:
                flags = gen_wide_map_flags(rng, flags)
            fd = None
            foff = 0
            if anon:
                flags |= MAP_ANONYMOUS
            else:
                fd = rng.choice(FDKEYS if rng.random() < 0.05 else FDKEYS[:-1])
                foff = rng.choice([0, 0, PAGE, 2 * PAGE, 5 * PAGE, 100])
            off = page_off() + (rng.choice([1, 100]) if rng.random() < 0.03 else 0)
            prot = rng.choice(PROTS) | (rng.choice(HIGH_BITS) if rng.random() < 0.03 else 0)
            seq.append(["mmap", off, length(), prot, flags, fd, foff])
        elif k < 0.55:
            seq.append(["munmap", page_off() + (1 if rng.random() < 0.03 else 0), length()])
        elif k < 0.85:
            prot = rng.choice(PROTS)
            n = length()
            if rng.random() < 0.03:
                prot |= rng.choice([PROT_GROWSDOWN, 0x10, 0x08, *HIGH_BITS])
                # GROWSDOWN looks at the first VMA below the end: keep the end
                # inside the window, where both address spaces agree.
                n = rng.randrange(1, 9) * PAGE
            seq.append(["mprotect", page_off() + (1 if rng.random() < 0.03 else 0), n, prot])
        elif k < 0.95:
            off = page_off()
            old = rng.randrange(1, 6) * PAGE
            new = rng.randrange(1, 6) * PAGE
            r = rng.random()
            if r < 0.4:
                seq.append(["mremap", off, old, new, 0, 0])
            elif r < 0.8:
                noff = page_off()
                seq.append(["mremap", off, old, new, MREMAP_MAYMOVE | MREMAP_FIXED, noff])
            else:
                seq.append(["mremap", off, old, new, rng.choice(
                    [MREMAP_FIXED, 8, 0, MREMAP_MAYMOVE | rng.choice(HIGH_BITS)]), page_off()])
        else:
            seq.append(["personality", rng.choice([0, READ_IMPLIES_EXEC])])
    return seq


def gen_wide_map_flags(rng: random.Random, flags: int) -> int:
    """mmap flags beyond the common ones: a bit above 31 (ignored by
    MAP_SHARED and MAP_PRIVATE, EOPNOTSUPP under MAP_SHARED_VALIDATE), or
    MAP_SHARED_VALIDATE with one of the flags its mask decides."""
    k = rng.random()
    if k < 0.4:
        return flags | rng.choice(HIGH_BITS)
    flags = (flags & ~MAP_TYPE) | MAP_SHARED_VALIDATE | rng.choice(SHARED_VALIDATE_EXTRA)
    if k < 0.6:
        flags |= rng.choice(HIGH_BITS)
    return flags


def gen_irreversible(rng: random.Random, page_off, length) -> list:
    """mseal, prctl(PR_SET_MDWE / PR_GET_MDWE) or fork (realkernel.py runs
    such a sequence in a child of its own)."""
    k = rng.random()
    if k < 0.55:
        off = page_off() + (rng.choice([1, 100]) if rng.random() < 0.03 else 0)
        return ["mseal", off, length(), 0 if rng.random() < 0.95 else rng.choice([1, 2])]
    if k < 0.75:
        # REFUSE_EXEC_GAIN, with NO_INHERIT, and the invalid combinations.
        return ["prctl", PR_SET_MDWE, rng.choice([1, 1, 1, 3, 3, 0, 2, 4])]
    if k < 0.87:
        return ["prctl", PR_GET_MDWE, 0 if rng.random() < 0.9 else 1]
    return ["fork"]


class ModelRunner:
    """The same sequence in a fresh model process with the same files."""

    def __init__(self, directory: str):
        self.directory = directory

    def run(self, seq: list[list]) -> list:
        m = Machine(kernel="linux", pku=HOST_PKU)
        p = m.spawn()
        data = {}
        for name, size in FILES.items():
            data[name] = bytes((i * 7 + len(name)) & 0xFF for i in range(size))
            m.vfs.create_file(f"{self.directory}/{name}", data[name])
        fds = {}
        for name in FILES:
            fds[name + "-ro"] = p.open(f"{self.directory}/{name}", 0)
            fds[name + "-rw"] = p.open(f"{self.directory}/{name}", 2)
        fds["bad"] = 999
        out = []
        for op in seq:
            if op[0] == "fork":
                p = p.fork()  # the sequence goes on in the child
                out.append([0, self.window_maps(p)])
                continue
            out.append([self.step(p, fds, op), self.window_maps(p)])
        self.last_process = p
        return out

    @staticmethod
    def step(p, fds, op) -> int:
        kind = op[0]
        try:
            if kind == "mmap":
                _, off, length, prot, flags, fdkey, foff = op
                fd = fds[fdkey] if fdkey else -1
                return p.mmap(WINDOW + off, length, prot, flags, fd, foff) - WINDOW
            if kind == "munmap":
                p.munmap(WINDOW + op[1], op[2])
                return 0
            if kind == "mprotect":
                p.mprotect(WINDOW + op[1], op[2], op[3])
                return 0
            if kind == "mremap":
                _, off, old, new, flags, noff = op
                return p.mremap(WINDOW + off, old, new, flags, WINDOW + noff) - WINDOW
            if kind == "personality":
                return p.personality(op[1])
            if kind == "mseal":
                p.mseal(WINDOW + op[1], op[2], op[3])
                return 0
            if kind == "prctl":
                return p.prctl(op[1], op[2])
        except OSError as e:
            return -e.errno
        raise ValueError(kind)

    @staticmethod
    def window_maps(p) -> list:
        out = []
        for e in p.maps():
            if e.end <= WINDOW or e.start >= WINDOW + WINDOW_PAGES * PAGE:
                continue
            out.append([e.start - WINDOW, e.end - WINDOW, e.perms, e.offset, e.path])
        return out


def describe_mismatch(seed: int, index: int, seq: list, real: list, model: list) -> str | None:
    for i, (r, m) in enumerate(zip(real, model, strict=True)):
        if r != m:
            lines = [f"sequence {index} of seed {seed}: first mismatch at step {i}"]
            for j, op in enumerate(seq[: i + 1]):
                lines.append(f"  {j:2d}: {op}")
            name = errno.errorcode.get(-r[0], r[0]) if isinstance(r[0], int) and r[0] < 0 else r[0]
            mname = errno.errorcode.get(-m[0], m[0]) if isinstance(m[0], int) and m[0] < 0 else m[0]
            lines.append(f"  real : {name} {r[1]}")
            lines.append(f"  model: {mname} {m[1]}")
            return "\n".join(lines)
    return None
