"""The carbon-price sweep of `bench.dominance` end to end on a small generated scenario: a
warm sweep (each price from the plan of the price before), every plan validated by the
bench itself, and the envelope: at each price the plan it shows is the best there of every
plan the sweep returned, by the rule it states (dominating every baseline first, then the
objective), re-costed independently here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import dominance
from optimizer import SolverSettings, load_scenario
from optimizer.choose import Candidate, at_equal_work
from optimizer.generator import build_scenario
from optimizer.plan import assemble_plan
from optimizer.planner import cost_only_plan
from optimizer.scenario import write_scenario
from optimizer.whatif import with_policy

# a benchmark tool's end-to-end test with real solves (as tests/test_bench.py): not in the
# fast lane
pytestmark = pytest.mark.slow

PRICES = (0.0, 1000.0)


def test_a_warm_sweep_and_its_envelope(tmp_path: Path) -> None:
    write_scenario(
        build_scenario("cn-edwc", "2025-07-15T00:00+08:00", 12, 12, 3, seed=5, n_sites=4),
        tmp_path / "sc",
    )
    out = tmp_path / "sweep.json"
    dominance.main([str(tmp_path / "sc"), "10", *map(str, PRICES), "--out", str(out)])
    result = json.loads(out.read_text())
    points = result["points"]
    assert [p["carbon_price"] for p in points] == list(PRICES)
    assert [p["warm"] for p in points] == [False, True]
    rows = result["envelope"]
    assert [r["carbon_price"] for r in rows] == list(PRICES)
    assert {r["from_price"] for r in rows} <= set(PRICES)
    assert "| CNY/t | plan of CNY/t |" in dominance.envelope_table(rows)

    # the plan solved at a price is in the pool: the envelope's pick there is no worse by
    # the rule (dominating first, then the objective)
    for r, p in zip(rows, points, strict=True):
        assert (not all(r["dominance"].values()), r["objective"]) <= (
            not all(d["dominates"] for d in p["dominance"].values()),
            p["plan"]["objective"] + 1e-6,
        )


def test_the_envelope_keeps_the_best_plan_at_each_price(tmp_path: Path) -> None:
    sc0 = build_scenario("cn-edwc", "2025-07-15T00:00+08:00", 12, 12, 3, seed=5, n_sites=4)
    write_scenario(sc0, tmp_path / "sc")
    sc0 = load_scenario(tmp_path / "sc")
    settings = SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=10)
    cost_only = cost_only_plan(sc0, settings)
    plans = [dominance.one_price(sc0, price, settings, cost_only)[1] for price in PRICES]
    rows = dominance.envelope(sc0, list(PRICES), plans, cost_only)
    for r in rows:
        sc = with_policy(sc0, carbon_price_cny_per_t=r["carbon_price"])
        base = dominance.baseline_candidates(sc, cost_only)
        ranked = []
        for p in plans:
            assert p.schedule is not None
            c = Candidate("x", p.schedule, assemble_plan(sc, p.schedule, status="check"))
            doms = all(at_equal_work(sc, c, b)[0]["dominates"] for b in base.values())
            ranked.append((not doms, c.objective))
        assert (not all(r["dominance"].values()), r["objective"]) == min(ranked)
