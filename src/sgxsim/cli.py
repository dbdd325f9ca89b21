"""The ``sgxsim`` command."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from sgxsim import demo as demo_enclave
from sgxsim.hw import sigstruct as sigs
from sgxsim.hw.consts import SIGSTRUCT_SIZE
from sgxsim.hw.structs import Sigstruct
from sgxsim.report import format_sigstruct, sigstruct_info


@click.group()
@click.version_option(package_name="sgxsim")
def main() -> None:
    """sgxsim: Intel SGX enclave memory on Linux, modelled step for step."""


def _emit_sigstruct(sig: Sigstruct, as_json: bool) -> None:
    info = sigstruct_info(sig)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
    else:
        click.echo(format_sigstruct(info))


@main.command("sigstruct")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sigstruct_cmd(file: Path, as_json: bool) -> None:
    """Dump a SIGSTRUCT file and check its header and signature."""
    raw = file.read_bytes()
    if len(raw) != SIGSTRUCT_SIZE:
        raise click.ClickException(
            f"{file}: a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, this file has {len(raw)}"
        )
    _emit_sigstruct(Sigstruct.unpack(raw), as_json)


@main.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for enclave.ss (default: a temporary directory).",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM RSA-3072 (e=3) signing key (default: a freshly generated one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the SIGSTRUCT as JSON.")
def demo_cmd(out: Path | None, key: Path | None, as_json: bool) -> None:
    """Measure and sign sgxsim's own demo enclave, then dump its SIGSTRUCT."""
    pages = demo_enclave.demo_pages()
    mrenclave = demo_enclave.measure(pages).digest()
    signing_key = sigs.load_key(key.read_bytes()) if key else sigs.generate_key()
    sig = sigs.sign(sigs.build(mrenclave), signing_key)
    with tempfile.TemporaryDirectory(prefix="sgxsim-demo-") as tmp:
        directory = out if out is not None else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "enclave.ss"
        path.write_bytes(sig.pack())
        if not as_json:
            click.echo(
                f"demo enclave: SIZE 0x{demo_enclave.SIZE:x}, {len(pages)} pages measured; "
                f"SIGSTRUCT written to {path}"
                + ("" if out is not None else " (a temporary directory, removed on exit)")
            )
        _emit_sigstruct(Sigstruct.unpack(path.read_bytes()), as_json)


if __name__ == "__main__":
    main()
