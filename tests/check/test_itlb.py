"""The reuse of a code page's fetch check inside one enclave run
(``EnclaveLibrary.ITLB``, user/enclave.py) against checking every fetch:
for random checker sequences (stores and fetches into the explored pages,
EACCEPT, EACCEPTCOPY, EMODPE, mprotect, the driver's changes between
entries) every step has the same events and view, and the whole machine
(PTEs with their A/D bits, EPCM, EPC contents, registers, leaf counts, the
trace) is byte for byte the same."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from tests.check.walks import choices as walk_choices
from tests.check.walks import machine_bytes, pick

from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import Scope
from sgxsim.user.enclave import EnclaveLibrary


class CheckEveryFetch(EnclaveLibrary):
    """The reference: every instruction fetch through the access check."""

    ITLB = False


MODELS = {d: MachineModel(d, Scope(pages=2)) for d in ("linux-6.0", "linux-5.11")}


@pytest.mark.parametrize("design", sorted(MODELS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=walk_choices(min_size=1, max_size=14))
def test_reused_fetch_check_is_unobservable(design, choices):
    model = MODELS[design]
    fast = model.initial()
    slow = model.thaw(model.freeze(fast))  # initial() is shared: a copy of its own
    slow.library.__class__ = CheckEveryFetch
    for bias, c in choices:
        assert model.actions(fast) == model.actions(slow)
        action = pick(model, fast, bias, c)
        a, b = model.step(fast, action, trace=True), model.step(slow, action, trace=True)
        assert type(b.state.library) is CheckEveryFetch  # the reference stays the reference
        assert (a.events, a.view, a.decisions) == (b.events, b.view, b.decisions)
        assert machine_bytes(a.state) == machine_bytes(b.state)
        fast, slow = a.state, b.state


def test_every_fetch_still_checked_across_pages_and_leaves():
    """A run that leaves the code page (a fetch of an explored page) and
    comes back checks each page again: a page without X faults."""
    model = MODELS["linux-6.0"]
    state = model.initial()
    for a in (Action.make("add_pages", offset=0, source="image", type="REG", perms="RW"),
              Action.make("init"), Action.make("mmap", offset=0, length=2 * 4096, prot="RW")):
        state = model.step(state, a).state
    (ev,) = model.step(state, Action.make("fetch", offset=0)).events
    assert not ev.ok and ev.info  # the NX PTE denies the fetch: a #PF reported by the vDSO
    (ev,) = model.step(state, Action.make("load", offset=0)).events
    assert ev.ok
