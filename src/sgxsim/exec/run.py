"""Running a program under the bridge (the body of `sgxsim exec`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sgxsim.exec.build import ensure_native
from sgxsim.exec.server import EnclaveRunner, ExecServer, static_program


def default_runner(library: Any = None) -> EnclaveRunner:
    """Python enclave programs bound in ``library`` by identity; real
    machine code on the Unicorn engine otherwise."""
    from sgxsim.exec.engine import EnclaveEngine
    from sgxsim.user.enclave import EnclaveLibrary

    return EnclaveRunner(library or EnclaveLibrary(), EnclaveEngine())


def run_program(argv: list[str], *, kernel: str = "linux-6.0", epc_pages: int = 256,
                sgx2: bool = True, policy: str = "none", trace_file: Path | None = None,
                machine: Any = None, runner: Any = None, env: dict | None = None) -> int:
    """Run ``argv`` on a fresh Machine (or ``machine``); return its exit status."""
    from sgxsim.machine import Machine

    if static_program(argv[0]):
        raise ValueError(f"{argv[0]} is statically linked: sgxsim exec needs a dynamically "
                         "linked program (it serves SGX through an LD_PRELOAD library)")
    native = ensure_native()
    if machine is None:
        machine = Machine(kernel, epc_pages=epc_pages, sgx2=sgx2, policy=policy,
                          trace=trace_file is not None)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(trace_file, "w", buffering=1)) if trace_file else None
        server = ExecServer(machine, runner or default_runner(), native.vdso, trace=out)
        return server.serve(argv, native.preload, native.vdso, env=env)
