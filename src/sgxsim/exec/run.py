"""Running a program under the bridge (the body of `sgxsim exec`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sgxsim.exec.build import ensure_native
from sgxsim.exec.server import EnclaveRunner, ExecServer, static_program

TIMESLICE_US = 200_000  # a timer interrupt every 200 ms of enclave execution


def default_runner(library: Any = None, on_interrupt: Any = None) -> EnclaveRunner:
    """Python enclave programs bound in ``library`` by identity; real
    machine code on the Unicorn engine otherwise, with a timer interrupt at
    which ``on_interrupt(cpu, lp)`` may abandon the call."""
    from sgxsim.exec.engine import EnclaveEngine
    from sgxsim.user.enclave import EnclaveLibrary

    engine = EnclaveEngine(timeslice_us=TIMESLICE_US if on_interrupt else 0,
                           on_interrupt=on_interrupt)
    return EnclaveRunner(library or EnclaveLibrary(), engine)


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
        server = ExecServer(machine, runner, native.vdso, trace=out)
        if runner is None:
            server.runner = default_runner(on_interrupt=server.on_interrupt)
        return server.serve(argv, native.preload, native.vdso, env=env)
