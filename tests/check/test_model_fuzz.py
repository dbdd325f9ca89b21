"""Long random action sequences on every design, deeper than the search
goes: every action ends in a model outcome (an event, an errno, a reported
fault) — never a Python exception — the enclave's thread is back at CSSA 0
after every step, and the driver's invariants hold."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from tests.check.walks import choices as walk_choices
from tests.check.walks import pick

from sgxsim.check.cli import DESIGNS
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope
from sgxsim.hw.structs import Tcs

MODELS = {d: MachineModel(d, Scope(pages=2)) for d in DESIGNS}


@pytest.mark.parametrize("design", DESIGNS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=walk_choices(min_size=1, max_size=16))
def test_random_sequences_stay_in_the_model(design, choices):
    model = MODELS[design]
    state = model.initial()
    for bias, c in choices:
        # INIT a quarter of the time it is offered: most sequences go on
        # into the SGX2 actions.
        step = model.step(state, pick(model, state, bias, c))
        state = step.state
        encl = model.encl(state)
        tcs = encl.page_array[model.tcs >> 12]
        if tcs.epc_page is not None:
            assert Tcs.unpack(state.m.cpu.epc.page(tcs.epc_page.index)).cssa == 0
        broken = state.m.kernel.sgx.check_invariants()
        assert not broken, broken

