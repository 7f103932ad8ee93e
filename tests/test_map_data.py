"""What the dashboard's map draws besides the sites (issue 14): the demand regions' points
(the optional demand_regions.csv) and the (site, region) links a plan serves inference over
(`optimizer.diff.region_links`, from the bundle's service_flows)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest

from optimizer.diff import region_links
from optimizer.scenario import (
    InputValidationError,
    load_scenario,
    read_scenario_dir,
    scenario_from_tables,
    scenario_to_tables,
)
from optimizer.scenario.types import RegionPoint

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_the_demos_demand_regions_load_with_their_points() -> None:
    sc = load_scenario(DEMO)
    assert sc.region_points["east-users"] == RegionPoint("East (Shanghai)", 31.23, 121.47)
    assert set(sc.region_points) == set(sc.demand_regions)


def test_a_region_not_in_latency_is_reported() -> None:
    manifest, tables = read_scenario_dir(DEMO)
    extra = pd.DataFrame(
        [["west-users", "West", "30", "104"]], columns=tables["demand_regions"].columns
    )
    tables["demand_regions"] = pd.concat([tables["demand_regions"], extra], ignore_index=True)
    with pytest.raises(InputValidationError) as err:
        scenario_from_tables(manifest, tables)
    (p,) = err.value.problems
    assert (p.file, p.row, p.column) == ("demand_regions.csv", 3, "demand_region")
    assert "west-users" in p.message


def test_a_latitude_off_the_globe_is_reported() -> None:
    manifest, tables = read_scenario_dir(DEMO)
    tables["demand_regions"].loc[0, "lat"] = "91"
    with pytest.raises(InputValidationError) as err:
        scenario_from_tables(manifest, tables)
    assert [(p.file, p.column) for p in err.value.problems] == [("demand_regions.csv", "lat")]


def test_without_the_table_the_fingerprint_is_what_it_was_before_the_table_existed() -> None:
    """Plans stored before demand_regions.csv existed name their scenario's fingerprint; a
    scenario without the table keeps it (an empty table is not hashed)."""
    manifest, tables = read_scenario_dir(DEMO)
    with_points = scenario_from_tables(manifest, tables)
    del tables["demand_regions"]
    without = scenario_from_tables(manifest, tables)
    assert without.region_points == {}
    assert without.fingerprint != with_points.fingerprint
    # the fingerprint of the demo as committed before this table (main at 457b38c)
    assert without.fingerprint == "7ef68167e66c7575"
    # and the points survive the tables' round trip
    again = scenario_from_tables(*scenario_to_tables(with_points))
    assert dict(again.region_points) == dict(with_points.region_points)


def test_region_links_sum_tokens_hours_and_services_per_link() -> None:
    flows = pd.DataFrame(
        [  # service, region, site, hour, tokens/s, latency
            ("chat", "east", "sh", 0, 1000.0, 5.0),
            ("chat", "east", "sh", 1, 1000.0, 5.0),
            ("code", "east", "sh", 1, 500.0, 5.0),
            ("chat", "south", "gz", 3, 250.0, 20.0),
        ],
        columns=["service_id", "demand_region", "site_id", "hour", "tokens_per_s", "latency_ms"],
    )
    links = region_links(cast(Any, SimpleNamespace(service_flows=flows)))
    assert links == [
        # 250 tokens/s for one hour = 0.9 Mtoken
        {
            "site_id": "gz",
            "demand_region": "south",
            "mtokens": pytest.approx(0.9),
            "hours": 1,
            "services": 1,
            "latency_ms": 20.0,
        },
        # (1000 + 1000 + 500) tokens/s-hours x 3600 s = 9.0 Mtoken over hours 0 and 1
        {
            "site_id": "sh",
            "demand_region": "east",
            "mtokens": pytest.approx(9.0),
            "hours": 2,
            "services": 2,
            "latency_ms": 5.0,
        },
    ]
    assert region_links(cast(Any, SimpleNamespace(service_flows=flows.iloc[:0]))) == []
