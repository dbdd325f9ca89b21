"""Running fuzz cases, checking after every step, shrinking what fails.

A case is a kernel (or design), an EPC size and a list of steps
(:mod:`sgxsim.fuzz.ops`).  The runner renders each step into lines of Python
and executes them in a namespace holding the machine and the processes;
an ``OSError``, a ``Signal`` or a ``TaskBlocked`` (a call that would never
return: the task sleeps for ever on a lock an oops left held) is the model
answering bad input the way the kernel does, anything else is a finding, and so is a broken invariant after
the step or a step that runs longer than the bound.  After the last step
every process exits and nothing may be left behind.
"""

from __future__ import annotations

import random
import re
import signal
import textwrap
import time
import traceback
from dataclasses import dataclass, field

from sgxsim.fuzz import repro
from sgxsim.fuzz.invariants import check_after_exit, check_machine
from sgxsim.fuzz.ops import Live, draw, render
from sgxsim.kernel import registry
from sgxsim.kernel.errors import Signal, TaskBlocked

EPC_SIZES = (16, 24, 32, 64, 256)
STEP_SECONDS = 10.0  # a step running longer than this is a finding
# EPC pages one enclave entry of the test enclave may need at once: SECS, TCS,
# SSA frame, code, stack, data.  When fewer are free or reclaimable (the rest
# are SECS and VA pages of other enclaves, which no reclaimer can take), no
# kernel can make progress: the fault path retries for ever.
WORKING_SET = 6


class StepTimeout(BaseException):
    """Raised by the alarm when one step exceeds the bound."""


@dataclass
class Case:
    kernel: str
    epc_pages: int
    steps: list[tuple]


@dataclass
class Finding:
    kind: str  # "exception", "invariant", "timeout"
    signature: str  # what shrinking must keep
    detail: str
    step: int


@dataclass
class Outcome:
    lines: list[list[str]] = field(default_factory=list)  # per step executed
    finding: Finding | None = None
    steps: int = 0
    starved: str = ""  # the case stopped in EPC starvation (not a finding)


def make_case(seed: int, index: int, kernels: list[str] | None = None, max_steps: int = 60) -> Case:
    """Case ``index`` of a run with ``seed``: the same arguments give the same case."""
    names = kernels or registry.names()
    r = random.Random(f"sgxsim-fuzz:{seed}:{index}")
    kernel = names[index % len(names)]
    steps: list[tuple] = [("spawn",)]
    if r.random() < 0.7:
        steps.append(("build", 0, r.choice((1, 1, 4))))  # a plausible enclave first
    steps += [draw(r) for _ in range(r.randint(5, max_steps))]
    return Case(kernel, r.choice(EPC_SIZES), steps)


def _signature(text: str) -> str:
    text = re.sub(r"Vma\([^)]*\)", "Vma", text)
    return re.sub(r"0x[0-9a-f]+|\d+", "#", text)[:160]


# After the bound the alarm fires again every ALARM_REPEAT seconds until the
# step ends: a StepTimeout raised while the interpreter runs a finalizer or
# a weakref callback (the garbage collector runs them at any allocation,
# e.g. for objects an earlier case or test left) is printed and dropped, and
# with one alarm only, a step that never ends would run for ever.
ALARM_REPEAT = 0.2
_armed = False  # a step is running under the alarm: a late SIGALRM is ignored


def _alarm(signum, frame):
    if _armed:
        raise StepTimeout()


def run_case(case: Case, step_seconds: float = STEP_SECONDS) -> Outcome:
    """Execute ``case``; stop at the first finding."""
    out = Outcome()
    m = repro.Machine(kernel=case.kernel, epc_pages=case.epc_pages)
    ns: dict = {name: getattr(repro, name) for name in repro.__all__}
    ns["m"] = m
    ns["boot_frames"] = boot = frozenset(m.cpu.phys.frames)
    live = Live()
    use_alarm = hasattr(signal, "setitimer")
    old = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    try:
        for i, step in enumerate(case.steps + [("exit_all",)]):
            if step[0] == "exit_all":
                # Not those a signal ended or that sleep for ever (an oops).
                lines = [f"{v}.exit()" for v in live.procs if ns[v].alive]
            else:
                lines = render(step, live, {v: sorted(ns[v].files) for v in live.procs})
            if not lines:
                continue
            out.lines.append(lines)
            out.steps += 1
            finding = _execute(lines, ns, live, i, step_seconds, use_alarm)
            if finding is not None and finding.kind == "timeout" and _starved(m):
                out.starved = _starved(m)  # the interrupted step left no consistent state
                break
            if finding is None:
                bad = check_machine(m)
                if step[0] == "exit_all" and not bad:
                    bad = check_after_exit(m, boot)
                if bad:
                    finding = Finding("invariant", _signature(bad[0]), "\n".join(bad[:5]), i)
            if finding is not None:
                out.finding = finding
                break
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return out


def _starved(m) -> str:
    drv = getattr(m.kernel, "sgx", None)
    if drv is None:
        return ""
    usable = drv.sgx_nr_free_pages + len(drv.sgx_active_page_list)
    if usable >= WORKING_SET:
        return ""
    return (f"EPC starvation: {usable} of {len(drv.epc_pages)} EPC pages free or reclaimable, "
            f"{len(drv.encls)} enclaves hold the rest")


def _execute(lines: list[str], ns: dict, live: Live, i: int, bound: float,
             use_alarm: bool) -> Finding | None:
    global _armed
    ns.pop("_r", None)
    t0 = time.perf_counter()
    if use_alarm:
        _armed = True
        signal.setitimer(signal.ITIMER_REAL, bound, ALARM_REPEAT)
    try:
        for line in lines:
            # A code object, not the string: exec(str) runs through
            # PyRun_String, which marks a KeyboardInterrupt escaping it as
            # unhandled, and the interpreter then dies of SIGINT at exit
            # whatever status the command exits with (Ctrl-C: 130).
            exec(compile(line, "<string>", "exec"), ns)  # noqa: S102 -- the fuzzer's own rendered source
            _observe(line, ns, live)
    except (OSError, Signal, TaskBlocked):
        pass  # the model answering like the kernel (TaskBlocked: the call would never return)
    except StepTimeout:
        _armed = False  # (a repeat arriving before the finally disarms it is ignored)
        return Finding("timeout", f"timeout in {lines[-1].split('(')[0]}",
                       f"step took more than {bound} s: {lines[-1][:200]}", i)
    except RecursionError as e:
        return Finding("exception", "RecursionError", str(e), i)
    except Exception as e:  # noqa: BLE001 -- any other exception is what we hunt
        tb = traceback.extract_tb(e.__traceback__)[-1]
        where = f"{tb.filename.rsplit('/src/', 1)[-1]}:{tb.lineno}"
        return Finding("exception", f"{type(e).__name__} at {where}",
                       f"{type(e).__name__}: {e} at {where}\n{traceback.format_exc()[-1500:]}", i)
    finally:
        _armed = False
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
    if time.perf_counter() - t0 > bound:
        return Finding("timeout", f"slow {lines[-1].split('(')[0]}",
                       f"step took {time.perf_counter() - t0:.1f} s: {lines[-1][:200]}", i)
    return None


def _observe(line: str, ns: dict, live: Live) -> None:
    """Keep the live tables in step with what the line did."""
    lhs = line.split(" = ", 1)[0] if " = " in line.split("(", 1)[0] else ""
    if lhs.startswith("p") and lhs[1:].isdigit():
        live.procs.append(lhs)
    elif lhs == "_r":
        r = ns.get("_r")
        if isinstance(r, int):
            live.note(r)
        elif isinstance(r, tuple):  # build_enclave: (fd, base)
            pv = line.split("(", 1)[1].split(",", 1)[0]
            live.encls.setdefault(pv, []).append(r)
            for off in (0, 0x1000, 0x2000, 0x3000, 0x5000):
                live.note(r[1] + off)
    if line.endswith(".exit()"):
        pv = line.split(".", 1)[0]
        if pv in live.procs and not ns[pv].alive:
            live.procs.remove(pv)


# -- shrinking and reproductions ---------------------------------------------------------------
def reproduces(case: Case, finding: Finding, step_seconds: float) -> bool:
    got = run_case(case, step_seconds).finding
    return got is not None and got.kind == finding.kind and got.signature == finding.signature


def shrink(case: Case, finding: Finding, budget_s: float = 60.0,
           step_seconds: float = STEP_SECONDS) -> Case:
    """Delta debugging (ddmin) over the step list, within ``budget_s``."""
    t_end = time.perf_counter() + budget_s
    steps = list(case.steps[: finding.step + 1])
    n = 2
    while len(steps) >= 2 and time.perf_counter() < t_end:
        chunk = max(1, len(steps) // n)
        reduced = False
        for start in range(0, len(steps), chunk):
            cand = steps[:start] + steps[start + chunk:]
            if cand and reproduces(Case(case.kernel, case.epc_pages, cand), finding, step_seconds):
                steps, n, reduced = cand, max(n - 1, 2), True
                break
            if time.perf_counter() >= t_end:
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(steps), n * 2)
    return Case(case.kernel, case.epc_pages, steps)


def reproduction(case: Case, step_seconds: float = STEP_SECONDS) -> str:
    """A runnable Python program doing what ``case`` did, step by step."""
    out = run_case(case, step_seconds)
    src = [f"m = Machine(kernel={case.kernel!r}, epc_pages={case.epc_pages})",
           "boot_frames = set(m.cpu.phys.frames)"]
    for lines in out.lines:
        src.append("try:")
        src += [f"    {ln}" for ln in lines]
        src.append("except (OSError, Signal, TaskBlocked):")
        src.append("    pass")
    src.append("problems = check_machine(m)")
    if out.lines and out.lines[-1][0].endswith(".exit()"):
        src.append("problems = problems or check_after_exit(m, boot_frames)")
    src.append("assert not problems, problems")
    body = "\n".join(src)
    names = [n for n in repro.__all__ if re.search(rf"\b{n}\b", body)]
    head = []
    if out.finding is not None:
        head = textwrap.wrap(out.finding.detail.splitlines()[0], 96, initial_indent="# finding: ",
                             subsequent_indent="#   ")
    head += [f"from sgxsim.fuzz.repro import {', '.join(names)}", ""]
    return "\n".join(head) + "\n" + body + "\n"
