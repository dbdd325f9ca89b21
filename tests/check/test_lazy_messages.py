"""The messages of faults and signals are built when read, and the vDSO's
report decision only for a log that keeps it (hw/faults.py,
kernel/errors.py, user/vdso.py): for random checker sequences, a step run
with the decision log on and off has the same events and view, and leaves
the whole machine byte for byte the same; the vDSO's report decision, when
one is logged, carries the signal's message (the kernel's or the CPU's).
That a message equals the one built eagerly is tests/hw/test_lazy_faults.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from tests.check.walks import choices as walk_choices
from tests.check.walks import machine_bytes, pick

from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope

MODELS = {d: MachineModel(d, Scope(pages=2)) for d in ("linux-6.0", "sgx2-rfc")}


@pytest.mark.parametrize("design", sorted(MODELS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=walk_choices(min_size=1, max_size=14))
def test_the_decision_log_is_unobservable(design, choices):
    model = MODELS[design]
    quiet = model.initial()
    logged = model.thaw(model.freeze(quiet))
    for bias, c in choices:
        action = pick(model, quiet, bias, c)
        a, b = model.step(quiet, action), model.step(logged, action, trace=True)
        assert (a.events, a.view) == (b.events, b.view)
        assert machine_bytes(a.state) == machine_bytes(b.state)
        for d in b.decisions:
            if d.rule == "fixup_vdso_exception":
                # The signal's decision as its message shows it (the kernel's or the CPU's).
                assert d.detail.startswith("vector ") and (": mm: " in d.detail or ": hw: " in d.detail)
        quiet, logged = a.state, b.state
