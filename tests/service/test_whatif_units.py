"""The what-if service's pure functions, without a server: Pareto flags, sweep state, the
override-error mapping, problem size and its limits, wait_s, highlights, sweep points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from optimizer import load_scenario
from optimizer.scenario import InputValidationError, Problem, Scenario
from optimizer.whatif import Overrides, apply_overrides, parse_overrides
from service.errors import InvalidInput, ProblemTooLarge, override_problems
from service.settings import Settings
from service.whatif import (
    SWEEP_PARAMETERS,
    SweepRequest,
    WhatIfRequest,
    check_overrides,
    highlights,
    pareto_front,
    problem_size,
    sweep_state,
    wait_seconds,
)
from service.whatif.results import HIGHLIGHTS
from service.whatif.sweeps import point_overrides, value_problems

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return load_scenario(DEMO)


def settings(**kw: Any) -> Settings:
    return Settings(database_url="sqlite://", **kw)


# ----------------------------------------------------------------------------- Pareto
def test_pareto_front_by_hand() -> None:
    # (cost, emissions): b dominates a; c is cleaner but dearer than b; d has no plan
    a, b, c = (10.0, 5.0), (9.0, 5.0), (12.0, 1.0)
    assert pareto_front([a, b, c, None]) == [False, True, True, None]
    # equal points dominate neither, nor do points apart by solver noise only
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [True, True]
    assert pareto_front([(1e6, 1.0), (1e6 * (1 + 1e-12), 1.0)]) == [True, True]
    assert pareto_front([]) == []


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({"queued": 1, "succeeded": 3}, "running"),
        ({"running": 1}, "running"),
        ({"succeeded": 4}, "done"),
        ({"failed": 2, "cancelled": 1}, "failed"),
        ({"succeeded": 1, "failed": 1}, "partial"),
    ],
)
def test_sweep_state(counts: dict[str, int], state: str) -> None:
    assert sweep_state(counts) == state


# ----------------------------------------------------------------------------- problems
def test_override_problems_name_the_body_path_or_the_table() -> None:
    err = InputValidationError(
        [
            Problem("overrides", "unknown site 'x'", column="price_changes[1].sites"),
            Problem("overrides", "must be an object", column=""),
            Problem("jobs.csv", "bad", row=3, column="gang"),
        ]
    )
    assert override_problems(err) == [
        {
            "file": "request",
            "table": "body",
            "row": None,
            "column": "overrides.price_changes[1].sites",
            "hour": None,
            "message": "unknown site 'x'",
        },
        {
            "file": "request",
            "table": "body",
            "row": None,
            "column": "overrides",
            "hour": None,
            "message": "must be an object",
        },
        {
            "file": "jobs.csv",
            "table": "jobs",
            "row": 3,
            "column": "gang",
            "hour": None,
            "message": "bad",
        },
    ]


def test_check_overrides_lists_the_callers_problems_first(sc: Scenario) -> None:
    extra = [{"file": "request", "table": "body", "column": "settings.time_limit_s"}]
    with pytest.raises(InvalidInput) as err:
        check_overrides(sc, Overrides.read({"remove_jobs": ["nope"]}), settings(), extra)
    assert [p["column"] for p in err.value.problems] == [
        "settings.time_limit_s",
        "overrides.remove_jobs[0]",
    ]


# ----------------------------------------------------------------------------- size
def job(job_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "kind": "batch",
        "accelerators": "H100",
        "gang": 1,
        "work_device_hours": 1,
        "release": "2025-07-15T00:00:00+08:00",
        "deadline": "2025-07-15T06:00:00+08:00",
        "data_origin_site": "sh-east",
        "data_gb": 1,
    } | kw


def test_problem_size_counts_what_a_job_could_use(sc: Scenario) -> None:
    size = problem_size(sc)
    assert (size.jobs, size.services, size.sites, size.hours) == (
        len(sc.jobs),
        len(sc.services),
        len(sc.sites),
        sc.hours,
    )
    h100_sites = sum(1 for s in sc.site_ids if sc.fleet.get((s, "H100"), 0) > 0)
    more = problem_size(apply_overrides(sc, parse_overrides({"add_jobs": [job("six-hours")]})))
    # six hours on every site with H100s
    assert more.model_cells - size.model_cells == 6 * h100_sites
    assert more.jobs == size.jobs + 1


def test_a_scenario_over_the_limits_names_each_setting(sc: Scenario) -> None:
    size = problem_size(sc)
    tight = settings(whatif_max_jobs=size.jobs - 1, whatif_max_model_cells=size.model_cells - 1)
    with pytest.raises(ProblemTooLarge) as err:
        check_overrides(sc, Overrides(), tight)
    messages = [p["message"] for p in err.value.problems]
    assert len(messages) == 2
    assert "whatif_max_jobs" in messages[0] and "whatif_max_model_cells" in messages[1]
    assert check_overrides(sc, Overrides(), settings()) is sc


def test_wait_seconds() -> None:
    s = settings(whatif_wait_s=30, whatif_max_wait_s=60)
    assert wait_seconds(s, query=None, body=None) == 30
    assert wait_seconds(s, query=None, body=5) == 5
    assert wait_seconds(s, query=0, body=5) == 0  # the query wins
    with pytest.raises(InvalidInput) as err:
        wait_seconds(s, query=61, body=None)
    assert [p["column"] for p in err.value.problems] == ["wait_s"]


# ----------------------------------------------------------------------------- highlights
def test_highlights_count_binding_hours_and_keep_the_best_moves_first() -> None:
    moves = [{"workload_id": f"j{i}", "net_saving": float(i)} for i in range(HIGHLIGHTS + 5)]
    unplaced = [{"workload_id": f"u{i}"} for i in range(HIGHLIGHTS + 1)]
    h = highlights(
        {
            "binding_hours": {"a": {"capacity": [1, 2, 3], "power": []}, "b": {"power": []}},
            "moves": moves,
            "unplaced": unplaced,
            "policy_violations": {"green_share": []},
        }
    )
    assert h.binding_hours == {"a": {"capacity": 3}}
    assert (h.moves_total, h.unplaced_total) == (HIGHLIGHTS + 5, HIGHLIGHTS + 1)
    assert len(h.moves) == len(h.unplaced) == HIGHLIGHTS
    assert h.moves[0]["net_saving"] == HIGHLIGHTS + 4
    assert h.policy_violations == {"green_share": []}


# ----------------------------------------------------------------------------- sweep points
def test_point_overrides_set_a_lever_or_add_a_multiplier() -> None:
    base = parse_overrides({"carbon_price_cny_per_t": 10, "price_changes": [{"multiplier": 2}]})
    assert point_overrides(base, "carbon_price_cny_per_t", 50).to_json() == {
        "carbon_price_cny_per_t": 50,
        "price_changes": [{"multiplier": 2.0}],
    }
    assert point_overrides(base, "price_multiplier", 1.5).to_json()["price_changes"] == [
        {"multiplier": 2.0},
        {"multiplier": 1.5},
    ]
    assert point_overrides(base, "green_scaling", 1.3).to_json()["green_scaling"] == [
        {"multiplier": 1.3}
    ]
    assert base.to_json()["carbon_price_cny_per_t"] == 10  # the base is untouched
    assert set(SWEEP_PARAMETERS) >= {"price_multiplier", "green_scaling", "min_green_share"}


def test_sweep_values_are_checked_as_the_override_they_become() -> None:
    found = value_problems("min_green_share", [0.1, 1.5, 0.1])
    assert [p["column"] for p in found] == ["values[1]", "values[2]"]
    assert "repeats values[0]" in found[1]["message"]
    assert [p["column"] for p in value_problems("green_scaling", [1.0, -1.0])] == ["values[1]"]
    assert [p["column"] for p in value_problems("price_multiplier", [0.0, 1e308])] == [
        "values[0]",
        "values[1]",
    ]


# ----------------------------------------------------------------------------- request bodies
@pytest.mark.parametrize(
    "body",
    [
        {"wait_s": 1e308},  # issue 10 row 8: was unchecked
        {"wait_s": True},
        {"wait_s": "5"},
        {"settings": {"time_limit_s": float("inf")}},
    ],
)
def test_what_if_body_numbers_are_strict_and_bounded(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WhatIfRequest.model_validate(body)


@pytest.mark.parametrize("values", [[True, 2.0], ["1"], [float("nan")], [1e308, 1.0]])
def test_sweep_values_are_strict_and_finite(values: list[Any]) -> None:
    found = False
    try:
        request = SweepRequest.model_validate(
            {"parameter": "carbon_price_cny_per_t", "values": values}
        )
    except ValidationError:
        found = True
    else:  # finite but implausible: refused as the override it becomes
        found = bool(value_problems(request.parameter, request.values))
    assert found


def test_malformed_overrides_in_a_body_are_kept_as_problems_not_refused() -> None:
    # the body's validation lets them through so that one 422 lists them with the rest
    body = WhatIfRequest.model_validate({"overrides": {"bogus": 1, "carbon_price_cny_per_t": 5}})
    assert [p.column for p in body.overrides.problems] == ["bogus"]
    assert body.overrides.policy() == {"carbon_price_cny_per_t": 5.0}
    assert not body.overrides.is_empty()
