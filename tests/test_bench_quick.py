"""`greenopt bench --quick` (issue 16): the M row and the warm what-if row, today's strategy
beside the defaults, through the real solver on a tiny variant; what it says when the bench
extra is missing; the targets' arithmetic. No timing assertions: the numbers are the
benchmark's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.quick import m_met, warm_met
from service.cli import BENCH_INSTALL, EXIT_BAD_INPUT, app

TINY_ARGS = [
    "bench",
    "--quick",
    "--m-case",
    "tiny",
    "--m-budget",
    "5",
    "--whatif-case",
    "tiny",
    "--whatif-budget",
    "5",
    "--changes",
    "new_jobs",
]


@pytest.mark.slow
def test_greenopt_bench_quick_solves_both_rows_and_writes_them(tmp_path: Path) -> None:
    stem = tmp_path / "results" / "speed-quick-test"
    result = CliRunner().invoke(app, [*TINY_ARGS, "--out", str(stem)])
    assert result.exit_code == 0, result.output
    record = json.loads(stem.with_suffix(".json").read_text())
    md = stem.with_suffix(".md").read_text()
    assert record["run"]["strategies"] == ["today", "new"]
    solves = [*record["m"].values(), *record["whatif"]["cold"].values()]
    for by in record["whatif"]["changes"].values():
        solves += [r for pair in by.values() for r in pair.values()]
    assert len(solves) == 2 + 2 + 2 * 2  # M and cold per strategy, new_jobs cold and warm
    for r in solves:
        assert r["validated"] and r["never_worse"], r
        assert r["objective"] > 0 and r["wall_s"] > 0 and len(r["load_before"]) == 3
    # the warm solve of the new jobs is a real re-solve of the changed scenario: more jobs
    warm = record["whatif"]["changes"]["new_jobs"]["new"]["warm"]
    assert warm["objective"] >= record["whatif"]["cold"]["new"]["objective"] - 1e-6
    for section in ("## Every solve", "## M row", "## What-if row, warm"):
        assert section in md and section in result.output
    assert "| new_jobs | new |" in md and "vs today" in md


def test_greenopt_bench_says_how_to_install_the_bench_extra_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bench.quick", None)  # as in the service's image
    result = CliRunner().invoke(app, ["bench", "--quick"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "needs the bench extra" in result.output
    assert " ".join(BENCH_INSTALL.split()) in " ".join(result.output.split())


def test_greenopt_bench_refuses_an_unknown_strategy_before_solving(tmp_path: Path) -> None:
    stem = tmp_path / "x"
    result = CliRunner().invoke(app, [*TINY_ARGS, "--strategies", "fast", "--out", str(stem)])
    assert result.exit_code == EXIT_BAD_INPUT and "fast" in result.output
    assert not stem.with_suffix(".json").exists()
    assert CliRunner().invoke(app, ["bench"]).exit_code == EXIT_BAD_INPUT  # --quick only


def test_the_targets_of_the_two_rows() -> None:
    """M: a bound, gap <= 1 %, within the budget; warm: <= 20 % of cold and <= 10 s, gap no
    worse than cold's (no bound on either side: cannot be judged, not met)."""
    assert m_met({"gap": 0.009, "wall_s": 9.9}, 10.0)
    assert not m_met({"gap": 0.011, "wall_s": 5.0}, 10.0)
    assert not m_met({"gap": None, "wall_s": 5.0}, 10.0)
    assert not m_met({"gap": 0.001, "wall_s": 10.5}, 10.0)
    cold = {"wall_s": 50.0, "gap": 0.02}
    assert warm_met(cold, {"wall_s": 9.0, "gap": 0.02})
    assert not warm_met(cold, {"wall_s": 10.5, "gap": 0.01})  # 21 % of cold and over 10 s
    assert not warm_met({"wall_s": 30.0, "gap": 0.02}, {"wall_s": 7.0, "gap": 0.01})  # 23 %
    assert not warm_met(cold, {"wall_s": 5.0, "gap": 0.021})
    assert not warm_met({"wall_s": 50.0, "gap": None}, {"wall_s": 5.0, "gap": None})
