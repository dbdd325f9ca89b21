"""The checker's model over the real ``Machine``: one design, one scope.

State: a whole :class:`~sgxsim.machine.Machine` plus what the user program
driving it knows (its file descriptor, the running MRENCLAVE of what it
added, whether it INITed, the enclave programs it can run).  Actions go
through the real API: syscalls and ioctls of ``Process``, enclave accesses
and ENCLU leaves through the vDSO and the enclave runtime of
:mod:`sgxsim.check.runtime`, the reclaimer's ``sgx_reclaim_page``.

Layout: ELRANGE is the next power of two of at least ``pages + 5`` pages.
Offsets ``0 .. pages-1`` are the explored pages.  Behind them the *runtime*
pages, added and mapped in the initial state, never touched by the search's
actions: a TCS (NSSA 2), its two SSA frames and a data page holding the
SECINFOs the enclave passes to EACCEPT, EACCEPTCOPY and EMODPE (RW), and the
code page (RX, from the image).  They exist so the enclave can be entered at
all; the properties only see them as pages with no ghost history.
"""

from __future__ import annotations

import os
import pickle
import struct
from functools import partial
from typing import Any

from sgxsim.check import actions, observe, runtime
from sgxsim.check.actions.abi import (
    ENCL_BASE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    SCRATCH,
    SI_PERMS,
    SRC,
)
from sgxsim.check.actions.build import ATTRS, XFRM, add_from, add_raw
from sgxsim.check.model import Action, Event, Step
from sgxsim.check.properties import View
from sgxsim.check.scope import PAGE, Scope
from sgxsim.check.snapshot import Snapshot
from sgxsim.hw import uapi
from sgxsim.hw.consts import PageType, secinfo_flags
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Secs, Tcs
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.machine import Machine
from sgxsim.user.enclave import EnclaveLibrary

IMAGE_PATH, NOEXEC_PATH = "/home/user/enclave.img", "/mnt/noexec/data"
CODE_FILLER = b"\xcc" * PAGE  # what the runtime's code page holds (int3s)
RUNTIME_PAGES = runtime.RUNTIME_PAGES  # TCS, SSA 0, SSA 1, SECINFO data, code
# EPC beyond ELRANGE: the SECS and the VA pages of the reclaim action.  The
# EPC is kept small because every state carries the whole EPCM.
EPC_SPARE = 8
# Contexts whose offered steps MachineModel.actions keeps (2^pages added-sets
# per INIT state and fork, per enclave: a few hundred at most in practice).
OFFERS_MAX = 4096

prot_str = observe.vm_perms


def mdwe_missing(design: str) -> str | None:
    """Why ``design`` cannot run a scope with MDWE (its mm predates it), or None."""
    from sgxsim.kernel.registry import kernel_class
    from sgxsim.kernel.sys import MDWE_RELEASE

    release = kernel_class(design).mm_release
    if release >= MDWE_RELEASE:
        return None
    return f"design {design!r} has no MDWE (its mm is Linux {'.'.join(map(str, release))}; MDWE came in 6.3)"


class EnclHandle:
    """What the driving program knows of one of its enclaves: the fd of
    /dev/sgx_enclave it was created on, its base, the MRENCLAVE of what it
    added so far, whether INIT succeeded, the explored offsets it added, and
    what it expects to EACCEPT by page offset (the SECINFO of the change it
    asked the kernel for: RESTRICT_PERMISSIONS, MODIFY_TYPES; a page without
    one is expected to be EAUGed)."""

    __slots__ = ("fd", "base", "meas", "initialized", "added", "expect")

    def __init__(self, fd: int, base: int, meas: Measurement):
        self.fd, self.base, self.meas = fd, base, meas
        self.initialized = False
        self.added: frozenset[int] = frozenset()
        self.expect: dict[int, int] = {}


class MState:
    """One explored state: the machine and what the driving program knows —
    its process (and the child it forked, if any), its enclave handles, the
    enclave programs it can run by MRENCLAVE (the runtime's, bound when INIT
    succeeds).  ``fd``, ``meas``, ``initialized``, ``added`` and ``expect``
    are those of the first enclave."""

    __slots__ = ("m", "proc", "child", "handles", "library")

    def __init__(self, m: Machine, proc: Any, handles: list[EnclHandle]):
        self.m, self.proc, self.handles = m, proc, handles
        self.child: Any = None
        self.library = EnclaveLibrary()

    fd = property(lambda self: self.handles[0].fd)
    meas = property(lambda self: self.handles[0].meas)
    initialized = property(lambda self: self.handles[0].initialized)
    added = property(lambda self: self.handles[0].added)
    expect = property(lambda self: self.handles[0].expect)


# View's own slots, where a LazyView keeps each part once it is read.
_VIEW_SLOTS = {name: View.__dict__[name] for name in ("ptes", "vmas", "execmem", "execmod")}


class LazyView(View):
    """A :class:`View` of a machine state whose VMAs and LSM grants are read
    when first asked for (:meth:`MachineModel.lazy_view`): the same values as
    ``MachineModel.view`` gives for the state as it is then.  The PTEs, which
    most properties read, are read at once (a plain slot to read after)."""

    __slots__ = ("_model", "_st")

    def __init__(self, model: MachineModel, st: MState, ptes: tuple | None = None):
        # View is frozen: set past its __setattr__.  ``ptes``: the PTE
        # views of ``st`` as it is, if the caller has read them already.
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_st", st)
        _VIEW_SLOTS["ptes"].__set__(self, model._view_ptes(st) if ptes is None else ptes)

    def _part(self, name: str, read) -> Any:
        slot = _VIEW_SLOTS[name]
        try:
            return slot.__get__(self, LazyView)
        except AttributeError:  # not read yet
            got = read(self._model, self._st)
            slot.__set__(self, got)
            return got

    vmas = property(lambda self: self._part("vmas", MachineModel._view_vmas))
    execmem = property(lambda self: self._part("execmem", MachineModel._execmem))
    execmod = property(lambda self: self._part("execmod", MachineModel._execmod))


class MachineModel:
    """``MachineModel(design, scope)``: see the module docstring."""

    def __init__(self, design: str, scope: Scope | None = None):
        self.design = design
        self.sc = scope or Scope()
        self.pages = self.sc.pages
        size = 2
        while size < self.pages + RUNTIME_PAGES:
            size *= 2
        self.size = size * PAGE
        self.base = ENCL_BASE
        # Enclave e's ELRANGE starts at base + e * stride (room above each
        # for mremap's target).
        self.stride = 4 * self.size
        self.rt = self.pages * PAGE  # offset of the runtime pages
        self.tcs = self.base + self.rt
        self.layout = runtime.Layout(self.rt, self.pages)
        self._init = None
        self._offers: dict[tuple, tuple[Action, ...]] = {}  # actions(): contexts -> steps
        if self.sc.mdwe:
            why = mdwe_missing(design)
            if why:
                raise LookupError(f"--mdwe: {why}")

    def scope(self) -> dict[str, Any]:
        return self.sc.as_dict()

    # -- building the initial state -------------------------------------------------------
    def initial(self) -> MState:
        if self._init is None:
            self._init = self._build()
        return self._init

    def epc_pages(self) -> int:
        """The EPC's size: one enclave's ELRANGE and spare pages (SECS, VA
        pages).  With two enclaves, room for both enclaves' SECS, VA page and
        runtime pages, for the explored pages of one of them and one page
        more: a page that the other adds (or EAUGs, or loads back) takes the
        last free page, which wakes ksgxd (docs/checker-reach.md)."""
        if self.sc.enclaves == 1:
            return self.size // PAGE + EPC_SPARE
        return self.sc.enclaves * (2 + RUNTIME_PAGES) + self.pages + 1

    def _build(self) -> MState:
        m = Machine(kernel=self.design, epc_pages=self.epc_pages(), policy=self.sc.policy)
        # The reclaimer runs only as the ``reclaim`` action: ksgxd's watermarks
        # are never crossed (the explorer controls when pages are written back).
        # Two enclaves fill the EPC: there ksgxd wakes when an allocation
        # takes the last free page (a fault's ELDU may not reclaim by itself,
        # and would retry for ever) and writes one batch back
        # (sgx_reclaim_pages()) when the driver entry point returns.
        if m.kernel.sgx is not None:
            low, high = (0, 0) if self.sc.enclaves == 1 else (1, 2)
            m.kernel.sgx.nr_low_pages, m.kernel.sgx.nr_high_pages = low, high
        vfs = m.vfs
        n = self.pages * PAGE
        # The image: the explored pages' source, then the runtime's code page.
        vfs.create_file(IMAGE_PATH, bytes(n) + CODE_FILLER, mode=0o755, label="user_home_t")
        vfs.mount("/mnt/noexec", noexec=True)
        vfs.create_file(NOEXEC_PATH, bytes(n), label="user_home_t")
        p = m.spawn()
        if self.sc.mdwe:
            self._set_mdwe(p)
        img = p.open(IMAGE_PATH, os.O_RDONLY)
        p.mmap(SRC["image"], n + PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, img, 0)
        p.mmap(SRC["anon"], n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        nx = p.open(NOEXEC_PATH, os.O_RDONLY)
        p.mmap(SRC["noexec"], n, PROT_READ, MAP_PRIVATE | MAP_FIXED, nx, 0)
        p.mmap(SCRATCH, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        st = MState(m, p, [])
        for e in range(self.sc.enclaves):
            st.handles.append(self._create(st, self.base + e * self.stride))
        m.trace.enabled = False
        return st

    def _create(self, st: MState, base: int) -> EnclHandle:
        """open("/dev/sgx_enclave"), SGX_IOC_ENCLAVE_CREATE at ``base`` and the
        runtime's pages, mapped and added."""
        p = st.proc
        h = EnclHandle(p.open("/dev/sgx_enclave", os.O_RDWR), base, Measurement())
        p.poke(SCRATCH, Secs(size=self.size, base=base, ssa_frame_size=1, attributes=ATTRS,
                             xfrm=XFRM).pack())
        p.ioctl(h.fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", SCRATCH)))
        h.meas.ecreate(self.size, 1)
        # The runtime's pages (check/runtime.py), mapped before they are added
        # (a hole is free to map in every design): TCS, SSA x2, data RW; code RX.
        lay = self.layout
        p.mmap(base + lay.page(runtime.TCS), runtime.CODE * PAGE, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_FIXED, h.fd, 0)
        p.mmap(base + lay.page(runtime.CODE), PAGE, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED,
               h.fd, 0)
        tcs = Tcs(ossa=lay.page(runtime.SSA0), nssa=2, oentry=lay.code(runtime.I_ENTRY),
                  fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF).pack()
        add_raw(st, h, lay.page(runtime.TCS), tcs, secinfo_flags(PageType.PT_TCS, 0))
        for i in (runtime.SSA0, runtime.SSA1, runtime.DATA):
            add_raw(st, h, lay.page(i), bytes(PAGE), secinfo_flags(PageType.PT_REG, SI_PERMS["RW"]))
        # The code page comes from the executable image, as a loader adds text.
        add_from(st, h, SRC["image"] + self.pages * PAGE, lay.page(runtime.CODE),
                 secinfo_flags(PageType.PT_REG, SI_PERMS["RX"]))
        return h

    @staticmethod
    def _set_mdwe(p: Any) -> None:
        """--mdwe: the runtime turns MDWE on before it maps anything."""
        from sgxsim.kernel.sys import PR_MDWE_REFUSE_EXEC_GAIN, PR_SET_MDWE

        p.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)

    # -- what the actions ask of the model ------------------------------------------------
    def handle(self, st: MState, a: Action) -> EnclHandle:
        """The enclave step ``a`` acts on (its ``enclave`` argument; the first)."""
        return st.handles[a.arg("enclave", 0)]

    def process(self, st: MState, a: Action) -> Any:
        """The process step ``a`` runs in (its ``proc`` argument; the parent)."""
        if a.arg("proc") != "child":
            return st.proc
        if st.child is None:
            raise ValueError(f"{a}: there is no child process (no fork step before it)")
        return st.child

    def proc_info(self, a: Action) -> tuple:
        """The process of an event, when there are several: ``(proc,)``."""
        return (a.arg("proc"),) if self.sc.processes > 1 else ()

    def ghost_offset(self, h: EnclHandle, off: int) -> int:
        """The ghost's key of page ``off`` of enclave ``h``: its address minus
        the first enclave's base (the enclave offset, with one enclave)."""
        return h.base - self.base + off

    def enclave_page(self, st: MState, h: EnclHandle, off: int) -> Any:
        """The driver's ``sgx_encl_page`` of page ``off`` of ``h`` (None: none)."""
        return self.encl(st, h).page_array.get((h.base + off) >> 12)

    # -- the search interface ---------------------------------------------------------------
    def sgx2(self, st: MState) -> bool:
        return isinstance(st.m.kernel.sgx, SgxDriverSgx2)

    def actions(self, st: MState) -> list[Action]:
        sgx2, forked = self.sgx2(st), st.child is not None
        ctxs = tuple([actions.Ctx(h.initialized, sgx2, h.added, forked) for h in st.handles])
        # The steps offered are a function of the (frozen) scope and the
        # contexts alone (CheckerAction.offers): a search meets a handful of
        # contexts, each made into Actions once.
        got = self._offers.get(ctxs)
        if got is None:
            if len(self._offers) >= OFFERS_MAX:
                self._offers.clear()
            got = self._offers[ctxs] = tuple(actions.enabled_in(self.sc, list(ctxs)))
        return list(got)

    def encl(self, st: MState, h: EnclHandle | None = None) -> Any:
        """The driver's enclave behind handle ``h`` (default: the first)."""
        return st.proc.file((h or st.handles[0]).fd).private_data

    def _page_pfns(self, st: MState) -> list[tuple[int, ...]]:
        """The PFNs in each enclave's driver ``page_array``, in its order."""
        p = st.proc
        return [tuple(p.file(h.fd).private_data.page_array) for h in st.handles]  # encl()

    def _appeared(self, st: MState, before: list[tuple[int, ...]]) -> list[int]:
        """The ghost offsets, in order, of the explored pages in a driver's
        ``page_array`` now that were not in ``before`` (``_page_pfns``)."""
        out = []
        pages = range(self.pages)
        for h, was in zip(st.handles, before, strict=True):
            now = self.encl(st, h).page_array
            b, at = h.base >> 12, h.base - self.base  # at: ghost_offset(h, 0)
            for k in now.keys() - set(was):
                if k - b in pages:
                    out.append(at + (k - b) * PAGE)
        out.sort()
        return out

    # A pickle copies the whole machine ~3x faster than copy.deepcopy, and
    # the explorer keeps frontier states frozen anyway (workers, memory).
    def freeze(self, st: MState) -> bytes:
        return pickle.dumps(st, pickle.HIGHEST_PROTOCOL)

    def thaw(self, blob: bytes) -> MState:
        return pickle.loads(blob)

    def snapshot(self, st: MState) -> Snapshot:
        """What ``restore()`` puts back in place (cheaper than a thaw)."""
        return Snapshot(st)

    def step(self, state: MState, action: Action, trace: bool = False) -> Step:
        """``action`` on a copy of ``state``."""
        return self.apply(self.thaw(self.freeze(state)), action, trace)

    def apply(self, st: MState, action: Action, trace: bool = False, view: bool = True) -> Step:
        """``action`` on ``st`` itself; ``view=False`` leaves ``Step.view``
        ``None`` (the explorer reuses the parent's when nothing changed)."""
        tr = st.m.trace
        tr.enabled = trace
        if tr.records:
            tr.take()
        before = self._page_pfns(st)
        events: list[Event] = []
        actions.BY_NAME[action.name].run(self, st, action, events)
        # A page that appeared without ADD_PAGES: the driver EAUGed it on a fault.
        if self._page_pfns(st) != before:  # (the same keys in the same order: none new, most steps)
            for off in self._appeared(st, before):
                if off not in {e.addr for e in events if e.kind == "add"}:
                    events.insert(0, Event("aug", off, True))
        decisions = tr.take() if trace else []
        tr.enabled = False
        return Step(st, tuple(events), self.view(st) if view else None, decisions)

    # -- what the checker reads -------------------------------------------------------------
    # Only through observation interfaces (docs/internals.md): the enclave's
    # pages (the driver's page_array, the EPCM via check.observe), the LSM's
    # grants (Security.grants) and a design's own state (design_state).
    def _secs_index(self, st: MState, h: EnclHandle | None = None) -> int:
        ep = self.encl(st, h).secs.epc_page
        return ep.index if ep is not None else -1

    def processes(self, st: MState) -> list[Any]:
        """The program's live processes: the parent, then the child."""
        return [st.proc] if st.child is None else [st.proc, st.child]

    def view(self, st: MState) -> View:
        """What the properties see: the PTEs into the EPC and the VMAs of
        every process (tagged 0 for the parent, 1 for the child), a PTE in
        an enclave's ELRANGE owned by that enclave; the LSM's grants."""
        return View(self._view_ptes(st), self._view_vmas(st), self._execmem(st), self._execmod(st))

    def lazy_view(self, st: MState) -> View:
        """:meth:`view`, the VMAs and grants read off ``st`` when a property
        first asks for them (the explorer's, for the properties of one
        transition: most read the PTEs alone).  Valid only while ``st`` is
        unchanged."""
        return LazyView(self, st)

    def _view_ptes(self, st: MState) -> tuple:
        epc = st.m.cpu.epc
        spans = [(self._secs_index(st, h), h.base, self.size) for h in st.handles]
        ptes: tuple = ()
        for i, q in enumerate(self.processes(st)):
            ptes += observe.pte_views_of(q.mm.pgtable, epc, spans, self.base, proc=i)
        return ptes

    def _view_vmas(self, st: MState) -> tuple:
        vmas: tuple = ()
        for i, q in enumerate(self.processes(st)):
            vmas += tuple([observe.vma_view(v.vm_start, v.vm_end, prot_str(v.vm_flags), i) for v in q.mm.vmas])
        return vmas

    # Granted unless an LSM withholds it (with no LSM, --policy none,
    # nothing does).
    def _execmem(self, st: MState) -> bool:
        return st.m.kernel.security.grants(st.proc.label, "execmem")

    def _execmod(self, st: MState) -> bool:
        p = st.proc
        return st.m.kernel.security.grants(p.label, "execmod", p.file(st.fd).inode.label)

    def page_map(self, st: MState) -> list[observe.PageRow]:
        """What the VMA, the PTE, the EPCM and the driver's maximum allow on
        every ELRANGE page (``sgxsim report``; docs/internals.md)."""
        encl = self.encl(st)
        return observe.page_map(st.proc.mm, st.m.cpu.epc, encl.page_array, self._secs_index(st), self.base,
                                self.size)

    def page_views(self, st: MState) -> list[tuple[str, list[observe.PageRow]]]:
        """:meth:`page_map` of every process and every enclave: one
        ``(name, rows)`` per process (the parent, then the child once
        forked) and enclave, named ``"parent"``/``"child"`` with
        ``", enclave N"`` when there are two enclaves (``sgxsim report``;
        docs/internals.md)."""
        epc = st.m.cpu.epc
        names = ("parent", "child")
        out = []
        for i, h in enumerate(st.handles):
            encl = self.encl(st, h)
            secs = self._secs_index(st, h)
            for j, q in enumerate(self.processes(st)):
                name = names[j] + (f", enclave {i}" if len(st.handles) > 1 else "")
                out.append((name, observe.page_map(q.mm, epc, encl.page_array, secs, h.base, self.size)))
        return out

    def page_labels(self) -> dict[int, str]:
        """Enclave offset -> a name for the runtime's pages (TCS, SSA 0, ...)."""
        names = {runtime.TCS: "runtime TCS", runtime.SSA0: "runtime SSA 0", runtime.SSA1: "runtime SSA 1",
                 runtime.DATA: "runtime SECINFO", runtime.CODE: "runtime code"}
        return {self.layout.page(i): n for i, n in names.items()}

    def _encl_key(self, st: MState, h: EnclHandle, design: Any, cols: tuple) -> tuple:
        """One enclave's part of the fingerprint (see :meth:`fingerprint`);
        ``design``: the driver's ``design_state`` or None, ``cols``:
        ``observe.epcm_columns`` of the machine's EPC."""
        epc = st.m.cpu.epc
        encl = st.proc.file(h.fd).private_data  # encl()
        b = h.base >> 12
        # The page type as a plain int: the driver keeps an EAUGed page's as
        # a PageType member (equal to the int, so the fingerprint compares
        # the same), which would pickle by reference for the digest at ~1 us
        # each.  The ghost's origin (build/aug) still tells those pages apart.
        pages = [(k - b, e.vm_max_prot_bits, int(e.type), e.epc_page is None)
                 for k, e in encl.page_array.items()]
        pages.sort()
        extra = design(encl) if design is not None else ()
        ep = encl.secs.epc_page  # _secs_index()
        secs = ep.index if ep is not None else -1
        if h.initialized:
            meas_ok = None
        else:
            ss = epc.secs_state.get(secs)
            meas_ok = ss is not None and ss.measurement.same_records(h.meas)
        expect, added = h.expect, h.added
        return (extra, observe.epc_key(epc, secs, h.base, False, False, cols),  # identity, REG contents: no
                tuple(pages), h.initialized, meas_ok, tuple(sorted(expect.items())) if expect else (),
                tuple(sorted(added)) if added else ())

    def fingerprint(self, st: MState) -> tuple:
        """The state up to what no action can tell apart.  MRENCLAVE is left
        out: the program signs whatever it measured, and no action in the
        scope reads the enclave's identity (EREPORT/EGETKEY are not offered),
        so two enclaves built in different orders behave the same.  What is
        kept is whether the program's own measurement still matches the
        SECS's, which decides INIT.  The contents of REG pages are left out
        too: the enclave's loads, stores, fetches and EACCEPTCOPY move bytes
        but no action or property depends on which bytes (the runtime's SSA
        frames are dead between actions: every action leaves at CSSA 0).
        The pages added at build time are kept: they are EACCEPTCOPY's sources
        (a page removed after INIT stays one)."""
        return self._fingerprint(st, False)[0]

    def observe(self, st: MState) -> tuple[tuple, Any]:
        """``(fingerprint(st), make)``: ``make()`` gives ``lazy_view(st)``
        (called before ``st`` changes), from the PTEs the fingerprint read
        (one read of the page table for both; None where there is more
        than one process or enclave: ``lazy_view`` then)."""
        return self._fingerprint(st, True)

    def _fingerprint(self, st: MState, view: bool) -> tuple[tuple, Any]:
        """The fingerprint (see :meth:`fingerprint`) and, asked for ``view``
        with one process and one enclave, the maker of its lazy view."""
        epc = st.m.cpu.epc
        cols = observe.epcm_columns(epc)
        design = getattr(st.m.kernel.sgx, "design_state", None)
        handles = st.handles
        h = handles[0]
        extra, epck, pages, init, meas_ok, expect, added = self._encl_key(st, h, design, cols)
        # The layout check/symmetry.py renames and swaps (PageSymmetry.rename,
        # ProcessSwap): this 9-tuple for one enclave and one process, else
        # (it, the other enclaves' keys, the child's (pt, vmas)).
        if len(handles) == 1 and st.child is None:
            q = st.proc
            # pt_key() and, for the lazy view, the PTE views (_view_ptes()'s
            # spans, origin and process) of the page table read once.
            pt, ptes = observe.pt_key_and_views(q.mm.pgtable, epc, self.base,
                                                [(self._secs_index(st, h), h.base, self.size)], self.base,
                                                0, cols)
            key = (extra, epck, pt, self._vmas_key(q), pages, init, meas_ok, expect, added)
            return key, (partial(LazyView, self, st, ptes) if view else None)
        pt, vmas = self._proc_key(st.proc, epc, cols)
        key = (extra, epck, pt, vmas, pages, init, meas_ok, expect, added)
        return (key, tuple([self._encl_key(st, h, design, cols) for h in handles[1:]]),
                () if st.child is None else (self._proc_key(st.child, epc, cols),)), None

    def _proc_key(self, q: Any, epc: Any, cols: tuple) -> tuple:
        """One process's part of the fingerprint: its page table and VMAs."""
        return observe.pt_key(q.mm.pgtable, epc, self.base, cols), self._vmas_key(q)

    @staticmethod
    def _vmas_key(q: Any) -> tuple:
        """One process's VMAs for the fingerprint."""
        return tuple([(v.vm_start, v.vm_end, v.vm_flags, v.vm_file.path if v.vm_file else None)
                      for v in q.mm.vmas])
