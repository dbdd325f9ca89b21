"""Issue 12, finding 1: __vdso_sgx_enter_enclave makes forward progress when
the EPC is smaller than ksgxd's watermarks (SGX_NR_LOW_PAGES = 32,
SGX_NR_HIGH_PAGES = 64 in sgx.h), on every SGX kernel and design."""

from __future__ import annotations

import errno

import pytest

from sgxsim.kernel import registry
from sgxsim.machine import Machine
from sgxsim.user import selftests as S
from sgxsim.user import test_encl as T

# propagate-source refuses ADD_PAGES before the enclave is mapped, which the
# selftests' loader does not do (encl_build() then map_segments()).
SGX_KERNELS = [n for n in registry.names()
               if hasattr(Machine(kernel=n).kernel, "sgx") and n != "propagate-source"]
ELDU_BOUND = 200  # far above what five entries of a 10-page enclave need


def _count_eldu(drv):
    """Fail (instead of hanging) once the loads exceed any plausible need."""
    orig = drv.sgx_encl_eldu
    calls = [0]

    def counted(*args):
        calls[0] += 1
        assert calls[0] <= ELDU_BOUND, "livelock: the reclaimer keeps evicting what EENTER needs"
        return orig(*args)

    drv.sgx_encl_eldu = counted
    return calls


@pytest.mark.parametrize("kname", SGX_KERNELS)
@pytest.mark.parametrize("epc_pages", [8, 16, 24, 32, 40])
def test_finding1_enter_enclave_livelock_small_epc(kname, epc_pages):
    env = S.setup_test_encl(kname, False, epc_pages=epc_pages)
    drv = env.machine.kernel.sgx
    assert epc_pages < drv.nr_high_pages  # ksgxd never reaches its watermark
    loads = _count_eldu(drv)
    for _ in range(5):
        ret, _ = env.call(T.ENCL_OP_NOP)
        assert ret == 0
        env.expect_eexit()
        # any driver entry point lets the woken ksgxd run: it evicts again
        err, _ = env.ioctl(0xDEAD, 0)
        assert err == errno.ENOTTY
        assert drv.check_invariants() == []
    assert drv.stats["ewb"] > 0 and loads[0] > 0  # the enclave really was paged
