"""One micro instance per constraint family, with the optimum worked out by hand.

Unless a test says otherwise: device "G" draws 1 MW busy and nothing idle, PUE 1, so a
job-hour costs that hour's grid price (CNY/MWh). Every plan goes through the validator.
"""

from __future__ import annotations

import highspy
import pytest

from optimizer.model.build import build_model
from optimizer.model.matrix_backend import to_highs
from optimizer.solve import solve_relaxation
from tests.micro import job, leans_on_green, placement, scenario, site, site_hour, solve


# --- 1. jobs -------------------------------------------------------------------------
def test_preemptible_job_takes_the_cheapest_hours_of_the_cheapest_site() -> None:
    # A: 10 + 20 = 30 for two hours; B: 50 + 50 = 100
    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100, 10, 20], "B": [50, 50, 50]},
        jobs=[job("j", work_device_hours=2)],
    )
    plan = solve(sc)
    assert placement(plan, "j") == ("A", [1, 2])
    assert plan.summary["total_cost"] == pytest.approx(30.0)
    assert plan.summary["status"] == "optimal"


def test_contiguous_job_runs_one_block_where_a_preemptible_one_would_pause() -> None:
    prices = {"A": [10, 100, 11, 12]}
    # 2026-12-05: pauses are priced since issue 12; free here, so pausing pays (10 + 11)
    free_pause = {"checkpoint_min": 0.0, "restore_min": 0.0}
    pre = solve(
        scenario(
            [site("A")],
            hours=4,
            prices=prices,
            jobs=[job("j", work_device_hours=2, deadline_h=4)],
            policy=free_pause,
        )
    )
    assert placement(pre, "j") == ("A", [0, 2])  # 10 + 11
    con = solve(
        scenario(
            [site("A")],
            hours=4,
            prices=prices,
            jobs=[job("j", work_device_hours=2, deadline_h=4, preemptible=False)],
        )
    )
    assert placement(con, "j") == ("A", [2, 3])  # 11 + 12 beats 10 + 100
    assert con.summary["total_cost"] == pytest.approx(23.0)


def test_long_contiguous_jobs_counted_by_a_chain_take_the_same_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The running count (block_running, horizons over a week) is the same model as one
    device_use term per start and block hour: forced on for a micro instance, the same
    blocks. One device: "a" (3 h) takes the cheap hours 4-6, "b" (2 h, starts 0-7) the
    cheapest other pair, 1-2 (8 + 9), not 7-8 (the 10 + 50 hours)."""
    import optimizer.model.jobs as model_jobs

    sc = scenario(
        [site("A")],
        hours=9,
        prices={"A": [30, 8, 9, 40, 1, 1, 1, 10, 50]},
        fleets={"A": 1},
        jobs=[
            job("a", work_device_hours=3, deadline_h=9, preemptible=False),
            job("b", work_device_hours=2, deadline_h=9, preemptible=False),
        ],
    )
    direct = solve(sc)
    monkeypatch.setattr(model_jobs, "CHAIN_MIN_HORIZON_H", 0)
    monkeypatch.setattr(model_jobs, "CHAIN_MIN_SAVING", 0.0)
    chained = solve(sc)
    assert chained.summary["model_size"]["variables"] > direct.summary["model_size"]["variables"]
    for plan in (direct, chained):
        assert placement(plan, "a") == ("A", [4, 5, 6])
        assert placement(plan, "b") == ("A", [1, 2])
    assert chained.summary["total_cost"] == pytest.approx(direct.summary["total_cost"])


def test_job_that_cannot_meet_its_deadline_is_unplaced_with_a_reason() -> None:
    sc = scenario([site("A")], jobs=[job("late", work_device_hours=5), job("ok")])
    plan = solve(sc)
    assert plan.status == "optimal"
    w = plan.workloads.set_index("workload_id")
    assert w.loc["late", "status"] == "unplaced"
    assert "needs 5 h" in w.loc["late", "reason"] and "window has 3 h" in w.loc["late", "reason"]
    assert w.loc["ok", "status"] == "placed"


def test_job_crowded_out_by_capacity_says_devices_were_the_limit() -> None:
    # two gangs of 10 on a 10-device site, both needing all 3 hours: only one fits
    sc = scenario(
        [site("A")],
        fleets={"A": 10},
        jobs=[job("a", gang=10, work_device_hours=30), job("b", gang=10, work_device_hours=30)],
    )
    plan = solve(sc)
    w = plan.workloads.set_index("workload_id")
    assert sorted(w["status"]) == ["placed", "unplaced"]
    reason = w.loc[w["status"] == "unplaced", "reason"].iloc[0]
    assert "deadline cannot be met" in reason and "free G devices in only 0 h" in reason


def test_job_with_a_release_runs_only_inside_its_window() -> None:
    from tests.micro import at

    sc = scenario(
        [site("A")],
        hours=4,
        prices={"A": [1, 50, 60, 70]},
        jobs=[job("j", release=at(1), deadline_h=4)],
    )
    assert placement(solve(sc), "j") == ("A", [1])


def test_residency_limits_the_sites() -> None:
    sc = scenario(
        [site("A", residency_region="r1"), site("B", residency_region="r2")],
        prices={"A": [10] * 3, "B": [100] * 3},
        jobs=[job("j", allowed_regions="r2")],
    )
    assert placement(solve(sc), "j")[0] == "B"


def test_job_may_use_any_listed_accelerator_at_its_throughput() -> None:
    # F is half as fast: 2 run hours instead of 1, but its hour costs a quarter
    sc = scenario(
        [site("A")],
        accelerators=[
            {"accelerator": "G", "busy_kw": 1000.0, "idle_kw": 0.0},
            {"accelerator": "F", "busy_kw": 250.0, "idle_kw": 0.0, "relative_throughput": 0.5},
        ],
        extra_fleets=[{"site_id": "A", "accelerator": "F", "devices": 4}],
        jobs=[job("j", accelerators="G;F", work_device_hours=1)],
    )
    plan = solve(sc)
    row = plan.workloads.set_index("workload_id").loc["j"]
    assert row["accelerator"] == "F" and row["run_hours"] == 2
    assert plan.summary["total_cost"] == pytest.approx(2 * 0.25 * 100)


def test_deadline_beyond_the_horizon_asks_for_the_pro_rata_share() -> None:
    # 4 device-hours due at hour 6 of which 3 h are in the horizon: share 4 x 3/6 = 2 h
    sc = scenario(
        [site("A")],
        prices={"A": [30, 10, 20]},
        jobs=[
            job("p", work_device_hours=4, deadline_h=6),
            job("c", work_device_hours=4, deadline_h=6, preemptible=False),
        ],
    )
    plan = solve(sc)
    assert placement(plan, "p") == ("A", [1, 2])
    assert placement(plan, "c") == ("A", [1, 2])  # one block ending at the horizon end
    # due after the horizon, they did their in-horizon share: on track, not done
    assert set(plan.workloads["status"]) == {"on_track"}


# --- 2. migration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data_gb", "weight", "moves"),
    [
        (0.0, 1.0, True),  # 4 h at B = 240 + lost hour 15 = 255 < 300 staying
        (1000.0, 1.0, False),  # + 1000 GB x 0.05 = 305 > 300
        (1000.0, 0.0, True),  # stability weight 0: migration free, 240 < 300
    ],
)
def test_running_job_moves_only_when_the_saving_pays_for_the_move(
    data_gb: float, weight: float, moves: bool
) -> None:
    sc = scenario(
        [site("A"), site("B")],
        hours=4,
        prices={"A": [100] * 4, "B": [60] * 4},
        jobs=[
            job(
                "r",
                current_site="A",
                work_device_hours=3,
                deadline_h=4,
                data_gb=data_gb,
                lost_hours_on_move=1,
            )
        ],
        policy={"plan_stability_weight": weight},
    )
    plan = solve(sc)
    where, hours = placement(plan, "r")
    assert where == ("B" if moves else "A")
    assert len(hours) == (4 if moves else 3)  # the lost hour is re-run on the new site
    if moves:
        m = plan.moves.set_index("workload_id").loc["r"]
        assert m["energy_cost_if_stayed"] == pytest.approx(300.0)
        assert m["energy_cost_here"] == pytest.approx(240.0)
        assert m["net_saving"] == pytest.approx(60.0 - weight * (15.0 + data_gb * 0.05))
    else:
        assert plan.moves.empty


def test_data_transfer_cost_keeps_a_job_near_its_data_unless_the_saving_is_bigger() -> None:
    base = {"prices": {"A": [100] * 3, "B": [80] * 3}}
    near = solve(
        scenario([site("A"), site("B")], **base, jobs=[job("j", data_origin_site="A", data_gb=500)])
    )  # 80 + 25 > 100
    assert placement(near, "j")[0] == "A"
    far = solve(
        scenario([site("A"), site("B")], **base, jobs=[job("j", data_origin_site="A", data_gb=300)])
    )  # 80 + 15 < 100
    assert placement(far, "j")[0] == "B"
    assert far.summary["data_transfer_cost"] == pytest.approx(15.0)


# --- 3. inference ----------------------------------------------------------------------
def _svc(**kw):  # type: ignore[no-untyped-def]
    # a device here draws 1 MW for 400 tokens/s (~69 CNY/Mtoken at 100 CNY/MWh), so price
    # unmet demand well above that: serving must win
    return dict(
        policy={"unmet_penalty_cny_per_mtoken": 10000.0},
        services=[{"service_id": "s", "latency_limit_ms": 20}],
        throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
        demand={("s", "R"): [1000, 1000, 1000]},
        **kw,
    )


def test_inference_uses_whole_devices_within_the_latency_limit() -> None:
    # B is cheaper but 50 ms away: 3 devices (ceil 1000/400) at A every hour
    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100] * 3, "B": [10] * 3},
        **_svc(latency={("A", "R"): 10, ("B", "R"): 50}),
    )
    plan = solve(sc)
    a = plan.assignments[plan.assignments["workload_id"] == "s"]
    assert set(a["site_id"]) == {"A"} and list(a["devices"]) == [3, 3, 3]
    assert plan.summary["total_cost"] == pytest.approx(900.0)
    assert plan.summary["served_share"] == pytest.approx(1.0)
    assert (plan.service_flows["latency_ms"] <= 20).all()


def test_inference_splits_across_sites_when_the_nearest_is_full() -> None:
    sc = scenario(
        [site("A"), site("C")],
        fleets={"A": 2, "C": 10},
        prices={"A": [100] * 3, "C": [200] * 3},
        **_svc(latency={("A", "R"): 10, ("C", "R"): 15}),
    )
    plan = solve(sc)
    a = plan.assignments[plan.assignments["workload_id"] == "s"].groupby("site_id")["devices"].sum()
    assert a.to_dict() == {"A": 6, "C": 3}  # 2 + 1 devices per hour


def test_demand_no_site_can_reach_is_reported_unmet_not_infeasible() -> None:
    sc = scenario([site("A")], **_svc(latency={("A", "R"): 90}))
    plan = solve(sc)
    assert plan.status == "optimal"
    assert plan.summary["served_share"] == pytest.approx(0.0)
    assert "within 20 ms" in plan.workloads.set_index("workload_id").loc["s", "reason"]


# --- 4. capacity -------------------------------------------------------------------------
def test_gang_must_fit_on_one_site() -> None:
    sc = scenario(
        [site("A"), site("B")],
        fleets={"A": 2, "B": 4},
        prices={"A": [10] * 3, "B": [50] * 3},
        jobs=[job("j", gang=4, work_device_hours=4)],
    )
    assert placement(solve(sc), "j")[0] == "B"


def test_outage_hours_are_avoided() -> None:
    from tests.micro import at

    sc = scenario(
        [site("A")],
        prices={"A": [10, 30, 40]},
        availability=[
            {"site_id": "A", "accelerator": "G", "timestamp": at(h), "available_fraction": f}
            for h, f in enumerate([0.0, 1.0, 1.0])
        ],
        jobs=[job("j", gang=2, work_device_hours=2)],
    )
    assert placement(solve(sc), "j") == ("A", [1])


# --- 5. power ----------------------------------------------------------------------------
def test_grid_limit_sends_the_second_job_elsewhere_and_is_reported_binding() -> None:
    sc = scenario(
        [site("A", grid_limit_mw=1.0), site("B")],
        hours=1,
        prices={"A": [10], "B": [50]},
        jobs=[job("a", deadline_h=1), job("b", deadline_h=1)],
    )
    plan = solve(sc)
    assert sorted(placement(plan, j)[0] for j in ("a", "b")) == ["A", "B"]
    b = plan.binding
    assert ((b["site_id"] == "A") & (b["limit"] == "grid")).any()


def test_idle_devices_and_pue_make_the_facility_load() -> None:
    sc = scenario(
        [site("A", pue=1.5)],
        accelerators=[{"accelerator": "G", "busy_kw": 1000.0, "idle_kw": 200.0}],
        fleets={"A": 10},
        jobs=[job("j", deadline_h=1)],
    )
    plan = solve(sc)
    fac = site_hour(plan, "A", "facility_mw")
    # hour 0: 1 busy (1 MW) + 9 idle (1.8 MW), x 1.5; later hours: 10 idle x 0.2 MW x 1.5
    assert fac == pytest.approx([1.5 * 2.8, 3.0, 3.0])


# --- 6. energy and battery ---------------------------------------------------------------
def test_green_supply_is_used_and_the_rest_curtailed() -> None:
    sc = scenario([site("A")], prices={"A": [100] * 3}, green={"A": [0, 0, 1.5]}, jobs=[job("j")])
    plan = solve(sc)
    assert placement(plan, "j") == ("A", [2])
    assert site_hour(plan, "A", "green_used_mw")[2] == pytest.approx(1.0)
    assert site_hour(plan, "A", "curtailed_mw")[2] == pytest.approx(0.5)
    assert plan.summary["total_cost"] == pytest.approx(0.0)
    assert plan.summary["green_share"] == pytest.approx(1.0)


@pytest.mark.parametrize(("efficiency", "cost"), [(1.0, 20.0), (0.81, 39.0)])
def test_battery_shifts_cheap_energy_and_ends_no_emptier(efficiency: float, cost: float) -> None:
    # loads of 1 MW in both hours; charge 1 MW at 10, discharge at 100.
    # eta 0.81: sqrt = 0.9 each way, so 1 MW charged returns 0.81 MW: 10 x 2 + 100 x 0.19 = 39
    from tests.micro import at

    sc = scenario(
        [
            site(
                "A",
                battery_mwh=2.0,
                battery_mw=1.0,
                battery_efficiency=efficiency,
                battery_initial_soc=0.5,
            )
        ],
        hours=2,
        prices={"A": [10, 100]},
        jobs=[job("a", deadline_h=1), job("b", release=at(1), deadline_h=2)],
    )
    plan = solve(sc)
    assert plan.summary["total_cost"] == pytest.approx(cost)
    assert site_hour(plan, "A", "battery_charge_mw")[0] == pytest.approx(1.0)
    assert site_hour(plan, "A", "battery_soc_mwh")[-1] >= 1.0 - 1e-6


# --- 7. policy -----------------------------------------------------------------------------
def _two_grids(**kw):  # type: ignore[no-untyped-def]
    return scenario(
        [site("A"), site("B")],
        hours=1,
        prices={"A": [100], "B": [150]},
        carbon={"A": [1000], "B": [0]},
        **kw,
    )


def test_carbon_price_moves_work_to_the_cleaner_site() -> None:
    cheap = solve(_two_grids(jobs=[job("j", deadline_h=1)]))
    assert placement(cheap, "j")[0] == "A"
    assert cheap.summary["emissions_t"] == pytest.approx(1.0)
    priced = solve(
        _two_grids(jobs=[job("j", deadline_h=1)], policy={"carbon_price_cny_per_t": 100})
    )
    assert placement(priced, "j")[0] == "B"  # 100 + 1 t x 100 > 150
    assert priced.summary["emissions_t"] == pytest.approx(0.0)


def test_contract_and_location_emissions_are_reported_separately() -> None:
    sc = scenario(
        [site("A")],
        hours=1,
        prices={"A": [100]},
        carbon={"A": [1000]},
        green={"A": [0.5]},
        jobs=[job("j", deadline_h=1)],
    )
    plan = solve(sc)
    assert plan.summary["emissions_t"] == pytest.approx(0.5)  # grid import only
    assert plan.summary["emissions_location_t"] == pytest.approx(1.0)  # all energy drawn


def test_min_green_share_buys_dearer_green_energy() -> None:
    kw = dict(
        hours=1,
        prices={"A": [100]},
        green={"A": [1.0]},
        green_price={"A": [300]},
        jobs=[job("j", deadline_h=1)],
    )
    free = solve(scenario([site("A")], **kw))
    assert free.summary["green_share"] == pytest.approx(0.0)
    forced = solve(scenario([site("A")], **kw, policy={"min_green_share": 0.5}))
    assert forced.summary["green_share"] == pytest.approx(0.5)
    assert forced.summary["total_cost"] == pytest.approx(0.5 * 100 + 0.5 * 300)


def test_impossible_green_share_is_reported_as_a_violation_not_infeasible() -> None:
    # the job is worth more than the shortfall penalty, so it runs and the minimum is missed
    sc = scenario(
        [site("A", min_green_share=1.0)],
        hours=1,
        green={"A": [0.5]},
        jobs=[job("j", deadline_h=1, unplaced_penalty_cny=1e6)],
    )
    plan = solve(sc)
    assert plan.status == "optimal"
    (v,) = plan.summary["policy_violations"]["green_share"]
    assert v["scope"] == "A" and v["shortfall_mwh"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("budget", "at_a", "cost"), [(None, 2, 200.0), (1.0, 1, 250.0), (0.5, 0, 300.0)]
)
def test_carbon_budget_caps_emissions(budget: float | None, at_a: int, cost: float) -> None:
    policy = {} if budget is None else {"carbon_budget_t": budget}
    plan = solve(_two_grids(jobs=[job("a", deadline_h=1), job("b", deadline_h=1)], policy=policy))
    assert sum(placement(plan, j)[0] == "A" for j in ("a", "b")) == at_a
    assert plan.summary["total_cost"] == pytest.approx(cost)


# --- 8. objective ----------------------------------------------------------------------------
def test_work_dearer_than_its_penalty_is_left_unplaced_and_says_so() -> None:
    sc = scenario(
        [site("A")],
        hours=1,
        prices={"A": [100]},
        jobs=[job("j", deadline_h=1, unplaced_penalty_cny=50)],
    )
    plan = solve(sc)
    row = plan.workloads.set_index("workload_id").loc["j"]
    assert row["status"] == "unplaced" and "more than its unplaced penalty" in row["reason"]
    assert plan.summary["objective"] == pytest.approx(50.0)


# --- churn (issue 12) ----------------------------------------------------------------
def _dip(price_dip: float, **policy: float):  # type: ignore[no-untyped-def]
    # 400 tokens/s per 1 MW device; demand 800, 400, 800: 2, 1, 2 devices. A warm-up of
    # 60 min at 15 CNY/device-h makes a start cost 15 CNY.
    return scenario(
        [site("A")],
        prices={"A": [100, price_dip, 100]},
        policy={"unmet_penalty_cny_per_mtoken": 10000.0, "replica_warmup_min": 60.0, **policy},
        services=[{"service_id": "s", "latency_limit_ms": 20}],
        throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
        demand={("s", "R"): [800, 400, 800]},
        latency={("A", "R"): 10},
    )


@pytest.mark.parametrize(
    ("price_dip", "devices", "starts", "cost"),
    [
        (10.0, [2, 2, 2], 0, 420.0),  # keeping the spare device costs 10 < 15 to restart it
        (20.0, [2, 1, 2], 1, 435.0),  # stopping it saves 20 > 15: 200 + 20 + 200 + 15
    ],
)
def test_service_keeps_its_replicas_through_a_dip_unless_the_saving_beats_the_start(
    price_dip: float, devices: list[int], starts: int, cost: float
) -> None:
    plan = solve(_dip(price_dip))
    a = plan.assignments[plan.assignments["workload_id"] == "s"].sort_values("hour")
    assert list(a["devices"]) == devices
    assert plan.summary["replica_starts"] == starts
    assert plan.summary["replica_stops"] == starts
    assert plan.summary["replica_start_cost"] == pytest.approx(15.0 * starts)
    assert plan.summary["total_cost"] == pytest.approx(cost)
    # churn.csv says which it did and that it pays: holding the spare device for the dip
    # costs 10 against a 15 start; stopping it saves 20 against the same start
    why = plan.churn.set_index("decision")
    assert list(why.index) == (["hold"] if starts == 0 else ["stop"])
    row = why.iloc[0]
    assert (row["workload_id"], row["count"], row["device_hours"]) == ("s", 1, 1.0)
    assert row["churn_cost"] == pytest.approx(15.0)
    assert row["energy_cost"] == pytest.approx(price_dip)
    assert row["net_saving"] == pytest.approx(abs(price_dip - 15.0)) and "; pays" in row["why"]


@pytest.mark.parametrize(
    ("price_b", "sites", "starts", "cost"),
    [
        (80.0, ["A", "A", "A"], 0, 300.0),  # moving saves 20 < two starts (30)
        (50.0, ["A", "B", "A"], 2, 280.0),  # saves 50 > 30: 100 + 50 + 100 + 2 x 15
    ],
)
def test_service_moves_for_a_cheap_hour_only_if_the_saving_beats_both_starts(
    price_b: float, sites: list[str], starts: int, cost: float
) -> None:
    # one device (400 tokens/s, 1 MW) every hour, A at 100, B at 200 except hour 1; a start
    # costs 15 (warm-up 60 min at 15 CNY/device-h). Going to B for hour 1 starts a device
    # there and one back at A in hour 2 (the first hour is carried in: no start)
    sc = scenario(
        [site("A"), site("B")],
        prices={"A": [100, 100, 100], "B": [200, price_b, 200]},
        policy={"unmet_penalty_cny_per_mtoken": 10000.0, "replica_warmup_min": 60.0},
        services=[{"service_id": "s", "latency_limit_ms": 20}],
        throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
        demand={("s", "R"): [400, 400, 400]},
        latency={("A", "R"): 10, ("B", "R"): 10},
    )
    plan = solve(sc)
    a = plan.assignments[plan.assignments["devices"] > 0].sort_values("hour")
    assert list(a["site_id"]) == sites and list(a["devices"]) == [1, 1, 1]
    assert plan.summary["replica_starts"] == starts
    assert plan.summary["total_cost"] == pytest.approx(cost)


def test_started_devices_stay_up_for_the_minimum_up_time() -> None:
    # demand 1, 1, 3, 1, 1 devices at 100 CNY/MWh, free starts. Without a minimum: 7
    # device-hours. With 3 h, devices started in hours 1-2 are still up in hour 3 or 4:
    # cheapest 9 (e.g. 1, 1, 3, 2, 2 or 2, 2, 3, 1, 1 with the second carried in), never 7.
    def devices(**policy: float) -> list[int]:
        sc = scenario(
            [site("A")],
            hours=5,
            policy={"unmet_penalty_cny_per_mtoken": 10000.0, "replica_warmup_min": 0.0, **policy},
            services=[{"service_id": "s", "latency_limit_ms": 20}],
            throughput=[{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
            demand={("s", "R"): [400, 400, 1200, 400, 400]},
            latency={("A", "R"): 10},
        )
        plan = solve(sc)  # the validator checks the minimum up-time on its own
        a = plan.assignments
        return list(a[a["workload_id"] == "s"].sort_values("hour")["devices"])

    assert devices() == [1, 1, 3, 1, 1]
    held = devices(replica_min_up_hours=3.0)
    assert sum(held) == 9 and held[2] == 3


@pytest.mark.parametrize(
    ("prices", "policy", "hours", "pauses", "cost"),
    [
        # a pause costs (5 + 10) / 60 h x gang 4 x 15 CNY = 15; gang draws 4 MW
        ([10, 100, 12, 13], {}, [2, 3], 0, 100.0),  # 4 x (12 + 13) beats 4 x (10 + 12) + 15
        ([10, 100, 12, 16], {}, [0, 2], 1, 103.0),  # 4 x (10 + 12) + 15 beats 4 x (12 + 16)
        ([10, 100, 12, 16], {"max_pauses_per_job": 0.0}, [2, 3], 0, 112.0),  # capped
    ],
)
def test_gang_runs_contiguously_unless_pausing_pays_for_its_checkpoint(
    prices: list[float], policy: dict[str, float], hours: list[int], pauses: int, cost: float
) -> None:
    sc = scenario(
        [site("A")],
        hours=4,
        prices={"A": prices},
        jobs=[job("j", gang=4, work_device_hours=8, deadline_h=4)],
        policy=policy,
    )
    plan = solve(sc)
    assert placement(plan, "j") == ("A", hours)
    assert plan.summary["pauses"] == pauses
    assert plan.workloads.set_index("workload_id").loc["j", "pauses"] == pauses
    assert plan.summary["pause_cost"] == pytest.approx(15.0 * pauses)
    assert plan.summary["total_cost"] == pytest.approx(cost)
    # churn.csv: the pause saves 4 x (10 + 12) = 88 against the cheapest single block,
    # 4 x (12 + 16) = 112: 24 of energy for a 15 pause
    assert list(plan.churn["decision"]) == ["pause"] * (pauses > 0)
    if pauses:
        row = plan.churn.iloc[0]
        assert (row["workload_id"], row["count"], row["device_hours"]) == ("j", 1, 8.0)
        assert row["churn_cost"] == pytest.approx(15.0)
        assert row["energy_cost"] == pytest.approx(24.0)
        assert row["net_saving"] == pytest.approx(9.0) and "; pays" in row["why"]


def test_the_relaxation_prices_no_pause_below_zero() -> None:
    """Flat 10 CNY/MWh over 4 hours, a gang of 4 needing 2 hours (8 device-h), a pause 15
    CNY (as above): the optimum runs one block, 4 MW x 2 h x 10 = 80 CNY, no pause. Its LP
    relaxation could run the job at half a gang over all 4 hours (the same 80 CNY of energy)
    and start half a block: pauses 15 x (0.5 - 1) = -7.5, a bound of 72.5. Every placed job
    starts a block (`job_first_block`), so the relaxation's bound is the optimum's 80."""
    sc = scenario(
        [site("A")],
        hours=4,
        prices={"A": [10, 10, 10, 10]},
        jobs=[job("j", gang=4, work_device_hours=8, deadline_h=4)],
    )
    plan = solve(sc)
    assert plan.summary["pauses"] == 0 and plan.summary["total_cost"] == pytest.approx(80.0)
    m, _ = build_model(sc)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    x, z = solve_relaxation(h, m, to_highs(m, h))
    assert x is not None and z is not None
    assert z + m.fixed_cost == pytest.approx(plan.summary["objective"])
    pauses = sum(float(c @ x[cols]) for cols, c in m.costs["pauses"])
    assert pauses == pytest.approx(0.0, abs=1e-9)


# --- robust mode (issue 12) ---------------------------------------------------------------
def test_robust_mode_keeps_grid_headroom_for_green_at_its_low_quantile() -> None:
    # central plan: both jobs at W on 2 MW of free green, cost 0; at P10 (0.5 MW green +
    # 1 MW grid = 1.5 MW) its 2 MW load is 0.5 MW short in the one site-hour
    central = solve(leans_on_green(robust=False))
    assert [placement(central, j)[0] for j in ("a", "b")] == ["W", "W"]
    assert central.summary["total_cost"] == pytest.approx(0.0)
    cases = central.summary["green_cases"]
    assert cases["robust_quantile"] is None
    assert cases["low"]["short_site_hours"] == 1 and cases["low"]["short_mwh"] == pytest.approx(0.5)
    assert cases["central"]["short_site_hours"] == 0
    # robust at P10: W's load may not pass 1 + 0.5 MW, so one job goes to E (100); at P10
    # the job at W draws 0.5 MW green and 0.5 MW grid (5): nothing short
    robust = solve(leans_on_green(robust=True))
    assert sorted(placement(robust, j)[0] for j in ("a", "b")) == ["E", "W"]
    assert robust.summary["total_cost"] == pytest.approx(100.0)
    low = robust.summary["green_cases"]["low"]
    assert robust.summary["green_cases"]["robust_quantile"] == "p10"
    assert low["short_site_hours"] == 0 and low["short_mwh"] == pytest.approx(0.0)
    assert low["total_cost"] == pytest.approx(105.0)
    assert low["grid_mwh"] == pytest.approx(1.5) and low["green_mwh"] == pytest.approx(0.5)
