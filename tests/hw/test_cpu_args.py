"""Machine()/Cpu() arguments: a bad one is a clear error when the machine
is made, not a ZeroDivisionError, OverflowError or AttributeError later."""

from __future__ import annotations

import pytest

from sgxsim import Machine


@pytest.mark.parametrize("kw, error, text", [
    ({"nr_cpus": 0}, ValueError, "nr_cpus: at least one logical processor, not 0"),
    ({"nr_cpus": -1}, ValueError, "nr_cpus: at least one logical processor, not -1"),
    ({"nr_cpus": "2"}, TypeError, "nr_cpus must be an int, not str"),
    ({"epc_pages": 0}, ValueError, "the EPC needs at least one page"),
    ({"epc_pages": "8"}, TypeError, "epc_pages must be an int, not str"),
    ({"epc_pages": 8.5}, TypeError, "epc_pages must be an int, not float"),
    ({"epc_pages": True}, TypeError, "epc_pages must be an int, not bool"),
    # Dense per-page arrays: 2**40 pages was a MemoryError (the CLI capped
    # sgxsim exec --epc-pages, the API had no bound).
    ({"epc_pages": 1 << 40}, ValueError, "epc_pages: at most 1048576 .4 GiB of EPC, the model's limit"),
    ({"epc_pages": (1 << 20) + 1}, ValueError, "epc_pages: at most 1048576 .+, not 1048577"),
    ({"seed": -1}, ValueError, "seed: from 0 to 2**64 - 1, not -1"),
    ({"seed": 1 << 64}, ValueError, "seed: from 0 to 2**64 - 1"),
    ({"seed": "x"}, TypeError, "seed must be an int, not str"),
])
def test_bad_machine_arguments_are_clear_errors(kw, error, text):
    with pytest.raises(error, match=text.replace("*", r"\*")):
        Machine(**kw)


def test_one_cpu_and_the_largest_seed_work():
    m = Machine(nr_cpus=1, seed=(1 << 64) - 1, epc_pages=1)
    assert len(m.cpu.lps) == 1
    m.spawn()
    m.spawn()  # both on the one LP


def test_the_api_and_exec_share_the_models_epc_limit():
    from click.testing import CliRunner

    from sgxsim.cli import main
    from sgxsim.hw.epc import MODEL_EPC_PAGES_LIMIT

    assert MODEL_EPC_PAGES_LIMIT == 1 << 20
    r = CliRunner().invoke(main, ["exec", "--epc-pages", str(MODEL_EPC_PAGES_LIMIT + 1), "--", "true"])
    assert r.exit_code == 2 and f"1<=x<={MODEL_EPC_PAGES_LIMIT}" in r.output, r.output
