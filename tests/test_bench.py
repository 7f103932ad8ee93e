"""The benchmark harness end to end on a tiny instance, in-process: the record has every
field, every plan passed the validator, both builds reached the same optimum, the plot and
the README section were written. No timing assertions: the numbers are the benchmark's.
The benchmark is `python -m bench`, a development tool outside the product's command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from bench.changes import CHANGES
from bench.harness import RunPlan, run
from bench.sizes import TINY
from service.cli import app as cli_app

# a whole benchmark run (every task, both builds, the plot): a development tool's end-to-end
# test, not in the fast lane
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

PHASES = {"validate", "build", "handover", "solve", "extract"}
MODEL_SIZE = {"variables", "binaries", "constraints"}
PLAN_KPIS = {
    "total_cost",
    "energy_cost",
    "emissions_t",
    "emissions_location_t",
    "green_share",
}
SOLVED = {
    "objective",
    "bound",
    "gap",
    "phases_s",
    "timings_s",
    "wall_s",
    "model_size",
    "reached_gap_target",
    "plan",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    readme = tmp / "README.md"
    readme.write_text("# bench\n\nhand-written text stays\n")
    plot = tmp / "scale.png"
    plan = RunPlan(
        "test",
        [TINY],
        reopt={TINY.name: CHANGES},
        matrix=(TINY.name,),
        handover=(TINY.name,),
        isolate=False,  # in-process: fast, and the test needs no per-task memory
    )
    record, path = run(plan, results_dir=tmp / "results", readme=readme, plot_path=plot)
    assert path is not None
    return record, path, readme, plot


def test_the_record_is_written_as_json_with_the_machine(bench_run: Any) -> None:
    record, path, _, _ = bench_run
    on_disk = json.loads(path.read_text())
    assert on_disk["id"] == record["id"] and path.name == f"{record['id']}.json"
    assert record["mode"] in path.name
    m = on_disk["machine"]
    for key in ("cpu_model", "cores", "ram_gib", "python", "highs", "pyomo", "git"):
        assert m[key] is not None, key
    assert "commit" in m["git"]


def test_the_instance_record_has_every_field(bench_run: Any) -> None:
    record, _, _, _ = bench_run
    inst = record["instances"][TINY.name]
    assert inst["tasks_failed"] == {}
    assert set(inst["milp"]["model_size"]) >= MODEL_SIZE
    for solve in (inst["milp"], inst["matrix"], inst["at_target_time"]):
        assert set(solve) >= SOLVED
        assert set(solve["phases_s"]) >= PHASES
    assert inst["milp"]["objective"] is not None and inst["milp"]["bound"] is not None
    assert inst["memory"]["peak_rss_mib"]["milp"] > 0
    assert {"milp", "greedy", "carbon_agnostic", "lp_relaxation"} == set(inst["plans"])
    for name, plan in inst["plans"].items():
        assert set(plan["kpis"]) >= PLAN_KPIS, name
        assert all(plan["kpis"][k] is not None for k in PLAN_KPIS), name
    assert set(inst["reopt"]) == set(CHANGES)
    for change, r in inst["reopt"].items():
        assert {"cold", "warm", "ratio_solve", "ratio_wall"} <= set(r), change
    assert {"standard_form", "appsi", "contrib_solver"} <= set(inst["handover"]["paths"])
    assert inst["derived"]["bounds_below_objective"] is True


def test_every_plan_passed_the_validator(bench_run: Any) -> None:
    record, _, _, _ = bench_run
    inst = record["instances"][TINY.name]
    for name, plan in inst["plans"].items():
        if name == "lp_relaxation":
            assert plan["validated"] is None  # a bound, not a plan
            continue
        assert plan["validated"] is True, (name, plan["first_violations"])
    for solve in (inst["matrix"], inst["at_target_time"]):
        assert solve["plan"]["validated"] is True
    for r in inst["reopt"].values():
        assert r["cold"]["plan"]["validated"] and r["warm"]["plan"]["validated"]
    assert inst["derived"]["all_plans_validated"] is True


def test_the_two_builds_reach_the_same_optimum(bench_run: Any) -> None:
    record, _, _, _ = bench_run
    inst = record["instances"][TINY.name]
    assert inst["builds"]["identical_loaded_model"] is True
    assert inst["builds"]["same_lp_optimum"] is True
    assert inst["builds"]["ratio_build_plus_handover"] > 0
    backends = inst["derived"]["backends"]
    assert backends["same_optimum"] is True
    assert backends["ratio_build_handover"] > 0


def test_the_plot_and_the_readme_section_are_written(bench_run: Any) -> None:
    record, _, readme, plot = bench_run
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = readme.read_text()
    assert "hand-written text stays" in text
    assert text.count("<!-- bench:test:begin -->") == 1
    assert f"| {TINY.name} | {TINY.label} |" in text
    assert f"]({plot.name})" in text


def test_the_benchmark_is_python_m_bench_and_its_quick_rows_greenopt_bench() -> None:
    """The harness is `python -m bench`; issue 16's quick rows are `greenopt bench --quick`
    (bench/quick.py, tests/test_bench_quick.py)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("usage: python -m bench"), out.stdout
    commands = typer.main.get_command(cli_app).commands  # type: ignore[attr-defined]
    assert "serve" in commands and "bench" in commands
