"""The plan bundle contract (optimizer/contract.py) is what the planner writes, the
service stores and the API answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from optimizer import Plan, baseline_plan, contract, load_scenario
from optimizer.contract import Kpis

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return baseline_plan(load_scenario(DEMO), "greedy")


def test_every_table_has_the_contract_columns_in_order(plan: Plan) -> None:
    for t in contract.TABLES:
        assert list(plan.table(t.name).columns) == t.names, t.name


def test_summary_holds_every_declared_key_of_the_assembly(plan: Plan) -> None:
    written = [k.name for k in contract.SUMMARY if k.name not in ("validation", "policy_overrides")]
    assert sorted(plan.summary) == sorted(written)
    assert plan.summary["currency"] == "CNY"


def test_kpis_are_typed_and_round_trip_through_the_summary(plan: Plan, tmp_path: Path) -> None:
    k = plan.kpis
    assert isinstance(k, Kpis) and isinstance(k.unplaced, int)
    assert k.objective == pytest.approx(k.total_cost + k.penalty)
    back = Plan.read_bundle(plan.write_bundle(tmp_path / "b"))
    assert back.kpis == k
    assert list(k.as_dict()) == list(contract.KPI_KEYS)


def test_count_kpis_are_the_int_fields() -> None:
    ints = {f.name for f in dataclasses.fields(Kpis) if f.type == "int"}
    # 2026-12-05: churn counts added (issue 12)
    counts = {"placed", "unplaced", "moved_jobs", "replica_starts", "replica_stops", "pauses"}
    assert set(contract.COUNT_KPIS) == ints == counts


def test_service_stores_plan_rows_under_the_contract_names() -> None:
    from service.repo.plans import ROW_MODELS, row_keys

    for table in ROW_MODELS:
        assert row_keys(table) == contract.TABLES_BY_NAME[table].names, table


def test_api_kpi_model_has_one_field_per_kpi() -> None:
    from service.api.schemas import KpisOut

    assert list(KpisOut.model_fields) == list(contract.KPI_KEYS)


def test_the_validator_recomputes_every_kpi_of_the_contract(plan: Plan) -> None:
    from optimizer.validate import validate_plan

    report = validate_plan(load_scenario(DEMO), plan)
    assert report.ok, report
    missing = [k for k in contract.KPI_KEYS if report.recomputed.get(k) is None]
    assert not missing, f"validator lacks a recomputation of {missing}"
