"""The mm model against the kernel of this machine: random sequences of
mmap/munmap/mprotect/mremap/personality mixed with mseal, prctl(PR_SET_MDWE /
PR_GET_MDWE) and fork (those sequences run in a forked child on the real
side: neither seals nor MDWE can be undone), compared after every step
(result or errno, and the mappings inside the window).  ``--diff-seed N`` and
``--diff-count N`` reproduce or scale a run."""

from __future__ import annotations

import platform
import random
import sys

import pytest
from tests.kernel.difftest import ModelRunner, describe_mismatch, gen_sequence
from tests.kernel.realkernel import make_files, run_real

pytestmark = [
    pytest.mark.realkernel,
    pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                       reason="the differential test compares with a Linux x86-64 kernel"),
]

BATCH = 250


def check_vma_tree(p) -> None:
    prev_end = 0
    for v in p.mm.vmas:
        assert v.vm_start < v.vm_end, f"empty VMA {v}"
        assert v.vm_start >= prev_end, f"overlapping VMA {v}"
        assert v.vm_start % 4096 == 0 and v.vm_end % 4096 == 0
        prev_end = v.vm_end


def test_model_matches_the_real_kernel(request, tmp_path):
    seed = request.config.getoption("--diff-seed")
    count = request.config.getoption("--diff-count")
    make_files(str(tmp_path))
    rng = random.Random(seed)
    sequences = [gen_sequence(rng) for _ in range(count)]
    runner = ModelRunner(str(tmp_path))
    failures = []
    for b in range(0, count, BATCH):
        batch = sequences[b : b + BATCH]
        real = run_real(str(tmp_path), batch)
        for i, seq in enumerate(batch):
            model = runner.run(seq)
            check_vma_tree(runner.last_process)
            msg = describe_mismatch(seed, b + i, seq, real[i], model)
            if msg:
                failures.append(msg.replace(str(tmp_path), "<dir>"))
    assert not failures, (f"{len(failures)} of {count} sequences differ "
                          f"(reproduce with --diff-seed {seed} --diff-count {count}):\n"
                          + "\n\n".join(failures[:5]))


def test_the_real_side_is_deterministic(tmp_path):
    make_files(str(tmp_path))
    rng = random.Random(7)
    seqs = [gen_sequence(rng) for _ in range(30)]
    assert run_real(str(tmp_path), seqs) == run_real(str(tmp_path), seqs)


def test_a_known_split_on_both_sides(tmp_path):
    make_files(str(tmp_path))
    seq = [["mmap", 0, 3 * 4096, 3, 0x22 | 0x10, None, 0], ["mprotect", 4096, 4096, 1]]
    real = run_real(str(tmp_path), [seq])[0]
    expect = [[0, 4096, "rw-p", 0, ""], [4096, 8192, "r--p", 0, ""], [8192, 12288, "rw-p", 0, ""]]
    assert real[1] == [0, expect]
    assert ModelRunner(str(tmp_path)).run(seq)[1] == [0, expect]


def test_mdwe_and_mseal_on_both_sides(tmp_path):
    """MDWE refuses RW -> RX and a new W+X mapping; it is inherited by a fork
    child; a sealed VMA refuses munmap, mprotect (even to its own
    protection) and mremap; mseal over a hole is ENOMEM, before any change."""
    make_files(str(tmp_path))
    seq = [["mmap", 0, 3 * 4096, 3, 0x22 | 0x10, None, 0],
           ["prctl", 65, 1], ["mprotect", 0, 4096, 5], ["mmap", 8 * 4096, 4096, 7, 0x22 | 0x10, None, 0],
           ["fork"], ["prctl", 66, 0], ["mseal", 4096, 4096, 0], ["munmap", 0, 3 * 4096],
           ["mprotect", 4096, 4096, 3], ["mremap", 4096, 4096, 8192, 1, 0], ["mseal", 0, 5 * 4096, 0],
           ["prctl", 65, 3]]
    real = run_real(str(tmp_path), [seq])[0]
    assert [r for r, _ in real] == [0, 0, -13, -13, 0, 1, 0, -1, -1, -1, -12, -1]
    assert real[6][1] == [[0, 4096, "rw-p", 0, ""], [4096, 8192, "rw-p", 0, ""],
                          [8192, 12288, "rw-p", 0, ""]]
    assert ModelRunner(str(tmp_path)).run(seq) == real


def test_most_sequences_mix_in_mdwe_mseal_or_fork():
    rng = random.Random(1)
    seqs = [gen_sequence(rng) for _ in range(200)]
    kinds = [{op[0] for op in s} for s in seqs]
    assert sum(1 for k in kinds if "mseal" in k) > 100
    assert sum(1 for k in kinds if "prctl" in k) > 80
    assert sum(1 for k in kinds if "fork" in k) > 20


def test_64_bit_prot_and_flags_on_both_sides(tmp_path):
    """mmap's, mprotect's and mremap's prot and flags are unsigned long: a
    bit above 31 is seen, not cut off.  MAP_SHARED and MAP_PRIVATE ignore an
    unknown flag, MAP_SHARED_VALIDATE refuses it (EOPNOTSUPP) and accepts
    only its mask (MAP_32BIT and MAP_HUGE_2MB yes, MAP_FIXED_NOREPLACE no);
    mprotect refuses an unknown prot bit and mremap an unknown flag (EINVAL);
    mmap does not check prot beyond the bits it knows."""
    make_files(str(tmp_path))
    fixed, sv = 0x10, 0x3
    seq = [["mmap", 0, 4096, 3, sv | fixed | 1 << 40, "small-rw", 0],
           ["mmap", 0, 4096, 3, sv | fixed | 1 << 32, "small-rw", 0],
           ["mmap", 0, 4096, 3, sv | 0x100000, "small-rw", 0],
           ["mmap", 0, 4096, 3, sv | fixed | 0x40 | 21 << 26, "small-rw", 0],
           ["mmap", 4096, 4096, 3, 0x1 | fixed | 1 << 40, "small-rw", 0],
           ["mmap", 8192, 4096, 1 | 1 << 40, 0x22 | fixed | 1 << 63, None, 0],
           ["mprotect", 0, 4096, 1 | 1 << 40], ["mprotect", 0, 4096, 1 | 1 << 32],
           ["mprotect", 0, 4096, 1 | 1 << 63], ["mprotect", 0, 4096, 1],
           ["mremap", 0, 4096, 8192, 1 << 32, 0], ["mremap", 0, 4096, 8192, 1 | 1 << 40, 0]]
    real = run_real(str(tmp_path), [seq])[0]
    EOPNOTSUPP, EINVAL = -95, -22
    assert [r for r, _ in real] == [EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP, 0, 4096, 8192,
                                    EINVAL, EINVAL, EINVAL, 0, EINVAL, EINVAL]
    assert real[-1][1] == [[0, 4096, "r--s", 0, str(tmp_path / "small")],
                           [4096, 8192, "rw-s", 0, str(tmp_path / "small")],
                           [8192, 12288, "r--p", 0, ""]]
    assert ModelRunner(str(tmp_path)).run(seq) == real


def test_some_sequences_use_64_bit_prot_and_flags():
    rng = random.Random(1)
    ops = [op for _ in range(200) for op in gen_sequence(rng)]
    high = [op for op in ops if op[0] in ("mmap", "mprotect", "mremap")
            and (op[3] if op[0] != "mremap" else op[4]) >> 31
            or op[0] == "mmap" and op[4] >> 31]
    assert len(high) > 40
    assert sum(1 for op in ops if op[0] == "mmap" and op[4] & 0xF == 0x3) > 20
