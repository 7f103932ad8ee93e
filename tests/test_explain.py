"""Explanations agree with the numbers they explain (issue 10, row 4): over many plans, no
sentence of moves.csv claims a saving its own figures contradict. The plans are random
placements of the running jobs of seeded generated scenarios (cheap, and they reach every
case: moves that pay, that do not, that cost more energy) and the plan the solver makes of the demo."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer.generator import build_scenario
from optimizer.plan.explain import marginal_cost_per_mwh, move_reason, moved_jobs
from optimizer.plan.types import Schedule
from optimizer.planner import optimize
from optimizer.rules import job_options
from optimizer.scenario import Scenario, load_scenario
from optimizer.solve import SolverSettings

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
SEEDS = range(3)
PLANS_PER_SCENARIO = 25
_AMOUNT = re.compile(r"(-?\d+) ([A-Z]{3})")


def _with_stability_weight(sc: Scenario, weight: float) -> Scenario:
    return dataclasses.replace(
        sc, policy=dataclasses.replace(sc.policy, plan_stability_weight=weight)
    )


@functools.cache
def _generated(seed: int) -> Scenario:
    return build_scenario("cn-edwc", "2025-07-14T00:00:00+08:00", 24, 60, 2, seed, n_sites=4)


def _random_plan(sc: Scenario, rng: np.random.Generator) -> tuple[Schedule, np.ndarray]:
    """Every running job placed on a random option of its own (most of them away from
    home), and a random green use within what is available."""
    sched = Schedule.empty(sc)
    green = sc.green_available_mw * rng.uniform(0, 1, sc.green_available_mw.shape)
    price = marginal_cost_per_mwh(sc, green)
    for j, job in enumerate(sc.jobs):
        opts, _ = job_options(sc, job)
        if job.current_site is None or not opts:
            continue
        o = opts[int(rng.integers(len(opts)))]
        if job.preemptible:
            window = np.arange(o.window_start, o.window_end)
            if rng.uniform() < 0.5:  # its cheapest hours there: such moves often pay
                hours = np.sort(window[np.argsort(price[o.site, window])[: o.run_hours]])
            else:
                hours = np.sort(rng.choice(window, size=o.run_hours, replace=False))
        else:
            start = int(rng.integers(o.start_min, o.start_max + 1))
            hours = np.arange(start, start + o.run_hours)
        sched.job_site[j], sched.job_acc[j], sched.job_hours[j] = o.site, o.accelerator, hours
    return sched, green


def _check(moves: pd.DataFrame, currency: str) -> dict[str, int]:
    """Each move's sentence against its figures; how many of each kind there were."""
    kinds = {"pays": 0, "does not cover": 0, "costs more": 0, "no room": 0}
    for m in moves.itertuples():
        why = str(m.why)
        if m.energy_cost_if_stayed is None or pd.isna(m.energy_cost_if_stayed):
            assert why == "its home site could not hold it in its window"
            assert m.net_saving is None or pd.isna(m.net_saving)
            kinds["no room"] += 1
            continue
        saving = m.energy_cost_if_stayed - m.energy_cost_here
        assert math.isclose(m.net_saving, saving - m.migration_cost, abs_tol=1e-6)
        # the claim of a saving that pays for the move exactly when the figures say so
        assert ("exceeds the migration cost" in why) == (m.net_saving > 0), (why, m)
        amounts = [(int(v), cur) for v, cur in _AMOUNT.findall(why)]
        assert all(cur == currency for _, cur in amounts), why
        if m.net_saving > 0:
            assert amounts == [(round(saving), currency), (round(m.migration_cost), currency)]
            kinds["pays"] += 1
        elif saving > 0:
            assert why.startswith("energy saving of") and "does not cover" in why, why
            assert amounts == [(round(saving), currency), (round(m.migration_cost), currency)]
            kinds["does not cover"] += 1
        else:
            assert why.startswith("no energy saving") and "more here" in why, why
            assert amounts == [(round(-saving), currency), (round(m.migration_cost), currency)]
            kinds["costs more"] += 1
    return kinds


def test_the_old_false_claim_is_gone() -> None:
    """Was: "energy saving exceeds the migration cost" at a net saving of -155 CNY."""
    why = move_reason(stayed=400.0, here=300.0, migration=255.0, currency="CNY")
    assert "exceeds" not in why
    assert why.startswith("energy saving of 100 CNY does not cover the migration cost of 255")


# at the default weight moves rarely pay for their migration; at a low one they often do
@pytest.mark.parametrize("weight", [1.0, 0.02])
@pytest.mark.parametrize("seed", SEEDS)
def test_no_move_claims_a_saving_its_figures_contradict(seed: int, weight: float) -> None:
    sc = _with_stability_weight(_generated(seed), weight)
    rng = np.random.default_rng(seed)
    kinds: dict[str, int] = {}
    for _ in range(PLANS_PER_SCENARIO):
        sched, green = _random_plan(sc, rng)
        for k, n in _check(moved_jobs(sc, sched, green), sc.currency).items():
            kinds[k] = kinds.get(k, 0) + n
    # the random plans reach the cases the old sentence got wrong; whether one also pays for
    # its move depends on the region's economics (with green contracts priced at their resale
    # value, 2026-12-05, none of these random moves does): that case is checked directly below
    assert kinds["does not cover"] + kinds["costs more"] > 0, kinds


def test_a_move_that_pays_says_so_with_its_figures() -> None:
    why = move_reason(stayed=400.0, here=100.0, migration=120.0, currency="EUR")
    assert why.startswith("energy saving of 300 EUR exceeds the migration cost of 120 EUR"), why


def test_a_solved_plan_explains_its_moves_truthfully() -> None:
    # with free migration the solver moves a running job whose energy costs more at its
    # new site: a move the old sentence said "saves more than it costs"
    sc = _with_stability_weight(load_scenario(DEMO), 0.0)
    plan = optimize(sc, SolverSettings(time_limit_s=20, threads=1, seed=0))
    assert len(plan.moves) > 0
    _check(plan.moves, sc.currency)
