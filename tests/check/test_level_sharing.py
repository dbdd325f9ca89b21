"""How a level's new states are shared out among workers: the plan of moves
(:func:`sgxsim.check.explorer._moves`) and a worker's keep, which keeps the
first of its children and hands the last out in the planned pieces."""

from __future__ import annotations

from sgxsim.check.explorer import Worker, _moves
from sgxsim.check.ghost import Ghost
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope


def test_moves_even_the_workers_out():
    assert _moves([5, 0]) == [[(1, 2)], []]
    assert _moves([3, 3]) == [[], []]
    assert _moves([0, 0, 0]) == [[], [], []]
    assert _moves([9, 0, 1]) == [[(1, 4), (2, 1)], [], []]  # target 4: the first lacking first
    assert _moves([1, 7, 1, 7]) == [[], [(0, 3)], [], [(2, 3)]]
    for counts in ([1, 7, 1, 7], [10, 0, 0, 1], [4, 4, 5], [0, 13]):
        plan = _moves(counts)
        after = list(counts)
        for w, pieces in enumerate(plan):
            for r, n in pieces:
                assert n > 0 and r != w
                after[w] -= n
                after[r] += n
        target = -(-sum(counts) // len(counts))
        assert sum(after) == sum(counts) and max(after) <= target


def test_keep_hands_out_the_last_children_in_pieces(tmp_path):
    model = MachineModel("no-hook", Scope(pages=1))
    w = Worker(model, ["w-xor-x"], True, bound=1, spill_root=str(tmp_path))  # every entry spills
    init = model.initial()
    w.take([(0, model.freeze(init), Ghost(), model.fingerprint(init))])
    records = w.expand({"w-xor-x"}, True)[0]
    keeps = [(r[0], r[1], 100 + i) for i, r in enumerate(records)]
    assert len(keeps) > 6
    pieces = w.keep(keeps, [2, 3])
    assert [[e[0] for e in p] for p in pieces] == [[100 + len(keeps) - 5, 100 + len(keeps) - 4],
                                                   [100 + len(keeps) - 3 + i for i in range(3)]]
    kept = [e[0] for r in w.frontier for e in r]
    assert kept == [100 + i for i in range(len(keeps) - 5)]
    w.close()
