"""The two-page matrix (issue 10): ``sgxsim check --pages 2 --depth 6``.

The whole matrix at this scope takes minutes per design (docs/designs.md,
"Two pages, depth 6"), so CI pins a slice: linux-5.11, the quickest of the
merged designs, every property exhaustively to depth 6 with the page
symmetry on, and the same cells as docs/designs.md gives for the full run
(which ran without the reduction).  Simulation mode from one seed must find
every violation of that slice at two pages.
"""

from __future__ import annotations

import pytest

from sgxsim.check import runner
from sgxsim.check.cli import _factory
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import Scope

DEPTH = 6
DESIGN = "linux-5.11"
#          no-esc exec  w^x   stale honest run   heap  dcode restrict
EXPECTED = ("h", "v4", "v4", "h", "h", "r5", "u", "u", "u")


def _cell(r: dict) -> str:
    return r["verdict"][0] + (str(len(r["trace"])) if r["trace"] else "")


@pytest.fixture(scope="module")
def slice_(tmp_path_factory):
    out = tmp_path_factory.mktemp("p2")
    res = runner.check(_factory(Scope(pages=2)), [DESIGN], list(PROPERTIES), depth=DEPTH, workers=2,
                       out_dir=out)
    return {r["property"]: r for r in res}


def test_the_linux_5_11_slice_is_pinned(slice_):
    assert tuple(_cell(slice_[p]) for p in PROPERTIES) == EXPECTED
    for p, r in slice_.items():
        if r["verdict"] in ("holds", "unreachable"):
            assert r["depth"] == DEPTH, p


def test_simulation_finds_every_violation_of_the_slice(tmp_path):
    res = runner.simulate(_factory(Scope(pages=2)), [DESIGN], list(PROPERTIES), walks=1500, walk_depth=8,
                          seed=0, workers=2, out_dir=tmp_path)
    got = {r["property"]: r for r in res}
    for p, cell in zip(PROPERTIES, EXPECTED, strict=True):
        if cell[0] == "v":
            assert got[p]["verdict"] == "violated", p
            assert len(got[p]["trace"]) >= int(cell[1:]), p
