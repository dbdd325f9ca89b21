"""The model's view of a native process's memory outside its enclaves.

The model process mirrors every real mapping (``/proc/PID/maps``) as a
private mapping, at the same address and with the same protection, of a
reader file (:mod:`sgxsim.kernel.readerfs`) whose page at offset A is the
real process's page at address A, read through ``/proc/PID/mem`` when the
model faults it in.  A mapping of a file on a ``noexec`` mount
(``/proc/PID/mountinfo``) is mirrored from a reader file on a noexec mount
of the model, so it lacks VM_MAYEXEC as the kernel's ADD_PAGES source check
requires.  Enclave ranges are the model's own mappings of
``/dev/sgx_enclave``; the real process only holds a PROT_NONE reservation
there.

One request of the program (an ioctl, an mmap, an ENCLU) is a transaction:
:meth:`ProgramMemory.sync` brings the mirror's mappings up to date first and
refreshes the pages the model kept from earlier requests (a page the program
changed since takes its new bytes in place, without a fault);
:meth:`ProgramMemory.finish` writes back, byte for byte, what the model
changed in the pages it holds (an ioctl's results, what the enclave stored
outside ELRANGE).  Up to ``KEEP`` pages stay mapped in the model between
requests, so a loop of enclave calls on the same op struct does not fault
on it every time.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from sgxsim.kernel.errors import Signal
from sgxsim.kernel.mm.flags import (
    MAP_FIXED,
    MAP_PRIVATE,
    O_RDONLY,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
)
from sgxsim.kernel.process import Process
from sgxsim.kernel.readerfs import create_reader_file, reader_page_young, store_reader_page

SGX_PATHS = ("/dev/sgx_enclave", "/dev/sgx_provision")
SKIP = ("[vvar]", "[vvar_vclock]", "[vsyscall]")
MIRROR_DIR = "/sgxsim-exec"
NOEXEC_DIR = "/sgxsim-exec/noexec"  # a noexec mount in the model
# The model fds of the mirror files: the top of the table (fs.nr_open), far
# above the program's (below 4096), which the model's fds mirror.
MIRROR_FD = Process.NR_OPEN - 2


class BridgeError(Exception):
    """Something the bridge cannot serve; the message says what."""


@dataclass(frozen=True)
class RealMap:
    start: int
    end: int
    prot: int
    shared: bool
    inode: int
    path: str


def parse_maps(text: str) -> list[RealMap]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        perms = parts[1]
        prot = ((PROT_READ if perms[0] == "r" else 0) | (PROT_WRITE if perms[1] == "w" else 0)
                | (PROT_EXEC if perms[2] == "x" else 0))
        out.append(RealMap(int(lo, 16), int(hi, 16), prot, perms[3] == "s", int(parts[4]),
                           parts[5].strip() if len(parts) > 5 else ""))
    return out


def noexec_mounts(mountinfo: str) -> list[tuple[str, bool]]:
    """(mount point, noexec) from /proc/PID/mountinfo, longest first."""
    out = []
    for line in mountinfo.splitlines():
        f = line.split()
        if len(f) < 6:
            continue
        mp = f[4].encode().decode("unicode_escape")
        out.append((mp, "noexec" in f[5].split(",")))
    out.sort(key=lambda m: len(m[0]), reverse=True)
    return out


def subtract(start: int, end: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(start, end)]
    for hs, he in holes:
        nxt = []
        for s, e in pieces:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        pieces = nxt
    return pieces


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


class ProgramMemory:
    """The mirror of one native process in its model process ``proc``."""

    KEEP = 64  # pages kept mapped in the model between requests
    IDLE = 8  # requests a kept page may go unused before it is let go

    def __init__(self, proc, pid: int):
        self.proc = proc
        self.pid = pid
        try:
            self.mem_fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
            # Kept open: a read from offset 0 lists the mappings afresh.
            self.maps_fd = os.open(f"/proc/{pid}/maps", os.O_RDONLY | os.O_CLOEXEC)
            with open(f"/proc/{pid}/mountinfo") as f:
                self.mounts = noexec_mounts(f.read())
        except OSError as e:
            raise BridgeError(f"cannot reach the memory of process {pid}: {e} "
                              "(the server must be allowed to ptrace it)") from None
        self.read: dict[int, bytes] = {}  # vpn -> the real bytes the model's copy started from
        self.kept: dict[int, bytes] = {}  # vpn -> bytes of pages kept from earlier requests
        self.idle: dict[int, int] = {}  # vpn -> requests in a row the model did not access it
        self.mirrored: dict[tuple[int, int], tuple[int, bool]] = {}
        vfs = proc.kernel.vfs
        if NOEXEC_DIR not in vfs.mounts:
            vfs.mount(NOEXEC_DIR, noexec=True)
        self.files = {}
        # The model's process stands for the program: its descriptors mirror
        # the program's, and its table reaches fs.nr_open so that the mirror
        # files fit at the top.
        proc.prlimit_nofile(Process.NR_OPEN, Process.NR_OPEN)
        for noexec in (False, True):
            path = f"{NOEXEC_DIR if noexec else MIRROR_DIR}/{pid}/mem"
            create_reader_file(vfs, path, self._read_page, TASK_SIZE)
            fd = proc.open(path, O_RDONLY)
            self.files[noexec] = proc.dup(fd, MIRROR_FD + noexec)
            proc.close(fd)
        self.model_fds = set(self.files.values())
        self._noexec_cache: dict[str, bool] = {}
        self._enclaves: list[tuple[int, int]] | None = None
        self._maps_raw: bytes | None = None

    def close(self) -> None:
        if self.mem_fd >= 0:
            os.close(self.mem_fd)
            os.close(self.maps_fd)
            self.mem_fd = self.maps_fd = -1

    # -- the reader -----------------------------------------------------------------------
    def _read_page(self, pgoff: int) -> bytes | None:
        try:
            data = os.pread(self.mem_fd, PAGE_SIZE, pgoff << PAGE_SHIFT)
        except OSError:
            return None
        if len(data) != PAGE_SIZE:
            return None
        self.read.setdefault(pgoff, data)
        return data

    def read_real(self, addr: int, n: int) -> bytes:
        return os.pread(self.mem_fd, n, addr)

    def write_real(self, addr: int, data: bytes) -> None:
        os.pwrite(self.mem_fd, data, addr)

    # -- the mappings ---------------------------------------------------------------------------
    def enclave_ranges(self) -> list[tuple[int, int]]:
        if self._enclaves is None:
            self._enclaves = merge([(m.start, m.end) for m in self.proc.maps()
                                    if m.path in SGX_PATHS])
        return self._enclaves

    def changed(self) -> None:
        """A syscall of the program went through the model's mm: its enclave
        ranges may differ, and the real mappings will after the reply."""
        self._enclaves = None
        self._maps_raw = None

    def _noexec(self, path: str) -> bool:
        if not path.startswith("/"):
            return False
        hit = self._noexec_cache.get(path)
        if hit is None:
            hit = False
            for mp, noexec in self.mounts:
                if path == mp or path.startswith(mp.rstrip("/") + "/"):
                    hit = noexec
                    break
            self._noexec_cache[path] = hit
        return hit

    def _maps(self) -> bytes:
        """/proc/PID/maps, read until EOF (a read may stop at any line)."""
        chunks = []
        try:
            while True:
                chunk = os.pread(self.maps_fd, 1 << 16, sum(map(len, chunks)))
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        except OSError as e:
            raise BridgeError(f"cannot read /proc/{self.pid}/maps: {e}") from None

    def real_maps(self) -> list[RealMap]:
        return parse_maps(self._maps().decode("utf-8", "surrogateescape"))

    def sync(self) -> None:
        """Make the model's non-enclave mappings those of the real process."""
        raw = self._maps()
        if raw == self._maps_raw:
            self._refresh()  # the same mappings as at the last request
            return
        self._maps_raw = raw
        enclaves = self.enclave_ranges()
        real = parse_maps(raw.decode("utf-8", "surrogateescape"))
        self._check_reservations(real, enclaves)
        want: dict[tuple[int, int], tuple[int, bool]] = {}
        for m in real:
            if m.path in SKIP or m.end > TASK_SIZE:
                continue
            for s, e in subtract(m.start, m.end, enclaves):
                want[(s, e)] = (m.prot, self._noexec(m.path))
        for key, val in list(self.mirrored.items()):
            if want.get(key) != val:
                # never the enclave parts: an enclave mmap may have replaced
                # part of what was mirrored there
                for s, e in subtract(*key, enclaves):
                    self._unmap(s, e)
                del self.mirrored[key]
        for key, val in want.items():
            if key not in self.mirrored:
                self._map(key, val)
        self._refresh()

    def _refresh(self) -> None:
        """Kept pages the program changed since the last request take the
        program's bytes in place (:func:`store_reader_page`): on the real
        machine the page stays mapped and the next access simply sees them.
        One the program cannot be read at (unmapped meanwhile) is dropped."""
        stale = []
        for vpn, kept in self.kept.items():
            try:
                now = os.pread(self.mem_fd, PAGE_SIZE, vpn << PAGE_SHIFT)
            except OSError:
                now = b""
            if now == kept:
                continue
            if len(now) == PAGE_SIZE and store_reader_page(self.proc, vpn << PAGE_SHIFT, now):
                self.kept[vpn] = now
            else:
                stale.append(vpn)
        for vpn in stale:
            self._drop_page(vpn)
        self.read.update(self.kept)

    def _drop_page(self, vpn: int) -> None:
        """Unmap and map again the one page ``vpn`` of its mirrored range (a
        fresh fault reads it from the program), leaving the rest of the range
        and the pages the model holds there as they are."""
        addr = vpn << PAGE_SHIFT
        for (start, end), (prot, noexec) in self.mirrored.items():
            if start <= addr < end:
                self._unmap(addr, addr + PAGE_SIZE)
                self._mirror(addr, addr + PAGE_SIZE, prot, noexec)
                return

    def _drop(self, vpns: list[int]) -> None:
        """Unmap and map again the mirrored ranges holding ``vpns`` (fresh faults)."""
        for key, val in list(self.mirrored.items()):
            s, e = key[0] >> PAGE_SHIFT, key[1] >> PAGE_SHIFT
            if any(s <= v < e for v in vpns):
                self._unmap(*key)
                del self.mirrored[key]
                self._map(key, val)

    def _unmap(self, start: int, end: int) -> None:
        lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        for vpn in [v for v in self.kept if lo <= v < hi]:
            del self.kept[vpn]
            self.idle.pop(vpn, None)
        for vpn in [v for v in self.read if lo <= v < hi]:
            del self.read[vpn]
        try:
            self.proc.munmap(start, end - start)
        except OSError:
            pass  # already gone in the model (the program's munmap went through it)

    def _map(self, key: tuple[int, int], val: tuple[int, bool]) -> None:
        self._mirror(*key, *val)
        self.mirrored[key] = val

    def _mirror(self, start: int, end: int, prot: int, noexec: bool) -> None:
        try:
            self.proc.mmap(start, end - start, prot, MAP_PRIVATE | MAP_FIXED, self.files[noexec],
                           start)
        except OSError as e:
            raise BridgeError(f"the model refused to mirror {start:#x}-{end:#x}: {e}") from None

    def _check_reservations(self, real: list[RealMap], enclaves: list[tuple[int, int]]) -> None:
        """An enclave range must still be this bridge's PROT_NONE reservation:
        anything else means the program changed it behind the bridge's back
        (a raw syscall instruction, which the preload library cannot see)."""
        for s, e in enclaves:
            covered = s
            for m in real:
                if m.end <= covered or m.start > covered or m.start >= e:
                    continue
                if m.prot or m.inode or m.path:
                    break
                covered = m.end
                if covered >= e:
                    break
            if covered < e:
                raise BridgeError(
                    f"the enclave range {s:#x}-{e:#x} was changed outside the bridge near "
                    f"{covered:#x} (a raw syscall on an enclave range is not supported)")

    def forget_inherited(self) -> None:
        """Drop the model process's mappings that are not enclaves: a new
        process's own stack, or the parent's mirror a forked child copied, so
        the process mirrors its own memory."""
        for m in self.proc.maps():
            if m.path not in SGX_PATHS and m.start < TASK_SIZE:
                self._unmap(m.start, m.end)

    # -- the end of a transaction -------------------------------------------------------------------
    def finish(self) -> None:
        """Write back what the model changed in the pages it holds; keep them.

        A page the model did not access during the request (its accessed bit,
        :func:`reader_page_young`) cannot have changed and is not compared;
        one not accessed for ``IDLE`` requests in a row is let go (unmapped
        in the model: the next access faults it in afresh), so what is
        checked per request is the pages the program's enclave calls use,
        not every page an ioctl once read."""
        touched = list(self.read.items())
        self.read.clear()
        proc = self.proc
        for vpn, orig in touched:
            addr = vpn << PAGE_SHIFT
            young = reader_page_young(proc, addr)
            if young is None:
                self.kept.pop(vpn, None)  # unmapped or replaced by this request
                self.idle.pop(vpn, None)
                continue
            if not young:
                self.kept[vpn] = orig
                self.idle[vpn] = self.idle.get(vpn, 0) + 1
                continue
            try:
                now = proc.peek(addr, PAGE_SIZE)
            except (Signal, OSError):
                self.kept.pop(vpn, None)  # made inaccessible by this request
                self.idle.pop(vpn, None)
                continue
            reader_page_young(proc, addr)  # the peek's own access is not the program's
            if now != orig:
                self._write_diff(addr, orig, now)
            self.kept[vpn] = now
            self.idle[vpn] = 0
        self.read.clear()  # the peeks above may have faulted pages in again
        idle = [vpn for vpn, n in self.idle.items() if n >= self.IDLE]
        for vpn in idle:
            self._drop_page(vpn)
            self.kept.pop(vpn, None)
            self.idle.pop(vpn, None)
        if len(self.kept) > self.KEEP:
            self._drop(list(self.kept))
            self.kept.clear()
            self.idle.clear()

    def _write_diff(self, addr: int, orig: bytes, now: bytes) -> None:
        i, n = 0, len(now)
        while i < n:
            if orig[i] == now[i]:
                i += 1
                continue
            j = i
            while j < n and orig[j] != now[j]:
                j += 1
            try:
                self.write_real(addr + i, now[i:j])
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
            i = j
