"""The independent validator: real plans pass it, and every kind of tampering is named.

Each tampering test breaks one rule in a copy of a valid plan's tables (read back from a
bundle on disk, so nothing in memory helps) and asserts the validator reports that rule.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer import Plan, Scenario, SolverSettings, baseline_plan, load_scenario, optimize
from optimizer.scenario import scenario_from_tables, scenario_to_tables
from optimizer.validate import (
    CHECKS,
    PlanValidationError,
    ValidationReport,
    validate_bundle,
    validate_plan,
)
from tests.micro import EXACT, churn_free, job, leans_on_green, scenario, site

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
# 2026-12-05 (issue 11): 30 -> 60 s: ties going green (a tiny carbon term) cost the demo
# ~50 % more branch-and-bound nodes to prove a 1e-4 gap (15 -> 22 s on a loaded machine)
SETTINGS = SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=60, mip_rel_gap=1e-4)
PLANNERS = ("milp", "greedy", "carbon_agnostic")


@pytest.fixture(scope="module")
def sc() -> Scenario:
    # 2026-12-05: churn free, so the demo solves to its gap in time (issue 12)
    return churn_free(load_scenario(DEMO))


@pytest.fixture(scope="module")
def plans(sc: Scenario) -> dict[str, Plan]:
    return {
        "milp": optimize(sc, SETTINGS),
        "greedy": baseline_plan(sc, "greedy"),
        "carbon_agnostic": baseline_plan(sc, "carbon_agnostic"),
    }


@pytest.fixture(scope="module")
def bundles(plans: dict[str, Plan], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {name: p.write_bundle(root / name) for name, p in plans.items()}


@pytest.fixture
def plan(bundles: dict[str, Path]) -> Plan:
    """A fresh copy of the MILP plan, read from its bundle, to tamper with."""
    return Plan.read_bundle(bundles["milp"])


def found(sc: Scenario, plan: Plan) -> set[tuple[str, str]]:
    report = validate_plan(sc, plan)
    assert not report.ok
    assert all(v.check in CHECKS for v in report.violations)
    return report.rules()


def iso(sc: Scenario, h: int) -> str:
    return sc.timestamp(h).isoformat()


def set_hour(plan: Plan, table: str, row: int, sc: Scenario, h: int) -> None:
    df = plan.table(table)
    df.loc[row, "timestamp"] = iso(sc, h)
    df.loc[row, "hour"] = h


def job_rows(plan: Plan, job_id: str) -> pd.DataFrame:
    a = plan.assignments
    return a[a["workload_id"] == job_id]


def placed_jobs(sc: Scenario, plan: Plan) -> list:
    placed = set(plan.workloads.loc[plan.workloads["status"] == "placed", "workload_id"])
    return [j for j in sc.jobs if j.job_id in placed]


# ------------------------------------------------------------------------------ clean plans
@pytest.mark.parametrize("name", PLANNERS)
def test_real_plans_validate_clean_in_memory_and_from_disk(
    sc: Scenario, plans: dict[str, Plan], bundles: dict[str, Path], name: str
) -> None:
    report = validate_plan(sc, plans[name])
    assert report.ok, str(report)
    back = Plan.read_bundle(bundles[name])
    assert back.schedule is None  # only the tables travel
    again = validate_plan(sc, back)
    assert again.ok, str(again)
    assert validate_bundle(sc, bundles[name]).ok
    for check in ("bundle", "jobs", "services", "capacity", "power", "totals"):
        assert report.checked[check] > 0
    assert report.recomputed["objective"] == pytest.approx(plans[name].summary["objective"])
    assert report.recomputed["emissions_location_t"] > report.recomputed["emissions_t"]


def test_report_reads_well_and_raise_lists_every_violation(sc: Scenario, plan: Plan) -> None:
    plan.summary["scenario_fingerprint"] = "0" * 16
    plan.summary["emissions_t"] *= 2
    plan.site_hours.loc[0, "grid_mw"] += 1.0
    report = validate_plan(sc, plan)
    assert {
        ("bundle", "fingerprint"),
        ("totals", "emissions_t"),
        ("power", "balance"),
    } <= report.rules()
    with pytest.raises(PlanValidationError) as err:
        report.raise_if_failed()
    assert len(err.value.violations) == len(report.violations) >= 3
    text = str(err.value)
    assert all(str(v) in text for v in report.violations)
    assert "[power/balance] site sh-east, hour 2025-07-15T00:00:00+08:00" in text
    ValidationReport([], {"jobs": 1}, {}).raise_if_failed()  # a clean report does not raise


# ------------------------------------------------------------------------------ bundle
def test_fingerprint_of_another_scenario(sc: Scenario, plan: Plan) -> None:
    plan.summary["scenario_fingerprint"] = "feedfacefeedface"
    assert found(sc, plan) == {("bundle", "fingerprint")}


def test_missing_summary_key_column_and_table(sc: Scenario, plan: Plan) -> None:
    del plan.summary["gap"]
    plan.site_hours.drop(columns=["grid_mw"], inplace=True)
    bad = dataclasses.replace(plan, service_hours=pd.DataFrame())
    rules = found(sc, bad)
    assert {
        ("bundle", "summary_key"),
        ("bundle", "column_missing"),
        ("bundle", "table_missing"),
    } <= rules


@pytest.mark.parametrize(
    "table",
    [
        "workloads",
        "assignments",
        "site_hours",
        "site_hour_devices",
        "service_hours",
        "service_flows",
    ],
)
def test_a_missing_table_is_named_once_without_knock_on_violations(
    sc: Scenario, plan: Plan, table: str
) -> None:
    report = validate_plan(sc, dataclasses.replace(plan, **{table: pd.DataFrame()}))
    assert [(v.check, v.rule, v.table) for v in report.violations] == [
        ("bundle", "table_missing", table)
    ]


def test_missing_file_in_a_bundle_directory(
    sc: Scenario, plans: dict[str, Plan], tmp_path: Path
) -> None:
    path = plans["greedy"].write_bundle(tmp_path / "b")
    (path / "site_hour_devices.csv").unlink()
    assert ("bundle", "file_missing") in validate_bundle(sc, path).rules()


def test_timestamp_without_offset(sc: Scenario, plan: Plan) -> None:
    plan.assignments.loc[0, "timestamp"] = "2025-07-15T00:00:00"
    assert ("bundle", "timestamp") in found(sc, plan)


# ------------------------------------------------------------------------------ jobs
def test_extra_hour_for_a_job(sc: Scenario, plan: Plan) -> None:
    j = next(j for j in placed_jobs(sc, plan) if j.preemptible)
    rows = job_rows(plan, j.job_id)
    free = sorted(set(range(j.release, min(j.deadline, sc.hours))) - set(rows["hour"]))
    extra = rows.iloc[[0]].copy()
    extra["timestamp"], extra["hour"] = iso(sc, free[0]), free[0]
    bad = dataclasses.replace(
        plan, assignments=pd.concat([plan.assignments, extra], ignore_index=True)
    )
    assert ("jobs", "run_hours") in found(sc, bad)


def test_missing_hour_means_work_not_done(sc: Scenario, plan: Plan) -> None:
    j = placed_jobs(sc, plan)[0]
    bad = dataclasses.replace(
        plan, assignments=plan.assignments.drop(index=job_rows(plan, j.job_id).index[-1])
    )
    report = validate_plan(sc, bad)
    msg = [
        v.message for v in report.violations if v.rule == "run_hours" and v.workload_id == j.job_id
    ]
    assert msg and "too few" in msg[0]


def test_hour_before_release(sc: Scenario, plan: Plan) -> None:
    j = next(j for j in placed_jobs(sc, plan) if j.release > 0)
    row = job_rows(plan, j.job_id).index[0]
    set_hour(plan, "assignments", row, sc, j.release - 1)
    assert ("jobs", "window") in found(sc, plan)


def test_broken_contiguity(sc: Scenario, plan: Plan) -> None:
    j = next(
        j for j in placed_jobs(sc, plan) if not j.preemptible and len(job_rows(plan, j.job_id)) >= 3
    )
    rows = job_rows(plan, j.job_id).sort_values("hour")
    hours = set(rows["hour"])
    # move a middle hour anywhere else: the block now has a hole
    new = next(h for h in range(sc.hours) if h not in hours)
    set_hour(plan, "assignments", rows.index[len(rows) // 2], sc, new)
    assert ("jobs", "contiguous") in found(sc, plan)


def test_job_outside_its_residency_region(sc: Scenario, plan: Plan) -> None:
    j = next(j for j in placed_jobs(sc, plan) if j.allowed_regions)
    other = next(
        s.site_id
        for s in sc.sites
        if s.residency_region not in j.allowed_regions
        and sc.fleet.get((s.site_id, "H100"), 0) >= j.gang
    )
    plan.assignments.loc[job_rows(plan, j.job_id).index, "site_id"] = other
    plan.workloads.loc[plan.workloads["workload_id"] == j.job_id, "site_id"] = other
    assert ("jobs", "residency") in found(sc, plan)


def test_gang_split_over_two_sites(sc: Scenario, plan: Plan) -> None:
    j = placed_jobs(sc, plan)[0]
    rows = job_rows(plan, j.job_id)
    here = rows["site_id"].iloc[0]
    plan.assignments.loc[rows.index[0], "site_id"] = next(s for s in sc.site_ids if s != here)
    assert ("jobs", "one_site") in found(sc, plan)


def test_job_holding_less_than_its_gang(sc: Scenario, plan: Plan) -> None:
    j = placed_jobs(sc, plan)[0]
    plan.assignments.loc[job_rows(plan, j.job_id).index[0], "devices"] = j.gang - 1
    assert ("jobs", "gang") in found(sc, plan)


def test_unplaced_job_needs_a_reason_and_no_hours(sc: Scenario, plan: Plan) -> None:
    w = plan.workloads
    unplaced = w.index[w["status"] == "unplaced"]
    assert len(unplaced), "the demo has a job no site can finish by its deadline"
    w.loc[unplaced[0], "reason"] = np.nan
    assert found(sc, plan) == {("jobs", "unplaced_reason")}


def test_job_missing_from_workloads(sc: Scenario, plan: Plan) -> None:
    w = plan.workloads
    bad = dataclasses.replace(plan, workloads=w[w["workload_id"] != sc.jobs[0].job_id])
    assert ("jobs", "missing") in found(sc, bad)


def test_moved_flag_and_costs_follow_the_policy(sc: Scenario, plan: Plan) -> None:
    w = plan.workloads
    row = w.index[(w["status"] == "placed") & (w["kind"] != "inference")][0]
    w.loc[row, "moved"] = True
    w.loc[row, "data_transfer_cost"] += 10.0
    rules = found(sc, plan)
    assert {("jobs", "moved"), ("jobs", "transfer_cost")} <= rules


# ------------------------------------------------------------------------------ rolling horizon
def _rolling() -> Scenario:
    # 3 h horizon; "c": 4 device-h due at hour 6, non-preemptible -> 2 h ending at the end;
    # "r": running on A, non-preemptible, stays -> 2 h from hour 0 without a gap
    return scenario(
        [site("A")],
        prices={"A": [30, 10, 20]},
        jobs=[
            job("c", work_device_hours=4, deadline_h=6, preemptible=False),
            job("r", work_device_hours=2, deadline_h=6, preemptible=False, current_site="A"),
        ],
    )


def test_rolling_horizon_blocks_validate_and_their_position_is_checked() -> None:
    sc = _rolling()
    plan = optimize(sc, EXACT)
    assert validate_plan(sc, plan).ok
    assert validate_plan(sc, baseline_plan(sc, "greedy")).ok
    hours = {
        w: sorted(plan.assignments.loc[plan.assignments["workload_id"] == w, "hour"])
        for w in ("c", "r")
    }
    assert hours == {"c": [1, 2], "r": [0, 1]}
    a = plan.assignments
    for w, shift in (("c", -1), ("r", 1)):  # same length, contiguous, inside the window
        rows = a.index[a["workload_id"] == w]
        for i in rows:
            set_hour(plan, "assignments", i, sc, int(a.loc[i, "hour"]) + shift)
    report = validate_plan(sc, plan)
    assert {v.workload_id for v in report.violations if v.rule == "block_position"} == {"c", "r"}


def test_moved_running_job_reruns_its_lost_hours() -> None:
    # B is cheaper: r moves and needs 3 h + 1 lost hour there
    sc = scenario(
        [site("A"), site("B")],
        hours=4,
        prices={"A": [100] * 4, "B": [60] * 4},
        jobs=[job("r", current_site="A", work_device_hours=3, deadline_h=4, lost_hours_on_move=1)],
    )
    plan = optimize(sc, EXACT)
    report = validate_plan(sc, plan)
    assert report.ok, str(report)
    assert report.recomputed["moved_jobs"] == 1 and report.recomputed["migration_cost"] == 15.0
    rows = plan.assignments.index[plan.assignments["workload_id"] == "r"]
    assert len(rows) == 4
    bad = dataclasses.replace(plan, assignments=plan.assignments.drop(index=rows[-1]))
    assert ("jobs", "run_hours") in found(sc, bad)


# ------------------------------------------------------------------------------ services
def _flow_beyond_limit(sc: Scenario, plan: Plan) -> tuple[int, str]:
    fl = plan.service_flows
    limits = {k.service_id: k.latency_limit_ms for k in sc.services}
    for i, row in fl.iterrows():
        for s in sc.site_ids:
            ms = sc.latency_ms.get((s, row["demand_region"]))
            if ms is not None and ms > limits[row["service_id"]]:
                return int(i), s
    raise AssertionError("no flow could be moved beyond its latency limit")


def test_flow_from_a_site_beyond_the_latency_limit(sc: Scenario, plan: Plan) -> None:
    i, s = _flow_beyond_limit(sc, plan)
    plan.service_flows.loc[i, "site_id"] = s
    report = validate_plan(sc, plan)
    hits = [v for v in report.violations if v.rule == "latency"]
    assert hits and hits[0].site_id == s and hits[0].check == "services"


def _service_row(plan: Plan, sc: Scenario) -> int:
    svc = {k.service_id for k in sc.services}
    a = plan.assignments
    return int(a.index[a["workload_id"].isin(svc) & (a["tokens_per_s"] > 0)][0])


def test_served_beyond_the_devices_throughput(sc: Scenario, plan: Plan) -> None:
    i = _service_row(plan, sc)
    plan.assignments.loc[i, "devices"] = 0
    assert ("services", "throughput") in found(sc, plan)


def test_service_on_an_accelerator_without_throughput(sc: Scenario, plan: Plan) -> None:
    i = _service_row(plan, sc)
    k = next(k for k in sc.services if k.service_id == plan.assignments.loc[i, "workload_id"])
    plan.assignments.loc[i, "accelerator"] = next(
        a for a in sc.accelerator_names if a not in k.throughput_tokens_per_s
    )
    assert ("services", "accelerator") in found(sc, plan)


def test_served_plus_unmet_must_equal_demand(sc: Scenario, plan: Plan) -> None:
    plan.service_hours.loc[3, "unmet_tokens_per_s"] += 100.0
    assert {("services", "balance"), ("services", "unmet")} <= found(sc, plan)


def test_more_served_than_demanded(sc: Scenario, plan: Plan) -> None:
    plan.service_flows.loc[0, "tokens_per_s"] += 10_000.0
    assert ("services", "over_served") in found(sc, plan)


# ------------------------------------------------------------------------------ capacity
def test_devices_beyond_capacity(sc: Scenario, plan: Plan) -> None:
    i = _service_row(plan, sc)
    a = plan.assignments.loc[i]
    shd = plan.site_hour_devices
    cap = shd.loc[
        (shd["site_id"] == a["site_id"])
        & (shd["accelerator"] == a["accelerator"])
        & (shd["timestamp"] == a["timestamp"]),
        "capacity",
    ].iloc[0]
    plan.assignments.loc[i, "devices"] = cap + 1
    report = validate_plan(sc, plan)
    hit = [v for v in report.violations if v.rule == "device_capacity"]
    assert (
        hit
        and hit[0].check == "capacity"
        and hit[0].site_id == a["site_id"]
        and hit[0].expected == cap
    )


def test_site_hour_devices_must_agree(sc: Scenario, plan: Plan) -> None:
    plan.site_hour_devices.loc[0, "busy"] += 1
    assert ("capacity", "busy_column") in found(sc, plan)


# ------------------------------------------------------------------------------ power
def test_changed_grid_import(sc: Scenario, plan: Plan) -> None:
    plan.site_hours.loc[5, "grid_mw"] += 0.05
    rules = found(sc, plan)
    assert {
        ("power", "balance"),
        ("power", "energy_cost_column"),
        ("totals", "grid_mwh"),
        ("totals", "energy_cost"),
    } <= rules


def test_grid_above_the_connection_limit(sc: Scenario, plan: Plan) -> None:
    sh = plan.site_hours
    sh.loc[0, "grid_mw"] = sh.loc[0, "grid_limit_mw"] + 0.5
    assert ("power", "grid_limit") in found(sc, plan)


def test_green_above_what_is_available(sc: Scenario, plan: Plan) -> None:
    sh = plan.site_hours
    i = sh.index[sh["green_available_mw"] == 0][0]
    sh.loc[i, "green_used_mw"] += 0.01
    sh.loc[i, "grid_mw"] -= 0.01
    assert ("power", "green_available") in found(sc, plan)


def test_facility_power_and_curtailment_are_recomputed(sc: Scenario, plan: Plan) -> None:
    plan.site_hours.loc[1, "facility_mw"] *= 1.1
    plan.site_hours.loc[30, "curtailed_mw"] += 0.01
    assert {("power", "facility_mw"), ("power", "curtailed")} <= found(sc, plan)


def test_battery_limits_and_dynamics(sc: Scenario, plan: Plan) -> None:
    with_battery = next(s for s in sc.sites if s.battery is not None)
    without = next(s for s in sc.sites if s.battery is None)
    sh = plan.site_hours
    for col in ("battery_soc_mwh", "battery_charge_mw", "battery_discharge_mw"):
        sh[col] = sh[col].astype(float)
    at = sh.index[sh["site_id"] == with_battery.site_id]
    sh.loc[at[3], "battery_soc_mwh"] += 0.01
    sh.loc[at[5], "battery_charge_mw"] = with_battery.battery.power_mw * 2
    sh.loc[sh.index[sh["site_id"] == without.site_id][0], "battery_discharge_mw"] = 0.1
    rules = found(sc, plan)
    assert {("power", "battery_soc"), ("power", "battery_charge"), ("power", "no_battery")} <= rules


# ------------------------------------------------------------------------------ totals
def test_summary_emissions_altered(sc: Scenario, plan: Plan) -> None:
    plan.summary["emissions_t"] *= 1.001
    assert found(sc, plan) == {("totals", "emissions_t")}


def test_the_two_carbon_accountings_are_never_mixed(sc: Scenario, plan: Plan) -> None:
    plan.summary["emissions_t"] = plan.summary["emissions_location_t"]
    assert found(sc, plan) == {("totals", "emissions_t")}


def test_objective_and_penalties_recomputed(sc: Scenario, plan: Plan) -> None:
    plan.summary["objective"] += 1.0
    plan.summary["penalties"]["unplaced"] = 0.0
    assert {("totals", "objective"), ("totals", "penalties.unplaced")} <= found(sc, plan)


def test_baselines_must_report_the_same_kpis(sc: Scenario, plan: Plan) -> None:
    del plan.summary["baselines"]["greedy"]["green_share"]
    assert found(sc, plan) == {("totals", "baselines")}


# ------------------------------------------------------------------------------ policy
@pytest.fixture(scope="module")
def strict(sc: Scenario) -> Scenario:
    """The demo with a green-share minimum and a carbon budget the greedy plan misses."""
    manifest, tables = scenario_to_tables(sc)
    manifest["policy"] |= {"min_green_share": 0.9, "carbon_budget_t": 0.1}
    tables["sites"].loc[0, "min_green_share"] = 0.5
    return scenario_from_tables(manifest, tables)


def test_policy_shortfalls_reported_by_the_plan_are_not_violations(strict: Scenario) -> None:
    plan = baseline_plan(strict, "greedy")
    report = validate_plan(strict, plan)
    assert report.ok, str(report)
    assert report.recomputed["policy_violations"]["carbon_excess_t"] > 0
    assert {g["scope"] for g in report.recomputed["policy_violations"]["green_share"]} == {
        "fleet",
        "sh-east",
    }
    assert report.checked["policy"] == 3


def test_policy_claimed_met_but_missed(strict: Scenario, tmp_path: Path) -> None:
    path = baseline_plan(strict, "greedy").write_bundle(tmp_path / "p")
    summary = json.loads((path / "summary.json").read_text())
    for g in summary["policy_violations"]["green_share"]:
        g["shortfall_mwh"] = 0.0
    summary["policy_violations"]["carbon_excess_t"] = 0.0
    (path / "summary.json").write_text(json.dumps(summary))
    report = validate_bundle(strict, path)
    policy = report.by_check("policy")
    assert {v.rule for v in policy} == {"green_share", "carbon_budget"}
    assert {v.site_id for v in policy if v.rule == "green_share"} == {None, "sh-east"}
    assert all("summary reports it met" in v.message for v in policy)


# ------------------------------------------------------------------------------ independence
def test_validator_shares_no_code_with_the_planners() -> None:
    package = ROOT / "optimizer" / "validate"
    files = sorted(package.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "bundle", "jobs", "names", "totals"}
    for path in files:
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                imported.add(node.module or "")
        for banned in (
            "optimizer.model",
            "optimizer.baselines",
            "optimizer.heuristics",
            "optimizer.rules",
            "optimizer.planner",
            "optimizer.plan",
            "optimizer.solve",
        ):
            assert not any(m == banned or m.startswith(banned + ".") for m in imported), (
                f"{path.name} imports {banned}"
            )
        assert "optimizer" not in imported, path.name  # the package root imports the planner
    # the names the validator takes from the bundle contract come from a module that itself
    # imports nothing of greenopt: names, never a value or a formula
    contract_imports = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(ast.parse((ROOT / "optimizer" / "contract.py").read_text()))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not any(m.startswith("optimizer") for m in contract_imports), contract_imports


def test_bound_and_gap_go_together(sc: Scenario, plan: Plan) -> None:
    assert plan.summary["status"] == "optimal"
    plan.summary["bound"] = None  # an optimal plan proves its bound
    assert found(sc, plan) == {("totals", "bound")}
    plan.summary["status"] = "feasible"  # feasible with a gap but no bound: inconsistent
    assert found(sc, plan) == {("totals", "bound")}
    plan.summary["gap"] = None  # feasible, no bound proven in time: honest, accepted
    assert validate_plan(sc, plan).ok
    plan.summary["bound"] = plan.summary["objective"] * 1.01  # above the objective
    plan.summary["gap"] = 0.0
    assert found(sc, plan) == {("totals", "bound")}


def test_churn_columns_are_recounted_from_the_assignments(sc: Scenario, plan: Plan) -> None:
    # issue 12: starts, stops and pauses follow from assignments.csv, costs from the policy
    wl = plan.workloads
    svc = wl.index[wl["kind"] == "inference"][0]
    job_row = wl.index[wl["kind"] != "inference"][0]
    wl.loc[svc, "replica_starts"] = wl.loc[svc, "replica_starts"] + 1
    wl.loc[job_row, "pauses"] = wl.loc[job_row, "pauses"] + 2
    wl.loc[job_row, "churn_cost"] = wl.loc[job_row, "churn_cost"] + 5.0
    assert found(sc, plan) == {
        ("churn", "replica_starts"),
        ("churn", "pauses"),
        ("churn", "churn_cost"),
    }
    plan.summary["replica_starts"] += 3  # the total is recounted too
    assert ("totals", "replica_starts") in found(sc, plan)


def test_churn_table_is_recounted_from_the_assignments(sc: Scenario, plan: Plan) -> None:
    # churn.csv's counts, device-hours and churn costs follow from assignments.csv and the
    # policy; its rows are exactly the decisions the assignments show
    tab = plan.churn
    assert len(tab) and set(tab["decision"]) <= {"stop", "hold", "pause"}
    assert validate_plan(sc, plan).ok
    first = tab.index[0]
    tab.loc[first, "count"] = tab.loc[first, "count"] + 1
    assert found(sc, plan) == {("churn", "churn_table")}
    tab.loc[first, "count"] = tab.loc[first, "count"] - 1
    extra = tab.iloc[[0]].assign(workload_id="nobody")
    plan_with = dataclasses.replace(plan, churn=pd.concat([tab, extra], ignore_index=True))
    assert [v.message for v in validate_plan(sc, plan_with).violations] == [
        f"churn.csv has a `{tab.loc[first, 'decision']}` row the assignments do not give"
    ]
    plan_without = dataclasses.replace(plan, churn=tab.iloc[1:])
    missing = validate_plan(sc, plan_without).violations
    assert [(v.rule, v.workload_id) for v in missing] == [
        ("churn_table", tab.loc[first, "workload_id"])
    ]


# --- robustness to green forecast error (issue 12) ------------------------------------------
def _bundle_summary(plan: Plan, root: Path) -> dict:
    plan.write_bundle(root)
    return json.loads((root / "summary.json").read_text())  # type: ignore[no-any-return]


def test_a_plan_claiming_robustness_it_lacks_fails_and_a_robust_one_passes(
    tmp_path: Path,
) -> None:
    central_sc, robust_sc = leans_on_green(False), leans_on_green(True)
    central = optimize(central_sc, EXACT)
    robust = optimize(robust_sc, EXACT)
    assert validate_bundle(robust_sc, robust.write_bundle(tmp_path / "robust")).ok
    # the central plan (both jobs at W) said to be robust at P10: 0.5 MW short in hour 0
    root = tmp_path / "claim"
    s = _bundle_summary(central, root)
    s["green_cases"]["robust_quantile"] = "p10"
    (root / "summary.json").write_text(json.dumps(s))
    bad = validate_bundle(central_sc, root)
    short = [v for v in bad.violations if v.rule == "short_at_quantile"]
    assert len(short) == 1 and (short[0].site_id, short[0].hour) == ("W", 0)
    assert short[0].actual == pytest.approx(0.5)
    # the same plan offered for a scenario that asks for robustness: no claim, and short
    rules = {
        v.rule for v in validate_bundle(robust_sc, central.write_bundle(tmp_path / "c")).violations
    }
    assert "robust_claim" in rules
    # a band figure that does not match the re-dispatch is named
    root = tmp_path / "band"
    s = _bundle_summary(central, root)
    s["green_cases"]["low"]["short_site_hours"] = 0
    (root / "summary.json").write_text(json.dumps(s))
    rules = {v.rule for v in validate_bundle(central_sc, root).violations}
    assert rules == {"green_cases.low.short_site_hours"}
