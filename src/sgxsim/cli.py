"""The ``sgxsim`` command."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

# The shell's convention for a command ended by SIGINT: 128 + 2.
EXIT_INTERRUPTED = 130


class SgxsimGroup(click.Group):
    """The command group.  Ctrl-C anywhere in a command (loading, the work,
    the final printing) ends it with one line on stderr and exit status 130,
    as the search and the fuzzer do in their own words; click's default
    would print "Aborted!" and exit 1, which for ``run``, ``fuzz`` and
    ``sigstruct`` means "found something"."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            name = " ".join(filter(None, ("sgxsim", ctx.invoked_subcommand)))
            click.echo(f"{name}: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None


@click.group(cls=SgxsimGroup)
@click.version_option(package_name="sgxsim")
def main() -> None:
    """sgxsim: Intel SGX enclave memory on Linux, modelled step for step."""


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sigstruct(file: Path, as_json: bool) -> None:
    """Print a SIGSTRUCT's fields and whether its signature verifies.  Exit
    status 1 when the signature or the header is invalid, 2 for a file that
    is no SIGSTRUCT (not 1808 bytes) or cannot be read."""
    from sgxsim.hw.structs import Sigstruct
    from sgxsim.sigstruct_report import describe, render

    raw = read_bounded(file, Sigstruct.SIZE)
    if len(raw) > Sigstruct.SIZE:
        raise BadInput(f"a SIGSTRUCT is {Sigstruct.SIZE} bytes, {file} has more")
    try:
        info = describe(raw)
    except ValueError as e:  # not a SIGSTRUCT at all: bad input (2), not "does not verify" (1)
        raise BadInput(str(e)) from None
    click.echo(json.dumps(info, indent=2) if as_json else render(info))
    if not (info["signature_valid"] and info["header_valid"]):
        raise SystemExit(1)


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the SIGSTRUCT and key (default: a temporary one).")
def demo(out: Path | None) -> None:
    """Measure and sign a small enclave of sgxsim's own making, and print it."""
    from sgxsim.check.cli import output_errors, writable_dir
    from sgxsim.demo import build_signed
    from sgxsim.sigstruct_report import describe, render

    if out is not None:  # refused now, as check --out is
        writable_dir(out, "--out")
    with tempfile.TemporaryDirectory() as tmp, output_errors("--out"):
        path = build_signed(out or Path(tmp))
        click.echo(f"# {path.name}: a 4-page enclave (TCS, 2 x RX text, RW data), signed "
                   "with a freshly generated RSA-3072 key (e=3)")
        click.echo(render(describe(path.read_bytes())))


from sgxsim.check.cli import (  # noqa: E402
    BadInput,
    check,
    design_names,
    explain,
    load_plugins,
    plugin_options,
    report,
    run,
)

main.add_command(check)
main.add_command(run)
main.add_command(explain)
main.add_command(report)

from sgxsim.fuzz.cli import fuzz  # noqa: E402

main.add_command(fuzz)

def read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``path`` (an endless /dev/zero is
    refused, not read until memory runs out; a pipe still works)."""
    try:
        with path.open("rb") as f:
            return f.read(limit + 1)
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror or e}") from None


MAX_ELF = 64 << 20  # the selftests' test_encl.elf is about 40 KB


@main.command()
@click.option("--kernel", "kernel", default="linux-6.0", show_default=True,
              help="Kernel or design to run the suite on (linux-5.11, linux-6.0, linux-6.12, or any "
                   "registered kernel with an SGX driver: the suite opens /dev/sgx_enclave).")
@click.option("--sgx1", is_flag=True, help="A CPU without SGX2.")
@click.option("--encl-elf", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A test_encl.elf built from the kernel's selftests: its "
              "machine code runs on the enclave engine instead of the model's test enclave.")
@plugin_options
def selftest(kernel: str, sgx1: bool, encl_elf: Path | None, design_files, property_files) -> None:
    """Run tools/testing/selftests/sgx (main.c) on the model; TAP output.
    Exit status 1 when a test fails, 2 for bad input (an --encl-elf that is
    no enclave ELF, a design file that does not load)."""
    from sgxsim.user.selftests import tap

    load_plugins(design_files, property_files)
    design_names([kernel], "--kernel")
    elf = read_bounded(encl_elf, MAX_ELF) if encl_elf is not None else None
    if elf is not None:
        if len(elf) > MAX_ELF:
            raise BadInput(f"{encl_elf}: larger than {MAX_ELF >> 20} MiB: not a test_encl.elf")
        from elftools.common.exceptions import ELFError

        from sgxsim.user.loader import encl_load

        try:
            encl_load(elf)
        except (ELFError, ValueError, IndexError) as e:
            raise BadInput(f"{encl_elf}: not an enclave ELF the selftests' loader "
                                       f"can load: {e}") from None
    failed = tap(kernel, sgx1, out=click.echo, elf=elf)
    raise SystemExit(1 if failed else 0)


from sgxsim.exec.cli import exec_cmd  # noqa: E402

main.add_command(exec_cmd)


if __name__ == "__main__":
    main()
