"""Frontier storage that spills to disk past a memory bound.

A BFS level's frontier (the frozen states to expand next) and the children a
level makes are kept in :class:`Run` objects: append-only sequences that hold
their entries in memory until they pass ``bound`` bytes (frozen machines,
counted by their length plus a fixed overhead per entry), then write them to
a file in their own directory, one pickle per chunk, and read them back one
chunk at a time when iterated.  The order of a run never changes, so a
search that reads its frontier from disk expands the states in the same
order, and finds the same states and traces, as one that keeps it in memory.

The bound comes from ``--frontier-mem MB`` or ``SGXSIM_FRONTIER_MEM`` (MB),
per worker and per run (a worker holds its frontier and the children it is
making); no bound keeps everything in memory.  The files live in a fresh
directory under ``SGXSIM_SPILL_DIR`` (default: the system's temporary
directory) and are removed as soon as a run is read or dropped, and the
whole directory when the search ends, by an exception or Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

# What an entry costs besides its frozen machine (ghost, fingerprint, tuple).
ENTRY_OVERHEAD = 600
ENV_BOUND = "SGXSIM_FRONTIER_MEM"
ENV_DIR = "SGXSIM_SPILL_DIR"


def bound_from_env() -> int | None:
    """The bound in bytes from ``SGXSIM_FRONTIER_MEM`` (MB; unset or empty: none)."""
    text = os.environ.get(ENV_BOUND, "").strip()
    if not text:
        return None
    try:
        mb = float(text)
    except ValueError:
        raise ValueError(f"{ENV_BOUND} must be a number of MB, not {text!r}") from None
    return bound_of(mb, ENV_BOUND, text)


def bound_of(mb: float, what: str, text: str) -> int:
    """``mb`` megabytes in bytes; ``what`` (given as ``text``) must be
    positive and finite (inf would overflow, nan compares false)."""
    if not (math.isfinite(mb) and mb > 0):
        raise ValueError(f"{what} must be a positive number of MB, not {text!r}")
    return int(mb * 2**20)


def new_dir(root: str | None = None) -> str:
    """A fresh directory for one search's spill files."""
    root = root or os.environ.get(ENV_DIR) or None
    if root:
        os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(prefix="sgxsim-frontier-", dir=root)


def remove_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


class Spill:
    """The spill policy of one worker: the bound, its directory (made on
    first use) and what it has written."""

    def __init__(self, bound: int | None, root: str | None = None):
        self.bound = bound
        self.root = root
        self.dir: str | None = None
        self.bytes_written = 0
        self.chunks = 0
        self._n = 0

    def path(self) -> str:
        if self.dir is None:
            self.dir = new_dir(self.root)
        self._n += 1
        return os.path.join(self.dir, f"run-{self._n}.pkl")

    def run(self, entries: Iterable = ()) -> Run:
        r = Run(self)
        for e in entries:
            r.append(e)
        return r

    def close(self) -> None:
        remove_dir(self.dir)
        self.dir = None


class Run:
    """An append-only sequence of frontier entries ``(key, blob, ...)``, in
    memory up to its spill's bound, then in chunks on disk.  Iterate it once
    (it is consumed: its file is removed at the end)."""

    def __init__(self, spill: Spill):
        self.spill = spill
        self.buf: list = []
        self.size = 0
        self.n = 0
        self.file: Any = None
        self.path: str | None = None

    def __len__(self) -> int:
        return self.n

    def append(self, entry) -> None:
        self.buf.append(entry)
        self.n += 1
        bound = self.spill.bound
        if bound is not None:
            self.size += len(entry[1]) + ENTRY_OVERHEAD
            if self.size > bound:
                self._flush()

    def _flush(self) -> None:
        if self.file is None:
            self.path = self.spill.path()
            self.file = open(self.path, "wb")  # noqa: SIM115 -- kept open across appends
        data = pickle.dumps(self.buf, pickle.HIGHEST_PROTOCOL)
        self.file.write(data)
        self.spill.bytes_written += len(data)
        self.spill.chunks += 1
        self.buf, self.size = [], 0

    def __iter__(self) -> Iterator:
        try:
            if self.file is not None:
                self.file.close()
                with open(self.path, "rb") as f:
                    while True:
                        try:
                            chunk = pickle.load(f)
                        except EOFError:
                            break
                        yield from chunk
            yield from self.buf
        finally:
            self.drop()

    def drop(self) -> None:
        """Forget the entries and remove the file."""
        if self.file is not None:
            self.file.close()
            self.file = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.buf, self.size, self.n = [], 0, 0


def merged(runs: list[Run]) -> Iterator:
    """The entries of ``runs`` (each sorted by its first item) in one sorted
    stream, read lazily."""
    if len(runs) == 1:
        return iter(runs[0])
    return heapq.merge(*runs, key=lambda e: e[0])
