"""Random checker walks for the Hypothesis tests of tests/check: the
choices a test draws, the action each choice picks, and the machine as
bytes for byte-for-byte comparisons."""

from __future__ import annotations

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


def machine_bytes(state) -> bytes:
    """The whole machine of a checker state, pickled."""
    return pickle.dumps(state.m, pickle.HIGHEST_PROTOCOL)
