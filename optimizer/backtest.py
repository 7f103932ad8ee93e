"""Closed-loop backtest (issue 13): day after day, plan on a forecast, then run the plan
against what actually came, for the optimizer and both baselines, at several forecast
error levels; the realised totals and the savings at equal work.

Each day d of the backtest is a scenario of the region pack generated for that day
(`optimizer.generator.build_scenario`: its typical-year green, price and carbon on the
day's dates, a seeded queue of jobs, some already running, and inference services). Its
green series is what *actually* comes. At each error level the forecast is the actual plus
seeded Gaussian noise of that share of each site's mean (`optimizer.forecast.
noisy_scenario`, the Let's-Wait-Awhile evaluation; the same draws at every level, scaled),
with prices and carbon as given (a time-of-use tariff is known ahead). On the forecast the
optimizer plans (`optimize`, a short time limit) and the greedy and carbon-agnostic
baselines plan (`baseline_plan`); on request also the cost-only optimiser (`cost_only_plan`:
the same planner without carbon price or green preference, a second solve). Every plan goes
through the independent validator on its forecast scenario.

Execution (the real-time rule): placements and batteries run as planned; green comes in as
it actually does and the plan takes what it planned plus any surplus its load can use; a
shortfall is made up by grid import within the connection limit, at the actual price and
carbon; what neither can supply is reported short (`short_mwh`: load that must wait or be
shed, not priced). This is the plan re-dispatched on the actual green
(`optimizer.plan.cases.case_kpis`), the same rule as the plan's green cases.

Days are independent: every arm faces the same queue each day, so the three plans of a
day do the same jobs and serve the same demand (equal work by construction, up to what
each leaves unplaced). Carrying each arm's unfinished work into its next day would give
each arm a different queue and break that; the scenario's rolling-horizon rule (work due
after the day does its pro-rata share, `optimizer.rules`) already stands for the future.
Where the optimizer places a job a baseline leaves unplaced, the comparison with that
baseline takes the plan without it (`optimizer.choose.restricted`, as `solver.dominance`
does), so the savings are at equal work; the work each arm leaves undone is reported beside.
Inference is not cut: where a baseline leaves demand unmet that the plan serves, the plan
does more for its cost and the saving is understated (unmet demand is in the table).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.choose import restricted
from optimizer.forecast import noisy_scenario
from optimizer.generator import build_scenario
from optimizer.plan import Plan, assemble_plan
from optimizer.plan.assemble import site_energy
from optimizer.plan.cases import case_kpis
from optimizer.planner import BASELINES, COST_ONLY, baseline_plan, cost_only_plan, optimize
from optimizer.scenario.types import Scenario
from optimizer.solve import SolverSettings
from optimizer.validate import validate_plan

PLAN = "plan"
ARMS = (PLAN, *BASELINES, COST_ONLY)
"""Every planner a backtest can run, in table order; the cost-only optimiser on request."""
DEFAULT_ERRORS = (0.0, 0.05, 0.10)
HOURS_PER_DAY = 24
SEED_STRIDE = 1000
"""Day d of a backtest with seed s is generated (and its forecast noise drawn) with seed
s x SEED_STRIDE + d: each day its own queue, the same days for the same seed."""
COMPARED = ("total_cost", "emissions_t", "emissions_location_t")
"""The realised figures the savings are computed on (cost, carbon contract and location)."""
WORK = ("unplaced_device_hours", "unmet_mtokens", "unplaced")
"""The planned work figures reported beside (what each arm leaves undone)."""
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BacktestSettings:
    """What a backtest replays. The defaults are sized so 30 days x 3 error levels finish
    in under 10 minutes on 2 shared cores at load 8 (bench/results/backtest-2026-12-05.md)."""

    region: str = "cn-edwc"
    start: str = "2025-07-01T00:00"
    days: int = 30
    jobs: int = 30
    services: int = 6
    seed: int = 1
    errors: tuple[float, ...] = DEFAULT_ERRORS
    time_limit_s: float = 5.0
    sites: int | None = None
    cost_only: bool = False  # the cost-only optimiser as a third baseline (a second solve a day)

    def __post_init__(self) -> None:
        if self.days < 1 or self.jobs < 0 or self.services < 0 or self.time_limit_s <= 0:
            raise ValueError("days >= 1, jobs and services >= 0 and a positive time limit")
        if not self.errors or any(not 0 <= e < 1 for e in self.errors):
            raise ValueError("forecast errors are shares of the mean in [0, 1), at least one")

    def solver(self) -> SolverSettings:
        return SolverSettings(time_limit_s=self.time_limit_s, threads=1)

    def day_seed(self, day: int) -> int:
        return self.seed * SEED_STRIDE + day

    @property
    def baselines(self) -> tuple[str, ...]:
        return (*BASELINES, COST_ONLY) if self.cost_only else BASELINES


def day_scenario(cfg: BacktestSettings, day: int) -> Scenario:
    """Day `day`'s scenario with the series that actually come."""
    start = pd.Timestamp(cfg.start) + pd.Timedelta(days=day)
    return build_scenario(
        cfg.region,
        start,
        HOURS_PER_DAY,
        cfg.jobs,
        cfg.services,
        cfg.day_seed(day),
        n_sites=cfg.sites,
    )


def realised_kpis(sc: Scenario, plan: Plan, actual: np.ndarray) -> dict[str, float]:
    """The KPIs of `plan` (made on `sc`) when green comes in at `actual` [site, hour]:
    re-dispatched by the execution rule of the module docstring, not re-solved."""
    assert plan.schedule is not None  # a plan made here, not read from a bundle
    k = case_kpis(sc, site_energy(sc, plan.schedule), plan.kpis, actual)
    out: dict[str, float] = k.as_dict()
    out["curtailed_mwh"] = float(np.asarray(actual).sum() - k.green_mwh)  # green <= actual
    return out


def _arm(sc: Scenario, plan: Plan, actual: np.ndarray) -> dict[str, Any]:
    """One plan of a day: validated on its forecast scenario, planned and realised KPIs."""
    report = validate_plan(sc, plan)
    kpis = plan.kpis.as_dict()
    return {
        "status": plan.status,
        "origin": plan.summary.get("origin"),
        "validated": report.ok,
        "violations": [str(v) for v in report.violations[:5]],
        "planned": {k: kpis[k] for k in (*COMPARED, *WORK)},
        "realised": realised_kpis(sc, plan, actual),
    }


def plan_at_equal_work(sc: Scenario, plan: Plan, base: Plan, actual: np.ndarray) -> dict[str, Any]:
    """The optimizer's plan without the jobs `base` leaves unplaced (if any), realised."""
    assert plan.schedule is not None and base.schedule is not None
    cut = restricted(sc, plan.schedule, base.schedule)
    same = cut is None
    p = plan
    if cut is not None:
        # a feasible plan of the same scenario (not proven optimal), with the same baselines
        # beside it, checked as any plan
        p = assemble_plan(sc, cut, status="feasible")
        p.summary["baselines"] |= plan.summary["baselines"]
    out = _arm(sc, p, actual)
    out["restricted"] = not same
    return out


def run_day_level(
    cfg: BacktestSettings, actual_sc: Scenario, day: int, error: float
) -> dict[str, Any]:
    """One day at one forecast error level: every planner's plan on the forecast, realised."""
    sc = noisy_scenario(actual_sc, error, cfg.day_seed(day))
    actual = np.asarray(actual_sc.green_available_mw, dtype=float)
    t = time.perf_counter()
    plans = {PLAN: optimize(sc, cfg.solver())}
    solve_s = time.perf_counter() - t
    plans |= {b: baseline_plan(sc, b) for b in BASELINES}
    if cfg.cost_only:
        plans[COST_ONLY] = cost_only_plan(sc, cfg.solver())
    arms = {name: _arm(sc, p, actual) for name, p in plans.items()}
    equal = {b: plan_at_equal_work(sc, plans[PLAN], plans[b], actual) for b in cfg.baselines}
    return {
        "day": day,
        "start": actual_sc.timestamps[0].isoformat(),
        "error": error,
        "arms": arms,
        "plan_at_equal_work": equal,
        "gap": plans[PLAN].summary.get("gap"),
        "solve_s": solve_s,
        "wall_s": time.perf_counter() - t,
        "load_1min": os.getloadavg()[0],
    }


@dataclass
class Backtest:
    """A backtest's settings, every day-level record and its timing."""

    settings: BacktestSettings
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    load_1min: tuple[float, float] = (0.0, 0.0)  # at the start and at the end
    currency: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "currency": self.currency,
            "wall_s": self.wall_s,
            "load_1min": {"start": self.load_1min[0], "end": self.load_1min[1]},
            "totals": totals(self.records),
            "records": self.records,
        }


def run_backtest(cfg: BacktestSettings, progress: ProgressFn | None = None) -> Backtest:
    """Every day of `cfg` at every error level (module docstring)."""
    bt = Backtest(cfg)
    load0, t = os.getloadavg()[0], time.perf_counter()
    for day in range(cfg.days):
        actual_sc = day_scenario(cfg, day)
        bt.currency = actual_sc.currency
        for error in cfg.errors:
            rec = run_day_level(cfg, actual_sc, day, error)
            bt.records.append(rec)
            if progress is not None:
                progress(rec)
    bt.wall_s = time.perf_counter() - t
    bt.load_1min = (load0, os.getloadavg()[0])
    return bt


def _sum(records: Sequence[dict[str, Any]], path: tuple[str, ...]) -> dict[str, float]:
    """Figure by figure, the sum over `records` of the mapping at `path` in each."""
    out: dict[str, float] = {}
    for rec in records:
        node: Any = rec
        for key in path:
            node = node[key]
        for k, v in node.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = out.get(k, 0.0) + float(v)
    return out


def validated(rec: dict[str, Any]) -> bool:
    """Whether every plan of a day-level record passed the validator (each planner's and
    the optimizer's cut to each baseline's jobs)."""
    plans = [*rec["arms"].values(), *rec["plan_at_equal_work"].values()]
    return all(p["validated"] for p in plans)


def saving_pct(base: float, plan: float) -> float | None:
    """How much lower `plan` is than `base`, in % of `base` (None if `base` is zero)."""
    return None if base == 0 else 100.0 * (base - plan) / base


def totals(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per error level: each arm's planned and realised sums, every plan validated or not,
    and per baseline the plan's realised figures at equal work and the savings against it."""
    out: dict[str, Any] = {}
    for error in sorted({r["error"] for r in records}):
        recs = [r for r in records if r["error"] == error]
        level: dict[str, Any] = {"days": len(recs)}
        arms = [a for a in ARMS if a in recs[0]["arms"]]
        for arm in arms:
            level[arm] = {
                "planned": _sum(recs, ("arms", arm, "planned")),
                "realised": _sum(recs, ("arms", arm, "realised")),
            }
        level["validated"] = all(validated(r) for r in recs)
        for b in arms[1:]:
            eq = _sum(recs, ("plan_at_equal_work", b, "realised"))
            base = level[b]["realised"]
            level[f"vs_{b}"] = {
                "plan_realised": {k: eq[k] for k in COMPARED},
                "saving_pct": {k: saving_pct(base[k], eq[k]) for k in COMPARED},
                "restricted_days": sum(r["plan_at_equal_work"][b]["restricted"] for r in recs),
                "undone_device_hours": {
                    PLAN: _sum(recs, ("plan_at_equal_work", b, "planned"))["unplaced_device_hours"],
                    b: level[b]["planned"]["unplaced_device_hours"],
                },
            }
        out[f"{error:g}"] = level
    return out


ARM_LABELS = {
    PLAN: "optimizer",
    "greedy": "greedy",
    "carbon_agnostic": "carbon-agnostic",
    COST_ONLY: "cost-only optimiser",
}
COMPARED_LABELS = ("cost", "emissions, contract", "emissions, location")


def _f(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def realised_table(t: dict[str, Any], currency: str) -> list[str]:
    """Markdown: per error level and arm, the realised totals and the work left undone."""
    lines = [
        f"| forecast error | planner | realised cost, {currency} | realised - planned cost | "
        "emissions contract, t | emissions location, t | curtailed MWh | short MWh | "
        "undone device-h | unmet Mtoken | validated |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, level in t.items():
        for arm in (a for a in ARMS if a in level):
            r, p = level[arm]["realised"], level[arm]["planned"]
            lines.append(
                f"| {float(key):.0%} | {ARM_LABELS[arm]} | {_f(r['total_cost'])} | "
                f"{_f(r['total_cost'] - p['total_cost'])} | {_f(r['emissions_t'], '{:,.1f}')} | "
                f"{_f(r['emissions_location_t'], '{:,.1f}')} | {_f(r['curtailed_mwh'])} | "
                f"{_f(r['short_mwh'], '{:,.1f}')} | {_f(p['unplaced_device_hours'], '{:,.1f}')} | "
                f"{_f(p['unmet_mtokens'], '{:,.2f}')} | {'yes' if level['validated'] else 'NO'} |"
            )
    return lines


def savings_table(t: dict[str, Any]) -> list[str]:
    """Markdown: per error level and baseline, the optimizer's realised savings in % at
    equal work (cost, carbon contract-based, carbon location-based)."""
    head = " | ".join(f"{x} saving" for x in COMPARED_LABELS)
    lines = [
        f"| forecast error | against | {head} | days the plan was cut to the baseline's jobs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, level in t.items():
        for b in (a for a in ARMS[1:] if a in level):
            v = level[f"vs_{b}"]
            pct = " | ".join(_f(v["saving_pct"][k], "{:.2f} %") for k in COMPARED)
            lines.append(f"| {float(key):.0%} | {ARM_LABELS[b]} | {pct} | {v['restricted_days']} |")
    return lines


def report_markdown(bt: Backtest) -> str:
    """The closing tables of a backtest, in markdown."""
    cfg, t = bt.settings, totals(bt.records)
    days = max(len({r["day"] for r in bt.records}), 1)
    return "\n".join(
        [
            f"Backtest of {cfg.region} from {cfg.start}, {days} day(s) of 24 h, "
            f"{cfg.jobs} jobs and {cfg.services} services a day, seed {cfg.seed}, "
            f"optimizer time limit {cfg.time_limit_s:g} s; {bt.wall_s:.0f} s wall, "
            f"load {bt.load_1min[0]:.1f} -> {bt.load_1min[1]:.1f}.",
            "",
            "Realised totals (planned on the forecast, run on the actual green):",
            "",
            *realised_table(t, bt.currency),
            "",
            "Savings of the optimizer's plan, realised, at equal work:",
            "",
            *savings_table(t),
            "",
        ]
    )
