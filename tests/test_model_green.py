"""Green supply as it is contracted (issue 11), on micro scenarios worked out by hand.

As in `tests/test_model_micro.py`: device "G" draws 1 MW busy and nothing idle, PUE 1, so a
job-hour is one MWh. Every plan goes through the validator (`tests.micro.solve`).
"""

from __future__ import annotations

from typing import Any

import pytest

from optimizer.validate import validate_plan
from tests.micro import job, placement, scenario, site, site_hour, solve


def contract(form: str, payment: float = 0.0, resale: float = 0.0) -> dict[str, Any]:
    """The sites.csv contract columns of one site."""
    return {
        "green_contract": form,
        "green_payment_cny_per_mwh": payment,
        "green_resale_cny_per_mwh": resale,
    }


@pytest.mark.parametrize(("form", "payment"), [("own", 0.0), ("ppa", 300.0), ("trade", 300.0)])
def test_one_job_runs_on_contracted_green_whatever_the_form(form: str, payment: float) -> None:
    # grid 200 every hour, 1 MW of contracted green in hour 1 only; the contract price
    # (300 > 200) is owed whatever the plan does, so using the green costs nothing more
    sc = scenario(
        [site("A", **contract(form, payment))],
        prices={"A": [200] * 3},
        carbon={"A": [600] * 3},
        green={"A": [0, 1, 0]},
        jobs=[job("j")],
    )
    plan = solve(sc)
    assert placement(plan, "j") == ("A", [1])
    assert plan.summary["grid_mwh"] == pytest.approx(0.0)
    assert plan.summary["curtailed_mwh"] == pytest.approx(0.0)
    assert plan.summary["emissions_t"] == pytest.approx(0.0)
    assert plan.summary["contract_payment"] == pytest.approx(payment)
    assert plan.summary["total_cost"] == pytest.approx(payment)


@pytest.mark.parametrize(
    "terms",
    [
        {"green_contract": "own"},  # O&M priced per MWh used = the grid price
        contract("ppa", payment=300.0, resale=100.0),  # resale value = the grid price
    ],
)
def test_grid_and_green_at_the_same_price_the_plan_takes_green(terms: dict[str, Any]) -> None:
    # one MWh either way costs 100; carbon is not priced, only the tie-break sees it
    own = terms["green_contract"] == "own"
    sc = scenario(
        [site("A", **terms)],
        hours=1,
        prices={"A": [100]},
        carbon={"A": [600]},
        green={"A": [1.0]},
        green_price={"A": [100.0 if own else 0.0]},
        jobs=[job("j", deadline_h=1)],
    )
    plan = solve(sc)
    assert site_hour(plan, "A", "green_used_mw")[0] == pytest.approx(1.0)
    assert plan.summary["emissions_t"] == pytest.approx(0.0)
    assert plan.summary["energy_cost"] + plan.summary["contract_payment"] == pytest.approx(
        100.0 if own else 300.0
    )


def test_equal_cost_sites_the_plan_takes_the_cleaner_one() -> None:
    # A and B both cost 100 per MWh, no carbon price: B's grid is cleaner
    sc = scenario(
        [site("A"), site("B")],
        hours=1,
        prices={"A": [100], "B": [100]},
        carbon={"A": [900], "B": [300]},
        jobs=[job("j", deadline_h=1)],
    )
    plan = solve(sc)
    assert placement(plan, "j") == ("B", [0])
    assert plan.summary["total_cost"] == pytest.approx(100.0)
    assert plan.summary["emissions_t"] == pytest.approx(0.3)


def _two_jobs_on_a_1_mw_connection(form: str) -> Any:
    # grid connection 1 MW, 1 MW of green in hour 0, two 1 MW jobs due at the end of hour 0
    return scenario(
        [site("A", grid_limit_mw=1.0, **contract(form))],
        hours=1,
        green={"A": [1.0]},
        jobs=[job("j1", deadline_h=1), job("j2", deadline_h=1)],
    )


def test_own_green_is_beside_the_connection_a_ppa_shares_it() -> None:
    own = solve(_two_jobs_on_a_1_mw_connection("own"))
    assert own.summary["unplaced"] == 0  # 1 MW grid + 1 MW green beside it
    ppa = solve(_two_jobs_on_a_1_mw_connection("ppa"))
    assert ppa.summary["unplaced"] == 1  # the PPA's green comes over the same 1 MW
    assert site_hour(ppa, "A", "green_used_mw")[0] == pytest.approx(1.0)
    assert site_hour(ppa, "A", "grid_mw")[0] == pytest.approx(0.0)


def test_validator_fails_a_plan_overloading_a_shared_connection() -> None:
    own = solve(_two_jobs_on_a_1_mw_connection("own"))
    report = validate_plan(_two_jobs_on_a_1_mw_connection("ppa"), own)
    assert ("power", "grid_connection") in {(v.check, v.rule) for v in report.violations}


@pytest.mark.parametrize(
    ("resale", "on_green", "total"),
    [
        # deviation price 50 < grid 100: use 1 MWh of the volume, sell 2: 900 - 2 x 50
        (50.0, True, 800.0),
        # deviation price 150 > grid 100: sell all 3 MWh, buy the job's at 100: 900 + 100 - 450
        (150.0, False, 550.0),
    ],
)
def test_trade_surplus_is_sold_at_the_deviation_price(
    resale: float, on_green: bool, total: float
) -> None:
    sc = scenario(
        [site("A", **contract("trade", payment=300.0, resale=resale))],
        prices={"A": [100] * 3},
        green={"A": [1.0] * 3},
        jobs=[job("j")],
    )
    plan = solve(sc)
    assert plan.summary["green_mwh"] == pytest.approx(1.0 if on_green else 0.0)
    assert plan.summary["curtailed_mwh"] == pytest.approx(2.0 if on_green else 3.0)
    assert plan.summary["contract_payment"] == pytest.approx(900.0)
    assert plan.summary["green_resale_value"] == pytest.approx(resale * (2 if on_green else 3))
    assert plan.summary["total_cost"] == pytest.approx(total)


def test_unknown_contract_form_is_refused_naming_the_row() -> None:
    from optimizer.scenario.types import InputValidationError

    with pytest.raises(InputValidationError, match="sites.csv, row 1, column green_contract"):
        scenario([site("A", green_contract="lease")])


def _battery_with_a_green_share_target() -> Any:
    # 1 MW of load in each of two hours; 2 MW of own green in hour 0, none in hour 1; a 2 MWh
    # battery (1 MW, round trip 0.81 = 0.9 each way) starting and ending at >= 1 MWh
    from tests.micro import at

    return scenario(
        [
            site(
                "A",
                battery_mwh=2.0,
                battery_mw=1.0,
                battery_efficiency=0.81,
                battery_initial_soc=0.5,
                min_green_share=1.0,
            )
        ],
        hours=2,
        prices={"A": [100, 100]},
        green={"A": [2.0, 0.0]},
        jobs=[
            job("a", deadline_h=1, unplaced_penalty_cny=1e6),  # worth more than any shortfall
            job("b", release=at(1), deadline_h=2, unplaced_penalty_cny=1e6),
        ],
    )


def test_battery_with_a_green_share_target_is_honest() -> None:
    plan = solve(_battery_with_a_green_share_target())
    ch, dis = (
        site_hour(plan, "A", "battery_charge_mw"),
        site_hour(plan, "A", "battery_discharge_mw"),
    )
    assert not ((ch > 1e-9) & (dis > 1e-9)).any()  # never both in one hour
    # hour 0: green serves the load and charges 1 MW (soc 1 + 0.9 = 1.9); hour 1: the battery
    # gives 0.81 MW (down to 1 MWh), the grid 0.19 MW at 100
    assert ch == pytest.approx([1.0, 0.0])
    assert dis == pytest.approx([0.0, 0.81])
    assert plan.summary["energy_cost"] == pytest.approx(19.0)
    # stored green does not count: 1 MWh of 2 reached the load green, not 2 of 2
    assert plan.summary["green_share"] == pytest.approx(0.5)
    (v,) = plan.summary["policy_violations"]["green_share"]
    assert v["shortfall_mwh"] == pytest.approx(1.0)


def test_validator_fails_a_battery_charging_and_discharging_in_one_hour() -> None:
    sc = _battery_with_a_green_share_target()
    plan = solve(sc)
    sh = plan.site_hours
    both = sh["hour"] == 1
    sh.loc[both, "battery_charge_mw"] += 0.1  # balance kept: +0.1 in, +0.1 out
    sh.loc[both, "battery_discharge_mw"] += 0.1
    report = validate_plan(sc, plan)
    assert ("power", "battery_both") in {(v.check, v.rule) for v in report.violations}


def test_contract_emissions_use_the_residual_mix_where_given_and_say_so() -> None:
    # 1 MWh from the grid at average 600 kg/MWh; residual mix 700 given in hour 0 only
    sc = scenario(
        [site("A")],
        hours=2,
        prices={"A": [100, 200]},
        carbon={"A": [600, 600]},
        jobs=[job("j", deadline_h=2)],
    )
    plan = solve(sc)
    assert plan.summary["emissions_t"] == pytest.approx(0.6)
    assert "stands in for it everywhere" in plan.summary["accounting"]["residual_mix"]
    import dataclasses

    import numpy as np

    residual = dataclasses.replace(sc, grid_residual_kg_per_mwh=np.array([[700.0, np.nan]]))
    plan = solve(residual)
    assert plan.summary["emissions_t"] == pytest.approx(0.7)  # contract-based: residual mix
    assert plan.summary["emissions_location_t"] == pytest.approx(0.6)  # unchanged
    assert "1 of 2 site-hours" in plan.summary["accounting"]["residual_mix"]


@pytest.mark.parametrize(
    ("price", "certificates", "shortfall", "total"),
    [
        (None, 0.0, 0.5, 100.0),  # none on offer: the minimum counts hourly-matched green only
        (30.0, 0.5, 0.0, 100.0 + 0.5 * 30.0),  # 0.5 MWh of certificates at 30 fill the gap
    ],
)
def test_certificates_fill_a_green_share_gap_exactly_at_their_price(
    price: float | None, certificates: float, shortfall: float, total: float
) -> None:
    # 1 MWh of grid at 100, no green; the fleet must be 50 % green
    policy: dict[str, float] = {"min_green_share": 0.5}
    if price is not None:
        policy["certificate_price_cny_per_mwh"] = price
    sc = scenario(
        [site("A")],
        hours=1,
        prices={"A": [100]},
        jobs=[job("j", deadline_h=1, unplaced_penalty_cny=1e6)],
        policy=policy,
    )
    plan = solve(sc)
    (v,) = plan.summary["policy_violations"]["green_share"]
    assert v["certificates_mwh"] == pytest.approx(certificates)
    assert v["shortfall_mwh"] == pytest.approx(shortfall)
    assert v["hourly_matched"] == pytest.approx(0.0)
    assert plan.summary["certificate_mwh"] == pytest.approx(certificates)
    assert plan.summary["cfe_score"] == pytest.approx(0.0)  # certificates are not hourly green
    assert plan.summary["total_cost"] == pytest.approx(total)


def test_cfe_score_matches_green_to_load_hour_by_hour_per_site() -> None:
    # A: 1 MW load in hour 0 with 0.5 MW green, hour 1 with 2 MW green (1 curtailed)
    from tests.micro import at

    sc = scenario(
        [site("A")],
        hours=2,
        green={"A": [0.5, 2.0]},
        jobs=[job("a", deadline_h=1), job("b", release=at(1), deadline_h=2)],
    )
    plan = solve(sc)
    # min(1, 0.5) + min(1, 2) over 2 MWh of load
    assert plan.summary["cfe_score"] == pytest.approx(0.75)
    assert plan.summary["cfe_by_site"] == {"A": pytest.approx(0.75)}


def test_validator_fails_certificates_bought_when_none_are_on_offer() -> None:
    sc = scenario(
        [site("A")],
        hours=1,
        jobs=[job("j", deadline_h=1, unplaced_penalty_cny=1e6)],
        policy={"min_green_share": 0.5},
    )
    plan = solve(sc)
    (v,) = plan.summary["policy_violations"]["green_share"]
    v["certificates_mwh"], v["shortfall_mwh"] = 0.5, 0.0
    report = validate_plan(sc, plan)
    assert ("policy", "certificates") in {(x.check, x.rule) for x in report.violations}


def test_cost_only_optimiser_baseline_prices_green_as_grid_and_ignores_carbon() -> None:
    from optimizer import SolverSettings
    from optimizer.planner import cost_only_plan
    from tests.micro import EXACT

    # A: grid 80 at 900 kg/MWh; B: grid 100 with 1 MW of own green (free at the margin)
    sc = scenario(
        [site("A"), site("B")],
        hours=1,
        prices={"A": [80], "B": [100]},
        carbon={"A": [900], "B": [900]},
        green={"B": [1.0]},
        jobs=[job("j", deadline_h=1)],
        policy={"carbon_price_cny_per_t": 97.0},
    )
    plan = solve(sc)
    assert placement(plan, "j") == ("B", [0])
    assert plan.summary["total_cost"] == pytest.approx(0.0)
    settings: SolverSettings = EXACT
    base = cost_only_plan(sc, settings)
    validate_plan(sc, base).raise_if_failed()
    # priced like grid, B's green costs 100 > 80: the cost-only optimiser runs on A's grid
    assert placement(base, "j") == ("A", [0])
    assert base.summary["emissions_t"] == pytest.approx(0.9)
    assert base.summary["curtailed_mwh"] == pytest.approx(1.0)
    assert base.summary["total_cost"] == pytest.approx(80.0 + 0.9 * 97.0)


def test_residual_mix_column_round_trips_through_the_tables() -> None:
    from optimizer.scenario import scenario_from_tables
    from optimizer.scenario.load import scenario_to_tables

    sc = scenario([site("A")], hours=2, carbon={"A": [600, 600]})
    manifest, tables = scenario_to_tables(sc)
    assert tables["site_series"]["grid_residual_kg_per_mwh"].isna().all()  # none given
    tables["site_series"]["grid_residual_kg_per_mwh"] = [700.0, None]
    back = scenario_from_tables(manifest, tables)
    assert back.contract_carbon_kg_per_mwh.tolist() == [[700.0, 600.0]]
    assert back.residual_mix_given.tolist() == [[True, False]]
    assert back.fingerprint != sc.fingerprint
