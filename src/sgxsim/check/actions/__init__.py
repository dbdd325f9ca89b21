"""The checker's actions, one object each (:class:`~.base.CheckerAction`):
parameter domain, enabling, execution through the real API, ghost update.

:data:`REGISTRY` is in the search's order: in every state the explorer is
offered each action's enabled steps in that order, so the order decides which
of several shortest traces is printed.
"""

from __future__ import annotations

from sgxsim.check.actions.base import CheckerAction, Ctx
from sgxsim.check.actions.build import AddPages, Init
from sgxsim.check.actions.enclave import Eaccept, EacceptCopy, Emodpe, Fetch, Load, Store, update_aug
from sgxsim.check.actions.mm import Mmap, Mprotect, Mremap, Mseal, Munmap
from sgxsim.check.actions.process import Fork
from sgxsim.check.actions.reclaim import Reclaim
from sgxsim.check.actions.sgx2 import ModType, Remove, Restrict
from sgxsim.check.model import Action

REGISTRY: tuple[CheckerAction, ...] = (
    Mmap(), Mprotect(), Munmap(), Mseal(), Mremap(), AddPages(), Init(), Restrict(), ModType(), Remove(),
    Load(), Store(), Fetch(), Eaccept(), EacceptCopy(), Emodpe(), Reclaim(), Fork())
BY_NAME: dict[str, CheckerAction] = {a.name: a for a in REGISTRY}

# The ghost update of each event kind: the action's that produces it, and
# ``aug`` (an EAUG the driver made on an access's fault).
UPDATES = {k: a.update for a in REGISTRY for k in a.event_kinds() if type(a).update is not CheckerAction.update}
UPDATES["aug"] = update_aug


def enabled(scope, ctx: Ctx) -> list[Action]:
    """The steps offered in a state of one process and one enclave, in the
    search's order."""
    want = scope.actions
    out: list[Action] = []
    for a in REGISTRY:
        if a.name in want:
            out += a.offers(scope, ctx)
    return out


def enabled_in(scope, ctxs: list[Ctx]) -> list[Action]:
    """The steps offered with ``ctxs[e]`` the context of enclave ``e``: per
    action (in the search's order), per enclave, per process (the parent,
    then the child once forked), each step naming its ``enclave`` (with
    --enclaves 2) and its ``proc`` (with --processes 2) first."""
    if scope.enclaves == 1 and scope.processes == 1:
        return enabled(scope, ctxs[0])
    want = scope.actions
    out: list[Action] = []
    for a in REGISTRY:
        if a.name not in want:
            continue
        if not a.per_enclave:
            out += a.offers(scope, ctxs[0])
            continue
        for e, ctx in enumerate(ctxs):
            where: tuple = (("enclave", e),) if scope.enclaves > 1 else ()
            procs = ("parent", "child") if a.per_process and ctx.forked else ("parent",)
            for p in procs:
                pre = where + ((("proc", p),) if scope.processes > 1 and a.per_process else ())
                out += [Action(s.name, pre + s.args) for s in a.offers(scope, ctx)]
    return out


__all__ = ["BY_NAME", "REGISTRY", "UPDATES", "CheckerAction", "Ctx", "enabled", "enabled_in"]
