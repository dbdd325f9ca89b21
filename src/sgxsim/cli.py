"""The ``sgxsim`` command."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="sgxsim")
def main() -> None:
    """sgxsim: Intel SGX enclave memory on Linux, modelled step for step."""


if __name__ == "__main__":
    main()
