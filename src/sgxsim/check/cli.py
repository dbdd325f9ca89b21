"""The ``sgxsim check`` and ``sgxsim run`` commands (registered in sgxsim.cli)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from sgxsim.check import runner
from sgxsim.check import scenario as scn
from sgxsim.check.explorer import NotDeterministic
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.ray_engine import EngineError
from sgxsim.check.scope import ACTIONS, OPTIONAL_ACTIONS, PERMS, POLICIES, SCOPE_HELP, SOURCES, Scope
from sgxsim.check.spill import ENV_DIR as SPILL_DIR
from sgxsim.check.spill import bound_from_env, bound_of
from sgxsim.check.symmetry import group, swaps

DESIGNS = ("no-hook", "rfc-2019", "v40", "linux-5.11", "sgx2-rfc", "linux-6.0", "safe-to-execute",
           "propagate-source", "linux-6.12")
# Variants checked only when named (v40 with a check-only driver).
VARIANTS = ("v40-checkonly",)


def plugin_options(fn):
    """``--design-file`` and ``--property-file`` (repeatable), for every
    command that takes a design or a property (docs/writing-a-design.md)."""
    fn = click.option("--property-file", "property_files", multiple=True,
                      type=click.Path(dir_okay=False, path_type=Path),
                      help="A Python file registering properties (@register_property); repeatable.")(fn)
    return click.option("--design-file", "design_files", multiple=True,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="A Python file registering designs (@register(\"name\")); repeatable.")(fn)


class BadInput(click.ClickException):
    """A design or property file (or an installed package's entry point)
    that cannot be loaded, or whose code raised while the command used it:
    bad input, exit status 2 like a bad option or scenario file, so that 1
    keeps its one meaning per command (``run``: not the expected verdict)."""

    exit_code = 2


def load_plugins(design_files, property_files=()) -> list[str]:
    """Installed packages' entry points, then the given files; returns the
    designs the files registered.  A broken file is a clean error (exit
    status 2)."""
    from sgxsim.plugins import PluginError, load_entry_points, load_files

    try:
        load_entry_points()
        return load_files(design_files, property_files).designs
    except PluginError as e:
        raise BadInput(str(e)) from None


@contextlib.contextmanager
def user_code_errors():
    """An exception raised in a user's design or property file (sys.exit()
    too) is a clean error naming the file and line (sgxsim.plugins.user_error)
    with exit status 2: the design is bad input, not a verdict; anything else
    propagates (Ctrl-C, and the command's own exit status)."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, KeyboardInterrupt):
        raise
    except NotDeterministic as e:  # the explorer's check on a design's apply
        raise BadInput(str(e)) from None
    except (Exception, SystemExit) as e:
        from sgxsim.plugins import user_error

        msg = user_error(e)
        if msg is None:
            raise
        raise BadInput(msg) from None


@contextlib.contextmanager
def output_errors(opt: str):
    """An output file of ``opt`` that cannot be written once the work is
    done (its name taken by a directory, a full disk) is a clean error
    naming it (sgxsim.outfile.OutputError); the directory itself was
    probed before the work (writable_dir)."""
    from sgxsim.outfile import OutputError

    try:
        yield
    except OutputError as e:
        raise OutputFailed(f"{opt} {e.filename}: {e.strerror}") from None


class OutputFailed(click.ClickException):
    """An output file that could not be written after the work: exit status
    74 (sysexits.h's EX_IOERR), so that 1 keeps its one meaning per command
    (``run``: not the expected verdict; ``fuzz``: something found;
    ``sigstruct``: the signature does not verify)."""

    exit_code = 74


def design_names(names, opt: str = "--design") -> list[str]:
    """``names`` checked against the registry (any registered kernel with an
    SGX driver: built in, from a file or an entry point)."""
    from sgxsim.kernel.registry import kernel_class
    from sgxsim.kernel.registry import names as known

    registered = known()
    usable = [n for n in registered if getattr(kernel_class(n), "sgx_driver_class", None) is not None]
    bad = [n for n in names if n not in usable]
    if bad and bad[0] in registered:  # the generic "linux" (or a design file's kernel without SGX)
        raise click.BadParameter(f"{bad[0]!r} is a kernel without an SGX driver (no /dev/sgx_enclave); "
                                 f"kernels with one: {', '.join(usable)}", param_hint=opt)
    if bad:
        raise click.BadParameter(f"unknown design {bad[0]!r}; known: {', '.join(usable)}", param_hint=opt)
    return list(names)


def property_names(names) -> list[str]:
    bad = [n for n in names if n not in PROPERTIES]
    if bad:
        raise click.BadParameter(f"unknown property {bad[0]!r}; known: {', '.join(PROPERTIES)}",
                                 param_hint="--property")
    return list(names)


def _factory(scope: Scope):
    def make(design: str):
        try:
            return runner.make_model(design, scope)
        except LookupError as e:  # a design this build cannot make: bad input
            raise BadInput(str(e)) from None
    return make


def scenario_design(file: Path, sc: scn.Scenario, design: str | None) -> str:
    """The design a scenario runs on (``--design`` or its own), checked: a
    registered design, with MDWE when the scope asks for it; else a usage
    error (exit status 2) naming the option or the file's key."""
    from sgxsim.check.machine_model import mdwe_missing

    name = design or sc.design
    design_names([name], "--design" if design else f"{file}: key 'design'")
    why = mdwe_missing(name) if sc.scope.get("mdwe") else None
    if why and design:
        raise click.BadParameter(f"{why}; {file} has scope.mdwe = true", param_hint="--design")
    if why:
        raise click.UsageError(f"{file}: key 'scope.mdwe': {why}")
    return name


def _with_mdwe(names: list[str]) -> tuple[list[str], list[str]]:
    """The designs whose mm has MDWE (6.3+), and the others."""
    from sgxsim.kernel.registry import kernel_class
    from sgxsim.kernel.sys import MDWE_RELEASE

    has = [n for n in names if kernel_class(n).mm_release >= MDWE_RELEASE]
    return has, [n for n in names if n not in has]


def progress_line(exp, depth: int, nprops: int) -> str:
    """``design: level d/D, N states (R/s), k/P decided, T s`` after a level."""
    rate = exp.states / exp.seconds if exp.seconds > 0 else 0.0
    return (f"{exp.design}: level {exp.depth}/{depth}, {exp.states} states ({rate:,.0f}/s), "
            f"{len(exp.findings)}/{nprops} decided, {exp.seconds:.1f} s")


class Progress:
    """The explorer's progress after every BFS level, on stderr: a bar of the
    levels with states, rate and properties decided, drawn with rich on a
    terminal; plain lines, flushed one by one, when stderr is a pipe or a
    file (``make run > log`` shows life).  Called in forked workers too, so
    it holds no console, only what to print."""

    def __init__(self, depth: int, nprops: int, rich_output: bool):
        self.depth, self.nprops, self.rich_output = depth, nprops, rich_output

    def __call__(self, exp) -> None:
        line = progress_line(exp, self.depth, self.nprops)
        if self.rich_output:
            from rich.console import Console

            done = min(exp.depth, self.depth)
            bar = "[green]" + "█" * done + "[/green][dim]" + "░" * (self.depth - done) + "[/dim]"
            Console(stderr=True, highlight=False).print(f"  {bar} {line}")
        else:
            sys.stderr.write(f"  {line}\n")
            sys.stderr.flush()


def _on_sigint(parent: int, signum, frame) -> None:
    # Ctrl-C reaches the whole process group: the forked workers ignore it
    # (the parent stops them), the parent stops the run cleanly.
    if os.getpid() == parent:
        raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_ctrl_c(out: Path, done: str):
    """Ctrl-C during a search or a simulation: exit status 130 and one line
    on stderr saying where the scenario files of the designs ``done``
    (explored, simulated) before it are; no results (a design's results
    come only when it is finished)."""
    # A SIGINT ignored at start (a shell's background job, nohup) stays
    # ignored, as Python itself leaves it: Ctrl-C is not meant for us then.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        old = signal.SIG_IGN
    else:
        old = signal.signal(signal.SIGINT, functools.partial(_on_sigint, os.getpid()))
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"interrupted: no results (the scenario files of designs already {done} are in {out})",
                   err=True)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, old)


def _subset(opt: str, text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The items of a comma list option, each once, in order; an empty list
    or an empty item (``R,,RW``) is refused like an unknown one."""
    got = [x.strip() for x in text.split(",")]
    if any(x not in allowed for x in got):
        raise ValueError(f"{opt} takes a comma list of {', '.join(allowed)}, not {text!r}")
    return tuple(dict.fromkeys(got))


@click.command(help="Explore every design's reachable states breadth first up to the depth bound and "
                    "decide each property (holds/violated, reachable/unreachable), printing the "
                    "shortest trace of every violation or witness.\n\nDefault scope and its restrictions:\n\n"
                    + SCOPE_HELP)
@click.option("--design", "designs", multiple=True, metavar="NAME",
              help="Design to check (repeatable; default: " + ", ".join(DESIGNS) + " and the designs of "
                   "--design-file; any registered kernel with an SGX driver, e.g. " + ", ".join(VARIANTS)
                   + ").")
@click.option("--property", "props", multiple=True, metavar="NAME",
              help="Property to decide (repeatable; default: " + ", ".join(PROPERTIES) + " and the "
                   "properties of --property-file).")
@plugin_options
@click.option("--depth", default=6, show_default=True, type=click.IntRange(0, 64),
              help="Maximum number of actions after the initial state.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes: several designs are spread over them, one design "
                   "alone is shared out per BFS level (same results either way).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: the embedded engine (worker processes on this machine); ray: the BFS levels "
                   "shared out to --workers Ray actors, the seen-set partitioned by state digest "
                   "(same results; needs 'sgxsim[ray]'; docs/checker-reach.md).")
@click.option("--address", default=None, metavar="ADDR",
              help="With --engine ray: the Ray cluster to connect to (e.g. 10.0.0.5:6379 or auto); "
                   "default: start a local cluster on the loopback.")
@click.option("--frontier-mem", default=None, type=click.FloatRange(min=0, min_open=True), metavar="MB",
              help="Megabytes of frozen states each worker keeps in memory per BFS level before it "
                   "writes the frontier to disk in chunks (read back in order: same results; "
                   "default $SGXSIM_FRONTIER_MEM, else no bound; files under $SGXSIM_SPILL_DIR or "
                   "the temporary directory, removed at the end).")
@click.option("--pages", default=1, show_default=True, type=int,
              help="Explored enclave pages besides the runtime's five (1 to 64).")
@click.option("--policy", default="selinux", show_default=True, type=click.Choice(POLICIES))
@click.option("--perms", default=",".join(PERMS), show_default=True,
              help="Narrow the protections/SECINFO permissions offered (comma list).")
@click.option("--map-perms", default=None,
              help="Narrow the protections offered to mmap only (comma list; default --perms).")
@click.option("--sources", default=",".join(SOURCES), show_default=True,
              help="Narrow the ADD_PAGES source kinds offered (comma list).")
@click.option("--actions", default=",".join(ACTIONS), show_default=True,
              help="Narrow the actions offered (comma list); mseal and mremap are offered only when "
                   "listed.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 2),
              help="2: the program may fork once (action fork); the child inherits the enclave mappings "
                   "and may mmap/mprotect/munmap and enter the enclave; steps name their proc.")
@click.option("--enclaves", default=1, show_default=True, type=click.IntRange(1, 2),
              help="2: two enclaves share an EPC too small for both, so building or using one makes the "
                   "reclaimer write pages of the other back (EWB); steps name their enclave.")
@click.option("--child-ioctls", is_flag=True,
              help="With --processes 2: the child may issue the enclave ioctls too (ADD_PAGES, INIT, "
                   "the SGX2 ones), as the kernel lets any holder of the fd; their steps name their proc.")
@click.option("--mdwe", is_flag=True,
              help="The process turns on MDWE (prctl PR_SET_MDWE) first; kernels with MDWE only.")
@click.option("--symmetry/--no-symmetry", default=True, show_default=True,
              help="The exhaustive search (not --simulate) explores one state of each set of mirror "
                   "images under renaming the explored pages "
                   "(the swap at --pages 2; the reversal at 3 or more when mprotect is not offered; "
                   "none when --actions offers mremap) and, "
                   "with --processes 2, exchanging parent and child where both are offered the same "
                   "steps; same verdicts and shortest trace lengths, fewer states; off by itself with "
                   "--enclaves 2; docs/checker-reach.md).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object {\"scope\": {...}, \"results\": [...]}.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("scenarios"),
              show_default=True, help="Directory for the scenario file of every trace.")
@click.option("--html", "html_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for an HTML page per trace (its permission map, step by step) and "
                   "index.html with the matrix (docs/report.md).")
@click.option("--simulate", is_flag=True,
              help="Simulation mode: seeded random walks (each with its own action bias) instead "
                   "of the exhaustive search; every violation is shrunk and written as a scenario. "
                   "Verdicts are 'violated' or 'no violation in N walks', never 'holds'.")
@click.option("--walks", default=1000, show_default=True, type=click.IntRange(1),
              help="With --simulate: the number of random walks.")
@click.option("--walk-depth", default=30, show_default=True, type=click.IntRange(1, 1000),
              help="With --simulate: the actions per walk.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="With --simulate: the seed (the same seed gives the same walks and traces).")
def check(designs, props, design_files, property_files, depth, workers, engine, address, frontier_mem, pages,
          policy, perms, map_perms, sources, actions, processes, enclaves, child_ioctls, mdwe, symmetry,
          as_json, out, html_dir, simulate, walks, walk_depth, seed) -> None:
    if address is not None and engine != "ray":
        raise click.UsageError("--address needs --engine ray")
    if simulate and engine != "local":
        raise click.UsageError("--simulate runs on the local engine (--workers N); --engine ray is "
                               "for the exhaustive search")
    # An option of the other mode is refused, not ignored.
    ctx = click.get_current_context()
    given = [p for p in ("depth", "frontier_mem", "symmetry", "walks", "walk_depth", "seed")
             if ctx.get_parameter_source(p) is not ParameterSource.DEFAULT]
    other = [p for p in given if (p in ("depth", "frontier_mem", "symmetry")) == simulate]
    if other:
        opt = "--" + other[0].replace("_", "-")
        if other[0] == "symmetry":
            opt = "--symmetry" if symmetry else "--no-symmetry"
            raise click.UsageError(f"{opt}: the symmetry reduction is the exhaustive search's; "
                                   "--simulate walks without it")
        raise click.UsageError(f"{opt} bounds the exhaustive search; --simulate takes --walks and "
                               "--walk-depth" if simulate else f"{opt} needs --simulate")
    # Refuse an unwritable --out/--html now, not after the search.
    for opt, d in (("--out", out), ("--html", html_dir)):
        if d is not None:
            writable_dir(d, opt)
    own = load_plugins(design_files, property_files)
    designs = design_names(designs) if designs else list(DESIGNS) + [d for d in own if d not in DESIGNS]
    props = property_names(props) if props else list(PROPERTIES)
    designs, props = list(dict.fromkeys(designs)), list(dict.fromkeys(props))  # each once, in order
    if mdwe:
        from sgxsim.check.machine_model import mdwe_missing

        why = next(filter(None, map(mdwe_missing, designs)), None)
        if why:
            raise click.BadParameter(why, param_hint="--mdwe")
    try:
        scope = Scope(pages=pages, policy=policy, perms=_subset("--perms", perms, PERMS),
                      map_perms=_subset("--map-perms", map_perms, PERMS) if map_perms is not None else None,
                      sources=_subset("--sources", sources, SOURCES),
                      actions=_subset("--actions", actions, ACTIONS + OPTIONAL_ACTIONS), mdwe=mdwe,
                      processes=processes, enclaves=enclaves, child_ioctls=child_ioctls, symmetry=symmetry)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    narrowed = narrowing(scope)
    if simulate:
        with stop_on_ctrl_c(out, "simulated"), user_code_errors(), output_errors("--out"):
            results = runner.simulate(_factory(scope), designs, props, walks=walks, walk_depth=walk_depth,
                                      seed=seed, workers=workers, out_dir=out)
        if as_json:
            click.echo(json.dumps({"scope": {**scope.as_dict(), **narrowed}, "results": results}, indent=1))
        else:
            click.echo(runner.render_simulation(results))
            for line in search_notes(narrowed, {}):
                click.echo(line)
            click.echo(runner.render_traces(results))
        _write_html(html_dir, results, scope, as_json, simulated=True, notes=search_notes(narrowed, {}))
        return
    try:
        mem = bound_of(frontier_mem, "the bound", str(frontier_mem)) if frontier_mem is not None \
            else bound_from_env()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--frontier-mem") from None
    if mem is not None and os.environ.get(SPILL_DIR):  # refused now, not when a level spills
        writable_dir(Path(os.environ[SPILL_DIR]), "$" + SPILL_DIR)
    try:
        with stop_on_ctrl_c(out, "explored"), user_code_errors(), output_errors("--out"):
            results = runner.check(_factory(scope), designs, props,
                                   depth=depth, workers=workers, out_dir=out, engine=engine,
                                   address=address, frontier_mem=mem,
                                   progress=Progress(depth, len(props), sys.stderr.isatty()))
    except EngineError as e:
        err = click.ClickException(str(e))
        err.exit_code = e.status  # 2: a bad --address or no Ray, like a bad option
        raise err from None
    # The reductions the explorer used for each design (check/symmetry.py:
    # its seen-key with these properties), not what the switch asked for.
    with user_code_errors():
        used = {d: reductions(scope, d, props) for d in designs}
    # (said only where there was something to fold: two pages or processes)
    foldable = scope.symmetry and (scope.pages > 1 or scope.processes > 1)
    notes = search_notes(narrowed, used if foldable else {})
    if as_json:
        keys = ("design", "property", "verdict", "depth", "states", "seconds", "trace")
        # "symmetry": a reduction ran for every design (each result's
        # "symmetry" lists the ones its design's search used); with two
        # processes "process_swap": the parent/child swap did for every one.
        swap = {"process_swap": all("process-swap" in u for u in used.values())} if scope.processes > 1 else {}
        click.echo(json.dumps({"scope": {**scope.as_dict(), **narrowed, "depth": depth,
                                         "symmetry": all(used.values()), **swap},
                               "results": [{**{k: r[k] for k in keys}, "symmetry": used[r["design"]]}
                                           for r in results]}, indent=1))
    else:
        click.echo(runner.render_matrix(results))
        for line in notes:
            click.echo(line)
        click.echo(runner.render_traces(results))
    _write_html(html_dir, results, scope, as_json, notes=notes)


def narrowing(scope: Scope) -> dict:
    """--perms, --map-perms, --sources and --actions as the search used
    them, each where it differs from the default (a "holds" is then a
    verdict within them only; --actions may also add mseal or mremap)."""
    defaults = {"perms": PERMS, "map_perms": None, "sources": SOURCES, "actions": ACTIONS}
    return {k: list(getattr(scope, k)) for k, v in defaults.items() if getattr(scope, k) != v}


def reductions(scope: Scope, design: str, props: list[str]) -> list[str]:
    """The symmetry reductions the explorer's seen-key uses for ``design``
    and ``props`` (symmetry.seen_key): "pages" (a renaming of the explored
    pages), "process-swap" (parent and child, where it applies)."""
    model = _factory(scope)(design)
    return [name for name, on in (("pages", bool(group(model, props))), ("process-swap", swaps(model, props)))
            if on]


def search_notes(narrowed: dict, used: dict[str, list[str]]) -> list[str]:
    """Lines for the text output and the HTML index: the options that
    narrowed the search, and with --symmetry on, the designs whose search
    used no reduction (``used``: design -> reductions; {} to say nothing)."""
    notes = []
    if narrowed:
        opts = " ".join(f"--{k.replace('_', '-')} {','.join(v)}" for k, v in narrowed.items())
        notes.append(f"narrowed by {opts}: a property that holds (or a goal unreachable) does so only "
                     "within them")
    if used and not all(used.values()):
        by = ", ".join(f"{d} {'+'.join(u) or 'none'}" for d, u in used.items())
        notes.append(f"symmetry reduction used: {by} (docs/checker-reach.md says when it applies)")
    return notes


def _write_html(html_dir: Path | None, results: list[dict], scope: Scope, as_json: bool,
                simulated: bool = False, notes: list[str] = ()) -> None:
    """--html, in every mode (simulation and --json wrote none); with --json
    the path goes to stderr, so stdout stays one JSON object.  ``notes``
    (search_notes) follow the index's note."""
    if html_dir is None:
        return
    from sgxsim.report import BFS_NOTE, SIM_NOTE, write_run

    note = " ".join([SIM_NOTE if simulated else BFS_NOTE, *(f"{n[0].upper()}{n[1:]}." for n in notes)])
    with user_code_errors(), output_errors("--html"):
        index = write_run(html_dir, results, _factory(scope), note)
    click.echo(f"\nHTML report: {index}", err=as_json)


def not_an_input(out: Path, inputs, opt: str) -> None:
    """Refuse (exit status 2, before the work) an output file that is one of
    the input files: the page would overwrite the scenario it draws."""
    for f in inputs:
        with contextlib.suppress(OSError):  # an output not there yet is no input
            if os.path.samefile(out, f):
                raise click.BadParameter(f"{out} is the input file {f}: it would be overwritten",
                                         param_hint=opt)


def writable_dir(d: Path, opt: str) -> None:
    """Create ``d`` (and parents) and make sure a file can be written there."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".sgxsim-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise click.BadParameter(f"{d} is not a writable directory: {e.strerror or e}",
                                 param_hint=opt) from None


@click.command(help="Replay a scenario file step by step, printing each layer's decisions and "
                    "whether the scenario's property is violated or reached.\n\n"
                    "Exit status: 0 when the replay gives the verdict the scenario expects, at the step it "
                    "expects (also with --design: the scenario's expectation is the reference), 1 when it "
                    "does not (a last line says what happened instead and the first refusal), 2 for a "
                    "usage error, a bad scenario file, or a design or property file that does not load or "
                    "raises during the replay; 74 for an --html page not written after the replay, 130 for "
                    "Ctrl-C (docs/scenarios.md).  With --all-designs: 0.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--design", default=None, metavar="NAME",
              help="Replay on this design instead of the scenario's own (any registered kernel with an "
                   "SGX driver).")
@click.option("--all-designs", is_flag=True,
              help="Replay on every design and print one line each: the verdict and the first "
                   "refusal (which layer and rule said no, at which step).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the trace as a self-contained HTML page: the permission map of every page at "
                   "every step (docs/report.md).")
@plugin_options
def run(file: Path, design: str | None, all_designs: bool, html_file: Path | None, design_files,
        property_files) -> None:
    if html_file is not None:  # before anything: the page would overwrite an input
        not_an_input(html_file, [file, *design_files, *property_files], "--html")
    own = load_plugins(design_files, property_files)
    if design is not None:
        design_names([design])
    if all_designs and design is not None:
        raise click.UsageError("--design and --all-designs exclude each other")
    if html_file is not None and all_designs:
        raise click.UsageError("--html draws one design: leave out --all-designs")
    if html_file is not None:  # refused now, not after the replay (exit status 1 is a verdict)
        writable_dir(html_file.parent, "--html")
    sc = read_scenario(file)
    if all_designs:  # (replayed only where MDWE exists if the scope asks for it)
        design_names([sc.design], f"{file}: key 'design'")
    else:
        scenario_design(file, sc, design)
    scope = Scope(**sc.scope)
    with user_code_errors():
        _run(file, sc, scope, design, all_designs, html_file, own)


def _run(file, sc, scope, design, all_designs, html_file, own) -> None:
    if all_designs:
        click.echo(f"# {file}: {sc.prop}, expected {sc.expect} on {sc.design} at step {sc.at_step}")
        names = list(DESIGNS + VARIANTS) + own
        if scope.mdwe:  # a scenario made with --mdwe replays only where MDWE exists
            names, without = _with_mdwe(names)
            if without:
                click.echo(f"# not replayed (no MDWE in their mm): {', '.join(without)}")
        for r in runner.compare_designs(_factory(scope), sc, names):
            v = r["verdict"] + (f" at step {r['at']}" if r["at"] else "")
            f = r["first_refusal"]
            why = f"step {f[0]}: {f[1]}" if f else "-"
            click.echo(f"{r['design']:<18} {v:<22} {why}")
        return
    r = runner.replay_scenario(_factory(scope), sc, design)
    click.echo("\n".join(r["lines"]))
    if html_file is not None:
        from sgxsim.report import write_trace

        with output_errors("--html"):
            write_trace(html_file, _factory(scope)(design or sc.design), sc.steps, sc.prop, expect=sc.expect,
                        at_step=sc.at_step, reason=sc.reason)
        click.echo(f"HTML report: {html_file}")
    got = r["verdict"] + (f" at step {r['at']}" if r["at"] else "")
    want = sc.expect + (f" at step {sc.at_step}" if sc.at_step else "")
    if got != want:
        f = r["first_refusal"]
        first = f"first refusal at step {f[0]}: {f[1]}" if f else "no layer refused any step"
        where = f" on {sc.design}" if r["design"] != sc.design else ""
        click.echo(f"on {r['design']} this scenario gives {got} (the scenario expects {want}{where}); {first}")
        raise SystemExit(1)


def read_scenario(file: Path) -> scn.Scenario:
    """The scenario in ``file``, validated; a bad one is a usage error (exit
    status 2) naming the file, step and key."""
    try:
        return scn.read(file)
    except scn.ScenarioError as e:
        raise click.UsageError(str(e)) from None


@click.command(help="Explain one step of a scenario: the chain of the model's calls through the layers "
                    "(each named after the kernel function or SDM leaf it models), which one refused and why, "
                    "and the decisions noted on the way; one screen (docs/explain.md).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--step", "step", required=True, type=int, help="The step to explain (1 = the first).")
@click.option("--design", default=None, metavar="NAME",
              help="Explain it on this design instead of the scenario's own.")
@click.option("--lines", "max_lines", default=40, show_default=True, type=click.IntRange(8, 10_000),
              help="At most this many lines (the calls that refused and led there always stay).")
@plugin_options
def explain(file: Path, step: int, design: str | None, max_lines: int, design_files, property_files) -> None:
    from sgxsim.explain import explain_step

    load_plugins(design_files, property_files)
    sc = read_scenario(file)
    scenario_design(file, sc, design)
    if not sc.steps:
        raise click.BadParameter(f"{file} has no steps to explain", param_hint="--step")
    if not 1 <= step <= len(sc.steps):
        raise click.BadParameter(f"{file} has steps 1 to {len(sc.steps)}, not {step}", param_hint="--step")
    model = _factory(Scope(**sc.scope))(design or sc.design)
    with user_code_errors():
        click.echo("\n".join(explain_step(model, sc.steps, step).lines(max_lines)))


@click.command(help="Draw scenario files as HTML pages: one self-contained page per file (the permission map "
                    "of every page at every step, who decided, the property at its step) and index.html "
                    "with the matrix of their verdicts (docs/report.md).")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the pages.")
@click.option("--design", default=None, metavar="NAME", help="Draw every file on this design instead.")
@plugin_options
def report(files, out_dir: Path, design: str | None, design_files, property_files) -> None:
    from sgxsim.outfile import write_output
    from sgxsim.report import render_report_index, render_trace, trace_data

    names, pages = [], {"index.html"}  # taken by the index: index.toml gets index-2.html
    for f in files:
        name = f"{Path(f).stem}.html"
        for n in itertools.count(2):  # a/x.toml and b/x.toml get a page each
            if name not in pages:
                break
            name = f"{Path(f).stem}-{n}.html"
        pages.add(name)
        names.append(name)
    for name in ["index.html", *names]:  # refused now, before any page is written
        not_an_input(out_dir / name, [*files, *design_files, *property_files], "--out")
    load_plugins(design_files, property_files)
    writable_dir(out_dir, "--out")
    scenarios = [(f, read_scenario(f)) for f in files]
    for f, sc in scenarios:
        scenario_design(f, sc, design)
    rows = []
    for (f, sc), name in zip(scenarios, names, strict=True):
        model = _factory(Scope(**sc.scope))(design or sc.design)
        with user_code_errors():
            data = trace_data(model, sc.steps, sc.prop, expect=sc.expect, at_step=sc.at_step,
                              reason=sc.reason)
        with output_errors("--out"):
            write_output(out_dir / name, render_trace(data))
        # a row per file: two files on one design and property kept one link
        rows.append({"file": str(f), "page": name, "design": data["design"], "property": sc.prop,
                     "verdict": data["verdict"], "at": data["at"], "steps": len(sc.steps),
                     "expect": sc.expect, "at_step": sc.at_step, "expect_design": sc.design})
        click.echo(f"{out_dir / name}: {data['design']} / {sc.prop}: {data['verdict']}"
                   + (f" at step {data['at']}" if data["at"] else ""))
    with output_errors("--out"):
        write_output(out_dir / "index.html", render_report_index(rows))
    click.echo(f"HTML report: {out_dir / 'index.html'}")
