"""``sgxsim fuzz``."""

from __future__ import annotations

import math

import click


class Seconds(click.FloatRange):
    """A time in seconds: FloatRange, which lets nan through (it compares
    false with either bound), refusing it."""

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if math.isnan(v):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return v


@click.command()
@click.option("--seconds", type=Seconds(min=0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.option("--cases", type=click.IntRange(min=1), default=None,
              help="Stop after this many cases.")
@click.option("--seed", type=int, default=0, show_default=True, help="The run's seed.")
@click.option("--kernel", "kernels", multiple=True,
              help="Only this kernel or design (repeatable; default: all of them).")
@click.option("--shrink-seconds", type=Seconds(min=0), default=60.0, show_default=True,
              help="Time for delta debugging of each finding.")
def fuzz(seconds: float | None, cases: int | None, seed: int, kernels: tuple[str, ...],
         shrink_seconds: float) -> None:
    """Fuzz every kernel and design with seeded random and hostile call
    sequences; check the model's invariants after every step; print each
    finding shrunk to a runnable Python reproduction.  Exit status 1 if
    anything was found; 130 on Ctrl-C, after the findings and the summary
    of the cases finished before it."""
    from sgxsim.fuzz import Interrupted
    from sgxsim.fuzz import fuzz as run
    from sgxsim.kernel import registry

    if seconds is None and cases is None:
        seconds = 60.0
    known = registry.names()
    for k in kernels:
        if k not in known:
            raise click.BadParameter(f"unknown kernel {k!r}; known: {', '.join(known)}",
                                     param_hint="--kernel")

    def progress(rep):
        click.echo(f"# {rep.cases} cases, {rep.steps} steps, {len(rep.findings)} findings, "
                   f"{rep.seconds:.0f} s", err=True)

    try:
        rep, interrupted = run(seed, seconds, cases, list(kernels) or None, shrink_seconds, progress), False
    except Interrupted as e:
        rep, interrupted = e.report, True
    for case, finding, src in rep.findings:
        click.echo(f"## finding ({finding.kind}) on {case.kernel}, {len(case.steps)} steps after "
                   f"shrinking: {finding.signature}")
        click.echo(src)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(rep.by_kernel.items()))
    click.echo(f"fuzz seed {seed}: {rep.cases} cases, {rep.steps} steps, "
               f"{len(rep.findings)} findings, {rep.seconds:.1f} s ({kinds}); "
               f"{rep.starved} cases ended in EPC starvation")
    if interrupted:
        click.echo(f"interrupted: the findings and the summary above are those of the {rep.cases} cases "
                   "finished before Ctrl-C", err=True)
        raise SystemExit(130)
    raise SystemExit(1 if rep.findings else 0)
