"""The messages between the preload library and the server (native/protocol.h)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HELLO, OPEN, CLOSE, DUP, IOCTL, MMAP, MUNMAP, MPROTECT, MREMAP, ENCLU, CPUID, FORK, \
    FORK_FAILED, STAT, UNSUPPORTED, READ, WRITE, PREAD, PWRITE, READV, WRITEV, PREADV, PWRITEV, \
    LSEEK, FCNTL = range(1, 26)
OP_NAMES = {HELLO: "hello", OPEN: "open", CLOSE: "close", DUP: "dup", IOCTL: "ioctl", MMAP: "mmap",
            MUNMAP: "munmap", MPROTECT: "mprotect", MREMAP: "mremap", ENCLU: "enclu",
            CPUID: "cpuid", FORK: "fork", FORK_FAILED: "fork_failed", STAT: "stat",
            UNSUPPORTED: "unsupported", READ: "read", WRITE: "write", PREAD: "pread",
            PWRITE: "pwrite", READV: "readv", WRITEV: "writev", PREADV: "preadv",
            PWRITEV: "pwritev", LSEEK: "lseek", FCNTL: "fcntl"}

# Register order (enum sgxsim_reg): the GPRs in encoding order, RIP, RFLAGS.
REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
NREGS = len(REGS)
PATH_MAX = 256
MAX_RANGES = 64

RESUME_REGS, RESUME_SIGNAL = 0, 1

_REQ = struct.Struct(f"<II6q{NREGS}Q{PATH_MAX}s")
_REP_HEAD = struct.Struct(f"<qIiiIQ{NREGS}Q4Q")
REQUEST_SIZE = _REQ.size
REPLY_SIZE = _REP_HEAD.size + MAX_RANGES * 16
U64 = (1 << 64) - 1


@dataclass
class Request:
    op: int
    a: tuple[int, ...]
    regs: dict[str, int]
    path: str

    @classmethod
    def unpack(cls, data: bytes) -> Request:
        f = _REQ.unpack(data)
        regs = dict(zip(REGS, f[8:8 + NREGS], strict=True))
        raw = f[-1].split(b"\0", 1)[0]
        return cls(f[0], f[2:8], regs, raw.decode("utf-8", "replace"))


@dataclass
class Reply:
    ret: int = 0
    resume: int = RESUME_REGS
    signo: int = 0
    si_code: int = 0
    addr: int = 0
    regs: dict[str, int] = field(default_factory=dict)
    stat: tuple[int, int, int, int] = (0, 0, 0, 0)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def pack(self) -> bytes:
        ranges = self.ranges[:MAX_RANGES]
        head = _REP_HEAD.pack(self.ret, self.resume, self.signo, self.si_code, len(ranges),
                              self.addr & U64, *(self.regs.get(r, 0) & U64 for r in REGS),
                              *self.stat)
        body = b"".join(struct.pack("<QQ", s, e) for s, e in ranges)
        return head + body.ljust(MAX_RANGES * 16, b"\0")
