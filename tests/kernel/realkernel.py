"""Run mm operation sequences on the kernel of this machine, in a child
process, through ctypes; report each step's result and the mappings inside
a reserved window as /proc/self/maps shows them.

The child reads one JSON document on stdin: {"dir": PATH, "sequences": [[op,
...], ...]} and writes one JSON list of per-sequence step results.  Every op
is a list: ["mmap", off, length, prot, flags, fdkey, offset],
["munmap", off, length], ["mprotect", off, length, prot],
["mremap", off, old_len, new_len, flags, new_off], ["personality", persona],
["mseal", off, length, flags], ["prctl", option, arg2] (PR_SET_MDWE and
PR_GET_MDWE) and ["fork"] (the sequence goes on in the child, whose fork()
returned 0).  Offsets are relative to the window base; ``fdkey`` names one of
the files opened at the start (or null for anonymous memory).

MDWE and seals cannot be undone, so a sequence with mseal, prctl or fork runs
in a child forked for it, which sends its results back through a pipe.
"""

from __future__ import annotations

import json
import subprocess
import sys

WINDOW = 0x2000_0000_0000
WINDOW_PAGES = 64
PAGE = 4096
FILES = {  # name -> size in bytes
    "small": PAGE + 100,
    "big": 16 * PAGE,
}
FDKEYS = ["small-ro", "small-rw", "big-ro", "big-rw", "bad"]

CHILD = r'''
import ctypes, ctypes.util, json, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.personality.argtypes = [ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long
# The mm calls are raw syscalls with every argument a full 64-bit register
# (libc's prototypes would cut prot and flags to int).
SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_MREMAP = 9, 10, 11, 25
U64 = (1 << 64) - 1

def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a & U64) for a in args))
    return -ctypes.get_errno() if r == -1 else r
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
SYS_MSEAL = 462
IRREVERSIBLE = ("mseal", "prctl", "fork")
WINDOW, SIZE = %(window)d, %(size)d
doc = json.load(sys.stdin)
fds = {}
for name in %(files)r:
    path = os.path.join(doc["dir"], name)
    fds[name + "-ro"] = os.open(path, os.O_RDONLY)
    fds[name + "-rw"] = os.open(path, os.O_RDWR)
fds["bad"] = 999

def window_maps():
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi <= WINDOW or lo >= WINDOW + SIZE:
                continue
            path = parts[5].strip() if len(parts) > 5 else ""
            out.append([lo - WINDOW, hi - WINDOW, parts[1], int(parts[2], 16), path])
    return out

def ret(v, fail):
    if v == fail or v is None and fail is None:
        return -ctypes.get_errno()
    return v

def run(seq):
    steps = []
    for op in seq:
        ctypes.set_errno(0)
        kind = op[0]
        if kind == "mmap":
            _, off, length, prot, flags, fdkey, foff = op
            fd = fds[fdkey] if fdkey else -1
            r = sc(SYS_MMAP, WINDOW + off, length, prot, flags, fd, foff)
            r = r if r < 0 else (r & U64) - WINDOW
        elif kind == "munmap":
            r = sc(SYS_MUNMAP, WINDOW + op[1], op[2])
        elif kind == "mprotect":
            r = sc(SYS_MPROTECT, WINDOW + op[1], op[2], op[3])
        elif kind == "mremap":
            _, off, old, new, flags, noff = op
            r = sc(SYS_MREMAP, WINDOW + off, old, new, flags, WINDOW + noff)
            r = r if r < 0 else (r & U64) - WINDOW
        elif kind == "personality":
            r = libc.personality(op[1])
            r = r if r != -1 else -ctypes.get_errno()
        elif kind == "mseal":
            r = libc.syscall(ctypes.c_long(SYS_MSEAL), ctypes.c_ulong(WINDOW + op[1]),
                             ctypes.c_ulong(op[2]), ctypes.c_ulong(op[3]))
            r = -ctypes.get_errno() if r == -1 else r
        elif kind == "prctl":
            r = libc.prctl(op[1], op[2], 0, 0, 0)
            r = -ctypes.get_errno() if r == -1 else r
        elif kind == "fork":
            pid = os.fork()
            if pid:
                os.waitpid(pid, 0)
                os._exit(0)
            r = 0
        steps.append([r, window_maps()])
    return steps

def run_in_child(seq):
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        try:
            data = json.dumps(run(seq)).encode()
        except BaseException as e:
            data = json.dumps({"error": repr(e)}).encode()
        while data:
            data = data[os.write(wr, data):]
        os._exit(0)
    os.close(wr)
    chunks = []
    while True:
        b = os.read(rd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(rd)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks))
    if isinstance(out, dict):
        raise RuntimeError(out["error"])
    return out

results = []
for seq in doc["sequences"]:
    libc.personality(0)
    libc.munmap(WINDOW, SIZE)
    if any(op[0] in IRREVERSIBLE for op in seq):
        results.append(run_in_child(seq))
    else:
        results.append(run(seq))
libc.personality(0)
libc.munmap(WINDOW, SIZE)
json.dump(results, sys.stdout)
'''


def make_files(directory: str) -> None:
    import os

    for name, size in FILES.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(bytes((i * 7 + len(name)) & 0xFF for i in range(size)))


def run_real(directory: str, sequences: list[list[list]]) -> list:
    src = CHILD % {"window": WINDOW, "size": WINDOW_PAGES * PAGE, "files": list(FILES)}
    proc = subprocess.run([sys.executable, "-c", src], input=json.dumps(
        {"dir": directory, "sequences": sequences}), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"real-kernel child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
