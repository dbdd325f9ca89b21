"""Random checker walks for the Hypothesis tests of tests/check: the
choices a test draws, the action each choice picks, and the machine as
bytes for byte-for-byte comparisons."""

from __future__ import annotations

import io
import pickle

from hypothesis import strategies as st


def choices(min_size: int = 0, max_size: int = 14):
    """Lists of (bias, index): the index picks among the offered actions."""
    return st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000)),
                    min_size=min_size, max_size=max_size)


def pick(model, state, bias: int, c: int):
    """The action a choice picks: INIT whenever the bias is 0 and INIT is
    offered (one action among ~60 before it, so most walks go past it),
    else the index modulo the offered actions."""
    acts = model.actions(state)
    init = [a for a in acts if a.name == "init"]
    return init[0] if init and bias == 0 else acts[c % len(acts)]


class _SortedSets(pickle.Pickler):
    """Pickles a set as its members in a fixed order: two equal sets iterate
    differently when they were built in different orders (a thawed copy
    against the original), and a string's hash, hence the order, changes
    with PYTHONHASHSEED. (``persistent_id`` because the C pickler does not
    ask ``reducer_override`` about sets.)"""

    def persistent_id(self, obj):
        if type(obj) in (set, frozenset):
            return type(obj).__name__, tuple(sorted(_canonical(x) for x in obj))
        return None


def _canonical(obj) -> bytes:
    out = io.BytesIO()
    _SortedSets(out, pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def machine_bytes(state) -> bytes:
    """The whole machine of a checker state, pickled with sets in order."""
    return _canonical(state.m)
