"""Building the enclave before INIT: SGX_IOC_ENCLAVE_ADD_PAGES of an explored
page and SGX_IOC_ENCLAVE_INIT, as a loader does them."""

from __future__ import annotations

import struct
from typing import Any

from sgxsim.check import runtime
from sgxsim.check.actions.abi import PAGE, SCRATCH, SI_PERMS, SRC, TYPES
from sgxsim.check.actions.base import OFFSET, CheckerAction, errno_of
from sgxsim.check.ghost import PageGhost
from sgxsim.check.model import Action, Event
from sgxsim.check.scope import PERMS, SOURCES
from sgxsim.hw import sigstruct as hwsig
from sgxsim.hw import uapi
from sgxsim.hw.consts import Attribute, secinfo_flags
from sgxsim.kernel.mm import VM_EXEC

ATTRS = Attribute.MODE64BIT | Attribute.DEBUG
XFRM = 3

# struct sgx_secinfo (FLAGS, reserved bytes zero) and struct
# sgx_enclave_add_pages (src, offset, length, secinfo, flags, count).
_SECINFO = struct.Struct("<Q56x")
_ADD_PAGES = struct.Struct("<6Q")

# Signing key and SIGSTRUCTs by MRENCLAVE: a cache of the checker process,
# not model state (RSA key generation is slow; keys do not pickle).
_SIGN: dict[Any, Any] = {}


def sigstruct(mrenclave: bytes) -> bytes:
    got = _SIGN.get(mrenclave)
    if got is None:
        key = _SIGN.get("key")
        if key is None:
            key = _SIGN["key"] = hwsig.generate_key()
        got = _SIGN[mrenclave] = hwsig.sign(
            hwsig.build(mrenclave, attributes=ATTRS, xfrm=XFRM,
                        attributes_mask=~Attribute.DEBUG & ((1 << 64) - 1), vendor=0), key).pack()
    return got


def add_from(st: Any, h: Any, src: int, offset: int, sflags: int, p: Any = None) -> tuple[int, int]:
    """SGX_IOC_ENCLAVE_ADD_PAGES of one measured page from ``src`` into the
    enclave of handle ``h``, issued by process ``p`` (default: the parent;
    the driver reads the source in the caller's mm, __sgx_encl_add_page());
    the program measures what it passed (its signer's MRENCLAVE).  Returns
    (errno, count written back)."""
    p = p if p is not None else st.proc
    data = p.peek(src, PAGE)
    p.poke(SCRATCH + 2 * PAGE, _SECINFO.pack(sflags))
    buf = bytearray(_ADD_PAGES.pack(src, offset, PAGE, SCRATCH + 2 * PAGE, 1, 0))
    e = errno_of(st, p.ioctl, h.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, buf)
    count = _ADD_PAGES.unpack_from(buf)[5]
    if count:
        h.meas.eadd(offset, sflags)
        h.meas.eextend_page(offset, data)
    return e, count


def add_raw(st: Any, h: Any, offset: int, data: bytes, sflags: int) -> tuple[int, int]:
    """ADD_PAGES of ``data``, staged in the scratch buffer."""
    st.proc.poke(SCRATCH + PAGE, data.ljust(PAGE, b"\0"))
    return add_from(st, h, SCRATCH + PAGE, offset, sflags)


# The SECINFO.FLAGS of each (type, perms) an add_pages step names (a TCS has none).
_SFLAGS = {(t, p): secinfo_flags(TYPES[t], 0 if t == "TCS" else SI_PERMS[p])
           for t in ("REG", "TCS") for p in PERMS}


class AddPages(CheckerAction):
    """ADD_PAGES (before INIT) of any explored page not added yet, from each
    source kind, as TCS or as REG with each permission."""

    name = "add_pages"
    keys = {"offset": OFFSET, "source": SOURCES, "type": ("REG", "TCS"), "perms": PERMS}
    events = ("add",)
    ioctl = True

    def offers(self, scope, ctx):
        if ctx.initialized:
            return []
        out = []
        # Every page not added yet, in any order: a fixed order would break
        # the symmetry between the explored pages (check/symmetry.py).
        for o in (o for o in scope.offsets() if o not in ctx.added):
            for s in scope.sources:
                out.append(Action.make("add_pages", offset=o, source=s, type="TCS", perms="RW"))
                out += [Action.make("add_pages", offset=o, source=s, type="REG", perms=p)
                        for p in scope.perms]
        return out

    def run(self, model, st, a, ev):
        args = dict(a.args)
        off, source, typ, perms = (args.get("offset"), args.get("source"), args.get("type"),
                                   args.get("perms"))
        h = model.handle(st, a)
        p = model.process(st, a)
        src = SRC[source] + off
        vma = p.mm.find_vma(src)
        source_exec = bool(vma is not None and vma.vm_start <= src and vma.vm_flags & VM_EXEC)
        sflags = _SFLAGS[(typ, perms)]  # keys: every type and perms the schema admits
        e, count = add_from(st, h, src, off, sflags, p)
        ok = e == 0 and count == PAGE
        if ok:
            h.added = h.added | {off}
        ev.append(Event("add", model.ghost_offset(h, off), ok,
                        (typ, "RW" if typ == "TCS" else perms, source_exec)))

    def update(self, edit, ev):
        # The page's history starts: what its SECINFO declared, where from.
        sectype, perms, source_exec = ev.info
        edit.pages[ev.addr] = PageGhost("build", perms, sectype, bool(source_exec))


class Init(CheckerAction):
    """SGX_IOC_ENCLAVE_INIT (before INIT) with a SIGSTRUCT signed for the
    MRENCLAVE the program measured; the runtime's pages are added already,
    so an enclave with no explored page added can be initialised too."""

    name = "init"
    keys: dict = {}
    ioctl = True

    def offers(self, scope, ctx):
        return [] if ctx.initialized else [Action.make("init")]

    def run(self, model, st, a, ev):
        h = model.handle(st, a)
        p = model.process(st, a)
        p.poke(SCRATCH + 3 * PAGE, sigstruct(h.meas.digest()))
        arg = bytearray(struct.pack("<Q", SCRATCH + 3 * PAGE))
        e = errno_of(st, p.ioctl, h.fd, uapi.SGX_IOC_ENCLAVE_INIT, arg)
        h.initialized = e == 0
        if h.initialized:
            # The runtime's code is what this enclave identity runs.
            st.library.bind(h.meas.digest(), runtime.program(model.layout))
