"""Does the returned plan dominate every baseline? And the cost-carbon curve (issue 11).

`python -m bench.dominance SCENARIO_DIR TIME_LIMIT_S [PRICE ...] [--out FILE.json]`

The cost-only optimiser's plan (carbon price 0, green priced as grid) is solved once: its
placements do not depend on the carbon price; it is re-costed at each price. At each carbon
price the planner solves the scenario with it beside the greedy and carbon-agnostic
baselines (`optimize(extra_baselines=...)`, so it competes as they do); every plan and
baseline goes through the independent validator. Cost is without the carbon price (energy,
contract payments less resale, certificates, moves, churn); emissions both ways.

Prices are solved in rising order, each warm-started from the plan of the price before (as
a service sweep starts from its base plan). With more than one price, `envelope` re-costs
every returned plan at every price and keeps the best there: the curve of the plans the
sweep found, each re-validated at the price it is shown for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from optimizer import SolverSettings, load_scenario, optimize
from optimizer.choose import Candidate, at_equal_work, criteria
from optimizer.plan import Plan, assemble_plan
from optimizer.planner import BASELINES, COST_ONLY, cost_only_plan, plan_baseline
from optimizer.scenario.types import Scenario
from optimizer.validate import validate_plan
from optimizer.whatif import with_policy

COLUMNS = (
    "cost",
    "contract_payment",
    "total_cost",
    "emissions_t",
    "emissions_location_t",
    "cfe_score",
    "certificate_mwh",
    "green_mwh",
    "curtailed_mwh",
    "unplaced",
    "unplaced_device_hours",
    "unmet_mtokens",
    "objective",
)


def _row(kpis: dict[str, Any]) -> dict[str, float]:
    return {k: float(kpis[k]) for k in COLUMNS if k != "cost"} | {"cost": criteria(kpis)["cost"]}


def _checked(sc: Scenario, plan: Plan, what: str) -> None:
    report = validate_plan(sc, plan)
    if not report.ok:
        raise SystemExit(f"{what} failed the independent check:\n{report}")


def baseline_candidates(sc: Scenario, cost_only: Plan) -> dict[str, Candidate]:
    """Every baseline of `sc` (its carbon price), the cost-only optimiser's plan re-costed,
    each through the independent validator."""
    assert cost_only.schedule is not None
    others = {n: plan_baseline(sc, n) for n in BASELINES}  # type: ignore[arg-type]
    others[COST_ONLY] = cost_only.schedule
    out = {n: Candidate(n, b, assemble_plan(sc, b, status="baseline")) for n, b in others.items()}
    for n, c in out.items():
        _checked(sc, c.plan, f"baseline {n} at {sc.policy.carbon_price_cny_per_t:g} CNY/t")
    return out


def one_price(
    sc0: Scenario,
    price: float,
    settings: SolverSettings,
    cost_only: Plan,
    warm_start: Plan | None = None,
) -> tuple[dict[str, Any], Plan]:
    """Solve at one carbon price (from `warm_start`, the plan of the price before, when
    given); the plan's and every baseline's figures and dominance, and the plan."""
    sc = with_policy(sc0, carbon_price_cny_per_t=price)
    assert cost_only.schedule is not None
    t = time.perf_counter()
    plan = optimize(
        sc, settings, extra_baselines={COST_ONLY: cost_only.schedule}, warm_start=warm_start
    )
    wall = time.perf_counter() - t
    _checked(sc, plan, f"the plan at {price} CNY/t")
    s = plan.summary
    assert plan.schedule is not None
    mine = Candidate("improved", plan.schedule, plan)
    equal = {n: at_equal_work(sc, mine, c) for n, c in baseline_candidates(sc, cost_only).items()}
    point = {
        "carbon_price": price,
        "wall_s": wall,
        "load_1min": os.getloadavg()[0],
        "warm": warm_start is not None,
        "status": s["status"],
        "origin": s["origin"],
        "gap": s["gap"],
        "plan_source": s["solver"].get("plan_source"),
        "plan": _row(s),
        "baselines": {n: _row(b) for n, b in s["baselines"].items()},
        # the plan cut to each baseline's job work (where it does more), and its dominance
        "at_equal_work": {n: _row(kpis) for n, (_, kpis) in equal.items()},
        "dominance": {n: d for n, (d, _) in equal.items()},
        "solver_dominance": s["solver"].get("dominance"),
        "origin_objectives": s["solver"].get("origin_objectives"),
        # the dominance guard's search (optimizer/guard.py): each weight tried and its result
        "guard": s["solver"].get("guard"),
        "timings_s": s.get("timings_s"),
    }
    return point, plan


def envelope(
    sc0: Scenario, prices: list[float], plans: list[Plan], cost_only: Plan
) -> list[dict[str, Any]]:
    """At each price, the best of the plans the sweep returned at *any* price (each is a
    plan of every price: only the carbon price differs), re-costed and re-validated there:
    the cheapest by objective of those that dominate every baseline at equal work, else the
    cheapest. Across prices this is one pool ranked by cost + price x emissions, so its
    emissions can only fall as the price rises where the pick is by objective alone."""
    rows = []
    for price in prices:
        sc = with_policy(sc0, carbon_price_cny_per_t=price)
        base = baseline_candidates(sc, cost_only)
        tried = []
        for at, p in zip(prices, plans, strict=True):
            assert p.schedule is not None
            c = Candidate(
                f"plan at {at:g}", p.schedule, assemble_plan(sc, p.schedule, status="baseline")
            )
            _checked(sc, c.plan, f"the plan of {at:g} CNY/t re-costed at {price:g}")
            dom = {n: at_equal_work(sc, c, b)[0]["dominates"] for n, b in base.items()}
            tried.append((not all(dom.values()), c.objective, at, c, dom))
        _, objective, at, c, dom = min(tried, key=lambda x: x[:2])
        rows.append(
            {"carbon_price": price, "from_price": at, "objective": objective, "dominance": dom}
            | {"plan": _row(c.plan.summary)}
        )
    return rows


TABLE = (
    ("cost with contract payments and undone work priced, CNY", "cost", "{:,.0f}"),
    ("contract payments, CNY", "contract_payment", "{:,.0f}"),
    ("emissions contract, t", "emissions_t", "{:,.2f}"),
    ("emissions location, t", "emissions_location_t", "{:,.2f}"),
    ("hourly CFE", "cfe_score", "{:.1%}"),
    ("certificate green, MWh", "certificate_mwh", "{:,.1f}"),
    ("green used, MWh", "green_mwh", "{:,.1f}"),
    ("contracted green curtailed, MWh", "curtailed_mwh", "{:,.2f}"),
    ("jobs unplaced", "unplaced", "{:.0f}"),
    ("work undone, device-h", "unplaced_device_hours", "{:,.0f}"),
    ("demand unserved, Mtoken", "unmet_mtokens", "{:,.1f}"),
)


def point_table(point: dict[str, Any]) -> str:
    """One carbon price: the plan, each baseline, and the plan cut to each baseline's work."""
    cols = [("plan", point["plan"])]
    for n, b in point["baselines"].items():
        cols.append((n, b))
        if point["dominance"][n]["restricted"]:
            cols.append((f"plan at {n}'s work", point["at_equal_work"][n]))
    head = "| | " + " | ".join(c for c, _ in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    rows = [
        f"| {label} | " + " | ".join(fmt.format(v[key]) for _, v in cols) + " |"
        for label, key, fmt in TABLE
    ]
    dom = "| dominates at equal work | " + " | ".join(
        "" if c == "plan" or c.startswith("plan at") else str(point["dominance"][c]["dominates"])
        for c, _ in cols
    )
    return head + "\n".join(rows) + "\n" + dom + " |\n"


def sweep_table(result: dict[str, Any]) -> str:
    """The cost-carbon curve: one row per carbon price (cost without the carbon price)."""
    out = [
        "| CNY/t | origin | status, gap | cost, CNY | contract t | location t | CFE "
        "| curtailed MWh | undone device-h | dominates greedy / c-a / cost-only |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(result["points"], key=lambda p: p["carbon_price"]):
        r, d = p["plan"], p["dominance"]
        gap = f"{p['gap']:.1%}" if p["gap"] is not None else "no bound"
        out.append(
            f"| {p['carbon_price']:g} | {p['origin']} | {p['status']}, {gap} | {r['cost']:,.0f} "
            f"| {r['emissions_t']:,.2f} | {r['emissions_location_t']:,.2f} | {r['cfe_score']:.1%} "
            f"| {r['curtailed_mwh']:,.2f} | {r['unplaced_device_hours']:,.0f} | "
            + " / ".join(str(d[n]["dominates"]) for n in ("greedy", "carbon_agnostic", COST_ONLY))
            + " |"
        )
    return "\n".join(out) + "\n"


def envelope_table(rows: list[dict[str, Any]]) -> str:
    """The curve from the pool of the sweep's plans (`envelope`): one row per price."""
    out = [
        "| CNY/t | plan of CNY/t | objective, CNY | cost, CNY | contract t | location t | CFE "
        "| curtailed MWh | dominates greedy / c-a / cost-only |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        r, d = e["plan"], e["dominance"]
        out.append(
            f"| {e['carbon_price']:g} | {e['from_price']:g} | {e['objective']:,.0f} "
            f"| {r['cost']:,.0f} | {r['emissions_t']:,.2f} | {r['emissions_location_t']:,.2f} "
            f"| {r['cfe_score']:.1%} | {r['curtailed_mwh']:,.2f} | "
            + " / ".join(str(d[n]) for n in ("greedy", "carbon_agnostic", COST_ONLY))
            + " |"
        )
    return "\n".join(out) + "\n"


def guard_table(point: dict[str, Any]) -> str:
    """The dominance guard's search at one price: each weight tried (CNY per tonne contract,
    per tonne location, per curtailed MWh), what it gave, and the worst difference left
    (plan - baseline at equal work, the largest over the baselines)."""
    g = point.get("guard") or {}
    if not g.get("needed"):
        return "The guard was not needed (the plan chosen dominated every baseline).\n"
    out = [
        "| weights c / l / k | cost, CNY | contract t | location t | curtailed MWh "
        "| dominates | worst diff: cost, contract t, location t, curtailed MWh |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in g["tries"]:
        w = t["weights"]
        if t.get("plan", True) is None:
            out.append(f"| {w} | no plan | | | | | |")
            continue
        d = t["worst_diff"]
        out.append(
            f"| {w['emissions_t']:,.0f} / {w['emissions_location_t']:,.0f} / "
            f"{w['curtailed_mwh']:,.0f} | {t['cost']:,.0f} | {t['emissions_t']:,.2f} "
            f"| {t['emissions_location_t']:,.2f} | {t['curtailed_mwh']:,.2f} "
            f"| {', '.join(n for n, ok in t['dominates'].items() if ok) or '-'} "
            f"| {d['cost']:+,.0f}, {d['emissions_t']:+.2f}, {d['emissions_location_t']:+.2f}, "
            f"{d['curtailed_mwh']:+.2f} |"
        )
    found = "found" if g.get("found") else "none found"
    out.append(f"\nFrom `{g.get('from')}`, {g.get('wall_s', 0):.0f} s, {found}.\n")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--report":
        stored = json.loads(Path(argv[1]).read_text())
        for p in stored["points"]:
            print(f"### {p['carbon_price']:g} CNY/t\n\n{point_table(p)}\n{guard_table(p)}")
        print(sweep_table(stored))
        if "envelope" in stored:
            print(envelope_table(stored["envelope"]))
        return
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    args = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    scenario, limit, prices = Path(args[0]), float(args[1]), [float(p) for p in args[2:]]
    settings = SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=limit)
    sc0 = load_scenario(scenario)
    t = time.perf_counter()
    cost_only = cost_only_plan(sc0, settings)
    result: dict[str, Any] = {
        "scenario": str(scenario),
        "time_limit_s": limit,
        "cost_only_wall_s": time.perf_counter() - t,
        "load_start": os.getloadavg(),
        "points": [],
    }
    prices = prices or [sc0.policy.carbon_price_cny_per_t]
    plans: list[Plan] = []
    for price in sorted(prices):  # each from the plan of the price before: a warm sweep
        point, plan = one_price(sc0, price, settings, cost_only, plans[-1] if plans else None)
        plans.append(plan)
        result["points"].append(point)
        print(json.dumps(point), flush=True)
        if out is not None:
            out.write_text(json.dumps(result, indent=1))
    if len(plans) > 1:
        result["envelope"] = envelope(sc0, sorted(prices), plans, cost_only)
    result["load_end"] = os.getloadavg()
    if out is not None:
        out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
