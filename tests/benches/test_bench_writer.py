"""The writer of BENCHMARKS.md (benches/__main__.py): a benchmark run
rewrites only its own block; notes and hand-made sections stay."""

from __future__ import annotations

import importlib

bench_main = importlib.import_module("benches.__main__")

DOC = """# Benchmarks

intro

## Alpha

<!-- bench bench_alpha -->
| old | table |
<!-- /bench bench_alpha -->

A note on the alpha run, written by hand.

## Deep runs (by hand)

| run | states |
|---|---|
| deep | 1 |

## Beta

An older hand-pasted beta table.
"""


def test_block_is_replaced_and_the_rest_kept_byte_for_byte():
    out = bench_main.merge(DOC, [("bench_alpha", "Alpha", "| new | table |")])
    assert "| old | table |" not in out
    assert "<!-- bench bench_alpha -->\n| new | table |\n<!-- /bench bench_alpha -->" in out
    # Everything outside the block is unchanged.
    assert out.replace("| new | table |", "| old | table |") == DOC


def test_a_section_without_block_gets_one_under_its_heading():
    out = bench_main.merge(DOC, [("bench_beta", "Beta", "| beta |")])
    assert out.endswith("## Beta\n\n<!-- bench bench_beta -->\n| beta |\n<!-- /bench bench_beta -->\n"
                        "\nAn older hand-pasted beta table.\n")
    assert out.startswith(DOC[: DOC.index("## Beta")])


def test_a_new_benchmark_is_appended_and_a_second_run_replaces_it():
    once = bench_main.merge(DOC, [("bench_gamma", "Gamma", "| g1 |")])
    assert once.startswith(DOC.rstrip())
    assert once.endswith("## Gamma\n\n<!-- bench bench_gamma -->\n| g1 |\n<!-- /bench bench_gamma -->\n")
    twice = bench_main.merge(once, [("bench_gamma", "Gamma", "| g2 |")])
    assert twice == once.replace("| g1 |", "| g2 |")


def test_an_empty_file_gets_the_head():
    out = bench_main.merge("", [("bench_alpha", "Alpha", "x")])
    assert out.startswith("# Benchmarks\n")
    assert "<!-- bench bench_alpha -->\nx\n<!-- /bench bench_alpha -->" in out


def test_a_body_with_regex_replacement_escapes_is_written_as_is():
    body = r"| \1 \g<0> backslash \ |"
    out = bench_main.merge(DOC, [("bench_alpha", "Alpha", body)])
    assert body in out


def test_the_repository_file_has_a_block_for_every_table_benchmark():
    # The committed BENCHMARKS.md: each generated section is delimited, so a
    # rerun cannot swallow the notes that follow it.
    import pkgutil
    from pathlib import Path

    import benches

    text = (Path(__file__).resolve().parents[2] / "BENCHMARKS.md").read_text()
    names = [m.name for m in pkgutil.iter_modules(benches.__path__) if m.name.startswith("bench_")]
    assert len(names) >= 10
    for name in names:
        assert text.count(f"<!-- bench {name} -->") == 1
        assert text.count(f"<!-- /bench {name} -->") == 1


def test_unknown_benchmark_is_a_clear_error(capsys):
    assert bench_main.main(["bench_nonesuch"]) == 2
    assert "unknown benchmark(s): bench_nonesuch" in capsys.readouterr().err


def test_the_stamp_says_when_the_run_started_and_how_long_it_took():
    import calendar

    started = calendar.timegm((2026, 11, 30, 17, 23, 0, 0, 0, 0))
    got = bench_main.stamp(started, 643.04, (1.5, 2.1, 3.4))
    assert got.startswith("_(measured from 2026-11-30 17:23 UTC for 643.0 s, Python ")
    assert got.endswith("load average 1.5 2.1 3.4 at the start)_")
