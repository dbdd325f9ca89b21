"""Hypothesis: bad input gets an errno, never another exception; a
rule-based state machine keeps the VMA tree and page table consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sgxsim import Machine, Signal

BASE = 0x2000_0000
U64 = (1 << 64) - 1
ints = st.one_of(st.integers(-(1 << 70), 1 << 70), st.sampled_from(
    [0, 1, 4095, 4096, 4097, U64, U64 - 4095, 1 << 47, 1 << 63, -1, -4096]))
addrs = st.one_of(ints, st.integers(BASE - 8192, BASE + 64 * 4096))
lengths = st.one_of(ints, st.integers(0, 40 * 4096))
prots = st.one_of(st.integers(-8, 1 << 32), st.sampled_from([0, 1, 3, 5, 7, 0x01000001]))
flags = st.one_of(st.integers(0, 1 << 32), st.sampled_from([0x22, 0x32, 0x21, 0x31, 0x100032, 2, 1]))


def _fresh():
    m = Machine(kernel="linux")
    m.vfs.create_file("/tmp/f", bytes(3 * 4096))
    p = m.spawn()
    p.open("/tmp/f", 0)
    p.open("/tmp/f", 2)
    return p


def check_tree(p) -> None:
    prev_end = 0
    for v in p.mm.vmas:
        assert 0 <= v.vm_start < v.vm_end <= 1 << 47 and v.vm_start >= prev_end
        assert v.vm_start % 4096 == 0 and v.vm_end % 4096 == 0
        prev_end = v.vm_end
    for vpn in p.mm.pgtable.ptes:
        assert p.mm.vma_lookup(vpn << 12) is not None, "a PTE outside every VMA"


CALLS = st.one_of(
    st.tuples(st.just("mmap"), addrs, lengths, prots, flags, st.sampled_from([-1, 0, 1, 5, -7]),
              ints),
    st.tuples(st.just("munmap"), addrs, lengths),
    st.tuples(st.just("mprotect"), addrs, lengths, prots),
    st.tuples(st.just("mremap"), addrs, lengths, lengths, st.integers(-1, 16), addrs),
    st.tuples(st.just("personality"), ints),
    st.tuples(st.just("close"), st.integers(-3, 5)),
    st.tuples(st.just("peek"), addrs),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(CALLS, min_size=1, max_size=12))
def test_bad_input_gets_errno_only(calls):
    p = _fresh()
    for name, *args in calls:
        try:
            if name == "peek":
                p.peek(args[0] & U64 if args[0] >= 0 else 0, 1)
            else:
                getattr(p, name)(*args)
        except (OSError, Signal):
            pass
        check_tree(p)


class MmMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.p = _fresh()

    @rule(off=st.integers(0, 30), n=st.integers(1, 6), prot=st.sampled_from([0, 1, 3, 5, 7]),
          shared=st.booleans(), fd=st.sampled_from([None, 0, 1]))
    def mmap(self, off, n, prot, shared, fd):
        fl = (0x1 if shared else 0x2) | 0x10 | (0x20 if fd is None else 0)
        try:
            self.p.mmap(BASE + off * 4096, n * 4096, prot, fl, -1 if fd is None else fd)
        except OSError:
            pass

    @rule(off=st.integers(0, 30), n=st.integers(1, 6), prot=st.sampled_from([0, 1, 3, 5, 7]))
    def mprotect(self, off, n, prot):
        try:
            self.p.mprotect(BASE + off * 4096, n * 4096, prot)
        except OSError:
            pass

    @rule(off=st.integers(0, 30), n=st.integers(1, 6))
    def munmap(self, off, n):
        self.p.munmap(BASE + off * 4096, n * 4096)

    @rule(off=st.integers(0, 36), write=st.booleans())
    def touch(self, off, write):
        try:
            if write:
                self.p.poke(BASE + off * 4096, b"w")
            else:
                self.p.peek(BASE + off * 4096, 1)
        except Signal:
            pass

    @invariant()
    def consistent(self):
        check_tree(self.p)
        maps = self.p.maps()
        assert all(a.end <= b.start for a, b in zip(maps, maps[1:], strict=False))


TestMmMachine = MmMachine.TestCase
TestMmMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


@settings(max_examples=200, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 6)), max_size=12),
       start=st.integers(0, 50), length=st.integers(0, 12))
def test_overlapping_is_the_vmas_that_intersect(spans, start, length):
    # MmStruct.overlapping() finds its first VMA with one bisection (the fast
    # path); the plain definition: every VMA intersecting [start, end), in order.
    from sgxsim.kernel.mm.vma import MmStruct, Vma

    mm = MmStruct(0)
    end_of_last = 0
    for gap, pages in spans:
        lo = end_of_last + gap * 4096
        mm.insert(Vma(mm, lo, lo + pages * 4096, 0))
        end_of_last = lo + pages * 4096
    lo, hi = start * 4096, (start + length) * 4096
    want = [v for v in mm.vmas if v.vm_start < hi and v.vm_end > lo]
    assert mm.overlapping(lo, hi) == want
    # mmap_region()'s test for an overlap, without the list.
    first = mm.find_vma(lo)
    assert (first is not None and first.vm_start < hi) == bool(want)
