"""The `sgxsim exec` command."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from sgxsim.hw.epc import MODEL_EPC_PAGES_LIMIT

# The statuses of env(1) and the shell for a program that never ran: not
# found (ENOENT), found but not executable (EACCES, a directory, ENOEXEC).
EXIT_NOT_FOUND, EXIT_CANNOT_EXEC = 127, 126


class CannotExec(Exception):
    """``program`` cannot be started: ``err`` is the errno execve() (or
    execvp()'s search) ends with; the exit status and message follow env(1)."""

    def __init__(self, program: str, err: int):
        super().__init__(program, err)
        self.program, self.err = program, err

    @property
    def status(self) -> int:
        return EXIT_NOT_FOUND if self.err == errno.ENOENT else EXIT_CANNOT_EXEC

    def __str__(self) -> str:
        return f"{self.program}: {os.strerror(self.err)}"


def find_program(name: str) -> str:
    """The file execvp() would run for ``name``: the path itself when it
    holds a '/', else the first executable file of that name along $PATH;
    one found there that cannot be executed makes it EACCES (execvp()
    goes on past it and reports EACCES when nothing else runs), none
    ENOENT.  A directory is reported as the shell does (EISDIR; execve()
    itself says EACCES)."""
    if "/" in name:
        paths = [name]
    else:
        dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
        paths = [os.path.join(d or ".", name) for d in dirs]  # an empty entry is the cwd
    denied = 0
    for path in paths:
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            denied = denied or errno.EISDIR
        elif not os.access(path, os.X_OK):
            denied = errno.EACCES
        else:
            return path
    raise CannotExec(name, denied or errno.ENOENT)


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
    try:
        exe = find_program(program[0])
        try:
            status = run_program([exe, *program[1:]], kernel=kernel, epc_pages=epc_pages, sgx2=not sgx1,
                                 policy=policy, trace_file=trace_file)
        except OSError as e:
            if e.filename != exe or e.errno is None:
                raise
            # The program's execve() failed (after the check: a race, an
            # interpreter that is missing, an unknown format).
            raise CannotExec(program[0], e.errno) from None
    except CannotExec as e:
        click.echo(f"sgxsim exec: {e}", err=True)
        raise SystemExit(e.status) from None
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    raise SystemExit(status)
