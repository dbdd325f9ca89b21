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
from typing import Any

from sgxsim.check import observe, runtime
from sgxsim.check.model import Action, Event, Step
from sgxsim.check.properties import View, VmaView
from sgxsim.check.scope import PAGE, Scope
from sgxsim.check.snapshot import Snapshot
from sgxsim.hw import sigstruct as hwsig
from sgxsim.hw import uapi
from sgxsim.hw.consts import Attribute, PageType, SecinfoFlags, secinfo_flags
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Secs, Tcs
from sgxsim.kernel.mm import VM_EXEC
from sgxsim.kernel.mm.flags import MREMAP_FIXED, MREMAP_MAYMOVE
from sgxsim.kernel.sgx.driver import SgxDriverSgx2
from sgxsim.machine import Machine
from sgxsim.user.enclave import EnclaveLibrary

PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
PROTS = {"R": PROT_READ, "RW": PROT_READ | PROT_WRITE, "RX": PROT_READ | PROT_EXEC,
         "RWX": PROT_READ | PROT_WRITE | PROT_EXEC}
SI_PERMS = {"R": SecinfoFlags.R, "RW": SecinfoFlags.R | SecinfoFlags.W,
            "RX": SecinfoFlags.R | SecinfoFlags.X,
            "RWX": SecinfoFlags.R | SecinfoFlags.W | SecinfoFlags.X}
_EAUG_SECINFO = secinfo_flags(PageType.PT_REG, SecinfoFlags.R | SecinfoFlags.W, SecinfoFlags.PENDING)
TYPES = {"REG": PageType.PT_REG, "TCS": PageType.PT_TCS, "TRIM": PageType.PT_TRIM}

ENCL_BASE = 0x7F00_0000_0000
SRC = {"image": 0x4000_0000, "anon": 0x5000_0000, "noexec": 0x6000_0000}
SCRATCH = 0x1000_0000
IMAGE_PATH, NOEXEC_PATH = "/home/user/enclave.img", "/mnt/noexec/data"
ATTRS = Attribute.MODE64BIT | Attribute.DEBUG
XFRM = 3
CODE_FILLER = b"\xcc" * PAGE  # what the runtime's code page holds (int3s)
RUNTIME_PAGES = runtime.RUNTIME_PAGES  # TCS, SSA 0, SSA 1, SECINFO data, code
# EPC beyond ELRANGE: the SECS and the VA pages of the reclaim action.  The
# EPC is kept small because every state carries the whole EPCM.
EPC_SPARE = 8

# Signing key and SIGSTRUCTs by MRENCLAVE: a cache of the checker process,
# not model state (RSA key generation is slow; keys do not pickle).
_SIGN: dict[Any, Any] = {}


def _sigstruct(mrenclave: bytes) -> bytes:
    got = _SIGN.get(mrenclave)
    if got is None:
        key = _SIGN.get("key")
        if key is None:
            key = _SIGN["key"] = hwsig.generate_key()
        got = _SIGN[mrenclave] = hwsig.sign(
            hwsig.build(mrenclave, attributes=ATTRS, xfrm=XFRM,
                        attributes_mask=~Attribute.DEBUG & ((1 << 64) - 1), vendor=0), key).pack()
    return got


prot_str = observe.vm_perms


class MState:
    """One explored state: the machine and what the driving program knows."""

    __slots__ = ("m", "proc", "fd", "meas", "initialized", "added", "library", "expect")

    def __init__(self, m: Machine, proc: Any, fd: int, meas: Measurement):
        self.m, self.proc, self.fd, self.meas = m, proc, fd, meas
        self.initialized = False
        self.added: frozenset[int] = frozenset()
        # The enclave programs the process knows, by MRENCLAVE (the
        # runtime's, bound when INIT succeeds).
        self.library = EnclaveLibrary()
        # What the enclave expects to EACCEPT, by page offset: the SECINFO
        # of the change the program asked the kernel for (RESTRICT_PERMISSIONS,
        # MODIFY_TYPES); a page without one is expected to be EAUGed.
        self.expect: dict[int, int] = {}


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
        self.rt = self.pages * PAGE  # offset of the runtime pages
        self.tcs = self.base + self.rt
        self.layout = runtime.Layout(self.rt, self.pages)
        self._init = None
        if self.sc.mdwe:
            from sgxsim.kernel.registry import kernel_class
            from sgxsim.kernel.sys import MDWE_RELEASE

            release = kernel_class(design).mm_release
            if release < MDWE_RELEASE:
                raise LookupError(f"--mdwe: design {design!r} has no MDWE (its mm is Linux "
                                  f"{'.'.join(map(str, release))}; MDWE came in 6.3)")

    def scope(self) -> dict[str, Any]:
        return self.sc.as_dict()

    # -- building the initial state -------------------------------------------------------
    def initial(self) -> MState:
        if self._init is None:
            self._init = self._build()
        return self._init

    def _build(self) -> MState:
        m = Machine(kernel=self.design, epc_pages=self.size // PAGE + EPC_SPARE, policy=self.sc.policy)
        # The reclaimer runs only as the ``reclaim`` action: ksgxd's watermarks
        # are never crossed (the explorer controls when pages are written back).
        if m.kernel.sgx is not None:
            m.kernel.sgx.nr_low_pages = m.kernel.sgx.nr_high_pages = 0
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
        fd = p.open("/dev/sgx_enclave", os.O_RDWR)
        st = MState(m, p, fd, Measurement())
        # SGX_IOC_ENCLAVE_CREATE
        p.poke(SCRATCH, Secs(size=self.size, base=self.base, ssa_frame_size=1, attributes=ATTRS,
                             xfrm=XFRM).pack())
        p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", SCRATCH)))
        st.meas.ecreate(self.size, 1)
        # The runtime's pages (check/runtime.py), mapped before they are added
        # (a hole is free to map in every design): TCS, SSA x2, data RW; code RX.
        lay = self.layout
        p.mmap(self.base + lay.page(runtime.TCS), runtime.CODE * PAGE, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_FIXED, fd, 0)
        p.mmap(self.base + lay.page(runtime.CODE), PAGE, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED,
               fd, 0)
        tcs = Tcs(ossa=lay.page(runtime.SSA0), nssa=2, oentry=lay.code(runtime.I_ENTRY),
                  fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF).pack()
        self._add_raw(st, lay.page(runtime.TCS), tcs, secinfo_flags(PageType.PT_TCS, 0))
        for i in (runtime.SSA0, runtime.SSA1, runtime.DATA):
            self._add_raw(st, lay.page(i), bytes(PAGE), secinfo_flags(PageType.PT_REG, SI_PERMS["RW"]))
        # The code page comes from the executable image, as a loader adds text.
        self._add_from(st, SRC["image"] + n, lay.page(runtime.CODE),
                       secinfo_flags(PageType.PT_REG, SI_PERMS["RX"]))
        m.trace.enabled = False
        return st

    @staticmethod
    def _set_mdwe(p: Any) -> None:
        """--mdwe: the runtime turns MDWE on before it maps anything."""
        from sgxsim.kernel.sys import PR_MDWE_REFUSE_EXEC_GAIN, PR_SET_MDWE

        p.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)

    def _add_raw(self, st: MState, offset: int, data: bytes, sflags: int) -> tuple[int, int]:
        """ADD_PAGES of ``data``, staged in the scratch buffer."""
        st.proc.poke(SCRATCH + PAGE, data.ljust(PAGE, b"\0"))
        return self._add_from(st, SCRATCH + PAGE, offset, sflags)

    def _add_from(self, st: MState, src: int, offset: int, sflags: int) -> tuple[int, int]:
        """SGX_IOC_ENCLAVE_ADD_PAGES of one measured page from ``src``; the
        program measures what it passed (its signer's MRENCLAVE).  Returns
        (errno, count written back)."""
        p = st.proc
        data = p.peek(src, PAGE)
        p.poke(SCRATCH + 2 * PAGE, struct.pack("<Q", sflags) + bytes(56))
        buf = bytearray(struct.pack("<6Q", src, offset, PAGE, SCRATCH + 2 * PAGE, 1, 0))
        e = _errno(st, p.ioctl, st.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, buf)
        count = struct.unpack_from("<6Q", buf)[5]
        if count:
            st.meas.eadd(offset, sflags)
            st.meas.eextend_page(offset, data)
        return e, count

    # -- the search interface ---------------------------------------------------------------
    def sgx2(self, st: MState) -> bool:
        return isinstance(st.m.kernel.sgx, SgxDriverSgx2)

    def actions(self, st: MState) -> list[Action]:
        return self.sc.enabled(initialized=st.initialized, sgx2=self.sgx2(st), added=st.added)

    def encl(self, st: MState) -> Any:
        return st.proc.file(st.fd).private_data

    def _resident(self, st: MState) -> frozenset[int]:
        pa = self.encl(st).page_array
        b = self.base >> 12
        return frozenset(i for i in range(self.pages) if (b + i) in pa)

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
        m = st.m
        m.trace.enabled = trace
        m.trace.take()
        before = self._resident(st)
        events: list[Event] = []
        getattr(self, "_do_" + action.name)(st, action, events)
        after = self._resident(st)
        for i in sorted(after - before):
            if i * PAGE not in {e.addr for e in events if e.kind == "add"}:
                events.insert(0, Event("aug", i * PAGE, True))
        decisions = m.trace.take() if trace else []
        m.trace.enabled = False
        return Step(st, tuple(events), self.view(st) if view else None, decisions)

    # -- actions ----------------------------------------------------------------------------
    def _do_mmap(self, st, a, ev):
        _errno(st, st.proc.mmap, self.base + a.arg("offset"), a.arg("length"), PROTS[a.arg("prot")],
               MAP_SHARED | MAP_FIXED, st.fd, 0)

    def _do_mprotect(self, st, a, ev):
        start = self.base + a.arg("offset")
        e = _errno(st, st.proc.mprotect, start, a.arg("length"), PROTS[a.arg("prot")])
        ev.append(Event("mprotect", start, e == 0, (start + a.arg("length"), a.arg("prot"))))

    def _do_munmap(self, st, a, ev):
        _errno(st, st.proc.munmap, self.base + a.arg("offset"), a.arg("length"))

    def _do_mseal(self, st, a, ev):
        _errno(st, st.proc.mseal, self.base + a.arg("offset"), a.arg("length"))

    def _do_mremap(self, st, a, ev):
        # Same size, MREMAP_MAYMOVE|MREMAP_FIXED, to the same offset above ELRANGE.
        off, n = a.arg("offset"), a.arg("length")
        _errno(st, st.proc.mremap, self.base + off, n, n, MREMAP_MAYMOVE | MREMAP_FIXED,
               self.base + self.size + off)

    def _do_add_pages(self, st, a, ev):
        off, source, typ, perms = a.arg("offset"), a.arg("source"), a.arg("type"), a.arg("perms")
        p = st.proc
        src = SRC[source] + off
        vma = p.mm.find_vma(src)
        source_exec = bool(vma is not None and vma.vm_start <= src and vma.vm_flags & VM_EXEC)
        sflags = secinfo_flags(TYPES[typ], 0 if typ == "TCS" else SI_PERMS[perms])
        e, count = self._add_from(st, src, off, sflags)
        ok = e == 0 and count == PAGE
        if ok:
            st.added = st.added | {off}
        ev.append(Event("add", off, ok, (typ, "RW" if typ == "TCS" else perms, source_exec)))

    def _do_init(self, st, a, ev):
        p = st.proc
        p.poke(SCRATCH + 3 * PAGE, _sigstruct(st.meas.digest()))
        arg = bytearray(struct.pack("<Q", SCRATCH + 3 * PAGE))
        e = _errno(st, p.ioctl, st.fd, uapi.SGX_IOC_ENCLAVE_INIT, arg)
        st.initialized = e == 0
        if st.initialized:
            # The runtime's code is what this enclave identity runs.
            st.library.bind(st.meas.digest(), runtime.program(self.layout))

    def _sgx2_ioctl(self, st, cmd, *fields) -> int:
        return _errno(st, st.proc.ioctl, st.fd, cmd, bytearray(struct.pack(f"<{len(fields)}Q", *fields)))

    def _do_restrict(self, st, a, ev):
        e = self._sgx2_ioctl(st, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, a.arg("offset"), PAGE,
                             int(SI_PERMS[a.arg("perms")]), 0, 0)
        if e == 0:
            st.expect[a.arg("offset")] = secinfo_flags(PageType.PT_REG, SI_PERMS[a.arg("perms")],
                                                       SecinfoFlags.PR)
        ev.append(Event("restrict", a.arg("offset"), e == 0, (a.arg("perms"),)))

    def _do_modtype(self, st, a, ev):
        e = self._sgx2_ioctl(st, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, a.arg("offset"), PAGE,
                             int(TYPES[a.arg("type")]), 0, 0)
        if e == 0:
            st.expect[a.arg("offset")] = secinfo_flags(TYPES[a.arg("type")], 0, SecinfoFlags.MODIFIED)
        ev.append(Event("modtype", a.arg("offset"), e == 0, (a.arg("type"),)))

    def _do_remove(self, st, a, ev):
        e = self._sgx2_ioctl(st, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, a.arg("offset"), PAGE, 0)
        if e == 0:
            st.expect.pop(a.arg("offset"), None)
        ev.append(Event("remove", a.arg("offset"), e == 0))

    def _do_reclaim(self, st, a, ev):
        entry = self.encl(st).page_array.get((self.base + a.arg("offset")) >> 12)
        ok = entry is not None and st.m.kernel.sgx.sgx_reclaim_page(entry)
        ev.append(Event("reclaim", a.arg("offset"), bool(ok)))

    def _enclave(self, st, a, ev, kind, *, flags=0, src=0, info=()):
        """One operation of the runtime (check/runtime.py) through the vDSO;
        the event records whether it completed, or the #PF error code the
        vDSO reported."""
        off = a.arg("offset")
        out = runtime.run(st.proc, st.library, self.tcs, kind, self.base + off, flags=flags, src=src,
                          scratch=SCRATCH)
        if not out.exited:
            ev.append(Event(kind, off, False, (out.error_code,) if out.vector == runtime.VEC_PF else ()))
        else:
            ev.append(Event(kind, off, out.result == 0, info if out.result == 0 else ()))

    def _do_load(self, st, a, ev):
        self._enclave(st, a, ev, "load")

    def _do_store(self, st, a, ev):
        self._enclave(st, a, ev, "store")

    def _do_fetch(self, st, a, ev):
        self._enclave(st, a, ev, "fetch")

    def _do_eaccept(self, st, a, ev):
        # The enclave accepts what its program asked for (MState.expect), or
        # a page it expects to be EAUGed: REG RW PENDING.
        off = a.arg("offset")
        sflags = st.expect.get(off, _EAUG_SECINFO)
        self._enclave(st, a, ev, "eaccept", flags=sflags)
        if ev[-1].ok:
            st.expect.pop(off, None)

    def _do_eacceptcopy(self, st, a, ev):
        # From the build-time explored page ``src`` (the search offers every
        # one, check/scope.py); without it (no page added at build time, or a
        # scenario written before ``src``), the first build-time explored
        # page, else the runtime's data page.
        off = a.arg("src")
        if off is None:
            off = min(st.added) if st.added else self.layout.page(runtime.DATA)
        src = self.base + off
        self._enclave(st, a, ev, "eacceptcopy", flags=secinfo_flags(PageType.PT_REG, SI_PERMS["RWX"]),
                      src=src)

    def _do_emodpe(self, st, a, ev):
        perms = a.arg("perms")
        self._enclave(st, a, ev, "emodpe", flags=secinfo_flags(PageType.PT_REG, SI_PERMS[perms]),
                      info=(perms,))

    # -- what the checker reads -------------------------------------------------------------
    def _secs_index(self, st: MState) -> int:
        ep = self.encl(st).secs.epc_page
        return ep.index if ep is not None else -1

    def view(self, st: MState) -> View:
        m, p = st.m, st.proc
        ptes = observe.pte_views(p.mm.pgtable, m.cpu.epc, self._secs_index(st), self.base, self.size)
        vmas = tuple(VmaView(v.vm_start, v.vm_end, prot_str(v.vm_flags)) for v in p.mm.vmas)
        # Granted unless a module denies it: with no LSM (--policy none)
        # nothing withholds execmem or execmod, and every LSM must allow.
        execmem = execmod = True
        for mod in getattr(m.kernel.security, "modules", ()):
            proc_perms = getattr(mod, "process", None)
            if proc_perms is not None:
                execmem = execmem and "execmem" in proc_perms.get(p.label, set())
                dev = m.vfs.inodes["/dev/sgx_enclave"].label
                execmod = execmod and "execmod" in mod.files.get((p.label, dev), set())
        return View(ptes, vmas, execmem, execmod)

    def page_map(self, st: MState) -> list[observe.PageRow]:
        """What the VMA, the PTE, the EPCM and the driver's maximum allow on
        every ELRANGE page (``sgxsim report``; docs/internals.md)."""
        encl = self.encl(st)
        return observe.page_map(st.proc.mm, st.m.cpu.epc, encl.page_array, self._secs_index(st), self.base,
                                self.size)

    def page_labels(self) -> dict[int, str]:
        """Enclave offset -> a name for the runtime's pages (TCS, SSA 0, ...)."""
        names = {runtime.TCS: "runtime TCS", runtime.SSA0: "runtime SSA 0", runtime.SSA1: "runtime SSA 1",
                 runtime.DATA: "runtime SECINFO", runtime.CODE: "runtime code"}
        return {self.layout.page(i): n for i, n in names.items()}

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
        m, p = st.m, st.proc
        epc = m.cpu.epc
        encl = self.encl(st)
        pages = tuple(sorted((k - (self.base >> 12), e.vm_max_prot_bits, e.type, e.epc_page is None,
                              )
                             for k, e in encl.page_array.items()))
        vmas = tuple((v.vm_start, v.vm_end, v.vm_flags, v.vm_file.path if v.vm_file else None)
                     for v in p.mm.vmas)
        design = getattr(m.kernel.sgx, "design_state", None)
        extra = design(encl) if design is not None else ()
        secs = self._secs_index(st)
        meas_ok = None
        if not st.initialized:
            ss = epc.secs_state.get(secs)
            meas_ok = ss is not None and ss.measurement.same_records(st.meas)
        return (extra, observe.epc_key(epc, secs, self.base, identity=False, reg_contents=False),
                observe.pt_key(p.mm.pgtable, epc, self.base), vmas, pages, st.initialized, meas_ok,
                tuple(sorted(st.expect.items())), tuple(sorted(st.added)))


def _errno(st: MState, fn, *args) -> int:
    """Run a syscall; return its errno (0 on success).  The refusal's
    decision goes into the trace: it is what the syscall's caller sees."""
    try:
        fn(*args)
    except OSError as e:
        why = getattr(e, "why", None)
        tr = st.m.trace
        if why is not None and tr.enabled and why not in tr.records:
            tr.add(why)
        return e.errno or -1
    return 0
