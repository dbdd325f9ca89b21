"""The messages of faults and signals are built when read, and the vDSO's
report decision only for a log that keeps it (hw/faults.py,
kernel/errors.py, user/vdso.py): for random checker sequences, a step run
with the decision log on and off has the same events and view, and leaves
the whole machine byte for byte the same; the log's decisions are the
messages the faults and signals show."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope

MODELS = {d: MachineModel(d, Scope(pages=2)) for d in ("linux-6.0", "sgx2-rfc")}


def _machine(state) -> bytes:
    return pickle.dumps(state.m, pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("design", sorted(MODELS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000)), min_size=1, max_size=14))
def test_the_decision_log_is_unobservable(design, choices):
    model = MODELS[design]
    quiet = model.initial()
    logged = model.thaw(model.freeze(quiet))
    for bias, c in choices:
        acts = model.actions(quiet)
        init = [a for a in acts if a.name == "init"]
        action = init[0] if init and bias == 0 else acts[c % len(acts)]
        a, b = model.step(quiet, action), model.step(logged, action, trace=True)
        assert (a.events, a.view) == (b.events, b.view)
        assert _machine(a.state) == _machine(b.state)
        for d in b.decisions:
            if d.rule == "fixup_vdso_exception":
                # The signal's decision as its message shows it (the kernel's or the CPU's).
                assert d.detail.startswith("vector ") and (": mm: " in d.detail or ": hw: " in d.detail)
        quiet, logged = a.state, b.state
