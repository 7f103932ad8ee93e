"""Short jobs planned as flexible load (optimizer/flexible.py), worked out by hand.

As in tests/micro.py: type "G" draws 1 MW busy and nothing idle, PUE 1, so a busy
device-hour costs that hour's grid price. Ten-minute jobs (1/6 device-hour): six share
one device-hour (one lane); individually each would hold a device for a whole hour.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optimizer import SolverSettings, optimize
from optimizer.flexible import aggregate, is_flexible, pack
from optimizer.scenario.types import Scenario
from optimizer.validate import validate_plan
from tests.micro import EXACT, at, job, placement, scenario, site, solve

FLEX = dataclasses.replace(EXACT, flexible_jobs="on")
OFF = dataclasses.replace(EXACT, flexible_jobs="off")
TEN_MIN = 1 / 6  # device-h


def short_jobs(n: int, **kw: object) -> list[dict[str, object]]:
    # a penalty well above any price here: leaving a job out never pays
    return [
        job(f"s{i:02d}", work_device_hours=TEN_MIN, unplaced_penalty_cny=1e4, **kw)
        for i in range(n)
    ]


def twenty_short_jobs() -> Scenario:
    """Twenty ten-minute jobs; A's hour 1 (10 per device-hour) is the cheapest anywhere."""
    return scenario(
        [site("A"), site("B")],
        prices={"A": [100, 10, 20], "B": [50, 50, 50]},
        jobs=short_jobs(20),
    )


def places(plan, ids: list[str]) -> set[tuple[str, tuple[int, ...]]]:  # type: ignore[no-untyped-def]
    return {(p[0], tuple(p[1])) for p in (placement(plan, j) for j in ids)}


def lanes_of(plan) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    w = plan.workloads[plan.workloads["lane_id"] != ""]
    return {k: sorted(g["workload_id"]) for k, g in w.groupby("lane_id")}


def test_twenty_ten_minute_jobs_share_four_device_hours_at_the_cheapest_site_hour() -> None:
    # A's hour 1 costs 10 per device-hour, the cheapest anywhere; 20 x 10 min = 3 1/3
    # device-hours: four lanes (6 + 6 + 6 + 2 jobs), all there, 4 x 10 = 40.
    sc = twenty_short_jobs()
    plan = solve(sc, FLEX)
    assert plan.summary["total_cost"] == pytest.approx(40.0)
    assert places(plan, [f"s{i:02d}" for i in range(20)]) == {("A", (1,))}
    assert sorted(len(m) for m in lanes_of(plan).values()) == [2, 6, 6, 6]
    assert plan.summary["solver"]["flexible"]["lanes"] == 4
    busy = plan.site_hour_devices.set_index(["site_id", "hour"])["busy"]
    assert busy[("A", 1)] == 4  # a lane's device counts once, however many jobs share it
    # one by one, each job holds a device-hour: 10 in A's hour 1, 10 in its hour 2
    one_by_one = solve(sc, OFF)
    assert one_by_one.summary["total_cost"] == pytest.approx(10 * 10 + 10 * 20)
    assert "lane_id" in one_by_one.workloads and set(one_by_one.workloads["lane_id"]) == {""}


def test_a_class_whose_deadline_forces_its_hour_runs_then_at_the_cheapest_site() -> None:
    # due by the end of hour 0: A's cheap hour 1 is out of reach, B's hour 0 (50) beats A's (100)
    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100, 10, 20], "B": [50, 50, 50]},
        jobs=short_jobs(7, deadline_h=1)
        + [job("free", work_device_hours=TEN_MIN, unplaced_penalty_cny=1e4)],
    )
    plan = solve(sc, FLEX)
    assert places(plan, [f"s{i:02d}" for i in range(7)]) == {("B", (0,))}
    assert placement(plan, "free") == ("A", [1])
    assert plan.summary["total_cost"] == pytest.approx(2 * 50 + 10)  # 7 jobs: two lanes


def test_lanes_fill_a_small_fleet_exactly_and_the_validator_counts_each_lane_once() -> None:
    # 12 ten-minute jobs due in hour 0 on a 2-device site: 2 lanes, the fleet full
    sc = scenario([site("A")], fleets={"A": 2}, jobs=short_jobs(12, deadline_h=1))
    plan = solve(sc, FLEX)
    assert (plan.workloads["status"] == "placed").all()
    assert plan.site_hour_devices.set_index("hour")["busy"][0] == 2
    # one by one only 2 of them fit
    assert (solve(sc, OFF).workloads["status"] == "unplaced").sum() == 10


def test_disaggregation_never_overfills_a_device_hour() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        d = rng.uniform(0.01, 0.99, size=int(rng.integers(1, 40)))
        lanes = pack(d)
        assert sorted(np.concatenate(lanes).tolist()) == list(range(d.size))  # each once
        assert max(d[k].sum() for k in lanes) <= 1.0 + 1e-9
        assert len(lanes) <= 2 * np.ceil(d.sum())  # first-fit: under two bins per hour of work


def test_validator_catches_an_overfilled_lane_and_a_lane_split_across_hours() -> None:
    sc = scenario(
        [site("A")],
        prices={"A": [100, 10, 20]},
        jobs=short_jobs(12),
    )
    plan = solve(sc, FLEX)
    lanes = lanes_of(plan)
    assert len(lanes) == 2
    first, second = sorted(lanes)
    # every job of the second lane moved into the first: 12 x 10 min in one device-hour
    w = plan.workloads.copy()
    w.loc[w["lane_id"] == second, "lane_id"] = first
    rules = {
        (v.check, v.rule)
        for v in validate_plan(sc, dataclasses.replace(plan, workloads=w)).violations
    }
    assert ("capacity", "flexible_lane_overfill") in rules
    # one job of a lane run an hour later than its lane-mates
    a = plan.assignments.copy()
    moved = a["workload_id"] == lanes[first][0]
    a.loc[moved, "hour"] = 2
    a.loc[moved, "timestamp"] = at(2)
    rules = {
        (v.check, v.rule)
        for v in validate_plan(sc, dataclasses.replace(plan, assignments=a)).violations
    }
    assert ("jobs", "flexible_lane") in rules


def test_the_line_big_gangs_and_hour_long_jobs_stay_individual() -> None:
    sc = scenario(
        [site("A")],
        fleets={"A": 20},
        prices={"A": [1, 1, 1]},
        jobs=[
            job("short", work_device_hours=0.5),
            job("gang8", gang=8, work_device_hours=7.9),  # 8 devices x 59 min: flexible
            job("gang16", gang=16, work_device_hours=1.6),  # 6 min, but 16 devices
            job("hour", work_device_hours=1.0),  # not under an hour
        ],
    )
    assert [is_flexible(sc, j) for j in sc.jobs] == [True, True, False, False]
    lanes = aggregate(sc)
    assert lanes is not None and lanes.kept.tolist() == [2, 3]
    assert [m.tolist() for m in lanes.members] == [[0], [1]]  # gangs differ: two classes
    plan = solve(sc, FLEX)
    assert (plan.workloads["status"] == "placed").all()


def test_auto_leaves_a_few_short_jobs_to_the_per_job_model() -> None:
    sc = scenario([site("A")], jobs=short_jobs(3))
    plan = solve(sc, dataclasses.replace(EXACT, flexible_jobs="auto"))
    assert "flexible" not in plan.summary["solver"]
    assert isinstance(SolverSettings().flexible_jobs, str)


def test_a_stored_plan_read_back_keeps_its_lanes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from optimizer.plan import busy_devices, schedule_from_plan
    from optimizer.plan.types import Plan

    sc = scenario([site("A")], prices={"A": [100, 10, 20]}, jobs=short_jobs(12))
    plan = solve(sc, FLEX)
    plan.write_bundle(tmp_path)
    back = schedule_from_plan(sc, Plan.read_bundle(tmp_path))
    assert back.job_lane is not None and len(set(back.job_lane.tolist())) == 2
    assert busy_devices(sc, back)[0, 0, 1] == 2  # two lanes, not 12 jobs


def test_a_baseline_of_the_jobs_themselves_is_reported_and_compared_beside_the_lanes() -> None:
    # the same world one by one (OFF) is a plan of the scenario's own jobs: 300 CNY, two
    # device-hours more than the lanes' 40. Handed in as an extra baseline (as the cost-only
    # optimiser's plan is) it cannot seed the lanes, but is reported and compared: the lane
    # plan does the same work for less, so it dominates it
    sc = twenty_short_jobs()
    one_by_one = solve(sc, OFF)
    assert one_by_one.schedule is not None
    plan = optimize(sc, FLEX, extra_baselines={"one_by_one": one_by_one.schedule})
    validate_plan(sc, plan).raise_if_failed()
    s = plan.summary
    assert s["solver"]["flexible"]["lanes"] == 4
    assert s["baselines"]["one_by_one"]["total_cost"] == pytest.approx(300.0)
    d = s["solver"]["dominance"]["one_by_one"]
    assert d["dominates"] and d["diff"]["cost"] == pytest.approx(40.0 - 300.0)


@pytest.mark.parametrize("gap", [1e-4, 0.0])
def test_a_warm_re_solve_starts_each_lane_where_its_jobs_ran_and_keeps_the_services(
    gap: float,
) -> None:
    """Twenty ten-minute jobs in four lanes at A's hour 1 (the cheapest device-hour), and a
    service on two devices an hour at A (800 tokens/s at 400 a device). A stored plan is
    stated on the jobs; `on_lanes` gives each lane its jobs' site and hour again, and leaves
    the service's rows alone (two devices every hour, not one row per hour). A warm
    re-solve of the same data by the round strategy then keeps the previous plan as it
    stands: the previous plan's duals prove it before any LP (no pricing round), and its
    cost is the previous plan's, 4 x 10 for the lanes and 2 x (100 + 10 + 20) for the
    service, 300. With no gap asked for (`mip_rel_gap` 0) as well: the bound, a rounding
    error under the plan, is within HiGHS' own absolute gap of it (`planner.GAP_ABS_CNY`)."""
    from optimizer.flexible import on_lanes
    from optimizer.plan import schedule_from_plan

    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100, 10, 20], "B": [50, 50, 50]},
        jobs=short_jobs(20),
        services=[{"service_id": "s", "latency_limit_ms": 20}],
        throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
        demand={("s", "R"): [800, 800, 800]},
        latency={("A", "R"): 10},
    )
    rounding = dataclasses.replace(FLEX, integer_devices="round", mip_rel_gap=gap)
    previous = solve(sc, rounding)
    assert previous.summary["total_cost"] == pytest.approx(4 * 10 + 2 * (100 + 10 + 20))
    lanes = aggregate(sc)
    assert lanes is not None
    start = schedule_from_plan(lanes.scenario, on_lanes(previous))
    n = lanes.kept.size
    assert n == 0 and len(lanes.members) == 4
    assert set(start.job_site.tolist()) == {0}  # every lane at A ...
    assert all(h.tolist() == [1] for h in start.job_hours)  # ... in hour 1
    assert start.svc_devices[0, 0, 0].tolist() == [2, 2, 2]
    warm = optimize(sc, rounding, warm_start=previous)
    validate_plan(sc, warm).raise_if_failed()
    solver = warm.summary["solver"]
    assert solver["plan_source"] == "previous_kept"
    assert solver["job_options"]["rounds"] == 0
    assert solver["job_options"]["stopped"] == "warm plan within its gap"
    assert warm.summary["total_cost"] == pytest.approx(previous.summary["total_cost"])


def test_a_warm_re_solve_plans_and_states_its_baselines_beside_pricing_where_a_core_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm re-solve starts from the previous plan, so nothing needs the baselines before
    the plan is chosen: with a second core free (`lp_workers` 2) they are planned on the
    lanes, and stated on the jobs, in turn on the thread beside pricing's first LP (the
    long one, with the replica starts), and waited for at the end. With one core, and on
    a cold solve (whose start is the best greedy plan), they are planned on the solve's
    own thread first. The twenty jobs' four lanes
    ran at A's hour 1 (10); its price rises to 60, so the kept plan (240) is not proven
    before an LP, and the lanes move to A's hour 2 (20): 80, with the same baselines
    either way."""
    import threading

    from optimizer import flexible
    from optimizer import planner as planner_module

    # the replica starts in the pricing LPs (no service here, so they add nothing): the
    # previous plan's LP with them was short, so the warm re-solve's first LP has them, the
    # long one the baselines go beside
    rounding = dataclasses.replace(
        FLEX, integer_devices="round", mip_rel_gap=1e-4, pricing_churn="on"
    )
    previous = solve(twenty_short_jobs(), rounding)
    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100, 60, 20], "B": [50, 50, 50]},
        jobs=short_jobs(20),
    )
    plan_baseline, stated = planner_module.plan_baseline, flexible._stated
    threads: dict[str, set[str]] = {}

    def planned(s: Scenario, name: str, **kw: object) -> object:
        threads.setdefault("planned", set()).add(threading.current_thread().name)
        return plan_baseline(s, name, **kw)  # type: ignore[arg-type]

    def stated_on_jobs(*a: object) -> object:
        threads.setdefault("stated", set()).add(threading.current_thread().name)
        return stated(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(planner_module, "plan_baseline", planned)
    monkeypatch.setattr(flexible, "_stated", stated_on_jobs)
    main = threading.current_thread().name
    cold = solve(sc, dataclasses.replace(rounding, lp_workers=2))
    assert threads == {"planned": {main}, "stated": {main}}  # cold: first, here
    for workers in (1, 2):
        threads.clear()
        warm = optimize(sc, dataclasses.replace(rounding, lp_workers=workers), warm_start=previous)
        validate_plan(sc, warm).raise_if_failed()
        assert warm.summary["solver"]["job_options"]["per_round"][0]["starts"]
        assert warm.summary["total_cost"] == pytest.approx(4 * 20)
        assert warm.summary["baselines"] == cold.summary["baselines"]
        if workers == 1:
            assert threads == {"planned": {main}, "stated": {main}}
        else:
            # one thread beside pricing, the baselines planned then stated on it in turn
            assert threads["planned"] == threads["stated"]
            (beside,) = threads["planned"]
            assert beside.startswith("beside-pricing")
