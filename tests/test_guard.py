"""The dominance guard (issue 11, optimizer/guard.py), on a world worked out by hand.

One site, one service needing 2, 1, 2 devices of 1 MW (demand 800, 400, 800 tokens/s at 400
per device) at 100, 10, 100 CNY/MWh and 40 kg/MWh; a start costs 15 CNY (60 min warm-up at 15
CNY/device-h); one 1 device-h job due after hour 2. At 97 CNY/t the spare device kept through
the dip costs 10 + 1 MWh x 0.04 t x 97 = 13.88 < 15, so the optimum keeps it (2, 2, 2) and
runs the job in the cheap hour: 420 + 10 = 430 CNY, 7 MWh, 0.28 t.

The baseline here stops the spare device and restarts it, and runs the job in hour 0:
200 + 10 + 200 + 15 + 100 = 525 CNY, 6 MWh, 0.24 t. Cheaper but dirtier, the optimum does
not dominate it. The guard keeps the optimum's job, weighs a tonne at 10 x 100 CNY both ways
(the dip device then costs 10 + 0.04 x 2,000 = 90 > 15) and stops it: 435 CNY, 0.24 t:
no more carbon either way, 90 CNY cheaper. It dominates.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from optimizer import guard, optimize
from optimizer import planner as planner_module
from optimizer.choose import Candidate, criteria
from optimizer.plan import Schedule, assemble_plan
from optimizer.scenario.types import Scenario
from optimizer.validate import validate_plan
from tests.micro import EXACT, job, scenario, site

OFF = dataclasses.replace(EXACT, dominance_guard_rounds=0)


def _world(
    prices: tuple[float, ...] = (100, 10, 100), carbon: float | list[float] = 40.0
) -> Scenario:
    return scenario(
        [site("A")],
        prices={"A": list(prices)},
        carbon={"A": carbon if isinstance(carbon, list) else [carbon] * 3},
        policy={
            "unmet_penalty_cny_per_mtoken": 10000.0,
            "replica_warmup_min": 60.0,
            "carbon_price_cny_per_t": 97.0,
        },
        services=[{"service_id": "s", "latency_limit_ms": 20}],
        throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
        demand={("s", "R"): [800, 400, 800]},
        latency={("A", "R"): 10},
        jobs=[job("j", deadline_h=3)],
    )


def _restarting(sc: Scenario, job_hour: int) -> Candidate:
    """The service on 2, 1, 2 devices (a restart), the job in `job_hour`."""
    s = Schedule.empty(sc)
    s.job_site[0], s.job_acc[0], s.job_hours[0] = 0, 0, np.array([job_hour])
    s.svc_devices[0, 0, 0, :] = [2, 1, 2]
    s.flows[0, 0, 0, :] = [800.0, 400.0, 800.0]
    c = Candidate("baseline:restarts", s, assemble_plan(sc, s, status="baseline"))
    validate_plan(sc, c.plan).raise_if_failed()
    return c


def _complete(sc: Scenario, jobs: Schedule) -> Schedule | None:
    return planner_module._complete(sc, jobs, EXACT, churn_aware=True)


def _kpis(c: Candidate) -> tuple[float, float, float]:
    """(cost without the carbon price, emissions contract- and location-based)."""
    k = criteria(c.plan.summary)
    return k["cost"], k["emissions_t"], k["emissions_location_t"]


def _optimum(sc: Scenario) -> Candidate:
    plan = optimize(sc, OFF)
    assert plan.schedule is not None
    return Candidate("improved", plan.schedule, plan)


def test_the_guard_stops_the_warm_device_and_dominates_a_cleaner_baseline() -> None:
    sc = _world()
    best = _optimum(sc)
    assert list(best.schedule.svc_devices[0, 0, 0]) == [2, 2, 2]  # the premise
    assert _kpis(best) == pytest.approx((430.0, 0.28, 0.28))
    base = _restarting(sc, job_hour=0)
    assert _kpis(base) == pytest.approx((525.0, 0.24, 0.24))
    found, record = guard.repair(sc, best, {"restarts": base}, _complete, rounds=3)
    assert record["needed"] and found is not None and found.origin == guard.GUARD
    validate_plan(sc, found.plan).raise_if_failed()
    assert list(found.schedule.svc_devices[0, 0, 0]) == [2, 1, 2]
    assert list(found.schedule.job_hours[0]) == [1]  # the optimum's job, kept
    assert record["jobs_from"] == "improved"
    assert _kpis(found) == pytest.approx((435.0, 0.24, 0.24))
    # the first weight dominated; the lighter ones tried after it keep the device warm
    assert record["tries"][0]["weights"]["emissions_t"] == pytest.approx(1000.0)


@pytest.mark.parametrize("expectation", ["round_s", "expected_s"])
def test_with_an_expected_time_no_completion_starts_that_would_end_past_the_deadline(
    expectation: str,
) -> None:
    """A completion (the first too) starts only where it is expected to end in time:
    `round_s` (`finish_by_limit`) by the job plan's share of the deadline, `expected_s` (the
    guard on its own clock, expected to take what the planner's churn-aware pass took) by
    the deadline itself, where otherwise each job plan's first completion starts whatever
    its share. Expected to take 1,000 s with 100 s left, none runs and the record says why;
    expected to take 0 s, the search runs as without one and finds the plan of the test
    above, each completion measured then replacing the expectation."""
    sc = _world()
    best, base = _optimum(sc), {"restarts": _restarting(sc, job_hour=0)}
    deadline = time.perf_counter() + 100.0
    found, record = guard.repair(sc, best, base, _complete, 3, deadline, **{expectation: 1e3})
    assert found is None and record["needed"] and record["tries"] == []
    assert "1000.0 s" in record["out_of_time"]
    found, record = guard.repair(sc, best, base, _complete, 3, deadline, **{expectation: 0.0})
    assert found is not None and list(found.schedule.svc_devices[0, 0, 0]) == [2, 1, 2]
    assert "out_of_time" not in record and len(record["tries"]) > 1


def test_the_search_ends_where_nothing_around_the_jobs_answers_to_the_weights() -> None:
    # no inference: around a fixed job nothing is left to decide, so every weight completes
    # to the same plan. The optimum runs the job in the cheap dirty hour (10 + 0.4 x 97 CNY),
    # the baseline in a clean dear one; after the second identical try (`PROBE`'s, the
    # first having left the baseline cleaner) the search stops
    sc = scenario(
        [site("A")],
        prices={"A": [100, 10, 100]},
        carbon={"A": [40.0, 400.0, 40.0]},
        policy={"carbon_price_cny_per_t": 97.0},
        jobs=[job("j", deadline_h=3)],
    )
    best = _optimum(sc)
    assert list(best.schedule.job_hours[0]) == [1]  # the premise
    base = Schedule.empty(sc)
    base.job_site[0], base.job_acc[0], base.job_hours[0] = 0, 0, np.array([0])
    clean = Candidate("baseline:clean", base, assemble_plan(sc, base, status="baseline"))
    validate_plan(sc, clean.plan).raise_if_failed()
    found, record = guard.repair(sc, best, {"clean": clean}, _complete, rounds=8)
    assert found is None and record["needed"]
    assert [t.get("unchanged", False) for t in record["tries"]] == [False, True]
    assert record["tries"][1]["hopeless"] == ["emissions_location_t", "emissions_t"]
    first, second = record["tries"]
    assert second["weights"]["emissions_t"] == pytest.approx(
        guard.PROBE * first["weights"]["emissions_t"]
    )
    assert second["probe"] == ["emissions_location_t", "emissions_t"]


def test_no_plan_replaces_the_optimum_where_none_dominates() -> None:
    # the baseline running the job in the cheap hour too is the guard's own plan (435 CNY,
    # 0.24 t): a tie, not dominance; the record says what the best try missed
    sc = _world()
    found, record = guard.repair(sc, _optimum(sc), {"r": _restarting(sc, 1)}, _complete, 3)
    assert found is None and record["needed"] and not record["found"]
    assert min(t["worst_diff"]["cost"] for t in record["tries"]) == pytest.approx(0.0, abs=1e-6)


def test_optimize_keeps_its_plan_when_greedy_ties_the_guards() -> None:
    # greedy restarts the device and runs the job in the cheap hour: the guard's own plan
    # (435 CNY, 0.24 t), so no plan dominates greedy and the optimum comes back, with the
    # guard's record; with the guard off there is none
    sc = _world()
    base = _restarting(sc, job_hour=0)
    plan = optimize(sc, EXACT, extra_baselines={"restarts": base.schedule})
    validate_plan(sc, plan).raise_if_failed()
    s = plan.summary
    assert criteria(s["baselines"]["greedy"]) == pytest.approx(
        {"cost": 435.0, "emissions_t": 0.24, "emissions_location_t": 0.24, "curtailed_mwh": 0.0}
    )
    assert s["origin"] == "improved" and criteria(s)["cost"] == pytest.approx(430.0)
    record = s["solver"]["guard"]
    assert record["needed"] and not record["found"] and record["from"] == "improved"
    assert record["tries"][0]["dominates"] == {
        "greedy": False, "carbon_agnostic": True, "restarts": True
    }  # fmt: skip
    assert "guard" not in optimize(sc, OFF).summary["solver"]


def test_the_shadow_scenario_prices_a_tonne_each_way_and_a_curtailed_mwh() -> None:
    sc = scenario([site("A")], carbon={"A": [500.0] * 3}, green={"A": [1.0] * 3})
    w = {"emissions_t": 200.0, "emissions_location_t": 300.0, "curtailed_mwh": 7.0}
    sh = guard.shadow_scenario(sc, w)
    assert sh.policy.carbon_price_cny_per_t == 200.0
    # a grid MWh: price 100 + 0.5 t x 300 location (+ 0.5 t x 200 contract, as carbon)
    assert sh.grid_price_cny_per_mwh[0] == pytest.approx([250.0] * 3)
    # a green MWh counts location-based too, and saves a curtailed one
    assert sh.green_price_cny_per_mwh[0] == pytest.approx([150.0 - 7.0] * 3)


def test_the_search_brackets_each_weight_on_a_log_scale() -> None:
    s = guard.Search.start({"emissions_t"})
    assert s.scale == {"emissions_t": 10.0, "emissions_location_t": 1.0, "curtailed_mwh": 1.0}
    s.step({"emissions_t"}, dear=False)  # still dirtier: 4x heavier there, the rest kept
    assert s.scale == {"emissions_t": 40.0, "emissions_location_t": 1.0, "curtailed_mwh": 1.0}
    # dearer and curtailing more: curtailment 4x heavier; contract halfway back into its
    # bracket [10, 40]; location, with no bracket below, 4x lighter
    s.step({"curtailed_mwh"}, dear=True)
    assert s.scale == {"emissions_t": 20.0, "emissions_location_t": 0.25, "curtailed_mwh": 4.0}
    s.step(set(), dear=False)  # dominating: lighter, halfway into each bracket, else 4x
    assert s.scale == pytest.approx(
        {"emissions_t": 200**0.5, "emissions_location_t": 0.25 / 4, "curtailed_mwh": 2.0}
    )


def _dirty_dip_world() -> Scenario:
    """`_world` with a dirty cheap hour (400 kg/MWh) and a cheaper last hour for the job
    (90 CNY/MWh): the optimum runs the job in hour 1 (10 + 0.4 x 97 = 48.8 CNY against
    90 + 3.9 in hour 2) and restarts the spare device (10 + 38.8 > 15): 200 + 10 + 180 + 15 + 10 = 415 CNY, 0.96 t."""
    return _world(prices=(100, 10, 90), carbon=[40.0, 400.0, 40.0])


def test_the_guard_searches_a_passed_over_plan_when_the_chosen_jobs_cannot_dominate() -> None:
    # the baseline runs the job in hour 0 and restarts: 200 + 10 + 180 + 15 + 100 = 505 CNY,
    # 0.56 + 0.04 = 0.60 t. Around the optimum's job (hour 1, 0.4 t on its own) no inference
    # gets below 0.96 t. A plan passed over runs it in hour 2 with the spare device warm
    # (490 CNY, 1.00 t); around its job the guard restarts the device: 495 CNY, 0.60 t,
    # cheaper than the baseline for the same carbon
    sc = _dirty_dip_world()
    best = _optimum(sc)
    assert list(best.schedule.job_hours[0]) == [1]  # the premise
    assert _kpis(best) == pytest.approx((415.0, 0.96, 0.96))
    base = _restarting(sc, job_hour=0)
    assert _kpis(base) == pytest.approx((505.0, 0.60, 0.60))
    warm = _restarting(sc, job_hour=2)
    warm.schedule.svc_devices[0, 0, 0, :] = [2, 2, 2]
    warm = Candidate("start", warm.schedule, assemble_plan(sc, warm.schedule, status="baseline"))
    assert _kpis(warm) == pytest.approx((490.0, 1.00, 1.00))

    # around the optimum's job `PROBE`'s weight makes it cleaner only by leaving demand
    # unmet (10,000 CNY/Mtoken against 256,000 CNY/t), far dearer: not hopeless, so the
    # search goes on. Where demand cannot be dropped, the probe leaves it as dirty, and the
    # search ends at it
    alone, record = guard.repair(sc, best, {"b": base}, _complete, rounds=3)
    assert alone is None and len(record["tries"]) == 3
    assert record["tries"][1]["probe"] and "hopeless" not in record["tries"][1]
    assert record["tries"][1]["worst_diff"]["cost"] > 70_000
    firm = dataclasses.replace(sc.policy, unmet_penalty_cny_per_mtoken=1e9)
    firm_sc = dataclasses.replace(sc, policy=firm)
    firm_best, firm_base = _optimum(firm_sc), {"b": _restarting(firm_sc, job_hour=0)}
    _, record = guard.repair(firm_sc, firm_best, firm_base, _complete, rounds=3)
    assert [t.get("hopeless") for t in record["tries"]] == [
        None, ["emissions_location_t", "emissions_t"]
    ]  # fmt: skip
    found, record = guard.repair(sc, best, {"b": base}, _complete, rounds=3, others=[warm])
    assert found is not None and found.origin == guard.GUARD
    validate_plan(sc, found.plan).raise_if_failed()
    assert list(found.schedule.job_hours[0]) == [2]  # the passed-over plan's job, kept
    assert list(found.schedule.svc_devices[0, 0, 0]) == [2, 1, 2]
    assert _kpis(found) == pytest.approx((495.0, 0.60, 0.60))
    assert {t["from"] for t in record["tries"]} == {"improved", "start"}
    assert record["tries"][-1]["from"] == "start" and record["jobs_from"] == "start"


def test_the_guard_re_plans_what_runs_around_a_baselines_own_jobs() -> None:
    """A baseline's own plan ties itself: no baseline is better on anything, yet it does
    not dominate, so the guard never searched around it. Its dispatch is a heuristic's, and
    the completion around its jobs can make it cheaper for no more carbon.

    `_dirty_dip_world` with demand firm (1e9 CNY/Mtoken): around the optimum's job (hour 1,
    415 CNY, 0.96 t) no inference gets below 0.96 t, so that search ends `hopeless`. The
    baseline runs the job in hour 0 and restarts, but keeps a third, idle device in hour 0:
    505 + 100 = 605 CNY, 0.60 + 0.04 = 0.64 t. Around its job the guard drops that device:
    505 CNY, 0.60 t, cheaper and cleaner than the baseline."""
    sc = _dirty_dip_world()
    sc = dataclasses.replace(
        sc, policy=dataclasses.replace(sc.policy, unmet_penalty_cny_per_mtoken=1e9)
    )
    best = _optimum(sc)
    assert list(best.schedule.job_hours[0]) == [1]  # the premise
    assert _kpis(best) == pytest.approx((415.0, 0.96, 0.96))
    spare = _restarting(sc, job_hour=0).schedule
    spare.svc_devices[0, 0, 0, 0] = 3
    base = Candidate("baseline:spare", spare, assemble_plan(sc, spare, status="baseline"))
    validate_plan(sc, base.plan).raise_if_failed()
    assert _kpis(base) == pytest.approx((605.0, 0.64, 0.64))

    found, record = guard.repair(sc, best, {"spare": base}, _complete, rounds=3, others=[base])
    assert found is not None and found.origin == guard.GUARD
    validate_plan(sc, found.plan).raise_if_failed()
    assert list(found.schedule.job_hours[0]) == [0]  # the baseline's job, kept
    assert record["jobs_from"] == "baseline:spare"
    assert list(found.schedule.svc_devices[0, 0, 0]) == [2, 1, 2]
    assert _kpis(found) == pytest.approx((505.0, 0.60, 0.60))
    froms = [t["from"] for t in record["tries"]]
    assert froms[:2] == ["improved", "improved"] and record["tries"][1]["hopeless"]
    assert froms[2] == "baseline:spare" and record["tries"][2]["dominates"] == {"spare": True}
    # weighed at `FIRST_SCALE` on every criterion: what it ties on is what it must keep
    assert record["tries"][2]["weights"] == pytest.approx(
        {k: guard.FIRST_SCALE * w for k, w in guard.unit_weights(sc).items()}
    )


def test_a_warm_guard_starts_where_the_previous_search_ended() -> None:
    """A warm re-solve's guard tries the weights that made the previous plan dominate first
    (`seed`). Where they still dominate, the search ends there: one completion. Where they
    are too light (50 CNY/t each way: the dip device at 10 + 0.04 x 100 = 14 < 15 CNY stays
    warm) it goes on from them as a cold search does: `PROBE` times heavier (12,800), then
    halfway back on a log scale (800), to the same plan."""
    sc = _world()
    best, base = _optimum(sc), {"restarts": _restarting(sc, job_hour=0)}
    _, cold = guard.repair(sc, best, base, _complete, rounds=3)
    assert len(cold["tries"]) > 1 and cold["tries"][0]["dominates"]["restarts"]
    seed = cold["tries"][0]["weights"]  # 1,000 CNY/t each way
    found, record = guard.repair(sc, best, base, _complete, rounds=3, seed=seed)
    assert found is not None and _kpis(found) == pytest.approx((435.0, 0.24, 0.24))
    assert [t.get("seed_kept", False) for t in record["tries"]] == [True]
    assert record["tries"][0]["weights"] == seed and record["seed"] == seed

    light = guard.unit_weights(sc) | {"emissions_t": 50.0, "emissions_location_t": 50.0}
    found, record = guard.repair(sc, best, base, _complete, rounds=3, seed=light)
    assert found is not None and _kpis(found) == pytest.approx((435.0, 0.24, 0.24))
    first, second, third = record["tries"]
    assert not first["dominates"]["restarts"] and "seed_kept" not in first
    assert first["weights"]["emissions_t"] == pytest.approx(50.0)
    assert second["dominates"]["restarts"] and third["dominates"]["restarts"]
    assert second["weights"]["emissions_t"] == pytest.approx(50.0 * guard.PROBE)
    assert third["weights"]["emissions_t"] == pytest.approx((50.0 * 50.0 * guard.PROBE) ** 0.5)


def test_a_plan_completed_at_the_seed_is_the_first_try_as_it_is() -> None:
    """A warm re-solve's plan may be its jobs completed at the seed's weights already (the
    planner's churn-aware completion on the seed's shadow scenario). Made again, the first
    try would be that plan: with `seed_made` it is taken as it is (`made`), and the search
    goes on from it as above, PROBE's try then halfway back, to the same plan, with one
    completion fewer (two, not three)."""
    sc = _world()
    base = {"restarts": _restarting(sc, job_hour=0)}
    light = guard.unit_weights(sc) | {"emissions_t": 50.0, "emissions_location_t": 50.0}
    jobs = _optimum(sc).schedule
    at_seed = _complete(guard.shadow_scenario(sc, light), jobs)
    assert at_seed is not None
    best = Candidate("improved", at_seed, assemble_plan(sc, at_seed, status="check"))
    made: list[float] = []  # the carbon price of each completion made, CNY/t

    def counted(shadow: Scenario, jobs: Schedule) -> Schedule | None:
        made.append(shadow.policy.carbon_price_cny_per_t)
        return _complete(shadow, jobs)

    found, record = guard.repair(sc, best, base, counted, rounds=3, seed=light, seed_made=True)
    assert found is not None and _kpis(found) == pytest.approx((435.0, 0.24, 0.24))
    first, second, third = record["tries"]
    assert first["made"] and not first["dominates"]["restarts"]
    assert first["cost"] == pytest.approx(criteria(best.plan.summary)["cost"])
    assert "made" not in second and "made" not in third
    # the tries made: PROBE's (12,800 CNY/t) and halfway back (800), not the seed's (50)
    assert made == pytest.approx([50.0 * guard.PROBE, 800.0])
    assert [t["weights"]["emissions_t"] for t in record["tries"]] == pytest.approx(
        [50.0, 50.0 * guard.PROBE, 800.0]
    )


def test_the_planner_hands_the_guard_a_plan_completed_at_the_seed_as_its_first_try() -> None:
    """`planner._guarded` passes `seed_made` only where the solver's plan is its jobs
    completed at the seed's weights (`solver.plan_weights`, set by `_finish` from the
    completions made on the shadow scenario); completed at other weights, the seed's try is
    made as before."""
    sc = _world()
    base = {"restarts": _restarting(sc, job_hour=0)}
    light = guard.unit_weights(sc) | {"emissions_t": 50.0, "emissions_location_t": 50.0}
    at_seed = _complete(guard.shadow_scenario(sc, light), _optimum(sc).schedule)
    assert at_seed is not None
    best = Candidate("improved", at_seed, assemble_plan(sc, at_seed, status="check"))
    for plan_weights, made in ((light, True), (None, False)):
        solver: dict[str, Any] = {"warm": {"guard_weights": light}, "origin_objectives": {}}
        if plan_weights is not None:
            solver["plan_weights"] = plan_weights
        found = planner_module._guarded(sc, EXACT, best, base, solver, time.perf_counter())
        assert _kpis(found) == pytest.approx((435.0, 0.24, 0.24))
        assert solver["guard"]["tries"][0].get("made", False) is made


def test_a_warm_resolves_winner_is_completed_on_the_previous_guard_weights() -> None:
    """A warm re-solve completes its winner churn-aware on the weights that made the previous
    plan (the guard's) dominate (`planner._warm_shadow`), as the guard's first try would:
    where they still dominate, the guard has nothing left to do. On `_world` the optimum's
    job completed plainly keeps the spare device warm through the dip (0.28 t, cheaper); on
    1,000 CNY/t each way it restarts it: the guard's 435 CNY plan at 0.24 t (the test above)."""
    from optimizer.model.build import build_model

    sc = _world()
    best = _optimum(sc)
    m, _ = build_model(sc)
    seed = guard.unit_weights(sc) | {"emissions_t": 1000.0, "emissions_location_t": 1000.0}
    kpis = {}
    for warm in (None, seed):
        solver: dict[str, Any] = {} if warm is None else {"warm": {"guard_weights": warm}}
        run = planner_module._Run(sc, None, EXACT, solver, {}, time.perf_counter())
        run.candidates.append((0.0, planner_module._jobs_only(sc, best.schedule), "winner"))
        planner_module._complete_churn_aware(run, m, None)
        _, done, name = run.candidates[-1]
        assert name == "winner_churn_aware" and solver["churn_aware"]["status"] == "done"
        assert solver["churn_aware"].get("guard_weights") == warm
        assert (name in run.on_shadow) is (warm is not None)  # `_finish`: `plan_weights`
        plan = assemble_plan(sc, done, status="baseline")  # validated as a plan alone
        validate_plan(sc, plan).raise_if_failed()
        kpis[warm is None] = _kpis(Candidate("improved", done, plan))
    assert kpis[False] == pytest.approx((435.0, 0.24, 0.24))
    assert kpis[True] == pytest.approx(_kpis(best))  # plainly: the optimum as it was
    assert kpis[True][1:] == pytest.approx((0.28, 0.28)) and kpis[True][0] < 435.0
