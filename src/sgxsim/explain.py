"""``sgxsim explain``: the chain of decisions behind one call, through the
layers, on one screen (docs/explain.md).

The call runs once more under a tracer that records which of the model's
functions ran (each one named after the kernel function or SDM leaf it
models), in which layer, which ones refused (the exception and the layer's
``why``) and which decisions the layers noted on the way.  Nothing of the
model is changed or read but the call's own frames and the machine's
decision log: the answer is what the code did, not a summary of it.

From Python::

    from sgxsim.explain import explain
    print(explain(p.mprotect, addr, 4096, PROT_READ | PROT_EXEC))
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sgxsim.trace import failure_outcome

# Module prefix -> layer, most specific first.
LAYERS = (("sgxsim.kernel.security", "lsm"), ("sgxsim.kernel.sgx", "sgx"), ("sgxsim.kernel.mm", "mm"),
          ("sgxsim.kernel.vfs", "vfs"), ("sgxsim.kernel.process", "syscall"), ("sgxsim.kernel.linux", "kernel"),
          ("sgxsim.hw", "hw"), ("sgxsim.user.vdso", "vdso"), ("sgxsim.user.enclave", "enclave"),
          ("sgxsim.check.runtime", "enclave"), ("sgxsim.designs", "design"))
# Bookkeeping helpers that decide nothing (shown only when they refuse).
QUIET = frozenset("""
    test_bit set_bit clear_bit created initialized addr being_reclaimed pages_in current current_personality
    find_vma trace_note warn paddr index is_valid epcm page frame copy_from copy_to file kstack_pageinfo
    cpu_has_sgx2 fdget mmget_not_zero mm_cpumask send_ipis stats note add take pack unpack arg get perms
    vma_pages vm_perms prot_str errno_name refuse sgx_encl_get sgx_encl_put lps alloc_frame page_align
    signal_pending syscall_errno map_count overlapping index_of
""".split())
# Modules of the checker's program, not of the system it drives.
UNTRACED = ("sgxsim.hw.measure", "sgxsim.hw.consts", "sgxsim.hw.structs", "sgxsim.hw.sigstruct")
MAX_LINES = 40


def layer_of(module: str) -> str | None:
    if module.startswith(UNTRACED):
        return None
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


@dataclass
class Node:
    name: str
    layer: str
    depth: int
    error: BaseException | None = None
    notes: list = field(default_factory=list)
    children: list = field(default_factory=list)
    origin: bool = False  # the refusal was raised here (not only passed through)
    fixed: bool = False  # a fault the kernel fixed (do_user_addr_fault returned)


@dataclass
class Explanation:
    """The tree of model calls of one call, the decisions the layers noted,
    and the outcome (``result`` or ``error``)."""

    title: str
    roots: list[Node]
    result: Any = None
    error: BaseException | None = None
    decisions: list = field(default_factory=list)
    step: bool = False  # a scenario step (its action reports errors, never raises)

    def refusal(self):
        """The decision of the layer that said no (``error.why``), or None."""
        return getattr(self.error, "why", None)

    def lines(self, max_lines: int = MAX_LINES) -> list[str]:
        """The chain in at most ``max_lines`` lines, but for the calls that
        refused and led there, which always stay (``max_lines``: an int >= 1)."""
        if type(max_lines) is not int:
            if isinstance(max_lines, bool) or not hasattr(max_lines, "__index__"):
                raise TypeError(f"argument 'max_lines' must be an int, not {type(max_lines).__name__}")
            max_lines = max_lines.__index__()
        if max_lines < 1:
            raise ValueError(f"argument 'max_lines' must be at least 1, not {max_lines}")
        out = [self.title]
        shown = _prune(self.roots, max_lines - 3)
        out += [_line(node, depth) for node, depth in shown]
        if self.error is not None:
            why = self.refusal()
            out.append(f"=> {type(self.error).__name__}: {self.error}" if why is None else
                       f"=> refused by {why}")
        else:
            refused = [d for d in self.decisions if _is_refusal(d)]
            if self.step:
                out.append(f"=> refused by {refused[0]}" if refused else "=> no layer refused anything")
            else:
                out.append("=> returned " + ("normally" if self.result is None else repr(self.result))
                           + (f"; first refusal on the way: {refused[0]}" if refused else ""))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _is_refusal(decision: Any) -> bool:
    from sgxsim.check.runner import is_refusal

    return is_refusal(decision)


def _line(node: Node, depth: int) -> str:
    why = getattr(node.error, "why", None) if node.origin else None
    name = node.name
    last = name.rsplit(".", 1)[-1]
    if why is not None and last.startswith("_") and not last.startswith("__"):
        # A model helper decided: show the kernel function or SDM rule it
        # recorded, not the helper's own name.
        name = why.rule
    text = f"{node.layer:<8}{'  ' * depth}{name}"
    if node.origin and node.error is not None:
        text += f"  -> {why.outcome}: {why.detail}" if why is not None else \
            f"  -> {type(node.error).__name__}: {node.error}"
        if node.fixed:
            text += " (fixed by the fault handler, retried)"
    elif node.error is not None:
        text += "  x"
    for d in node.notes:
        head = d.outcome if d.rule == node.name.rsplit(".", 1)[-1] else f"{d.rule}: {d.outcome}"
        text += f"  [{head}: {d.detail}]" if d.detail else f"  [{head}]"
    return text


def _shown(n: Node) -> bool:
    """A node worth a line: it raised a refusal or noted something, or it
    models a kernel function (the model's helpers, ``_x``, are see-through)."""
    last = n.name.rsplit(".", 1)[-1]
    return n.origin or bool(n.notes) or (last not in QUIET and not (last.startswith("_")
                                                                    and not last.startswith("__")))


def _flatten(nodes: list[Node], depth: int = 0, parents: tuple = ()) -> list[tuple[Node, int, tuple]]:
    out: list[tuple[Node, int, tuple]] = []
    for n in nodes:
        if not _shown(n):
            out += _flatten(n.children, depth, parents)
            continue
        out.append((n, depth, parents))
        out += _flatten(n.children, depth + 1, parents + (id(n),))
    return out


def _prune(roots: list[Node], budget: int) -> list[tuple[Node, int]]:
    """The tree flattened to at most ``budget`` lines: every refusal that
    was not fixed, every noted decision and the calls leading to them, then
    the shallowest of the other calls."""
    flat = _flatten(roots)
    keep: set[int] = set()
    for n, _d, parents in flat:
        if (n.origin and not n.fixed) or n.notes:
            keep.add(id(n))
            keep.update(parents)
    chosen = set(keep)
    for depth in range(64):
        level = [n for n, d, _p in flat if d == depth and id(n) not in chosen]
        if len(chosen) + len(level) > budget:
            break
        chosen.update(id(n) for n in level)
    return [(n, d) for n, d, _p in flat if id(n) in chosen]


def _short(code: Any, frame: Any, layer: str) -> str:
    """``__foo`` is modelled as ``_foo``: show the kernel's name.  A design's
    own function shows its class (what the design changed), and so does a
    method of an LSM policy or of a vm_operations_struct."""
    name = code.co_name
    name = "_" + name if name.startswith("_sgx") else name
    if layer == "design":
        return code.co_qualname.rsplit(".", 1)[0] + "." + name if "." in code.co_qualname else name
    self = frame.f_locals.get("self")
    cls = type(self).__name__ if self is not None else ""
    if cls.endswith(("Policy", "VmOps", "Module")):
        return f"{cls}.{name}"
    return name


def explain(fn: Callable, *args: Any, machine: Any = None, title: str | None = None, **kw: Any) -> Explanation:
    """Call ``fn(*args, **kw)`` under the tracer; never raises what the call
    raises (it is in ``.error``).  ``machine`` (or the owner of a bound
    ``Process`` method) gives the decision log to enable while it runs."""
    owner = getattr(fn, "__self__", None)
    trace = getattr(machine, "trace", None)
    if trace is None and owner is not None:
        kernel = getattr(owner, "kernel", None)
        trace = getattr(kernel, "trace", None)
    was = trace.enabled if trace is not None else None
    if trace is not None:
        trace.enabled = True
        trace.take()
    roots: list[Node] = []
    stack: list[tuple[Any, Node | None]] = []
    seen_records = [0]
    fixed: set[tuple] = set()  # the faults do_user_addr_fault fixed

    def attach_notes() -> None:
        if trace is None:
            return
        recs = trace.records
        if len(recs) < seen_records[0]:  # the log was taken (a new list)
            seen_records[0] = 0
        if len(recs) > seen_records[0]:
            node = next((n for _, n in reversed(stack) if n is not None), None)
            for d in recs[seen_records[0]:]:
                # (failures show as the exception that carried them, or not at all)
                if node is not None and d.outcome and not failure_outcome(d.outcome):
                    node.notes.append(d)
            seen_records[0] = len(recs)

    def local(frame, event, arg):
        if event == "exception" and stack and stack[-1][0] is frame and stack[-1][1] is not None:
            node = stack[-1][1]
            if node.error is not arg[1]:
                node.error = arg[1]
                # Raised here when no child passed it (or its equal) up.
                node.origin = not any(c.error is arg[1] or _key(c.error) == _key(arg[1])
                                      for c in node.children if c.error is not None)
        elif event == "return" and stack and stack[-1][0] is frame:
            attach_notes()
            _f, node = stack.pop()
            if node is not None and node.name == "do_user_addr_fault" and node.error is None:
                fixed.add(_key(frame.f_locals.get("pf")))
        return local

    def tracer(frame, event, arg):
        if event != "call":
            return None
        attach_notes()
        layer = layer_of(frame.f_globals.get("__name__", ""))
        name = frame.f_code.co_name
        if layer is None or name.startswith("<") or (name.startswith("__") and name.endswith("__")):
            stack.append((frame, None))
        else:
            parent = next((n for _, n in reversed(stack) if n is not None), None)
            node = Node(_short(frame.f_code, frame, layer), layer, 0 if parent is None else parent.depth + 1)
            (parent.children if parent is not None else roots).append(node)
            stack.append((frame, node))
        frame.f_trace_lines = False
        return local

    result, error = None, None
    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = fn(*args, **kw)
    except Exception as e:  # the call's own refusal: reported, not raised
        error = e
    finally:
        sys.settrace(old)
        decisions = trace.take() if trace is not None else []
        if trace is not None:
            trace.enabled = was
    _mark_fixed(roots, fixed)
    name = getattr(fn, "__name__", "call")
    shown_args = ", ".join([_fmt(a) for a in args] + [f"{k}={_fmt(v)}" for k, v in kw.items()])
    return Explanation(title or f"{name}({shown_args})", roots, result, error, decisions)


def _key(exc: Any) -> tuple:
    return (type(exc), str(exc))


def _mark_fixed(nodes: list[Node], fixed: set[tuple]) -> None:
    for n in nodes:
        n.fixed = n.error is not None and _key(n.error) in fixed
        _mark_fixed(n.children, fixed)


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:#x}" if v >= 4096 else str(v)
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    return repr(v)


def explain_step(model: Any, steps: list, n: int) -> Explanation:
    """Replay steps 1..n-1 of a scenario on ``model`` (a
    :class:`~sgxsim.check.machine_model.MachineModel`), then explain step
    ``n``; a step the model's scope does not offer is a ValueError naming it."""
    if hasattr(model, "scope"):
        from sgxsim.check.scenario import check_steps

        check_steps(steps[:n], model.scope())
    state = model.initial()
    for a in steps[: n - 1]:
        state = model.step(state, a).state
    action = steps[n - 1]
    state = model.thaw(model.freeze(state))
    ex = explain(model.apply, state, action, True, machine=state.m,
                 title=f"step {n} on {model.design}: {action}")
    if ex.error is None:
        # The model's action reports errno/faults instead of raising them:
        # the step's decisions say who refused.
        ex.decisions, ex.result, ex.step = ex.result.decisions, None, True
    return ex
