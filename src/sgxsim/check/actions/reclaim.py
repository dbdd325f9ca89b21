"""``reclaim``: the EPC reclaimer writes one enclave page back (EWB).  With
one enclave ksgxd never runs by itself in the checker (its watermarks are
0), so this action is the only write-back; two enclaves fill the EPC, and
there ksgxd also runs when an allocation takes the last free page."""

from __future__ import annotations

from sgxsim.check.actions.base import OFFSET, CheckerAction
from sgxsim.check.model import Action, Event


class Reclaim(CheckerAction):
    name = "reclaim"
    keys = {"offset": OFFSET}
    # ksgxd's: sgx_reclaim_page() zaps the page's PTEs in every mm on the
    # enclave's mm_list (sgx_zap_enclave_ptes()), whichever process is which.
    by_kernel = True

    def offers(self, scope, ctx):
        # Before INIT only the pages added so far have anything to write back.
        offs = scope.offsets()
        return [Action.make("reclaim", offset=o) for o in offs if ctx.initialized or o in ctx.added]

    def run(self, model, st, a, ev):
        h = model.handle(st, a)
        entry = model.enclave_page(st, h, a.arg("offset"))
        ok = entry is not None and st.m.kernel.sgx.sgx_reclaim_page(entry)
        ev.append(Event("reclaim", model.ghost_offset(h, a.arg("offset")), bool(ok)))
