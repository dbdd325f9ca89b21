"""The `sgxsim exec` command."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from sgxsim.hw.epc import MODEL_EPC_PAGES_LIMIT


def _kernel(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """--kernel: a registered kernel or design, else a usage error."""
    from sgxsim.kernel.registry import kernel_class

    try:
        kernel_class(name)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return name


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--kernel", default="linux-6.0", show_default=True, callback=_kernel,
              help="Kernel or design the program runs on.")
@click.option("--epc-pages", type=click.IntRange(1, MODEL_EPC_PAGES_LIMIT), default=256, show_default=True,
              help="EPC size in pages (CPUID leaf 0x12 reports it).")
@click.option("--sgx1", is_flag=True, help="A CPU without SGX2 (no EDMM).")
@click.option("--policy", default="none", show_default=True, type=click.Choice(["none", "selinux"]),
              help="LSM policy.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write every syscall, ioctl, fault and leaf with its deciding rule.")
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(kernel: str, epc_pages: int, sgx1: bool, policy: str, trace_file: Path | None,
             program: tuple[str, ...]) -> None:
    """Run PROGRAM (a dynamically linked x86-64 Linux program) with its
    /dev/sgx_enclave, enclave mappings, vDSO enter call and CPUID served by
    the model:  sgxsim exec [OPTIONS] -- PROGRAM [ARGS]..."""
    from sgxsim.check.cli import writable_dir
    from sgxsim.exec.run import run_program

    if trace_file is not None:  # refused now, as a usage error, not after the program ran
        writable_dir(trace_file.parent, "--trace")
    exe = shutil.which(program[0])
    if exe is None:
        raise click.ClickException(f"{program[0]}: command not found")
    try:
        status = run_program([exe, *program[1:]], kernel=kernel, epc_pages=epc_pages, sgx2=not sgx1,
                             policy=policy, trace_file=trace_file)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    raise SystemExit(status)
