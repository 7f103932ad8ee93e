"""Loading and validating scenarios: every problem at once, each with its location."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from optimizer import SolverSettings, optimize
from optimizer.generator import build_scenario
from optimizer.scenario import (
    InputValidationError,
    load_scenario,
    scenario_from_tables,
    scenario_to_tables,
    schema,
    write_scenario,
)
from optimizer.validate import validate_plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture()
def demo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "demo"
    shutil.copytree(DEMO, d)
    return d


def edit(d: Path, file: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = pd.read_csv(d / file, dtype=str, keep_default_na=False)
    fn(df).to_csv(d / file, index=False)


def set_cell(d: Path, file: str, row: int, column: str, value: str) -> None:
    """Row `row` (0-based, as pandas reads it) of `column` in `file` becomes `value`."""
    edit(d, file, lambda df: df.assign(**{column: df[column].where(df.index != row, value)}))


def problems(d: Path) -> list:
    with pytest.raises(InputValidationError) as exc:
        load_scenario(d)
    return exc.value.problems


def test_demo_loads_and_round_trips_with_the_same_fingerprint(tmp_path: Path) -> None:
    sc = load_scenario(DEMO)
    assert (len(sc.sites), sc.hours, len(sc.jobs), len(sc.services)) == (3, 24, 12, 3)
    again = load_scenario(write_scenario(sc, tmp_path / "copy"))
    assert again.fingerprint == sc.fingerprint
    assert sc.capacity.shape == (3, 3, 24)
    assert not sc.grid_price_cny_per_mwh.flags.writeable  # frozen


def test_nan_is_reported_with_file_row_and_column(demo_dir: Path) -> None:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[4, "grid_price_cny_per_mwh"] = "NaN"
        return df

    edit(demo_dir, "site_series.csv", f)
    (p,) = problems(demo_dir)
    assert (p.file, p.row, p.column) == ("site_series.csv", 5, "grid_price_cny_per_mwh")
    assert p.hour == "2025-07-15T04:00:00+08:00"
    assert "NaN" in p.message


def test_missing_and_duplicate_hours_name_the_site_and_hour(demo_dir: Path) -> None:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        dup = df.iloc[[30]]
        return pd.concat([df.drop(index=[3]), dup], ignore_index=True)

    edit(demo_dir, "site_series.csv", f)
    ps = problems(demo_dir)
    messages = [str(p) for p in ps]
    assert any(
        "site sh-east: missing hour" in m and "2025-07-15T03:00:00+08:00" in m for m in messages
    ), messages
    assert any(
        "duplicate hour (site_id=nx-west)" in m and "2025-07-15T06:00:00+08:00" in m
        for m in messages
    ), messages


def test_negative_capacities(demo_dir: Path) -> None:
    set_cell(demo_dir, "fleets.csv", 1, "devices", "-5")
    set_cell(demo_dir, "sites.csv", 2, "grid_limit_mw", "-1")
    ps = problems(demo_dir)
    where = {(p.file, p.row, p.column) for p in ps}
    assert ("fleets.csv", 2, "devices") in where
    assert ("sites.csv", 3, "grid_limit_mw") in where
    assert all(
        "negative value" in p.message for p in ps if p.column in ("devices", "grid_limit_mw")
    )


def test_deadline_before_release(demo_dir: Path) -> None:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[2, "release"] = "2025-07-15T10:00:00+08:00"
        df.loc[2, "deadline"] = "2025-07-15T09:00:00+08:00"
        return df

    edit(demo_dir, "jobs.csv", f)
    (p,) = problems(demo_dir)
    assert (p.file, p.row, p.column) == ("jobs.csv", 3, "deadline")
    assert "not after release" in p.message


def test_unknown_accelerator_and_site(demo_dir: Path) -> None:
    set_cell(demo_dir, "jobs.csv", 0, "accelerators", "H100;TPUv9")
    set_cell(demo_dir, "fleets.csv", 0, "site_id", "mars-1")
    ps = problems(demo_dir)
    msgs = {(p.file, p.row, p.column, p.message) for p in ps}
    assert ("jobs.csv", 1, "accelerators", "unknown accelerator 'TPUv9'") in msgs
    assert ("fleets.csv", 1, "site_id", "unknown site 'mars-1'") in msgs


def test_gang_larger_than_any_fleet_is_a_warning_and_the_job_is_planned_unplaced(
    demo_dir: Path,
) -> None:
    set_cell(demo_dir, "jobs.csv", 0, "gang", "512")
    sc = load_scenario(demo_dir)
    (w,) = sc.warnings
    assert (w.file, w.row, w.column) == ("jobs.csv", 1, "gang")
    assert "larger than any site's fleet" in w.message and "128 H100" in w.message
    plan = optimize(sc, SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=60))
    validate_plan(sc, plan).raise_if_failed()  # the validator accepts it, with its reason
    wl = plan.workloads.set_index("workload_id")
    big = sc.jobs[0].job_id
    assert wl.loc[big, "status"] == "unplaced"
    assert "512 devices" in wl.loc[big, "reason"]
    others = wl.drop(index=big)
    assert (others.loc[others["kind"] != "service", "status"] != "unplaced").any()


def test_timezone_mismatch(demo_dir: Path) -> None:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[0, "timestamp"] = "2025-07-14T16:00:00+00:00"  # the same instant, wrong zone
        return df

    edit(demo_dir, "site_series.csv", f)
    (p,) = problems(demo_dir)
    assert (p.file, p.row, p.column) == ("site_series.csv", 1, "timestamp")
    assert "timezone mismatch" in p.message and "+0800" in p.message


def test_every_problem_is_reported_at_once(demo_dir: Path) -> None:
    set_cell(demo_dir, "fleets.csv", 1, "devices", "-5")
    set_cell(demo_dir, "jobs.csv", 0, "accelerators", "TPUv9")
    set_cell(demo_dir, "accelerators.csv", 0, "busy_kw", "lots")
    set_cell(demo_dir, "services.csv", 0, "latency_limit_ms", "")
    ps = problems(demo_dir)
    files = {p.file for p in ps}
    assert {"fleets.csv", "jobs.csv", "accelerators.csv", "services.csv"} <= files
    assert any("not a number: 'lots'" in p.message for p in ps)
    assert any(
        "empty value in required column" in p.message and p.column == "latency_limit_ms" for p in ps
    )


def test_missing_file_column_and_bad_manifest(demo_dir: Path) -> None:
    (demo_dir / "latency.csv").unlink()
    edit(demo_dir, "sites.csv", lambda df: df.drop(columns=["pue"]))
    text = (
        (demo_dir / "scenario.toml")
        .read_text()
        .replace('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"')
    )
    (demo_dir / "scenario.toml").write_text(text)
    with pytest.raises(InputValidationError) as exc:
        load_scenario(demo_dir)
    assert [str(p) for p in exc.value.problems] == ["latency.csv: file missing"]
    shutil.copy(DEMO / "latency.csv", demo_dir / "latency.csv")
    ps = problems(demo_dir)
    assert any(
        p.file == "scenario.toml" and p.column == "timezone" and "unknown timezone" in p.message
        for p in ps
    )
    assert any(
        p.file == "sites.csv" and p.column == "pue" and "required column missing" in p.message
        for p in ps
    )


def test_idle_load_beyond_the_grid_connection_is_named_by_site_and_hour(demo_dir: Path) -> None:
    set_cell(demo_dir, "sites.csv", 0, "grid_limit_mw", "0.01")
    ps = problems(demo_dir)
    assert ps and all(
        p.file == "sites.csv" and "idle load" in p.message and "sh-east" in p.message for p in ps
    )
    assert ps[0].hour == "2025-07-15T00:00:00+08:00"


def test_bad_policy_values(demo_dir: Path) -> None:
    text = (demo_dir / "scenario.toml").read_text()
    text = text.replace(
        "carbon_price_cny_per_t = 0.0", "carbon_price_cny_per_t = -3.0\ncarbon_tax = 5"
    )
    (demo_dir / "scenario.toml").write_text(text)
    ps = problems(demo_dir)
    cols = {p.column for p in ps}
    assert {"policy.carbon_price_cny_per_t", "policy.carbon_tax"} <= cols


def test_cli_lists_every_problem_and_writes_nothing(demo_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import EXIT_BAD_INPUT, app

    set_cell(demo_dir, "fleets.csv", 1, "devices", "-5")
    set_cell(demo_dir, "jobs.csv", 0, "gang", "0")
    out = tmp_path / "plan"
    result = CliRunner().invoke(app, ["plan", "--scenario", str(demo_dir), "--out", str(out)])
    assert result.exit_code == EXIT_BAD_INPUT
    text = result.output
    assert "2 problem(s)" in text
    assert "fleets.csv, row 2, column devices" in text and "jobs.csv, row 1, column gang" in text
    assert not out.exists()


def test_a_plan_made_under_a_policy_override_validates_under_it(
    demo_dir: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from service.cli import EXIT_INVALID_PLAN, app

    out = tmp_path / "plan"
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "plan",
            "--scenario",
            str(demo_dir),
            "--out",
            str(out),
            "--carbon-price",
            "300",
            "--finish-by-limit",
        ],
    )
    assert made.exit_code == 0, made.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy_overrides"] == {"carbon_price_cny_per_t": 300.0}
    assert summary["solver"]["settings"]["finish_by_limit"] is True
    assert summary["carbon_cost"] > 0  # the demo's own carbon price is 0
    checked = runner.invoke(app, ["validate", "--scenario", str(demo_dir), "--plan", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "carbon_price_cny_per_t = 300" in checked.output
    # without the record the same bundle is checked against the demo's price, and fails
    del summary["policy_overrides"]
    (out / "summary.json").write_text(json.dumps(summary))
    checked = runner.invoke(app, ["validate", "--scenario", str(demo_dir), "--plan", str(out)])
    assert checked.exit_code == EXIT_INVALID_PLAN
    assert "carbon_cost" in checked.output


def test_scenario_check_lists_warnings_and_passes(demo_dir: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    edit(demo_dir, "jobs.csv", lambda df: df.assign(gang=df["gang"].where(df.index != 2, "4096")))
    result = CliRunner().invoke(app, ["scenario", "check", str(demo_dir)])
    assert result.exit_code == 0, result.output
    assert "1 warning(s) in the input" in result.output
    assert "jobs.csv, row 3, column gang: gang of 4096 devices" in result.output


def test_a_leap_year_loads_and_an_hour_more_is_refused_naming_the_field_and_limit() -> None:
    """The horizon's limit lives in the schema (`MANIFEST_KEYS`); the loader's check and its
    message derive from it. A year of one site, no jobs: cheap (no solve)."""
    hours = schema.MAX_HORIZON_HOURS
    assert hours == 8784 and schema.manifest_key("hours").max == hours
    sc = build_scenario("cn-edwc", "2028-01-01T00:00+08:00", hours, 0, 0, 1, n_sites=1)
    assert sc.hours == hours and sc.grid_price_cny_per_mwh.shape == (1, hours)
    manifest, tables = scenario_to_tables(sc)
    with pytest.raises(InputValidationError) as exc:
        scenario_from_tables({**manifest, "hours": hours + 1}, tables)
    [p] = [p for p in exc.value.problems if p.column == "hours"]
    assert p.file == schema.MANIFEST_FILE
    assert f"from 1 to {hours:,}" in p.message and f"{hours + 1}" in p.message
