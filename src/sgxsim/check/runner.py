"""``sgxsim check`` and ``sgxsim run`` without the command-line dressing:
explore each design once for all selected properties, turn findings into
results (with per-layer traces and scenario files), render the matrix."""

from __future__ import annotations

import importlib
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sgxsim.check import scenario as scn
from sgxsim.check.explorer import Exploration, explore, replay, verdict
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.spill import new_dir, remove_dir
from sgxsim.plugins import no_exit
from sgxsim.trace import Decision, Refusal

ModelFactory = Callable[[str], Any]


def trace_of(model, path, props) -> list[dict[str, Any]]:
    """The JSON trace of ``path``: each action, what each layer decided, what
    the checker saw."""
    out = []
    for action, decisions, events, hits in replay(model, path, props):
        out.append({**action.as_dict(),
                    "decisions": [str(d) for d in decisions],
                    "events": [f"{e.kind}@{e.addr:#x}:{'ok' if e.ok else 'fail'}" for e in events],
                    "properties": dict(hits)})
    return out


def results_for(model, exp: Exploration, props: list[str], out_dir: Path | None = None) -> list[dict]:
    res = []
    for name in props:
        v = verdict(name, exp)
        f = exp.findings.get(name)
        r = {"design": exp.design, "property": name, "verdict": v,
             "depth": f.depth if f else exp.depth,
             "states": f.states if f else exp.states,
             "seconds": round(f.seconds if f else exp.seconds, 3),
             "trace": trace_of(model, f.path, [name]) if f else [],
             # The whole exploration (the same for every property of it).
             "explored": {"states": exp.states, "depth": exp.depth, "seconds": round(exp.seconds, 3)}}
        if f:
            r["reason"] = f.reason
            if out_dir is not None:
                r["scenario"] = _write_scenario(model, r, f.path, out_dir)
        res.append(r)
    return res


def _write_scenario(model, r: dict, path, out_dir: Path, suffix: str = "") -> str:
    """The scenario file of result ``r`` (its trace as comments)."""
    sc = scn.Scenario(r["design"], r["property"], r["verdict"], path, model.scope(), len(path),
                      r["reason"])
    comments = [s["decisions"] for s in r["trace"]]
    name = f"{r['design']}--{r['property']}{suffix}.toml"
    return str(scn.write(out_dir / name, sc, comments))


def simulate(factory: ModelFactory, designs: list[str], props: list[str] | None = None,
             walks: int = 1000, walk_depth: int = 30, seed: int = 0, workers: int = 1,
             out_dir: Path | None = None) -> list[dict]:
    """Simulation mode (:mod:`sgxsim.check.simulate`) on each design: per
    property the verdict, the shrunk trace and its scenario file."""
    from sgxsim.check import simulate as sim
    props = list(props or PROPERTIES)
    res = []
    for d in designs:
        model = factory(d)
        s = sim.simulate(model, props, walks=walks, walk_depth=walk_depth, seed=seed, workers=workers)
        for name in props:
            f = s.findings.get(name)
            r = {"design": d, "property": name, "verdict": sim.verdict(name, s), "walks": walks,
                 "walk_depth": walk_depth, "seed": seed, "steps": s.steps,
                 "seconds": round(s.seconds, 3), "trace": trace_of(model, f.path, [name]) if f else []}
            if f:
                r.update(reason=f.reason, walk=f.walk, found_at=f.found_at)
                if out_dir is not None:
                    r["scenario"] = _write_scenario(model, r, f.path, out_dir, "--sim")
            res.append(r)
    return res


def render_simulation(results: list[dict]) -> str:
    """One line per (design, property) found, then what was not."""
    lines = []
    for d in dict.fromkeys(r["design"] for r in results):
        rs = [r for r in results if r["design"] == d]
        r0 = rs[0]
        lines.append(f"{d}: {r0['walks']} walks of {r0['walk_depth']} actions from seed {r0['seed']} "
                     f"({r0['steps']} steps, {r0['seconds']} s)")
        for r in rs:
            if r["trace"]:
                lines.append(f"  {r['property']:<16} {r['verdict']} (walk {r['walk']}, step "
                             f"{r['found_at']}, shrunk to {len(r['trace'])})")
            else:
                lines.append(f"  {r['property']:<16} {r['verdict']}")
    lines.append("(shrunk to n) = the length of the trace after delta debugging; a walk that "
                 "finds nothing proves nothing")
    return "\n".join(lines)


# What a forked design worker needs (set just before the pool forks).
_JOB: dict[str, Any] = {}


def _sgx2(factory: ModelFactory, design: str) -> bool:
    """Whether the design's kernel has the SGX2 driver (a cost hint)."""
    try:
        from sgxsim.kernel.registry import kernel_class
        from sgxsim.kernel.sgx.driver import SgxDriverSgx2
        return issubclass(getattr(kernel_class(design), "sgx_driver_class", object), SgxDriverSgx2)
    except (LookupError, ValueError, ImportError):
        return False


@no_exit
def _check_design(design: str) -> list[dict]:
    factory, props, depth, out_dir, progress, frontier_mem, spill_dir = _JOB["args"]
    model = factory(design)
    return results_for(model, explore(model, props, depth=depth, progress=progress,
                                      frontier_mem=frontier_mem, spill_dir=spill_dir), props, out_dir)


def check(factory: ModelFactory, designs: list[str], props: list[str] | None = None, depth: int = 6,
          workers: int = 1, out_dir: Path | None = None, progress=None, engine: str = "local",
          address: str | None = None, frontier_mem: int | None = None) -> list[dict]:
    """Explore each design and decide ``props``.  With several designs and
    ``workers > 1`` the designs are spread over worker processes (each
    exploration is independent, so this parallelises almost perfectly); one
    design alone is explored with ``workers`` processes per BFS level.  The
    results are the same either way.  ``engine="ray"`` explores the designs
    one after another, each level shared out to ``workers`` Ray actors (one
    cluster for all: a local one, or the one at ``address``).  ``frontier_mem``:
    bytes of frontier each worker keeps in memory before it spills to disk
    (:mod:`sgxsim.check.spill`)."""
    props = list(props or PROPERTIES)
    results: list[dict] = []
    if engine == "ray":
        from sgxsim.check.ray_engine import session
        with session(address, workers):
            for d in designs:
                model = factory(d)
                exp = explore(model, props, depth=depth, workers=workers, progress=progress,
                              engine="ray", address=address, frontier_mem=frontier_mem)
                results.extend(results_for(model, exp, props, out_dir))
        return results
    if workers > 1 and len(designs) > 1 and "fork" in mp.get_all_start_methods():
        # The design processes are terminated on Ctrl-C, before they could
        # clean up: their spill files go under one directory removed here.
        spill_dir = new_dir() if frontier_mem is not None else None
        _JOB["args"] = (factory, props, depth, out_dir, progress, frontier_mem, spill_dir)
        # Longest first (SGX2 designs have ~6x the states of SGX1 ones), so
        # the last job to finish is a short one; results in the given order.
        order = sorted(range(len(designs)), key=lambda i: (not _sgx2(factory, designs[i]), i))
        by_design: dict[int, list[dict]] = {}
        try:
            with mp.get_context("fork").Pool(min(workers, len(designs))) as pool:
                jobs = [(i, pool.apply_async(_check_design, (designs[i],))) for i in order]
                for i, job in jobs:
                    by_design[i] = job.get()
        finally:
            _JOB.clear()
            remove_dir(spill_dir)
        return [r for i in range(len(designs)) for r in by_design[i]]
    for d in designs:
        model = factory(d)
        exp = explore(model, props, depth=depth, workers=workers, progress=progress,
                      frontier_mem=frontier_mem)
        results.extend(results_for(model, exp, props, out_dir))
    return results


# Column heads of the matrix (a legend under it spells them out).
ABBREV = {"no-escalation": "no-esc", "exec-origin": "exec-orig", "w-xor-x": "w-xor-x",
          "no-stale-pte": "stale-pte", "mprotect-honest": "honest", "run-code": "run-code",
          "dynamic-heap": "dyn-heap", "dynamic-code": "dyn-code", "restrict": "restrict"}
CELL = {"violated": "VIOL", "holds": "holds", "reachable": "reach", "unreachable": "unreach"}
MATRIX_WIDTH = 100


def _cell(r: dict | None) -> str:
    if r is None:
        return ""
    return CELL.get(r["verdict"], r["verdict"]) + (f" {len(r['trace'])}" if r["trace"] else "")


def render_matrix(results: list[dict], width: int = MATRIX_WIDTH) -> str:
    """The design x property matrix in at most ``width`` columns: abbreviated
    column heads with a legend, or, when even that is too wide (many
    properties), one row per design and property."""
    designs = list(dict.fromkeys(r["design"] for r in results))
    props = list(dict.fromkeys(r["property"] for r in results))
    cell = {(r["design"], r["property"]): r for r in results}
    heads = [ABBREV.get(p, p) for p in props]
    w = max(6, *(len(d) for d in designs))
    cws = [max(len(h), 7, *(len(_cell(cell.get((d, p)))) for d in designs))
           for h, p in zip(heads, props, strict=True)]
    lines = ["design".ljust(w) + "".join(" " + h.ljust(c) for h, c in zip(heads, cws, strict=True))]
    if len(lines[0]) <= width:
        lines.append("-" * len(lines[0]))
        lines[0] = lines[0].rstrip()
        for d in designs:
            lines.append((d.ljust(w) + "".join(" " + _cell(cell.get((d, p))).ljust(c)
                                               for p, c in zip(props, cws, strict=True))).rstrip())
        legend = [f"{h} = {p}" for h, p in zip(heads, props, strict=True) if h != p]
    else:
        pw = max(len(p) for p in props)
        lines = [f"{'design'.ljust(w)} {'property'.ljust(pw)} verdict", "-" * (w + pw + 10)]
        lines += [f"{d.ljust(w)} {p.ljust(pw)} {_cell(cell.get((d, p)))}".rstrip()
                  for d in designs for p in props if (d, p) in cell]
        legend = []
    lines.append("")
    for d in designs:
        rs = [r for r in results if r["design"] == d]
        ex = rs[0].get("explored") or max(rs, key=lambda r: (r["states"], r["seconds"]))
        lines.append(f"{d}: {ex['states']} distinct states explored, depth {ex['depth']}, {ex['seconds']} s")
    lines.append("VIOL n / reach n: violated / reached by a shortest trace of n steps")
    lines.append("holds / unreach: up to the depth bound")
    text = ""
    for item in legend:
        if text and len(text) + 2 + len(item) > width:
            lines.append(text)
            text = ""
        text = f"{text}, {item}" if text else item
    if text:
        lines.append(text)
    return "\n".join(lines)


def render_traces(results: list[dict]) -> str:
    out = []
    for r in results:
        if not r["trace"]:
            continue
        found = f"{r['states']} states" if "states" in r else f"walk {r['walk']}, shrunk"
        out.append(f"\n== {r['design']} / {r['property']}: {r['verdict']} at depth {len(r['trace'])} "
                   f"({found}, {r['seconds']} s): {r.get('reason', '')}")
        if "scenario" in r:
            out.append(f"   scenario: {r['scenario']}")
        for i, s in enumerate(r["trace"], 1):
            args = ", ".join(f"{k}={v}" for k, v in s.items()
                             if k not in ("action", "decisions", "events", "properties"))
            out.append(f"  {i}. {s['action']}({args})")
            out += [f"       {d}" for d in s["decisions"]]
    return "\n".join(out)


def replay_scenario(factory: ModelFactory, sc: scn.Scenario, design: str | None = None) -> dict:
    """Replay ``sc`` (on ``design`` if given): ``{"design", "lines" (each
    step with every layer's decisions), "verdict" (for the scenario's
    property), "at" (the step it fired at, or None), "first_refusal" ((step,
    Decision) of the first step that failed and the decision that made it
    fail, :func:`is_refusal`, or None)}``."""
    model = factory(design or sc.design)
    lines = [f"# design {model.design}, property {sc.prop}, expected {sc.expect} at step {sc.at_step}"]
    hit_at, first = None, None
    for i, (action, decisions, _events, hits) in enumerate(replay(model, sc.steps, [sc.prop]), 1):
        lines.append(f"{i}. {action}")
        lines += [f"     {d}" for d in decisions]
        if first is None:
            first = next(((i, dec) for dec in decisions if is_refusal(dec)), None)
        if sc.prop in hits and hit_at is None:
            hit_at = i
            lines.append(f"  => {sc.prop}: {hits[sc.prop]}")
    kind = PROPERTIES[sc.prop].kind
    if kind == "safety":
        v = "violated" if hit_at else "holds"
    else:
        v = "reachable" if hit_at else "unreachable"
    lines.append(f"verdict: {v}" + (f" at step {hit_at}" if hit_at else ""))
    return {"design": model.design, "lines": lines, "verdict": v, "at": hit_at, "first_refusal": first}


def run_scenario(factory: ModelFactory, sc: scn.Scenario, design: str | None = None):
    """Replay ``sc`` (on ``design`` if given); return ``(lines, verdict,
    step_number_or_None)`` where the verdict is for the scenario's property."""
    r = replay_scenario(factory, sc, design)
    return r["lines"], r["verdict"], r["at"]


def is_refusal(decision: Decision) -> bool:
    """Whether ``decision`` made its operation fail: it reached the caller
    (:class:`~sgxsim.trace.Refusal`: an errno returned, a signal delivered or
    reported by the vDSO, an ENCLU leaf's error code).  A failure a layer
    handled on the way is not one: EWB's SGX_NOT_TRACKED that
    sgx_encl_ewb() answers with ETRACK and a second EWB, EINIT's
    SGX_UNMASKED_EVENT that sgx_encl_init() retries, a fault's EBUSY before
    the access is retried."""
    return isinstance(decision, Refusal)


def compare_designs(factory: ModelFactory, sc: scn.Scenario, designs: list[str]) -> list[dict]:
    """Replay ``sc`` on every design: per design the verdict for the
    scenario's property, the step it fired at, and the first refusal (the
    step that failed first and the decision that made it fail)."""
    return [{k: r[k] for k in ("design", "verdict", "at", "first_refusal")}
            for r in (replay_scenario(factory, sc, d) for d in designs)]


def make_model(design: str, scope):
    """The model of ``design`` (a kernel name of ``sgxsim.kernel.registry``) in
    ``scope``: the real Machine driven through the scope's actions."""
    try:
        registry = importlib.import_module("sgxsim.kernel.registry")
        adapter = importlib.import_module("sgxsim.check.machine_model")
    except ModuleNotFoundError as e:
        raise LookupError(f"design {design!r}: {e.name} is not available in this build") from None
    if design not in registry.names():
        raise LookupError(f"no design named {design!r}; known: {', '.join(registry.names())}")
    return adapter.MachineModel(design, scope)
