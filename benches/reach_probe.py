"""Measurements that run on any release of sgxsim (the current tree or the
previous release's, put first on ``PYTHONPATH`` by ``bench_reach``): one
JSON object on stdout.

``python -m benches.reach_probe explore DESIGN PAGES DEPTH`` explores one
design on the model both releases share; ``python -m benches.reach_probe
scope DESIGN PAGES DEPTH`` explores it in the release's own default scope at
``--pages PAGES`` (each release's model as it defines it: the current one
with its ADD order, EACCEPTCOPY sources and symmetry reduction on);
``python -m benches.reach_probe hot N`` times the enclave round trip
(one ``load`` through the vDSO, EENTER, the program, EEXIT) itself, the
same ``load`` as the checker issues it (its action, plus what the checker
reads afterwards) and a one-page ADD_PAGES as the checker issues it, N
times each; ``python -m benches.reach_probe addmany PAGES REPS`` times one
ADD_PAGES of PAGES pages (per page).  Only APIs both releases have are used.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc

from sgxsim.check import runtime
from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import Scope

PAGE = 4096


def _shared_scope(pages: int) -> Scope:
    # The model both releases share: ADD_PAGES left out (the current one
    # offers every page not added yet, the previous one the next page in
    # offset order), and no symmetry reduction (the previous release has
    # none; benches/bench_symmetry.py measures it).
    actions = tuple(a for a in Scope().actions if a != "add_pages")
    try:
        return Scope(pages=pages, actions=actions, symmetry=False)
    except TypeError:
        return Scope(pages=pages, actions=actions)


def _explore(design: str, pages: int, depth: int, scope: Scope | None = None) -> dict:
    model = MachineModel(design, scope or _shared_scope(pages))
    # Before the clock starts: the initial state, and one INIT, so that the
    # RSA-3072 key the checker signs SIGSTRUCTs with (made once per process:
    # 0.1 to 1.5 s, at random) is in neither release's row.
    model.step(model.initial(), Action.make("init"))
    # CPU time of this (single-worker) process as well as wall time: on a
    # shared machine the wall clock also counts other processes' turns.
    t, c = time.perf_counter(), time.process_time()
    exp = explore(model, None, depth=depth)
    s, cpu = time.perf_counter() - t, time.process_time() - c
    out = {"states": exp.states, "transitions": exp.transitions, "seconds": s, "cpu_seconds": cpu,
           "levels": exp.levels, "symmetry": getattr(model.sc, "symmetry", None),
           "findings": {k: [str(a) for a in f.path] for k, f in sorted(exp.findings.items())}}
    seen = getattr(exp, "seen", None)
    if seen is not None:
        # The seen-set's own allocations, measured (the exploration above is
        # not traced, so its speed is not disturbed).
        tracemalloc.start()
        again = type(seen)()
        for d in seen:
            again.add(d)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out["seen_bytes_per_state"] = size / len(again)
    return out


def _hot(n: int) -> dict:
    model = MachineModel("linux-6.0", Scope(pages=2))
    st = model.initial()
    built = [Action.make("add_pages", offset=0, source="image", type="REG", perms="RW"),
             Action.make("init"), Action.make("mmap", offset=0, length=2 * PAGE, prot="RW")]
    for a in built:
        st = model.step(st, a).state
    load = Action.make("load", offset=0)
    model.apply(st, load)  # the first access faults the PTE in
    t = time.process_time()  # CPU time, as every probe here
    for _ in range(n):
        model.apply(st, load)
    trip = (time.process_time() - t) / n
    # The round trip itself: the runtime's one operation through the vDSO
    # (runtime.run, the same call the checker's load makes), no checker.
    try:
        from sgxsim.check.actions.abi import SCRATCH
    except ImportError:  # the previous release kept it in machine_model
        from sgxsim.check.machine_model import SCRATCH
    proc, lib, tcs, target = st.proc, st.library, model.base + model.rt, model.base
    t = time.process_time()
    for _ in range(n):
        runtime.run(proc, lib, tcs, "load", target, scratch=SCRATCH)
    run = (time.process_time() - t) / n
    # ADD_PAGES of one page on fresh copies of the initial state.
    add = Action.make("add_pages", offset=0, source="image", type="REG", perms="RX")
    blob = model.freeze(model.initial())
    spent = 0.0
    for _ in range(n):
        s = model.thaw(blob)
        t = time.process_time()
        model.apply(s, add)
        spent += time.process_time() - t
    return {"roundtrip_us": run * 1e6, "checker_load_us": trip * 1e6, "add_page_us": spent / n * 1e6}


def _add_many(pages: int, reps: int) -> dict:
    """One SGX_IOC_ENCLAVE_ADD_PAGES of ``pages`` measured pages (as a loader
    issues it for a segment) into a fresh enclave, ``reps`` times: the CPU
    time per page of the ioctl, the source mapping populated beforehand and not."""
    import gc
    import os
    import struct

    from sgxsim.hw import uapi
    from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType, secinfo_flags
    from sgxsim.hw.structs import Secs
    from sgxsim.machine import Machine

    base, scratch = 0x7F00_0000_0000, 0x1000_0000
    size = 1 << (pages * PAGE_SIZE - 1).bit_length()
    out = {}
    for populated in (True, False):
        spent = 0.0
        for _ in range(reps):
            # EPC room to spare: no reclaim (ksgxd) while the pages go in.
            m = Machine(kernel="linux-6.0", epc_pages=2 * pages + 128)
            proc = m.spawn()
            fd = proc.open("/dev/sgx_enclave", os.O_RDWR)
            meta = proc.mmap(scratch, 2 * PAGE_SIZE, 3, 0x22 | 0x10)
            src = proc.mmap(scratch + 2 * PAGE_SIZE, pages * PAGE_SIZE, 3, 0x22 | 0x10)
            if populated:
                for i in range(pages):  # distinct contents, the pages faulted in
                    proc.poke(src + i * PAGE_SIZE, i.to_bytes(4, "little"))
            proc.poke(meta, Secs(size=size, base=base, ssa_frame_size=1,
                                 attributes=Attribute.MODE64BIT, xfrm=3).pack())
            proc.poke(meta + PAGE_SIZE, struct.pack("<Q", secinfo_flags(PageType.PT_REG, 3))
                      + bytes(56))
            proc.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", meta)))
            arg = bytearray(struct.pack("<6Q", src, 0, pages * PAGE_SIZE, meta + PAGE_SIZE, 1, 0))
            # The previous repetitions' machines are cyclic garbage: collected
            # here, outside the clock, so that no release's figure counts the
            # first touch of memory they would otherwise hold.  CPU time: the
            # wall clock also counts other processes' turns.
            gc.collect()
            t = time.process_time()
            proc.ioctl(fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, arg)
            spent += time.process_time() - t
            assert struct.unpack_from("<6Q", arg)[5] == pages * PAGE_SIZE
        out["populated_us_per_page" if populated else "unpopulated_us_per_page"] = \
            spent / reps / pages * 1e6
    return out


def main(argv: list[str]) -> int:
    if argv[0] == "explore":
        out = _explore(argv[1], int(argv[2]), int(argv[3]))
    elif argv[0] == "scope":
        # The release's own default scope (symmetry on where it has one).
        out = _explore(argv[1], int(argv[2]), int(argv[3]), Scope(pages=int(argv[2])))
    elif argv[0] == "hot":
        out = _hot(int(argv[1]))
    elif argv[0] == "addmany":
        out = _add_many(int(argv[1]), int(argv[2]))
    else:
        raise SystemExit(f"unknown probe {argv[0]!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
