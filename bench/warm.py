"""`python -m bench.warm --out STEM [--before DIR] [--cold PLAN.pkl] [--budget S]
[--strategy NAME] [--cold-budget S]`: issue 16's warm what-if row, this checkout's warm path
against another checkout's on the same plans.

The default scenario is solved cold once (or its cold plan read from `--cold`, a pickled
`Plan`); then for each change of `bench.changes`: the changed scenario cold (the row's
denominator), warm from the cold plan with this checkout's planner and, with `--before DIR`
(another checkout, e.g. `git archive main | tar -x -C DIR`), warm from the same plan with
that checkout's planner in a fresh process (`PYTHONPATH=DIR`). Cold solves are the same code
in both (the warm path is what differs), so they are solved once; solves run one after the
other. Every solve is `bench.speed.solve`'s (one HiGHS thread, the plan validated, load
before and after); the record goes to STEM.json, the table to STEM.md. Warm solves take
`--budget` and `bench.speed`'s `--strategy` (e.g. `finish`: `finish_by_limit`); cold ones
the `new` strategy at `--cold-budget` (default: `--budget`), so a short what-if compares
with the plan a night's re-solve would have made.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.changes import CHANGES
from bench.quick import WHATIF_BUDGET_S, warm_met
from bench.speed import case_scenario, changed_scenario, solve
from optimizer import Plan

# run by the other checkout's interpreter path: its own bench.speed.solve, its own planner
_BEFORE = """
import json, pickle, sys
from bench.speed import case_scenario, changed_scenario, solve
cold = pickle.loads(open(sys.argv[1], "rb").read())
sc = changed_scenario(case_scenario("default"), "default", sys.argv[2])
plan, rec = solve(sc, sys.argv[4], float(sys.argv[3]), warm=cold)
s = plan.summary.get("solver", {})
rec["guard"] = {k: s.get("guard", {}).get(k) for k in ("needed", "found", "wall_s", "skipped")}
rec["guard"]["tries"] = len(s.get("guard", {}).get("tries", []))
rec["pricing"] = {k: s.get("job_options", {}).get(k) for k in ("rounds", "stopped")}
print("RECORD " + json.dumps(rec, default=str))
"""


def _before(
    root: Path, cold_file: Path, change: str, budget: float, strategy: str
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE, str(cold_file), change, str(budget), strategy],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("RECORD "))
    rec: dict[str, Any] = json.loads(line.removeprefix("RECORD "))
    return rec


def run(
    stem: Path,
    before: Path | None,
    cold_file: Path | None,
    budget: float,
    strategy: str = "new",
    cold_budget: float | None = None,
) -> Path:
    """Solve the rows, write STEM.json and STEM.md; returns the markdown's path."""
    cold_budget = budget if cold_budget is None else cold_budget
    record: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "budget_s": budget,
        "strategy": strategy,
        "cold_budget_s": cold_budget,
        "before": str(before) if before else None,
        "machine": machine.describe(),
        "changes": {},
    }
    base = case_scenario("default")
    with tempfile.TemporaryDirectory() as tmp:
        if cold_file is None:
            cold, record["cold"] = solve(base, "new", cold_budget)
            cold_file = Path(tmp) / "cold.pkl"
            cold_file.write_bytes(pickle.dumps(cold))
        else:
            cold = pickle.loads(cold_file.read_bytes())
            record["cold"] = {"read_from": str(cold_file), "gap": cold.summary.get("gap")}
        assert isinstance(cold, Plan)
        for change in CHANGES:
            sc = changed_scenario(base, "default", change)
            row: dict[str, Any] = {}
            print(f"{change}: warm after, cold, warm before", file=sys.stderr, flush=True)
            _, row["after"] = solve(sc, strategy, budget, warm=cold)
            _, row["cold"] = solve(sc, "new", cold_budget)
            if before is not None:
                row["before"] = _before(before, cold_file, change, budget, strategy)
            record["changes"][change] = row
    record["load_end"] = machine.load_average()
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    md = stem.with_suffix(".md")
    md.write_text(render(record))
    return md


def _gap(v: Any) -> str:
    return "no bound" if v is None else f"{v:.2%}"


def _guard(r: dict[str, Any]) -> str:
    g = r.get("guard") or {}
    if g.get("skipped"):
        return "skipped"
    if g.get("wall_s") is None:
        return "not run" if g.get("needed") is None else "not needed"
    if g.get("needed") is False:
        return "not needed (the plan dominates)"
    tries = "" if g.get("tries") is None else f", {g['tries']} tries"
    seed = ", the previous weights kept" if g.get("seed_kept") else ""
    return f"{g['wall_s']:.0f} s ({'found' if g.get('found') else 'none found'}{tries}{seed})"


def render(record: dict[str, Any]) -> str:
    """The table: per change, cold and each warm solve, ratios, gaps, where the time went."""
    head = (
        f"Started {record['started']}, budget {record['budget_s']:g} s "
        f"({record.get('strategy', 'new')}; cold solves "
        f"{record.get('cold_budget_s', record['budget_s']):g} s), commit "
        f"`{(record['machine'].get('git') or {}).get('commit')}`; before: "
        f"`{record['before']}`; load average at the end {record['load_end']}.\n\n"
        "| change | solve | wall s | vs cold | objective | gap | status | plan from | "
        "pricing rounds (stopped) | guard | valid | never worse | met | load 1-min |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for change, by in record["changes"].items():
        cold = by["cold"]
        for name in ("cold", "before", "after"):
            r = by.get(name)
            if r is None:
                continue
            p = r.get("pricing") or {}
            met = "" if name == "cold" else ("yes" if warm_met(cold, r) else "no")
            rows.append(
                f"| {change} | {name} | {r['wall_s']:.1f} | {r['wall_s'] / cold['wall_s']:.0%} | "
                f"{r['objective']:,.0f} | {_gap(r['gap'])} | {r['status']} | "
                f"{r['plan_source']} ({r['origin']}) | {p.get('rounds')} ({p.get('stopped')}) | "
                f"{_guard(r)} | {'yes' if r['validated'] else '**no**'} | "
                f"{'yes' if r['never_worse'] else '**no**'} | {met} | "
                f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |"
            )
    return head + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.warm", description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="results stem")
    ap.add_argument("--before", type=Path, help="another checkout whose warm path to compare")
    ap.add_argument("--cold", type=Path, help="the default scenario's cold plan, pickled")
    ap.add_argument("--budget", type=float, default=WHATIF_BUDGET_S, help="each warm solve's, s")
    ap.add_argument("--strategy", default="new", help="the warm solves' (bench.speed.STRATEGIES)")
    ap.add_argument("--cold-budget", type=float, help="the cold solves' budget, s (--budget)")
    a = ap.parse_args(argv)
    print(run(a.out, a.before, a.cold, a.budget, a.strategy, a.cold_budget).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
