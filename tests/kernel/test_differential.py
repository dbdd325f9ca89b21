"""The mm model against the kernel of this machine: random sequences of
mmap/munmap/mprotect/mremap/personality, compared after every step (result
or errno, and the mappings inside the window).  ``--diff-seed N`` and
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
