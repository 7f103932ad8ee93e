"""Single rules of the validator, called directly on micro scenarios worked out by hand.

`tests/test_validate.py` tampers with whole plans; here each rule function gets exactly the
input it reads, so its arithmetic is pinned down without solving anything.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from optimizer.scenario.types import Scenario
from optimizer.validate import SUMMARY_KEYS, Checker, bundle, jobs, power, totals, work_in_horizon
from tests.micro import job, scenario, site


def checker(sc: Scenario, summary: object = None) -> Checker:
    """A checker over `sc` for a plan with no tables (rules get their input directly)."""
    empty = pd.DataFrame()
    plan = SimpleNamespace(
        summary=summary if summary is not None else {},
        **dict.fromkeys(
            (
                "workloads",
                "assignments",
                "site_hours",
                "site_hour_devices",
                "service_hours",
                "service_flows",
                "binding",
                "moves",
            ),
            empty,
        ),
    )
    return Checker(sc, plan, rel_tol=1e-6, abs_tol=1e-6)


def rules(c: Checker) -> list[tuple[str, str, int | None]]:
    return [(v.check, v.rule, v.hour) for v in c.violations]


def test_allowed_sites_need_residency_and_a_big_enough_fleet() -> None:
    sc = scenario(
        [site("a", residency_region="r1"), site("b", residency_region="r2")],
        fleets={"a": 4, "b": 1},
        jobs=[
            job("big-r1", gang=2, allowed_regions="r1"),
            job("big", gang=2),
            job("small", gang=1),
            job("small-r2", gang=1, allowed_regions="r2"),
        ],
    )
    c = checker(sc)
    got = {j.job_id: jobs.allowed_sites_of(c, j) for j in sc.jobs}
    assert got == {"big-r1": {"a"}, "big": {"a"}, "small": {"a", "b"}, "small-r2": {"b"}}


def test_work_in_horizon_is_the_pro_rata_share_of_a_later_deadline() -> None:
    sc = scenario(
        [site("a")],
        hours=3,
        jobs=[
            job("due-in", work_device_hours=2),
            job("due-later", work_device_hours=6, deadline_h=6),
        ],
    )
    c = checker(sc)
    # 6 device-h over [0, 6): 3 of the 6 hours lie in the 3 h horizon
    assert [work_in_horizon(c, j) for j in sc.jobs] == [2.0, 3.0]


def test_migration_and_transfer_costs_follow_the_policy() -> None:
    sc = scenario(
        [site("a"), site("b")],
        jobs=[
            job("running", gang=2, current_site="a", data_gb=10, lost_hours_on_move=2),
            job("new", data_origin_site="a", data_gb=10),
        ],
        policy={
            "plan_stability_weight": 1.0,
            "transfer_price_cny_per_gb": 5.0,
            "lost_hour_cost_cny_per_device_hour": 100.0,
        },
    )
    c = checker(sc)
    running, new = sc.jobs
    # moving: 10 GB x 5 + 2 h lost x 2 devices x 100 = 450; staying costs nothing
    assert jobs.migration_cny(c, running, "b") == pytest.approx(450.0)
    assert jobs.migration_cny(c, running, "a") == 0.0
    assert jobs.transfer_cny(c, running, "b") == 0.0  # a running job pays migration instead
    # a new job away from its data moves the data: 10 GB x 5
    assert jobs.transfer_cny(c, new, "b") == pytest.approx(50.0)
    assert jobs.transfer_cny(c, new, "a") == 0.0
    assert jobs.migration_cny(c, new, "b") == 0.0


def test_battery_state_of_charge_and_its_end() -> None:
    # 10 MWh, 5 MW, round trip 0.81 (sqrt 0.9), starting half full: 5 MWh
    sc = scenario(
        [
            site(
                "a",
                battery_mwh=10,
                battery_mw=5,
                battery_efficiency=0.81,
                battery_initial_soc=0.5,
            )
        ]
    )
    (bat_site,) = sc.sites
    c = checker(sc)
    ch, dis = np.array([2.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.9])
    # 5 + 0.9 x 2 = 6.8; 6.8; 6.8 - 0.9 / 0.9 = 5.8 (ends above 5)
    power.state_of_charge(c, bat_site, ch, dis, np.array([6.8, 6.8, 5.8]))
    assert rules(c) == []
    power.state_of_charge(c, bat_site, ch, dis, np.array([6.8, 7.0, 6.0]))
    assert rules(c) == [("power", "battery_soc", 1)]  # 7.0 != 6.8; hour 2 follows from 7.0
    c.violations.clear()
    discharge_only = np.array([0.9, 0.0, 0.0])
    power.state_of_charge(c, bat_site, np.zeros(3), discharge_only, np.array([4.0, 4.0, 4.0]))
    assert rules(c) == [("power", "battery_end_soc", 2)]


def test_counts_compare_exactly_and_amounts_within_tolerance() -> None:
    c = checker(scenario([site("a")]))
    totals.compare(c, "grid_mwh", 1.0000001, 1.0)  # within the relative tolerance
    totals.compare(c, "placed", 3.0000001, 3)  # a count is exact
    totals.compare(c, "grid_mwh", "x", 1.0)
    totals.compare(c, "green_mwh", "x", None)  # unknown: not compared, not counted
    assert [(v.rule, v.message) for v in c.violations] == [
        ("placed", "placed is 3.0000001, recomputed 3"),
        ("grid_mwh", "grid_mwh is 'x', recomputed 1"),
    ]
    assert c.checked["totals"] == 3


def test_an_empty_summary_lacks_every_contract_key() -> None:
    c = checker(scenario([site("a")]))
    bundle.summary_keys(c, {})
    assert [v.message for v in c.violations] == [f"summary.json lacks {k!r}" for k in SUMMARY_KEYS]
    assert c.checked["bundle"] == len(SUMMARY_KEYS)
