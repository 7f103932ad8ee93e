"""The scenario's tables both ways: `scenario_to_tables` writes what `schema.py` declares,
and the builders of `optimizer/scenario/assemble.py` read it back to the same scenario."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from optimizer.scenario import (
    InputValidationError,
    load_scenario,
    read_scenario_dir,
    scenario_from_tables,
    scenario_to_tables,
    schema,
)
from optimizer.scenario.assemble import BUILDERS
from optimizer.scenario.schema import Column

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", ["data/demo", "data/scenarios/cn-edwc-48h"])
def test_tables_round_trip_to_the_same_fingerprint(path: str) -> None:
    sc = load_scenario(ROOT / path)
    manifest, tables = scenario_to_tables(sc)
    again = scenario_from_tables(manifest, tables)
    assert again.fingerprint == sc.fingerprint
    assert scenario_to_tables(again)[0] == manifest


def test_every_schema_table_is_written_with_its_columns_in_order() -> None:
    manifest, tables = scenario_to_tables(load_scenario(ROOT / "data" / "demo"))
    assert list(tables) == [t.name for t in schema.TABLES]
    for table in schema.TABLES:
        assert list(tables[table.name].columns) == table.column_names, table.name
    # the default currency is left out of the manifest (fingerprints of CNY scenarios predate it)
    assert set(manifest) == {k.name for k in schema.MANIFEST_KEYS} - {"currency"} | {"policy"}
    assert set(manifest["policy"]) <= {k.name for k in schema.POLICY_KEYS}


def test_a_declared_column_no_writer_fills_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load_scenario(ROOT / "data" / "demo")
    extra = Column("gpu_model_year", "int", "", 0, "a column the Job type does not have")
    jobs = dataclasses.replace(schema.JOBS, columns=(*schema.JOBS.columns, extra))
    monkeypatch.setattr(schema, "JOBS", jobs)
    with pytest.raises(AttributeError, match="gpu_model_year"):
        scenario_to_tables(sc)


def test_builders_run_sites_and_accelerators_first() -> None:
    names = [b.__name__ for b in BUILDERS]
    assert names[:2] == ["sites", "accelerators"]
    assert names.index("fleets") < names.index("jobs")
    assert names.index("latency") < names.index("service_demand")
    assert names[-1] == "idle_load_fits"


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [("fleets", "devices", "inf"), ("jobs", "gang", "inf"), ("jobs", "gang", "-inf")],
)
def test_a_count_that_is_not_finite_is_reported_not_a_crash(
    table: str, column: str, value: str
) -> None:
    manifest, tables = read_scenario_dir(ROOT / "data" / "demo")
    tables[table].loc[0, column] = value
    with pytest.raises(InputValidationError) as err:
        scenario_from_tables(manifest, tables)
    assert any(
        p.file == f"{table}.csv" and p.row == 1 and p.column == column for p in err.value.problems
    )


def test_the_typed_policy_is_the_declared_one() -> None:
    """`Policy` beside its declaration: the same keys, in order, with the same defaults."""
    from dataclasses import fields

    from optimizer.scenario.types import Policy

    assert [(f.name, f.default) for f in fields(Policy)] == [
        (k.name, k.default) for k in schema.POLICY_KEYS
    ]
