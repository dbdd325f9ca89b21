"""tests/sgx: the SGX driver on the model machine."""

from __future__ import annotations

import pytest

pytest.importorskip("sgxsim.machine", reason="needs sgxsim.machine (kernel-mm branch)")
