"""The ``sgxsim check`` and ``sgxsim run`` commands (registered in sgxsim.cli)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sgxsim.check import runner
from sgxsim.check import scenario as scn
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import ACTIONS, PERMS, POLICIES, SCOPE_HELP, SOURCES, Scope

DESIGNS = ("no-hook", "rfc-2019", "v40", "linux-5.11", "sgx2-rfc", "linux-6.0", "safe-to-execute",
           "propagate-source")
# Variants checked only when named (v40 with a check-only driver).
VARIANTS = ("v40-checkonly",)


def _factory(scope: Scope):
    def make(design: str):
        try:
            return runner.make_model(design, scope)
        except LookupError as e:
            raise click.ClickException(str(e)) from None
    return make


def _progress(exp) -> None:
    """One line per BFS level on a terminal's stderr (long runs show life)."""
    click.echo(f"  {exp.design}: depth {exp.depth}, {exp.states} states, {len(exp.findings)} decided, "
               f"{exp.seconds:.1f} s", err=True)


def _subset(opt: str, text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    got = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in got if x not in allowed]
    if bad or not got:
        raise ValueError(f"{opt} takes a comma list of {', '.join(allowed)}, not {text!r}")
    return got


@click.command(help="Explore every design's reachable states breadth first up to the depth bound and "
                    "decide each property (holds/violated, reachable/unreachable), printing the "
                    "shortest trace of every violation or witness.\n\nDefault scope and its restrictions:\n\n"
                    + SCOPE_HELP)
@click.option("--design", "designs", multiple=True, type=click.Choice(DESIGNS + VARIANTS),
              help="Design to check (repeatable; default all).")
@click.option("--property", "props", multiple=True, type=click.Choice(list(PROPERTIES)),
              help="Property to decide (repeatable; default all).")
@click.option("--depth", default=6, show_default=True, type=click.IntRange(0, 64),
              help="Maximum number of actions after the initial state.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes: several designs are spread over them, one design "
                   "alone is shared out per BFS level (same results either way).")
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
              help="Narrow the actions offered (comma list).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"results\": [...]}.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("scenarios"),
              show_default=True, help="Directory for the scenario file of every trace.")
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
def check(designs, props, depth, workers, pages, policy, perms, map_perms, sources, actions, as_json,
          out, simulate, walks, walk_depth, seed) -> None:
    try:
        scope = Scope(pages=pages, policy=policy, perms=_subset("--perms", perms, PERMS),
                      map_perms=_subset("--map-perms", map_perms, PERMS) if map_perms else None,
                      sources=_subset("--sources", sources, SOURCES),
                      actions=_subset("--actions", actions, ACTIONS))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if simulate:
        results = runner.simulate(_factory(scope), list(designs or DESIGNS), list(props or PROPERTIES),
                                  walks=walks, walk_depth=walk_depth, seed=seed, workers=workers,
                                  out_dir=out)
        if as_json:
            click.echo(json.dumps({"results": results}, indent=1))
            return
        click.echo(runner.render_simulation(results))
        click.echo(runner.render_traces(results))
        return
    results = runner.check(_factory(scope), list(designs or DESIGNS), list(props or PROPERTIES),
                           depth=depth, workers=workers, out_dir=out,
                           progress=_progress if sys.stderr.isatty() else None)
    if as_json:
        keys = ("design", "property", "verdict", "depth", "states", "seconds", "trace")
        click.echo(json.dumps({"results": [{k: r[k] for k in keys} for r in results]}, indent=1))
        return
    click.echo(runner.render_matrix(results))
    click.echo(runner.render_traces(results))


@click.command(help="Replay a scenario file step by step, printing each layer's decisions and "
                    "whether the scenario's property is violated or reached.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--design", default=None, type=click.Choice(DESIGNS + VARIANTS),
              help="Replay on this design instead of the scenario's own.")
@click.option("--all-designs", is_flag=True,
              help="Replay on every design and print one line each: the verdict and the first "
                   "refusal (which layer and rule said no, at which step).")
def run(file: Path, design: str | None, all_designs: bool) -> None:
    try:
        sc = scn.read(file)
    except ValueError as e:
        raise click.ClickException(f"{file}: {e}") from None
    if sc.prop not in PROPERTIES:
        raise click.ClickException(f"{file}: unknown property {sc.prop!r}")
    try:
        scope = Scope(**{k: v for k, v in sc.scope.items() if k in ("pages", "policy")})
    except (TypeError, ValueError) as e:
        raise click.ClickException(f"{file}: bad scope: {e}") from None
    if all_designs:
        if design is not None:
            raise click.UsageError("--design and --all-designs exclude each other")
        click.echo(f"# {file}: {sc.prop}, expected {sc.expect} on {sc.design} at step {sc.at_step}")
        for r in runner.compare_designs(_factory(scope), sc, list(DESIGNS + VARIANTS)):
            v = r["verdict"] + (f" at step {r['at']}" if r["at"] else "")
            f = r["first_refusal"]
            why = f"step {f[0]}: {f[1]}" if f else "-"
            click.echo(f"{r['design']:<18} {v:<22} {why}")
        return
    lines, verdict, _ = runner.run_scenario(_factory(scope), sc, design)
    click.echo("\n".join(lines))
    if design is None and verdict != sc.expect:
        raise click.ClickException(f"expected {sc.expect}, replay gives {verdict}")
