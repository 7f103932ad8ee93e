"""`optimizer.whatif`: the one Overrides parser (every problem at its field path, strict and
finite numbers within their documented ranges), and applying overrides (policy-only by
`dataclasses.replace`, the same scenario the loader would give; tables through the loader's
checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimizer import load_scenario
from optimizer.scenario import InputValidationError, Scenario, schema
from optimizer.scenario.load import fingerprint, scenario_from_tables, scenario_to_tables
from optimizer.whatif import (
    MAX_CARBON_PRICE_CNY_PER_T,
    MAX_DEVICES_PER_DEVICE,
    MAX_MULTIPLIER,
    POLICY_LEVERS,
    Overrides,
    apply_overrides,
    parse_overrides,
)

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
DAY = "2025-07-15T{:02d}:00:00+08:00"


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return load_scenario(DEMO)


def columns(ov: Overrides) -> set[str | None]:
    return {p.column for p in ov.problems}


def problems_of(sc: Scenario, data: dict[str, Any]) -> dict[str | None, str]:
    with pytest.raises(InputValidationError) as err:
        apply_overrides(sc, Overrides.read(data))
    return {p.column: p.message for p in err.value.problems}


# ----------------------------------------------------------------------------- parsing
def test_the_policy_fields_are_the_schemas_levers() -> None:
    assert tuple(c.name for c in schema.POLICY_LEVERS) == POLICY_LEVERS
    assert set(POLICY_LEVERS) <= set(Overrides.model_fields)
    assert schema.POLICY_KEYS[: len(POLICY_LEVERS)] == schema.POLICY_LEVERS
    ov = parse_overrides({"carbon_price_cny_per_t": 100, "min_green_share": 0.2})
    assert ov.policy() == {"carbon_price_cny_per_t": 100.0, "min_green_share": 0.2}
    assert not ov.changes_tables() and ov.to_json() == ov.policy()


def test_every_malformed_part_is_listed_at_its_path_and_the_rest_is_kept() -> None:
    ov = Overrides.read(
        {
            "price_changes": [{"multiplier": -1}, {"multiplier": 2, "start": DAY.format(8)}],
            "green_scaling": [{"multiplier": 1.3}, {"multiplier": 1.1, "colour": "red"}],
            "min_green_share": 2,
            "bogus": 1,
        }
    )
    assert columns(ov) == {
        "price_changes[0].multiplier",
        "green_scaling[1].colour",
        "min_green_share",
        "bogus",
    }
    # the well-formed parts stay, each remembering where the client put it
    assert [pc.multiplier for pc in ov.price_changes] == [2.0]
    assert ov.position("price_changes", 0) == 1
    assert ov.min_green_share is None  # type: ignore[attr-defined]
    with pytest.raises(InputValidationError) as err:
        parse_overrides({"bogus": 1})
    assert [p.column for p in err.value.problems] == ["bogus"]
    assert columns(Overrides.read([1, 2])) == {""}


@pytest.mark.parametrize(
    ("data", "column"),
    [
        # issue 10 row 1: 1e308 devices overflowed int() into a 500
        (
            {
                "accelerator_mix": [
                    {
                        "from_accelerator": "H100",
                        "to_accelerator": "A100",
                        "share": 0.3,
                        "devices_per_device": 1e308,
                    }
                ]
            },
            "accelerator_mix[0].devices_per_device",
        ),  # fmt: skip
        (
            {
                "accelerator_mix": [
                    {
                        "from_accelerator": "H100",
                        "to_accelerator": "A100",
                        "share": 0.3,
                        "devices_per_device": float("inf"),
                    }
                ]
            },
            "accelerator_mix[0].devices_per_device",
        ),  # fmt: skip
        (
            {
                "accelerator_mix": [
                    {
                        "from_accelerator": "H100",
                        "to_accelerator": "A100",
                        "share": 0.3,
                        "devices_per_device": MAX_DEVICES_PER_DEVICE * 2,
                    }
                ]
            },
            "accelerator_mix[0].devices_per_device",
        ),  # fmt: skip
        # issue 10 row 3: a carbon price of 1e308 burned a solve
        ({"carbon_price_cny_per_t": 1e308}, "carbon_price_cny_per_t"),
        ({"carbon_price_cny_per_t": MAX_CARBON_PRICE_CNY_PER_T * 1.01}, "carbon_price_cny_per_t"),
        ({"carbon_price_cny_per_t": float("nan")}, "carbon_price_cny_per_t"),
        ({"carbon_budget_t": float("inf")}, "carbon_budget_t"),
        ({"plan_stability_weight": 1e308}, "plan_stability_weight"),
        ({"price_changes": [{"multiplier": 1e308}]}, "price_changes[0].multiplier"),
        ({"price_changes": [{"multiplier": MAX_MULTIPLIER + 1}]}, "price_changes[0].multiplier"),
        ({"green_scaling": [{"multiplier": float("inf")}]}, "green_scaling[0].multiplier"),
        # issue 10 row 8: no bool or string passes for a number
        ({"price_changes": [{"multiplier": True}]}, "price_changes[0].multiplier"),
        ({"green_scaling": [{"multiplier": "1.5"}]}, "green_scaling[0].multiplier"),
        ({"carbon_price_cny_per_t": True}, "carbon_price_cny_per_t"),
        ({"min_green_share": "0.2"}, "min_green_share"),
        (
            {"capacity_changes": [{"site": "nx-west", "available_fraction": False}]},
            "capacity_changes[0].available_fraction",
        ),  # fmt: skip
        (
            {
                "accelerator_mix": [
                    {"from_accelerator": "H100", "to_accelerator": "A100", "share": True}
                ]
            },
            "accelerator_mix[0].share",
        ),  # fmt: skip
    ],
)
def test_numbers_are_strict_finite_and_plausible(data: dict[str, Any], column: str) -> None:
    assert columns(Overrides.read(data)) == {column}


def test_the_largest_plausible_values_are_taken(sc: Scenario) -> None:
    ov = parse_overrides(
        {
            "carbon_price_cny_per_t": MAX_CARBON_PRICE_CNY_PER_T,
            "price_changes": [{"multiplier": MAX_MULTIPLIER}],
            "green_scaling": [{"multiplier": 0}],
        }
    )
    changed = apply_overrides(sc, ov)
    assert changed.policy.carbon_price_cny_per_t == MAX_CARBON_PRICE_CNY_PER_T
    assert np.allclose(changed.grid_price_cny_per_mwh, sc.grid_price_cny_per_mwh * MAX_MULTIPLIER)


# ----------------------------------------------------------------------------- applying
def test_a_policy_change_is_the_scenario_the_loader_would_give(sc: Scenario) -> None:
    ov = parse_overrides({"carbon_price_cny_per_t": 100, "plan_stability_weight": 2})
    changed = apply_overrides(sc, ov)
    manifest, tables = scenario_to_tables(sc)
    manifest["policy"] = {**manifest["policy"], **ov.policy()}
    loaded = scenario_from_tables(manifest, tables)
    assert changed.policy == loaded.policy
    # every input the model reads is the same, so the plan is too
    for name in ("grid_price_cny_per_mwh", "green_available_mw", "available_fraction"):
        assert np.array_equal(getattr(changed, name), getattr(loaded, name))
    assert (changed.jobs, changed.services, changed.sites) == (
        loaded.jobs,
        loaded.services,
        loaded.sites,
    )
    assert changed.fingerprint == loaded.fingerprint == fingerprint(loaded)
    assert changed.fingerprint != sc.fingerprint  # computed for the copy, never carried over
    assert sc.policy.carbon_price_cny_per_t == 0.0  # the base is untouched
    assert apply_overrides(sc, Overrides()) is sc


def test_problems_against_the_scenario_are_listed_with_the_malformed_ones(sc: Scenario) -> None:
    found = problems_of(
        sc,
        {
            "capacity_changes": [
                {"site": "atlantis"},
                {"site": "sh-east", "start": "2030-01-01T00:00:00+08:00"},
            ],
            "price_changes": [{"multiplier": -1}, {"multiplier": 2, "zones": ["mars"]}],
            "remove_jobs": ["no-such-job"],
            "add_jobs": [{"job_id": "x", "colour": "red"}],
            "carbon_price_cny_per_t": -5,
        },
    )
    assert found["capacity_changes[0].site"] == "unknown site 'atlantis'"
    assert "covers no hour" in found["capacity_changes[1]"]
    assert "price_changes[0].multiplier" in found
    # the second price change is named where the client put it, not where it was kept
    assert found["price_changes[1].zones"] == "unknown zone 'mars'"
    assert found["remove_jobs[0]"] == "unknown job 'no-such-job'"
    assert found["add_jobs[0].colour"] == "unknown job column 'colour'"
    assert "carbon_price_cny_per_t" in found
    # the added row is still checked by the loader, at its place in add_jobs
    assert any(
        c is not None and c.startswith("add_jobs[0].") and c != "add_jobs[0].colour" for c in found
    )


def test_table_changes_go_through_the_loader(sc: Scenario) -> None:
    ov = parse_overrides(
        {
            "capacity_changes": [
                {
                    "site": "nx-west",
                    "available_fraction": 0,
                    "start": DAY.format(0),
                    "end": DAY.format(6),
                }
            ],
            "price_changes": [{"multiplier": 2.0, "sites": ["nx-west"]}],
        }
    )
    changed = apply_overrides(sc, ov)
    si = sc.site_index["nx-west"]
    fleet = [ai for ai, a in enumerate(sc.accelerator_names) if ("nx-west", a) in sc.fleet]
    assert fleet and np.all(changed.available_fraction[si, fleet, :6] == 0)
    assert np.all(changed.available_fraction[si, fleet, 6:] == sc.available_fraction[si, fleet, 6:])
    assert np.allclose(changed.grid_price_cny_per_mwh[si], 2 * sc.grid_price_cny_per_mwh[si])
    assert changed.fingerprint == fingerprint(changed) != sc.fingerprint
