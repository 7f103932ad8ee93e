"""`greenopt bench --quick`: issue 16's M row and warm what-if row, today's strategy beside
the planner's defaults in the same run (so their ratios share the machine's load).

* **M row**: the generated M instance (10 sites x 48 h x 300 jobs x 30 services, seed 7)
  solved cold within M's 10 s target; target: a plan with a bound within it, gap <= 1 %.
* **What-if row**: the default scenario solved cold, then each change of `bench.changes`
  (price shock, outage, +5 % jobs) solved cold and warm from the cold plan; target: warm
  <= 20 % of the changed case's cold solve and <= 10 s, gap no worse than cold.

Each solve is `bench.speed.solve` (the one path `python -m bench.speed` takes too): one
HiGHS thread, seed 0, every plan through the validator, the never-worse-than-a-baseline
property checked, the load average before and after. Strategies are interleaved solve by
solve. The record goes to `<stem>.json` and the tables to `<stem>.md`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.changes import CHANGES
from bench.sizes import NAMED, M
from bench.speed import DEFAULT_DIR, STRATEGIES, case_scenario, changed_scenario, solve
from optimizer import SolverSettings

RESULTS = Path(__file__).resolve().parent / "results"
GAP_TARGET_M = 0.01  # the M row: gap <= 1 % ...
TARGET_M_S = M.target_s  # ... within 10 s, build included
WARM_SHARE = 0.2  # a warm what-if: <= 20 % of the cold solve ...
WARM_TARGET_S = 10.0  # ... and <= 10 s
WHATIF_BUDGET_S = SolverSettings().time_limit_s  # the planner's default budget (`greenopt plan`'s)


@dataclass(frozen=True)
class QuickRun:
    """What `run` solves: the M case and its budget, the what-if case (`default` or a size
    of `bench.sizes`), its budget and changes, and the strategies (the reference first)."""

    m_case: str = M.name
    m_budget_s: float = TARGET_M_S or 10.0
    whatif_case: str = "default"
    whatif_budget_s: float = WHATIF_BUDGET_S
    changes: tuple[str, ...] = CHANGES
    strategies: tuple[str, ...] = ("today", "new")

    def check(self) -> None:
        """ValueError naming what is unknown, before anything is solved."""
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        unknown += [c for c in self.changes if c not in CHANGES]
        unknown += [c for c in (self.m_case, self.whatif_case) if c not in NAMED and c != "default"]
        if unknown or not self.strategies:
            raise ValueError(
                f"unknown strategy, change or case: {', '.join(unknown) or 'no strategy'} "
                f"(strategies {', '.join(STRATEGIES)}; changes {', '.join(CHANGES)}; cases "
                f"`default` or {', '.join(NAMED)})"
            )
        if "default" in (self.m_case, self.whatif_case) and not DEFAULT_DIR.is_dir():
            raise ValueError(f"the default scenario is not here ({DEFAULT_DIR}): run from a clone")


def run(q: QuickRun, stem: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """Solve both rows, write `<stem>.json` and `<stem>.md`; returns the markdown's path."""
    q.check()
    stamp = datetime.now(UTC)
    stem = stem or RESULTS / f"speed-quick-{stamp:%Y-%m-%dT%H%M%S}"
    record: dict[str, Any] = {
        "started": stamp.isoformat(timespec="seconds"),
        "run": asdict(q),
        "machine": machine.describe(),
    }
    t0 = time.perf_counter()
    say(f"M row: {q.m_case}, {q.m_budget_s:g} s budget, strategies {', '.join(q.strategies)}")
    sc = case_scenario(q.m_case)
    record["m"] = {st: solve(sc, st, q.m_budget_s)[1] for st in q.strategies}
    say(f"what-if row: {q.whatif_case}, {q.whatif_budget_s:g} s budget, {', '.join(q.changes)}")
    base = case_scenario(q.whatif_case)
    cold: dict[str, Any] = {}
    whatif: dict[str, Any] = {"cold": {}, "changes": {}}
    for st in q.strategies:
        cold[st], whatif["cold"][st] = solve(base, st, q.whatif_budget_s)
    for change in q.changes:
        changed = changed_scenario(base, q.whatif_case, change)
        rows = whatif["changes"][change] = {}
        for st in q.strategies:
            say(f"  {change}, {st}: cold, then warm")
            _, c = solve(changed, st, q.whatif_budget_s)
            _, w = solve(changed, st, q.whatif_budget_s, warm=cold[st])
            rows[st] = {"cold": c, "warm": w}
    record["whatif"] = whatif
    record["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    record["load_end"] = machine.load_average()
    record["json"] = stem.with_suffix(".json").name
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    md = stem.with_suffix(".md")
    md.write_text(render(record))
    return md


# ----------------------------------------------------------------------------- the tables
def _num(v: Any, fmt: str = "{:,.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def _gap(v: Any) -> str:
    return "no bound" if v is None else f"{v:.2%}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.0%}"


def _load(r: dict[str, Any]) -> str:
    return f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"


def m_met(r: dict[str, Any], budget: float) -> bool:
    """The M row's target: a bound, the gap <= 1 % and the wall time within M's target."""
    return r["gap"] is not None and r["gap"] <= GAP_TARGET_M and r["wall_s"] <= budget


def warm_met(cold: dict[str, Any], warm: dict[str, Any]) -> bool:
    """The what-if row's target: warm <= 20 % of cold, <= 10 s, gap no worse than cold's
    (a gap needs a bound: without one on either side it cannot be judged, so not met)."""
    gaps = cold["gap"] is not None and warm["gap"] is not None
    return (
        warm["wall_s"] <= WARM_SHARE * cold["wall_s"]
        and warm["wall_s"] <= WARM_TARGET_S
        and gaps
        and warm["gap"] <= cold["gap"] + 1e-9
    )


def _solve_row(label: str, st: str, r: dict[str, Any]) -> str:
    return (
        f"| {label} | {st} | {r['wall_s']:.1f} | {_num(r['objective'])} | {_num(r['bound'])} | "
        f"{_gap(r['gap'])} | {r['plan_source'] or '–'} ({r['origin']}) | {r['churn_aware'] or '–'} | "
        f"{'yes' if r['validated'] else '**no**'} | {'yes' if r['never_worse'] else '**no**'} | "
        f"{_load(r)} |"
    )


def render(record: dict[str, Any]) -> str:
    """The run's markdown: every solve, then the two rows against their targets."""
    q, mach = record["run"], record["machine"]
    sts, ref = q["strategies"], q["strategies"][0]
    head = (
        f"# Quick speed run: issue 16's M and what-if rows\n\n`greenopt bench --quick`, "
        f"started {record['started']}, {record['minutes']} min; record `{record.get('json', '')}`"
        f"\n\nMachine: {mach.get('cpu_model')}, {mach.get('cores')} cores; commit "
        f"`{(mach.get('git') or {}).get('commit')}`; load average at the end "
        f"{record['load_end']}. One HiGHS thread, seed 0. Strategies (`bench.speed`): "
        f"{', '.join(f'`{s}`' for s in sts)}; ratios are against `{ref}` in this run.\n"
    )
    cols = (
        "| case | strategy | wall s | objective | bound | gap | plan from (origin) | "
        "churn-aware | valid | never worse | load 1-min before / after |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [_solve_row(f"{q['m_case']} ({q['m_budget_s']:g} s)", st, record["m"][st]) for st in sts]
    w = record["whatif"]
    rows += [_solve_row(f"{q['whatif_case']} cold", st, w["cold"][st]) for st in sts]
    for ch, by in w["changes"].items():
        for st in sts:
            rows.append(_solve_row(f"{ch} cold", st, by[st]["cold"]))
            rows.append(_solve_row(f"{ch} warm", st, by[st]["warm"]))
    return head + "\n## Every solve\n\n" + cols + "\n".join(rows) + "\n" + _targets(record)


def _targets(record: dict[str, Any]) -> str:
    q, sts = record["run"], record["run"]["strategies"]
    ref = sts[0]
    m = record["m"]
    lines = [
        f"\n## M row (target: a bound, gap <= {GAP_TARGET_M:.0%}, within {q['m_budget_s']:g} s)\n",
        f"| strategy | wall s | vs {ref} | objective vs {ref} | gap | met |",
        "|---|---|---|---|---|---|",
    ]
    for st in sts:
        r = m[st]
        lines.append(
            f"| {st} | {r['wall_s']:.1f} | {_ratio(r['wall_s'], m[ref]['wall_s'])} | "
            f"{r['objective'] / m[ref]['objective'] - 1:+.2%} | {_gap(r['gap'])} | "
            f"{'yes' if m_met(r, q['m_budget_s']) else '**no**'} |"
        )
    lines += [
        f"\n## What-if row, warm (target: <= {WARM_SHARE:.0%} of cold, <= {WARM_TARGET_S:g} s, "
        "gap no worse than cold)\n",
        f"| change | strategy | cold s | warm s | warm/cold | warm vs {ref} warm | gap cold / warm "
        "| objective warm vs cold | warm plan from | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ch, by in record["whatif"]["changes"].items():
        for st in sts:
            c, wm = by[st]["cold"], by[st]["warm"]
            lines.append(
                f"| {ch} | {st} | {c['wall_s']:.1f} | {wm['wall_s']:.1f} | "
                f"{_ratio(wm['wall_s'], c['wall_s'])} | "
                f"{_ratio(wm['wall_s'], by[ref]['warm']['wall_s'])} | "
                f"{_gap(c['gap'])} / {_gap(wm['gap'])} | "
                f"{wm['objective'] / c['objective'] - 1:+.2%} | {wm['plan_source'] or wm['origin']} | "
                f"{'yes' if warm_met(c, wm) else '**no**'} |"
            )
    return "\n".join(lines) + "\n"
