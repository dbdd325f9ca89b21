"""The mm actions on the enclave's mappings: mmap, mprotect, munmap, mseal
and mremap of /dev/sgx_enclave over one explored page or all of them."""

from __future__ import annotations

from sgxsim.check.actions.abi import MAP_FIXED, MAP_SHARED, PROTS
from sgxsim.check.actions.base import LENGTH, OFFSET, CheckerAction, errno_of
from sgxsim.check.model import Action, Event
from sgxsim.check.scope import PERMS
from sgxsim.kernel.mm.flags import MREMAP_FIXED, MREMAP_MAYMOVE


class Mapping(CheckerAction):
    """An mm call over every range of the scope (each page, then the whole
    enclave), in every process; enabled in every state."""

    keys = {"offset": OFFSET, "length": LENGTH}
    per_process = True

    def offers(self, scope, ctx):
        return [Action.make(self.name, offset=o, length=n) for o, n in scope.ranges()]


class Mmap(Mapping):
    name = "mmap"
    keys = {"offset": OFFSET, "length": LENGTH, "prot": PERMS}

    def offers(self, scope, ctx):
        return [Action.make("mmap", offset=o, length=n, prot=p) for o, n in scope.ranges()
                for p in scope.map_perms or scope.perms]

    def run(self, model, st, a, ev):
        h = model.handle(st, a)
        errno_of(st, model.process(st, a).mmap, h.base + a.arg("offset"), a.arg("length"),
                 PROTS[a.arg("prot")], MAP_SHARED | MAP_FIXED, h.fd, 0)


class Mprotect(Mapping):
    name = "mprotect"
    keys = {"offset": OFFSET, "length": LENGTH, "prot": PERMS}

    def offers(self, scope, ctx):
        return [Action.make("mprotect", offset=o, length=n, prot=p) for o, n in scope.ranges()
                for p in scope.perms]

    def run(self, model, st, a, ev):
        start = model.handle(st, a).base + a.arg("offset")
        e = errno_of(st, model.process(st, a).mprotect, start, a.arg("length"), PROTS[a.arg("prot")])
        ev.append(Event("mprotect", start, e == 0,
                        (start + a.arg("length"), a.arg("prot")) + model.proc_info(a)))


class Munmap(Mapping):
    name = "munmap"

    def run(self, model, st, a, ev):
        errno_of(st, model.process(st, a).munmap, model.handle(st, a).base + a.arg("offset"),
                 a.arg("length"))


class Mseal(Mapping):
    name = "mseal"
    optional = True

    def run(self, model, st, a, ev):
        errno_of(st, model.process(st, a).mseal, model.handle(st, a).base + a.arg("offset"),
                 a.arg("length"))


class Mremap(Mapping):
    """Same size, MREMAP_MAYMOVE|MREMAP_FIXED, to the same offset just above
    ELRANGE (which Linux allows for an SGX VMA)."""

    name = "mremap"
    optional = True

    def run(self, model, st, a, ev):
        off, n = a.arg("offset"), a.arg("length")
        h = model.handle(st, a)
        errno_of(st, model.process(st, a).mremap, h.base + off, n, n, MREMAP_MAYMOVE | MREMAP_FIXED,
                 h.base + model.size + off)
