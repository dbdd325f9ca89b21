"""The mirror of a native program's memory: reader files (kernel/readerfs.py)
whose copies are refreshed in place, and what that means for enclave calls."""

from __future__ import annotations

import re

import pytest

from sgxsim.exec.memory import ProgramMemory
from sgxsim.exec.run import run_program
from sgxsim.kernel.mm.flags import MAP_PRIVATE, O_RDONLY, PAGE_SIZE, PROT_READ, PROT_WRITE
from sgxsim.kernel.readerfs import create_reader_file, reader_page_young, store_reader_page
from sgxsim.machine import Machine

ADDR = 0x4000_0000


@pytest.fixture
def mirror():
    """A process with a private mapping of a reader file whose pages are
    ``pages[pgoff]``; ``reads`` counts the reader's calls."""
    m = Machine()
    proc = m.spawn()
    pages: dict[int, bytes] = {}
    reads: list[int] = []

    def reader(pgoff: int) -> bytes | None:
        reads.append(pgoff)
        return pages.get(pgoff)

    create_reader_file(m.vfs, "/mirror", reader, 1 << 40)
    fd = proc.open("/mirror", O_RDONLY)
    proc.mmap(ADDR, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, ADDR)
    for i in range(4):
        pages[(ADDR >> 12) + i] = bytes([i + 1]) * PAGE_SIZE
    return proc, pages, reads


def test_a_stored_page_is_seen_without_a_fault(mirror):
    proc, pages, reads = mirror
    assert proc.peek(ADDR, 4) == b"\x01" * 4
    assert len(reads) == 1
    assert store_reader_page(proc, ADDR, b"\xaa" * PAGE_SIZE)
    assert proc.peek(ADDR, 4) == b"\xaa" * 4  # the copy in place, not the reader again
    assert len(reads) == 1


def test_nothing_to_store_into_where_no_copy_is_mapped(mirror):
    proc, pages, reads = mirror
    assert not store_reader_page(proc, ADDR + PAGE_SIZE, b"\xbb" * PAGE_SIZE)  # not faulted in
    assert not store_reader_page(proc, 0x7000_0000, b"\xbb" * PAGE_SIZE)  # not mapped
    assert proc.peek(ADDR + PAGE_SIZE, 1) == b"\x02"  # the reader, as before
    with pytest.raises(ValueError):
        store_reader_page(proc, ADDR, b"short")


def test_a_copy_shared_with_a_fork_is_not_written(mirror):
    proc, pages, reads = mirror
    proc.peek(ADDR, 1)
    child = proc.fork()
    assert not store_reader_page(proc, ADDR, b"\xcc" * PAGE_SIZE)
    assert child.peek(ADDR, 1) == proc.peek(ADDR, 1) == b"\x01"


def test_young_is_the_accessed_bit_read_and_cleared(mirror):
    proc, pages, reads = mirror
    assert reader_page_young(proc, ADDR) is None  # no copy yet
    proc.peek(ADDR, 1)
    assert reader_page_young(proc, ADDR) is True
    assert reader_page_young(proc, ADDR) is False  # cleared by the call
    store_reader_page(proc, ADDR, b"\xdd" * PAGE_SIZE)
    assert reader_page_young(proc, ADDR) is False  # a store from outside is no access
    proc.poke(ADDR + 8, b"x")
    assert reader_page_young(proc, ADDR) is True


def test_calls_on_a_rewritten_op_struct_take_no_fault(native, tmp_path, capfd):
    """The loader rewrites its op struct (on its stack) before every call: the
    enclave sees the new bytes without a #PF on that page, as on hardware."""
    built = native["edmm"]
    steps = [f"enter 0 write 2100 {v:x}\nenter 0 read 2100 0\n" for v in range(1, 9)]
    script = tmp_path / "calls.script"
    script.write_text("".join(steps))
    trace = tmp_path / "trace.txt"
    assert run_program(built.argv(script), trace_file=trace) == 0
    reads = [ln for ln in capfd.readouterr().out.splitlines() if " read " in ln]
    assert [re.search(r"op.ret (\S+)", ln)[1] for ln in reads] == [f"{v:#x}" for v in range(1, 9)]
    entries = [ln for ln in trace.read_text().splitlines() if "ENCLU[" in ln]
    exits = [i for i, e in enumerate(entries) if " = rip " in e]
    assert len(exits) == 16
    # After the first call (the first touches of enclave pages): no fault at all.
    assert entries[exits[0] + 1:] == [e for e in entries[exits[0] + 1:] if "#PF" not in e]
    assert len(entries) - exits[0] - 1 == 15


def test_pages_an_ioctl_once_read_are_let_go(native, tmp_path, monkeypatch, capfd):
    """The build's ioctls read the enclave's source pages; once the model has
    not used them for IDLE requests they are let go, so a call checks the
    pages calls use (the op struct's), not every page read since the start."""
    kept: list[int] = []
    finish = ProgramMemory.finish

    def counting(self: ProgramMemory) -> None:
        finish(self)
        kept.append(len(self.kept))

    monkeypatch.setattr(ProgramMemory, "finish", counting)
    script = tmp_path / "calls.script"
    script.write_text("enter 0 nop 0 0\n" * (ProgramMemory.IDLE + 4))
    assert run_program(native["edmm"].argv(script)) == 0
    assert max(kept) > 8  # the source pages and structs of the build
    assert kept[-1] == 1  # the op struct's page
