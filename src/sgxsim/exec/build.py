"""Building the native half of `sgxsim exec` (the preload library and the vDSO image).

The C and assembly sources live in ``sgxsim/exec/native``; ``make native``
(run by ``make test``, ``make run`` and before every ``sgxsim exec``) builds
them with the system's gcc into ``build/native`` of the source tree, or into
``$SGXSIM_NATIVE_DIR`` when set (an installed package: a cache directory).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

NATIVE_SRC = Path(__file__).with_name("native")


@dataclass(frozen=True)
class Native:
    preload: Path
    vdso: Path


def default_out() -> Path:
    env = os.environ.get("SGXSIM_NATIVE_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").exists():
        return root / "build" / "native"
    return Path.home() / ".cache" / "sgxsim" / "native"


def ensure_native(out: Path | None = None) -> Native:
    """Build (if out of date) and return the native artefacts."""
    out = out or default_out()
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["make", "-s", "-C", str(NATIVE_SRC), f"OUT={out}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building sgxsim's native library failed (gcc and make are needed):\n"
                           f"{r.stdout}{r.stderr}")
    return Native(out / "libsgxsim_preload.so", out / "sgxsim_vdso.so")


if __name__ == "__main__":
    n = ensure_native()
    print(n.preload, n.vdso, sep="\n")
