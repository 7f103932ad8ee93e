"""Turn a benchmark run's JSON record into what people read: derived comparisons and the
issue's targets, Markdown tables for bench/README.md, and the scale-curve plot."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

# the targets (not timed tests: they are reported against)
PYOMO_SHARE_MAX = 0.25  # Pyomo build + hand-over as a share of the whole solve, at M and L
PYOMO_VS_MATRIX_MAX = 10.0  # Pyomo build + hand-over within 10x the matrix build
WARM_VS_COLD_MAX = 0.30
XL_PEAK_MEMORY_GIB_MAX = 4.0
MIB_PER_GIB = 1024.0


def solved(summary: dict[str, Any], report: Any, load_start: tuple[float, ...]) -> dict[str, Any]:
    """What a benchmark records of one solved plan: its status, objective, bound and gap,
    which candidate came back, the validator's verdict, its phases and the load."""
    solver = summary["solver"]
    return {
        "status": summary["status"],
        "objective": summary["objective"],
        "bound": summary["bound"],
        "gap": summary["gap"],
        "unplaced": summary["unplaced"],
        "model_size": summary["model_size"],
        "origin": summary.get("origin"),  # which candidate came back (optimizer.choose)
        "origin_objectives": solver.get("origin_objectives"),
        "plan_source": solver.get("plan_source"),
        "termination": solver.get("termination"),
        "valid": report.ok,
        "violations": len(report.violations),
        "timings_s": {k: round(v, 1) for k, v in summary["timings_s"].items()},
        "load_1_5_15": {"start": load_start, "end": os.getloadavg()},
    }


def _rel(a: float | None, b: float | None) -> float | None:
    return (a - b) / abs(b) if a is not None and b else None


def _number(x: Any) -> float | None:
    """A finite number, or None (missing, non-finite, or stored as text)."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _get(d: Any, *path: str) -> Any:
    for p in path[:-1]:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return _money(d, path[-1]) if isinstance(d, dict) else None


def _money(d: dict[str, Any], key: str) -> Any:
    """`d[key]`, or in results recorded before money names became currency-neutral (all in
    CNY), `d[key + "_cny"]`."""
    return d[key] if key in d else d.get(f"{key}_cny")


# ----------------------------------------------------------------------------- derived
def derive(inst: dict[str, Any]) -> dict[str, Any]:
    """Comparisons of one instance's record: plan quality, builds, warm/cold, memory."""
    plans = inst.get("plans", {})
    kp = {name: (p or {}).get("kpis") or {} for name, p in plans.items()}
    milp, greedy, agnostic = kp.get("milp", {}), kp.get("greedy", {}), kp.get("carbon_agnostic", {})
    out: dict[str, Any] = {
        "milp_cost_vs_greedy": _rel(_money(milp, "total_cost"), _money(greedy, "total_cost")),
        "milp_objective_vs_greedy": _rel(_money(milp, "objective"), _money(greedy, "objective")),
        "milp_emissions_vs_carbon_agnostic": _rel(
            milp.get("emissions_t"), agnostic.get("emissions_t")
        ),
        "milp_emissions_location_vs_carbon_agnostic": _rel(
            milp.get("emissions_location_t"), agnostic.get("emissions_location_t")
        ),
        "all_plans_validated": all(
            bool(p.get("validated")) for n, p in plans.items() if n != "lp_relaxation" and p
        )
        if plans
        else False,
    }
    lp_obj = _get(inst, "lp_relaxation", "objective")
    bound = _get(inst, "milp", "bound")
    objective = _get(inst, "milp", "objective")
    # both bounds must lie below the plan; the MILP's (pricing's Lagrangian bound, or
    # HiGHS' dual bound) may lie below the LP's too, when pricing stopped early
    out["bounds_below_objective"] = (
        max(lp_obj, bound) <= objective * (1 + 1e-6) + 1e-6
        if None not in (lp_obj, bound, objective)
        else None
    )
    ph = _get(inst, "milp", "phases_s") or {}
    wall = _get(inst, "milp", "wall_s")
    out["pyomo_build_handover_share"] = (
        (ph.get("build", 0.0) + ph.get("handover", 0.0)) / wall if wall else None
    )
    p, m = inst.get("milp"), inst.get("matrix")
    if p and m and "error" not in m:
        po, mo = _money(p, "objective"), _money(m, "objective")
        gaps = [g for g in (p.get("gap"), m.get("gap")) if g is not None]
        diff = abs(po - mo) / max(1.0, abs(mo)) if po is not None and mo is not None else None
        p_bh = p["phases_s"]["build"] + p["phases_s"]["handover"]
        m_bh = m["phases_s"]["build"] + m["phases_s"]["handover"]
        out["backends"] = {
            "pyomo_objective": po,
            "matrix_objective": mo,
            "objective_rel_diff": diff,
            "same_optimum": diff is not None and diff <= max([*gaps, 1e-9]),
            "pyomo_build_handover_s": p_bh,
            "matrix_build_handover_s": m_bh,
            "ratio_build_handover": p_bh / m_bh if m_bh > 0 else None,
        }
    return out


def targets(instances: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of the issue's targets that this run measured: what was measured, met or not."""
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "met": met})

    for name in ("M", "L", "XL"):
        inst = instances.get(name)
        if not inst or "milp" not in inst:
            continue
        size = inst["size"]
        mi = inst["milp"]
        gap_t, t_s = size["gap_target"], size["target_s"]
        gap = mi.get("gap")
        gtxt = _f(gap, "{:.2%}") if gap is not None else "no gap"
        add(
            f"{name}: a plan within {gap_t:.1%} of the bound",
            f"{gtxt} after {mi['wall_s']:.1f} s (run to the gap target, limit {size['time_limit_s']:.0f} s)",
            bool(mi.get("reached_gap_target")),
        )
        at = inst.get("at_target_time")
        failed = _get(inst, "tasks_failed", "at_target_time")
        if failed:
            add(
                f"{name}: within {t_s:.0f} s, model building included",
                f"no plan: the solve with a {t_s:.0f} s budget failed ({failed['error'][:120]})",
                False,
            )
        if at and "settings" in at:
            g = at.get("gap")
            ok = bool(at.get("within_target_s")) and _number(g) is not None and _number(g) <= gap_t
            if name == "XL":
                ok = ok and bool(_get(at, "plan", "validated"))
            add(
                f"{name}: within {t_s:.0f} s, model building included",
                f"{at['wall_s']:.1f} s, gap {_f(g, '{:.2%}')}"
                + ("" if _get(at, "plan", "validated") else " (the plan failed the validator)"),
                ok,
            )
        d = inst.get("derived", {})
        if name in ("M", "L"):
            share = d.get("pyomo_build_handover_share")
            if share is not None:
                add(
                    f"{name}: Pyomo build + hand-over <= {PYOMO_SHARE_MAX:.0%} of the total",
                    f"{share:.1%}",
                    share <= PYOMO_SHARE_MAX,
                )
            ratio = _get(inst, "builds", "ratio_build_plus_handover")
            if ratio is not None:
                add(
                    f"{name}: Pyomo build + hand-over within {PYOMO_VS_MATRIX_MAX:.0f}x the matrix build",
                    f"{ratio:.1f}x",
                    ratio <= PYOMO_VS_MATRIX_MAX,
                )
            c, e = d.get("milp_cost_vs_greedy"), d.get("milp_emissions_vs_carbon_agnostic")
            if c is not None:
                add(f"{name}: MILP plan costs less than greedy", f"{c:+.1%} total cost", c < 0)
            if e is not None:
                add(
                    f"{name}: MILP plan emits less than carbon-agnostic",
                    f"{e:+.1%} contract-based",
                    e < 0,
                )
        if name == "XL":
            peak = _get(inst, "memory", "peak_rss_mib", "milp")
            if peak is not None:
                add(
                    f"XL: peak memory <= {XL_PEAK_MEMORY_GIB_MAX:.0f} GB",
                    f"{peak / MIB_PER_GIB:.2f} GiB",
                    peak / MIB_PER_GIB <= XL_PEAK_MEMORY_GIB_MAX,
                )
    for name, inst in instances.items():
        for change, r in (inst.get("reopt") or {}).items():
            ratio = r.get("ratio_wall")
            if ratio is None:
                continue
            add(
                f"{name}/{change}: warm re-solve <= {WARM_VS_COLD_MAX:.0%} of cold",
                f"{ratio:.0%} of cold (wall), {_f(r.get('ratio_solve'), '{:.0%}')} (HiGHS)",
                ratio <= WARM_VS_COLD_MAX,
            )
    return rows


def unnamed_phases(timings: dict[str, float]) -> list[str]:
    """The planner's timing entries the benchmark puts under "other"."""
    from bench.tasks import NOT_PHASES, PHASE_KEYS

    named = {k for keys in PHASE_KEYS.values() for k in keys} | set(NOT_PHASES)
    return sorted(k for k in timings if k not in named)


# ----------------------------------------------------------------------------- markdown
def _f(x: Any, fmt: str = "{:,.2f}") -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float) and not math.isfinite(x):
        return "none" if math.isnan(x) else "∞"
    if x in ("inf", "-inf", "nan"):  # non-finite numbers as the JSON record stores them
        return "none" if x == "nan" else "∞"
    try:
        return fmt.format(x)
    except (TypeError, ValueError):
        return str(x)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(run: dict[str, Any], plot_name: str | None) -> str:
    """The run as Markdown: machine, instances, plans, targets, builds, re-solves."""
    mach = run["machine"]
    git = mach.get("git", {})
    parts = [
        f"Run `{run['id']}` ({run['mode']}), {run['started']}, {run['wall_s'] / 60:.1f} min; "
        f"results: `bench/results/{run['id']}.json`.",
        "",
        f"Machine: {mach['cpu_model']}, {mach['cores']} cores ({mach['cores_usable']} usable), "
        f"{mach['ram_gib']} GiB RAM; Python {mach['python']}, HiGHS {mach['highs']} "
        f"(highspy {mach['highspy']}), Pyomo {mach['pyomo']}, NumPy {mach['numpy']}; "
        f"commit `{(git.get('commit') or '?')[:10]}`"
        + (
            " with uncommitted changes in " + ", ".join(git.get("dirty_paths", [])[:12])
            if git.get("dirty")
            else ""
        )
        + f". Load average at start {mach.get('load_average_at_start')}, at end "
        f"{run.get('load_average_at_end')} (other jobs share the machine); calibration loop "
        f"{_f(run['calibration_s'].get('start'), '{:.3f}')} s at start, "
        f"{_f(run['calibration_s'].get('end'), '{:.3f}')} s at end.",
        "",
        f"Peak memory: {run['memory_method']}",
        "",
        *(
            [
                "**optimizer/ changed while this run was going** (sources digests "
                + ", ".join(run.get("optimizer_digests", []))
                + "): its instances may have been solved by different code.",
                "",
            ]
            if len(run.get("optimizer_digests", [])) > 1
            else []
        ),
        "",
    ]
    inst = run["instances"]
    rows = []
    for name, r in inst.items():
        mi = r.get("milp") or {}
        if "error" in r.get("tasks_failed", {}).get("milp", {}) or not mi:
            rows.append(
                [
                    name,
                    r["size"]["label"],
                    "failed: " + str(_get(r, "tasks_failed", "milp", "error")),
                ]
                + [""] * 15
            )
            continue
        ms = mi.get("model_size") or {}
        ph = mi["phases_s"]
        unnamed = unnamed_phases(mi.get("timings_s") or {})
        rows.append(
            [
                name,
                r["size"]["label"],
                _f(ms.get("variables"), "{:,}"),
                _f(ms.get("binaries"), "{:,}"),
                _f(ms.get("constraints"), "{:,}"),
                _f(ph["validate"]),
                _f(ph["build"]),
                _f(ph["handover"]),
                _f(ph["solve"]),
                _f(ph["extract"]),
                _f(ph.get("baselines")),
                _f(ph.get("other")) + (f" ({', '.join(unnamed)})" if unnamed else ""),
                _f(mi["wall_s"]),
                _f(_get(r, "memory", "peak_rss_mib", "milp"), "{:,.0f}"),
                _f(_money(mi, "objective"), "{:,.0f}"),
                _f(_money(mi, "bound"), "{:,.0f}"),
                f"{_f(mi.get('gap'), '{:.2%}')} ({r['size']['gap_target']:.2%})",
                _f(_get(r, "derived", "all_plans_validated")),
            ]
        )
    parts += [
        "**Instances** (Pyomo build, the production path, run to the gap target; seconds; "
        "build = arrays + Pyomo model; solve = every HiGHS solve before extraction; extract "
        "includes device rounding; baselines = greedy plans and MIP start; other = planner "
        "phases the benchmark does not name yet; total = all of them, not the plan check)",
        "",
        _table(
            [
                "size",
                "S×H×J×K",
                "variables",
                "binaries",
                "constraints",
                "validate",
                "build",
                "hand-over",
                "solve",
                "extract",
                "baselines",
                "other",
                "total",
                "peak MiB",
                "objective CNY",
                "bound CNY",
                "gap (target)",
                "plans valid",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for name, r in inst.items():
        for plan, p in (r.get("plans") or {}).items():
            k = (p or {}).get("kpis") or {}
            rows.append(
                [
                    name,
                    plan,
                    _f(_money(k, "total_cost"), "{:,.0f}"),
                    _f(_money(k, "energy_cost"), "{:,.0f}"),
                    _f(_money(k, "objective"), "{:,.0f}"),
                    _f(k.get("emissions_t"), "{:,.1f}"),
                    _f(k.get("emissions_location_t"), "{:,.1f}"),
                    _f(k.get("green_share"), "{:.1%}"),
                    _f(k.get("unplaced"), "{:d}"),
                    "n/a (fractional)" if plan == "lp_relaxation" else _f(p.get("validated")),
                ]
            )
    parts += [
        "**Plans** (total cost = energy + carbon + migration + data transfer; objective adds "
        "the penalties for unplaced work and unmet demand; emissions contract-based and "
        "location-based; the LP relaxation is a bound, its KPIs those of a fractional solution)",
        "",
        _table(
            [
                "size",
                "plan",
                "total cost CNY",
                "energy CNY",
                "objective CNY",
                "CO2 t (contract)",
                "CO2 t (location)",
                "green share",
                "unplaced",
                "validated",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for name, r in inst.items():
        d = r.get("derived") or {}
        rows.append(
            [
                name,
                _f(d.get("milp_cost_vs_greedy"), "{:+.1%}"),
                _f(d.get("milp_objective_vs_greedy"), "{:+.1%}"),
                _f(d.get("milp_emissions_vs_carbon_agnostic"), "{:+.1%}"),
                _f(d.get("milp_emissions_location_vs_carbon_agnostic"), "{:+.1%}"),
                _f(d.get("bounds_below_objective")),
            ]
        )
    parts += [
        "**MILP plan against the baselines**",
        "",
        _table(
            [
                "size",
                "cost vs greedy",
                "objective vs greedy",
                "CO2 (contract) vs carbon-agnostic",
                "CO2 (location) vs carbon-agnostic",
                "LP and MILP bounds <= objective",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for name, r in inst.items():
        at = r.get("at_target_time")
        failed = _get(r, "tasks_failed", "at_target_time")
        if failed:
            rows.append(
                [
                    name,
                    _f(r["size"]["target_s"], "{:.0f}"),
                    "failed: " + failed["error"][:100],
                ]
                + [""] * 8
            )
            continue
        if not at or "settings" not in at:
            continue
        rows.append(
            [
                name,
                _f(r["size"]["target_s"], "{:.0f}"),
                _f(at["settings"]["time_limit_s"], "{:.1f}"),
                _f(at["phases_s"]["solve"]),
                _f(at["wall_s"]),
                _f(at.get("gap"), "{:.2%}"),
                _f(_money(at, "objective"), "{:,.0f}"),
                _f(at.get("over_budget_s")),
                _f(_get(at, "plan", "validated")),
                _f(_get(at, "solver", "plan_source")),
            ]
        )
    if rows:
        parts += [
            "**At the target time** (a second solve whose time limit, the planner's wall-clock "
            "budget, is the target less the scenario's validation; HiGHS gets what the phases "
            "before it leave; total includes validation)",
            "",
            _table(
                [
                    "size",
                    "target s",
                    "budget s",
                    "solve s",
                    "total s",
                    "gap",
                    "objective CNY",
                    "over budget s",
                    "validated",
                    "plan from",
                ],
                rows,
            ),
            "",
        ]
    rows = []
    for name, r in inst.items():
        b = r.get("builds")
        if not b or "error" in b:
            continue
        bk = _get(r, "derived", "backends") or {}
        rows.append(
            [
                name,
                _f(b["build_arrays_s"]),
                _f(b["pyomo"]["build_pyomo_s"]),
                _f(b["pyomo"]["handover_s"]),
                _f(b["matrix"]["handover_s"], "{:.3f}"),
                _f(b["ratio_build_plus_handover"], "{:.1f}x"),
                _f(b.get("identical_loaded_model")),
                _f(b["same_lp_optimum"]),
                _f(bk.get("ratio_build_handover"), "{:.1f}x"),
                _f(bk.get("same_optimum"))
                + (
                    f" (Δ {bk['objective_rel_diff']:.1e})"
                    if bk.get("objective_rel_diff") is not None
                    else ""
                ),
            ]
        )
    parts += [
        "**Two builds of the same model** (`build_model` once, then Pyomo `ConcreteModel` + "
        "standard-form compiler + `passModel`, against the arrays straight to `passModel`; "
        "the ratio is (arrays + Pyomo + hand-over) / (arrays + hand-over); identical load = the "
        "two HiGHS models equal array by array; same LP optimum = both LP relaxations agree "
        "to 1e-6 (solved up to 200,000 variables); MILP = the planner run with each backend)",
        "",
        _table(
            [
                "size",
                "arrays s",
                "Pyomo model s",
                "Pyomo hand-over s",
                "matrix hand-over s",
                "ratio",
                "identical load",
                "same LP optimum",
                "ratio in MILP runs",
                "same MILP optimum",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for name, r in inst.items():
        for change, x in (r.get("reopt") or {}).items():
            if "error" in x:
                rows.append([name, change, "failed: " + x["error"][:80]] + [""] * 7)
                continue
            c, w = x["cold"], x["warm"]
            rows.append(
                [
                    name,
                    change,
                    f"{_f(c['phases_s']['solve'])} / {_f(c['wall_s'])}",
                    f"{_f(w['phases_s']['solve'])} / {_f(w['wall_s'])}",
                    _f(x.get("ratio_solve"), "{:.0%}"),
                    _f(x.get("ratio_wall"), "{:.0%}"),
                    f"{_f(c.get('gap'), '{:.2%}')} / {_f(w.get('gap'), '{:.2%}')}",
                    _f(x.get("both_reached_gap_target")),
                    _f(w.get("mip_start_accepted")),
                    "plain" if not x.get("warm_start_error") else "by job id (plain failed)",
                ]
            )
    if rows:
        parts += [
            "**Re-optimisation** (the changed instance solved cold, then warm from the first "
            "plan, both to the size's gap target; solve s / total s)",
            "",
            _table(
                [
                    "size",
                    "change",
                    "cold",
                    "warm",
                    "warm/cold HiGHS",
                    "warm/cold total",
                    "gap cold / warm",
                    "both at target",
                    "start accepted",
                    "warm start",
                ],
                rows,
            ),
            "",
        ]
    rows = []
    for name, r in inst.items():
        h = r.get("handover")
        if not h or "error" in h:
            continue
        p = h["paths"]

        def cell(key: str, p: dict[str, Any] = p) -> str:
            x = p.get(key, {})
            if "error" in x:
                return "error"
            ratio = x.get("ratio_to_standard_form")
            return _f(x.get("seconds")) + (f" ({ratio:.1f}x)" if ratio else "")

        rows.append(
            [
                name,
                _f(h["model_size"]["variables"], "{:,}"),
                _f(h["build_pyomo_s"]),
                cell("standard_form"),
                cell("standard_form_again"),
                cell("appsi"),
                cell("contrib_solver"),
            ]
        )
    if rows:
        parts += [
            "**Pyomo hand-over paths** on the same `ConcreteModel` (seconds to a loaded "
            "`highspy.Highs`; ratio to the standard-form path)",
            "",
            _table(
                [
                    "size",
                    "variables",
                    "Pyomo model s",
                    "standard form + passModel",
                    "same, again",
                    "appsi set_instance",
                    "contrib.solver set_instance",
                ],
                rows,
            ),
            "",
        ]
    rows = [[t["target"], t["measured"], _f(t["met"])] for t in run.get("targets", [])]
    if rows:
        parts += ["**Targets**", "", _table(["target", "measured", "met"], rows), ""]
    if plot_name:
        parts += [f"![scale curve]({plot_name})", ""]
    return "\n".join(parts)


def update_readme(readme: Path, mode: str, text: str) -> None:
    """Replace the run's section (between its markers) in bench/README.md."""
    begin, end = f"<!-- bench:{mode}:begin -->", f"<!-- bench:{mode}:end -->"
    body = readme.read_text() if readme.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in body and end in body:
        body = re.sub(
            re.escape(begin) + r".*?" + re.escape(end), lambda _m: block, body, flags=re.S
        )
    else:
        body = body.rstrip("\n") + f"\n\n{block}\n"
    readme.write_text(body)


# ----------------------------------------------------------------------------- plot
def plot(run: dict[str, Any], path: Path) -> Path:
    """Seconds per phase and peak memory against instance size, log-log.

    The x axis is the instance (sites x hours x (jobs + services)), not the model: the
    planner's model depends on its strategy (pricing keeps a fraction of the job options),
    so its size would move the points whenever the strategy changes.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on the benchmark machine
    import matplotlib.pyplot as plt

    pts = []
    for name, r in run["instances"].items():
        mi = r.get("milp")
        if not mi or not mi.get("model_size"):
            continue
        sz = r["size"]
        pts.append(
            (
                sz["sites"] * sz["hours"] * (sz["jobs"] + sz["services"]),
                name,
                mi,
                _get(r, "memory", "peak_rss_mib", "milp"),
            )
        )
    pts.sort(key=lambda p: p[0])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [p[0] for p in pts]
    for key, label in (
        ("build", "build (arrays + Pyomo)"),
        ("handover", "hand-over"),
        ("solve", "solve (HiGHS)"),
        ("extract", "rounding + extract"),
        ("other", "other (unnamed, e.g. pricing)"),
    ):
        ax.plot(x, [max(p[2]["phases_s"].get(key, 0.0), 1e-3) for p in pts], "o-", label=label)
    ax.plot(x, [p[2]["wall_s"] for p in pts], "s-", color="black", label="total")
    for v, name, mi, _ in pts:
        ax.annotate(name, (v, mi["wall_s"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("instance size: sites × hours × (jobs + services)")
    ax.set_ylabel("seconds")
    ax.set_title("time to the gap target")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    mem = [(p[0], p[3]) for p in pts if p[3] is not None]
    ax2.plot([m[0] for m in mem], [m[1] for m in mem], "o-", color="tab:red")
    ax2.axhline(
        XL_PEAK_MEMORY_GIB_MAX * MIB_PER_GIB, ls="--", color="grey", label="4 GiB target (XL)"
    )
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("instance size: sites × hours × (jobs + services)")
    ax2.set_ylabel("peak RSS, MiB")
    ax2.set_title("peak memory (MILP task)")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(
        f"greenopt benchmark {run['id']} ({run['machine']['cpu_model']}, {run['machine']['cores']} cores)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
