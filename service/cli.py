"""The `greenopt` command: plan and validate from the shell; serve, schedule and work as
processes of the service. Heavy imports happen inside the commands so `greenopt plan`
does not pay for the web stack."""

from __future__ import annotations

import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from optimizer import Plan, Scenario, SolverSettings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Energy-aware placement of GPU workloads."
)
scenario_app = typer.Typer(no_args_is_help=True, help="Build and check scenarios.")
app.add_typer(scenario_app, name="scenario")
db_app = typer.Typer(no_args_is_help=True, help="The service's database.")
app.add_typer(db_app, name="db")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the service.")
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 140)

EXIT_BAD_INPUT = 2
DEFAULT_JOBS = 300  # jobs of `scenario build`'s default workload
EXIT_INVALID_PLAN = 3


def _print_problems(err: Exception) -> None:
    problems = getattr(err, "problems", None)
    if problems is None:
        console.print(f"[red]error:[/red] {err}")
        return
    console.print(f"[red]{len(problems)} problem(s) in the input:[/red]")
    for p in problems:
        console.print(f"  - {p}", markup=False, highlight=False)


def _print_warnings(sc: Any) -> None:
    """What loads but cannot all be done (e.g. a gang larger than every fleet: unplaced)."""
    if sc.warnings:
        console.print(f"[yellow]{len(sc.warnings)} warning(s) in the input:[/yellow]")
    for w in sc.warnings:
        console.print(f"  - {w}", markup=False, highlight=False)


def _green_cases_line(cases: Any, cur: str) -> None:
    """The plan's band: cost, emissions and short site-hours with green low/central/high."""
    if not isinstance(cases, dict):
        return
    from optimizer.contract import GREEN_CASES

    q = cases.get("quantiles", {})
    parts = [
        f"{case} ({q.get(case)}): {c['total_cost']:,.0f} {cur}, {c['emissions_t']:,.2f} t "
        f"contract / {c['emissions_location_t']:,.2f} t location, "
        f"{c['short_site_hours']} site-hours short"
        for case in GREEN_CASES
        if isinstance(c := cases.get(case), dict)
    ]
    robust = cases.get("robust_quantile")
    head = f"green cases (robust at {robust})" if robust else "green cases (not robust)"
    if not cases.get("band_given"):
        head += ", no forecast band in the scenario"
    out.print(head + ":\n  " + "\n  ".join(parts))


@app.command()
def plan(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="scenario directory")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="where to write the plan bundle")],
    time_limit: Annotated[float, typer.Option("--time-limit", help="solver time limit, s")] = 60.0,
    gap: Annotated[float, typer.Option("--gap", help="relative MIP gap to stop at")] = 5e-3,
    threads: Annotated[int, typer.Option("--threads", help="HiGHS threads")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="HiGHS random seed")] = 0,
    carbon_price: Annotated[
        float | None, typer.Option("--carbon-price", help="override the carbon price, CNY/t")
    ] = None,
    min_green_share: Annotated[
        float | None,
        typer.Option("--min-green-share", help="override the fleet minimum green share (0-1)"),
    ] = None,
    carbon_budget: Annotated[
        float | None, typer.Option("--carbon-budget", help="override the carbon budget, t")
    ] = None,
    stability: Annotated[
        float | None, typer.Option("--stability-weight", help="override the plan-stability weight")
    ] = None,
    robust: Annotated[
        float | None,
        typer.Option(
            "--robust",
            help="plan robust for green at this forecast quantile (0.1 = P10): every "
            "site-hour stays powerable if green comes in that low; off by default (the "
            "nightly plan is robust)",
        ),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="pyomo (default) or matrix")] = "pyomo",
    finish_by_limit: Annotated[
        bool,
        typer.Option(
            "--finish-by-limit",
            help="the whole solve within --time-limit: the churn-aware pass and the "
            "dominance guard only where expected to end in it (off: they run past it)",
        ),
    ] = False,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="skip the independent check of the plan")
    ] = False,
) -> None:
    """Solve a scenario and write a plan bundle; prints a summary against the baselines."""
    from optimizer import SolverSettings

    policy = {
        "carbon_price_cny_per_t": carbon_price,
        "min_green_share": min_green_share,
        "carbon_budget_t": carbon_budget,
        "plan_stability_weight": stability,
        "robust_green_quantile": robust,
    }
    sc, overrides, t_validate = _load_with_overrides(scenario, policy)
    if backend not in ("pyomo", "matrix"):
        console.print("[red]--backend must be pyomo or matrix[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = SolverSettings(
        time_limit_s=time_limit,
        mip_rel_gap=gap,
        threads=threads,
        seed=seed,
        backend="pyomo" if backend == "pyomo" else "matrix",
        finish_by_limit=finish_by_limit,
    )
    console.print(
        f"[bold]{sc.name}[/bold]: {len(sc.sites)} sites, {sc.hours} h, {len(sc.jobs)} jobs, "
        f"{len(sc.services)} services (fingerprint {sc.fingerprint})"
    )
    _print_warnings(sc)
    result = _solve_with_status(sc, settings, t_validate)
    if overrides:
        # the bundle says which policy it was planned under, so `greenopt validate` checks it
        # against the same scenario
        result.summary["policy_overrides"] = overrides
    if not no_validate:
        _check_plan(sc, result)
    result.write_bundle(out_dir)
    _summary_table(result.summary)
    console.print(f"plan bundle written to [bold]{out_dir}[/bold]")
    if not no_validate and not result.summary["validation"]["ok"]:
        raise typer.Exit(EXIT_INVALID_PLAN)


def _load_with_overrides(
    scenario: Path, policy: dict[str, float | None]
) -> tuple[Scenario, dict[str, float], float]:
    """Load the scenario with the given policy overrides; the overrides set and the time taken, s."""
    from optimizer import InputValidationError, load_scenario
    from optimizer.whatif import with_policy

    t0 = time.perf_counter()
    try:
        sc = load_scenario(scenario)
        overrides = {k: v for k, v in policy.items() if v is not None}
        if overrides:
            sc = with_policy(sc, **overrides)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    return sc, overrides, time.perf_counter() - t0


def _solve_with_status(sc: Scenario, settings: SolverSettings, t_validate: float) -> Plan:
    """Optimize the scenario, showing the solver's progress on the console's status line."""
    from optimizer import optimize

    with console.status("planning...") as status:

        def progress(ev: dict[str, Any]) -> None:
            if ev.get("phase") == "solve" and ev.get("objective") is not None:
                b, g = ev.get("bound"), ev.get("gap")
                bound = (
                    f"bound {b:,.0f}, gap {g:.2%}"
                    if b is not None and g is not None
                    else "no bound"
                )
                status.update(
                    f"solving: {ev['elapsed_s']:.1f} s, best {ev['objective']:,.0f} {sc.currency}, "
                    f"{bound}, nodes {ev.get('nodes', 0)}"
                )
            else:
                status.update(f"{ev.get('phase')}... ({ev.get('elapsed_s', 0.0):.1f} s)")

        return optimize(sc, settings, progress=progress, validate_s=t_validate)


def _check_plan(sc: Scenario, result: Plan) -> None:
    """Run the independent check on the plan and record its outcome and time in the summary."""
    from optimizer.validate import validate_plan

    t = time.perf_counter()
    report = validate_plan(sc, result)
    result.summary["timings_s"]["check"] = time.perf_counter() - t
    result.summary["validation"] = {"ok": report.ok, "violations": len(report.violations)}
    if not report.ok:
        console.print(f"[red]the plan failed the independent check:[/red]\n{report}")


def plan_headline(s: dict[str, Any]) -> str:
    """Status, which plan came back and the gap ("no bound" when none was proven)."""
    gap = s.get("gap")
    origin = f" ({s['origin']})" if s.get("origin") else ""
    return f"{s['status']}{origin}  " + (f"gap {gap:.3%}" if gap is not None else "no bound")


def _summary_table(s: dict[str, Any]) -> None:
    from optimizer.contract import DEFAULT_CURRENCY, KPIS

    # relative changes for amounts (money, emissions, energy), not for shares or counts
    amounts = {f.name for f in KPIS if f.metadata["unit"] in ("currency", "tCO2", "MWh")}
    cur = s.get("currency", DEFAULT_CURRENCY)
    base = s.get("baselines", {})
    t = Table(title=f"plan: {plan_headline(s)}")
    t.add_column("")
    t.add_column("optimizer", justify="right")
    for name in base:
        t.add_column(name.replace("_", "-"), justify="right")
    for name in base:
        t.add_column(f"vs {name.replace('_', '-')}", justify="right")
    rows = [
        (f"total cost, {cur}", "total_cost", "{:,.0f}"),
        (f"energy cost, {cur}", "energy_cost", "{:,.0f}"),
        (f"carbon cost, {cur}", "carbon_cost", "{:,.0f}"),
        (f"migration cost, {cur}", "migration_cost", "{:,.0f}"),
        ("emissions (contract), t", "emissions_t", "{:,.2f}"),
        ("emissions (location), t", "emissions_location_t", "{:,.2f}"),
        ("green share", "green_share", "{:.1%}"),
        ("grid, MWh", "grid_mwh", "{:,.1f}"),
        ("green used, MWh", "green_mwh", "{:,.1f}"),
        ("curtailed, MWh", "curtailed_mwh", "{:,.1f}"),
        ("jobs unplaced", "unplaced", "{:d}"),
        ("jobs moved", "moved_jobs", "{:d}"),
        ("demand served", "served_share", "{:.2%}"),
    ]
    for label, key, fmt in rows:
        mine = s.get(key)
        cells = [fmt.format(mine) if mine is not None else "-"]
        cells += [fmt.format(b[key]) if key in b else "-" for b in base.values()]
        for b in base.values():
            other = b.get(key)
            if (
                isinstance(mine, float)
                and isinstance(other, float)
                and abs(other) > 1e-12
                and key in amounts
            ):
                cells.append(f"{(mine - other) / abs(other):+.1%}")
            else:
                cells.append("")
        t.add_row(label, *cells)
    out.print(t)
    churn_note = s.get("solver", {}).get("churn_aware", {}).get("note")
    if churn_note:
        out.print(f"[yellow]note:[/yellow] {churn_note}")
    _green_cases_line(s.get("green_cases"), cur)
    tim = s.get("timings_s", {})
    ms = s.get("model_size", {})
    out.print(
        "timings (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in tim.items())
        + f"\nmodel: {ms.get('variables', 0):,} variables ({ms.get('binaries', 0):,} binary, "
        f"{ms.get('integers', 0):,} integer), {ms.get('constraints', 0):,} constraints, {ms.get('nonzeros', 0):,} nonzeros"
    )


BENCH_INSTALL = "pip install -c constraints.txt -e '.[bench]'"
"""How to install the benchmark (from a clone's root; the test extra includes it)."""


def _bench_missing() -> list[str]:
    """What `greenopt bench` lacks: distributions of the `bench` extra not installed, and
    the `bench` package itself where it is not importable (the service's image has none)."""
    import importlib
    import re
    from importlib import metadata

    missing = []
    for req in metadata.requires("greenopt") or []:
        if re.search(r"extra\s*==\s*['\"]bench['\"]", req):
            name = re.match(r"[A-Za-z0-9_.-]+", req)
            try:
                metadata.version(name.group(0) if name else req)
            except metadata.PackageNotFoundError:
                missing.append(name.group(0) if name else req)
    try:
        importlib.import_module("bench.quick")
    except ImportError as err:
        missing.append(f"the bench package ({err})")
    return missing


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="issue 16's M and what-if rows (the only mode here)")
    ] = False,
    out_stem: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="results stem: writes STEM.json and STEM.md"),
    ] = None,
    m_case: Annotated[str | None, typer.Option("--m-case", help="the M row's size (M)")] = None,
    m_budget: Annotated[
        float | None, typer.Option("--m-budget", help="the M row's budget, s (M's target)")
    ] = None,
    whatif_case: Annotated[
        str | None,
        typer.Option("--whatif-case", help="`default` (the default scenario) or a size"),
    ] = None,
    whatif_budget: Annotated[
        float | None,
        typer.Option("--whatif-budget", help="each what-if solve's budget, s (greenopt plan's)"),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option("--strategies", help="comma-separated, the reference first (today,new)"),
    ] = None,
    changes: Annotated[
        str | None,
        typer.Option("--changes", help="comma-separated what-if changes (all of bench.changes)"),
    ] = None,
) -> None:
    """Benchmark: `--quick` solves issue 16's M row and warm what-if row (price shock,
    outage, +5 % jobs on the default scenario), today's strategy beside the defaults, every
    plan validated; writes bench/results/speed-quick-<time>.json and .md. The full harness
    is `python -m bench` (bench/README.md)."""
    missing = _bench_missing()
    if missing:
        console.print(  # no markup: the extras' brackets are part of the command
            f"greenopt bench needs the bench extra (missing: {', '.join(missing)}).\n"
            f"Install it from a clone of the repository: {BENCH_INSTALL} "
            "(or '.[test]', which includes it).",
            markup=False,
            highlight=False,
            style="red",
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if not quick:
        console.print("only --quick runs here; the full benchmark is `python -m bench --full`")
        raise typer.Exit(EXIT_BAD_INPUT)
    from bench.quick import QuickRun, run

    given: dict[str, Any] = {
        "m_case": m_case,
        "m_budget_s": m_budget,
        "whatif_case": whatif_case,
        "whatif_budget_s": whatif_budget,
        "changes": None if changes is None else tuple(c for c in changes.split(",") if c),
        "strategies": None if strategies is None else tuple(x for x in strategies.split(",") if x),
    }
    q = QuickRun(**{k: v for k, v in given.items() if v is not None})  # the rest: QuickRun's
    try:
        q.check()
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    md = run(q, out_stem, say=lambda line: console.print(line, highlight=False))
    out.print(md.read_text(), markup=False, highlight=False)
    out.print(f"written: {md} and {md.with_suffix('.json')}")


@app.command()
def validate(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="scenario directory")],
    plan_dir: Annotated[Path, typer.Option("--plan", "-p", help="plan bundle directory")],
) -> None:
    """Check a plan bundle against its scenario: every limit and every total, recomputed.

    A plan made with policy overrides (`greenopt plan --carbon-price ...`) records them in
    its summary (`policy_overrides`); they are applied to the scenario before the check."""
    from optimizer import InputValidationError, load_scenario
    from optimizer.plan import Plan
    from optimizer.validate import validate_plan
    from optimizer.whatif import with_policy

    if not (plan_dir / "summary.json").is_file():
        console.print(f"[red]{plan_dir} is not a plan bundle (no summary.json)[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    plan = Plan.read_bundle(plan_dir)
    overrides = plan.summary.get("policy_overrides") or {}
    try:
        sc = load_scenario(scenario)
        if overrides:
            sc = with_policy(sc, **overrides)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if overrides:
        applied = ", ".join(f"{k} = {v:g}" for k, v in sorted(overrides.items()))
        out.print(f"the plan's policy overrides applied: {applied}")
    report = validate_plan(sc, plan)
    if report.ok:
        out.print(f"[green]plan is valid[/green]: {sum(report.checked.values()):,} items checked")
        return
    out.print(str(report), markup=False)
    raise typer.Exit(EXIT_INVALID_PLAN)


@scenario_app.command("build")
def scenario_build(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="scenario directory to write")],
    region: Annotated[
        str, typer.Option("--region", help="region pack name or directory")
    ] = "cn-edwc",
    start: Annotated[
        str, typer.Option("--start", help="first hour, ISO 8601")
    ] = "2025-07-15T00:00+08:00",
    hours: Annotated[int, typer.Option("--hours", help="horizon length, h")] = 48,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="training, fine-tuning and batch jobs (default: 300; trace-calibrated: the "
            "traces' arrival rate on the fleet)",
        ),
    ] = None,
    services: Annotated[int, typer.Option("--services", help="inference services")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same scenario)")] = 7,
    sites: Annotated[
        int | None, typer.Option("--sites", help="number of sites (default: the pack's)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="scenario name")] = None,
    workload: Annotated[
        str, typer.Option("--workload", help="default | trace-calibrated (optimizer.workloads)")
    ] = "default",
) -> None:
    """Generate a complete scenario from a region pack (seeded, reproducible)."""
    from optimizer import InputValidationError
    from optimizer.generator import build_scenario
    from optimizer.scenario import write_scenario

    try:
        n_jobs = DEFAULT_JOBS if jobs is None and workload == "default" else jobs
        sc = build_scenario(
            region,
            start,
            hours,
            n_jobs,
            services,
            seed,
            n_sites=sites,
            name=name,
            workload=workload,
        )
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    write_scenario(sc, out_dir)
    out.print(
        f"[green]wrote[/green] {out_dir}: {sc.name}, {len(sc.sites)} sites, {sc.hours} h, "
        f"{len(sc.jobs)} jobs, {len(sc.services)} services (fingerprint {sc.fingerprint})"
    )


@app.command()
def backtest(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="where to write backtest.md and backtest.json")
    ],
    region: Annotated[
        str | None, typer.Option("--region", help="region pack name or directory")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="first day, ISO 8601 (the pack's zone if none)")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="days to replay")] = None,
    forecast_error: Annotated[
        list[float] | None,
        typer.Option(
            "--forecast-error",
            help="forecast error, share of each site's mean green; repeat for several levels",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="seed of the days and forecasts")
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", help="jobs generated per day")] = None,
    services: Annotated[
        int | None, typer.Option("--services", help="inference services per day")
    ] = None,
    sites: Annotated[
        int | None, typer.Option("--sites", help="number of sites (default: the pack's)")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="optimizer time limit per day, s")
    ] = None,
    cost_only: Annotated[
        bool,
        typer.Option(
            "--cost-only", help="the cost-only optimiser as a third baseline (a second solve)"
        ),
    ] = False,
) -> None:
    """Closed-loop backtest: each day plan on a forecast (optimizer, greedy, carbon-agnostic),
    run the plans on the actual green, and print the realised totals and savings at equal
    work per forecast error level (optimizer/backtest.py). Unset options take the library's
    defaults (30 days of cn-edwc from 2025-07-01, errors 0, 5 and 10 %), printed first."""
    import dataclasses
    import json

    from optimizer.backtest import BacktestSettings, report_markdown, run_backtest, validated

    given = {
        "region": region,
        "start": start,
        "days": days,
        "errors": tuple(forecast_error) if forecast_error else None,
        "seed": seed,
        "jobs": jobs,
        "services": services,
        "sites": sites,
        "time_limit_s": time_limit,
        "cost_only": cost_only or None,
    }
    try:
        cfg = BacktestSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.print(f"backtest: {dataclasses.asdict(cfg)}", markup=False, highlight=False)

    def progress(rec: dict[str, Any]) -> None:
        ok = validated(rec)
        console.print(
            f"day {rec['day'] + 1}/{cfg.days} error {rec['error']:.0%}: "
            f"{rec['wall_s']:.1f} s, load {rec['load_1min']:.1f}"
            + ("" if ok else " [red]a plan failed validation[/red]")
        )

    try:
        result = run_backtest(cfg, progress)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    report, doc = report_markdown(result), result.as_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "backtest.md").write_text(report)
    (out_dir / "backtest.json").write_text(json.dumps(doc, indent=1))
    out.print(report, markup=False, highlight=False, soft_wrap=True)
    if not all(level["validated"] for level in doc["totals"].values()):
        raise typer.Exit(EXIT_INVALID_PLAN)


@scenario_app.command("check")
def scenario_check(scenario: Annotated[Path, typer.Argument(help="scenario directory")]) -> None:
    """Validate a scenario directory and list every problem."""
    from optimizer import InputValidationError, load_scenario

    try:
        sc = load_scenario(scenario)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _print_warnings(sc)
    out.print(
        f"[green]ok[/green]: {sc.name}, {len(sc.sites)} sites, {sc.hours} h, {len(sc.jobs)} jobs, {len(sc.services)} services"
    )


@scenario_app.command("import-jobs")
def scenario_import_jobs(
    scenario: Annotated[Path, typer.Argument(help="scenario directory to import into")],
    source: Annotated[Path, typer.Argument(help="job history file")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="slurm | kubernetes | philly | alibaba")
    ],
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="source GPU type = scenario accelerators (`;`-separated); repeat"
        ),
    ] = None,
    type_map: Annotated[
        Path | None,
        typer.Option("--type-map", help="CSV of source_type,accelerators (a mapping table)"),
    ] = None,
    any_type: Annotated[
        str, typer.Option("--any-type", help="accelerators for jobs without a type (default: all)")
    ] = "",
    kind: Annotated[str, typer.Option("--kind", help="kind of every imported job")] = "training",
    slack: Annotated[
        float, typer.Option("--deadline-slack", help="deadline = release + slack x run time")
    ] = 2.0,
    preemptible: Annotated[
        bool,
        typer.Option("--preemptible/--no-preemptible", help="unless the source says otherwise"),
    ] = True,
    shift: Annotated[
        bool, typer.Option("--shift/--no-shift", help="move the history onto the horizon")
    ] = True,
    shift_weeks: Annotated[
        bool, typer.Option("--shift-weeks", help="shift by whole weeks (keeps weekdays)")
    ] = False,
    source_tz: Annotated[
        str | None,
        typer.Option("--source-timezone", help="zone of times without one (default: scenario's)"),
    ] = None,
    append: Annotated[bool, typer.Option("--append", help="keep the scenario's jobs")] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="write the good rows even if some are bad")
    ] = False,
) -> None:
    """Import a job history (Slurm sacct --parsable2, kubectl -o json, Philly job log,
    Alibaba GPU pod list) into the scenario's jobs.csv; the rules go into its description."""
    from optimizer import InputValidationError
    from optimizer.importers import ImportRules, import_jobs, write_imported
    from optimizer.importers.rules import read_type_map

    try:
        table = read_type_map(type_map, maps or [])
        rules = ImportRules(
            type_map=table,
            any_type=tuple(a for a in any_type.split(";") if a),
            kind=kind,
            deadline_slack=slack,
            preemptible=preemptible,
            shift=shift,
            shift_weeks=shift_weeks,
        )
        result = import_jobs(source, fmt, scenario, rules, source_tz, append, skip_bad)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
    out.print(f"read {source}: {result.imported} jobs, skipped {skipped or 'none'}", markup=False)
    if result.bad:
        console.print(f"[red]{len(result.bad)} bad row(s) in {source}:[/red]")
        for b in result.bad:
            console.print(f"  - {b}", markup=False, highlight=False)
    if result.scenario is None:
        console.print("nothing written (fix the rows, or --skip-bad to import the others)")
        raise typer.Exit(EXIT_BAD_INPUT)
    write_imported(result, scenario)
    _print_warnings(result.scenario)
    out.print(
        f"[green]wrote[/green] {scenario}/jobs.csv: {len(result.scenario.jobs)} jobs "
        f"({result.seconds:.2f} s); {result.provenance}",
        highlight=False,
    )


class RoleChoice(StrEnum):
    viewer = "viewer"
    planner = "planner"
    admin = "admin"


def _redact(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    from service.db import normalize_url

    return make_url(normalize_url(url)).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="target revision")] = "head",
) -> None:
    """Migrate the database (GREENOPT_DATABASE_URL) to the newest schema."""
    from service.db import Database
    from service.settings import Settings

    settings = Settings()
    db = Database(settings.database_url)
    try:
        with db.startup_lock():
            db.upgrade(revision)
        out.print(f"{_redact(settings.database_url)}: schema at {db.current_revision()}")
    finally:
        db.dispose()


def _keys_db() -> Any:
    """The database of the keys commands, migrated, with logging set up so each change to a
    key leaves its structured log line on stderr (unless the caller, a test, already set
    logging up)."""
    import logging

    from service.db import Database
    from service.logs import configure_logging
    from service.settings import Settings

    settings = Settings()
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, json_lines=settings.log_json)
    db = Database(settings.database_url)
    with db.startup_lock():
        db.upgrade()
    return db


def _cli_actor() -> str:
    """Who runs the command, for the audit trail of keys (the CLI has no API key)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


@keys_app.command("create")
def keys_create(
    role: Annotated[RoleChoice, typer.Option("--role", help="viewer, planner or admin")],
    name: Annotated[str, typer.Option("--name", help="who or what uses the key")] = "",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="lifetime, e.g. 30d, 12h, 2w")
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="expiry instant with offset, e.g. 2026-01-31T00:00Z"),
    ] = None,
) -> None:
    """Create an API key and print it (on stdout, alone, so scripts can capture it).
    Only its hash is stored: it cannot be shown again."""
    import datetime as dt

    from service import security
    from service.errors import DomainError
    from service.models import utcnow

    db = _keys_db()
    try:
        at = dt.datetime.fromisoformat(expires_at) if expires_at is not None else None
        with db.write() as s:
            expiry = security.expiry(expires_in, at, now=utcnow())
            key, text = security.create_key(
                s, role=role.value, name=name or role.value, actor=_cli_actor(), expires_at=expiry
            )
            key_id = key.id
    except ValueError as exc:  # --expires-at is not an ISO instant
        console.print(f"[red]error:[/red] --expires-at {expires_at!r}: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    finally:
        db.dispose()
    until = f", expires {expiry.isoformat(timespec='seconds')}" if expiry else ""
    console.print(
        f"created {role.value} key #{key_id} ({name or role.value}{until}); it is shown this once:"
    )
    print(text)


@keys_app.command("list")
def keys_list(
    show_all: Annotated[bool, typer.Option("--all", help="also revoked and expired keys")] = False,
) -> None:
    """The keys: id, name, role, prefix, created, expiry, revoked (never the keys)."""
    from service import security

    db = _keys_db()
    try:
        with db.read() as s:
            keys = security.list_keys(s, include_inactive=show_all)
            rows = [
                (k.id, k.name, k.role, k.prefix, k.created_at, k.expires_at, k.revoked_at)
                + (security.key_state(k), k.created_by)
                for k in keys
            ]
    finally:
        db.dispose()
    table = Table("id", "name", "role", "prefix", "created", "expires", "revoked", "state", "by")

    def when(t: Any) -> str:
        return t.isoformat(timespec="seconds") if t is not None else "-"

    for kid, name, role, prefix, created, expires, revoked, state, by in rows:
        table.add_row(
            str(kid), name, role, prefix, when(created), when(expires), when(revoked), state, by
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="the key's prefix (8 hex digits) or its id")],
) -> None:
    """Revoke a key at once. The last active admin key cannot be revoked."""
    from service import security
    from service.errors import DomainError

    db = _keys_db()
    try:
        with db.write() as s:
            row = security.revoke_key(s, security.find_key(s, key).id, actor=_cli_actor())
            done = f"revoked {row.role} key #{row.id} ({row.name}, prefix {row.prefix})"
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    finally:
        db.dispose()
    console.print(done)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option("--port", help="port to listen on")] = None,
    scheduler: Annotated[
        bool | None,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="run the nightly scheduler in this process (embedded mode: this command "
            "serves with one worker, so it fires once; with several API replicas run one "
            "`greenopt scheduler` instead)",
        ),
    ] = None,
) -> None:
    """Run the plan service: migrate the database, load the default scenario if it is empty,
    make an admin key if there is none, print how to reach it, then serve at once. A fresh
    database's first plan solves in the background: /readyz answers 503 with its progress
    until it is done."""
    import uvicorn

    from optimizer import InputValidationError
    from service import security
    from service.app import create_app
    from service.bootstrap import prepare_database, queue_first_plan
    from service.db import Database
    from service.logs import configure_logging
    from service.settings import Settings

    given = {"host": host, "port": port, "scheduler_in_process": scheduler}
    settings = Settings(**cast(dict[str, Any], {k: v for k, v in given.items() if v is not None}))
    configure_logging(settings.log_level, json_lines=settings.log_json)
    db = Database(settings.database_url)
    console.print(f"database: {_redact(settings.database_url)}")
    try:
        prepared = prepare_database(db, settings)
    except InputValidationError as err:
        console.print(f"[red]the default scenario {settings.default_scenario} is invalid[/red]")
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if prepared.loaded_version is not None:
        console.print(
            f"loaded {settings.default_scenario} as scenario version {prepared.loaded_version}"
        )
    with db.write() as s:
        admin_key = security.ensure_admin_key(s)
    first_run_id = queue_first_plan(db, settings) if settings.initial_plan else None
    _banner(settings, admin_key, first_run_id)
    if first_run_id is not None:
        threading.Thread(
            target=_follow_first_plan,
            args=(db, first_run_id),
            name="first-plan-progress",
            daemon=True,
        ).start()
    try:
        uvicorn.run(
            create_app(settings, first_run_id=first_run_id),
            host=settings.host,
            port=settings.port,
            log_config=None,
        )
    finally:
        db.dispose()


def _banner(settings: Any, admin_key: str | None, first_run_id: int | None) -> None:
    """What a newcomer needs, printed before the port opens: where, which key, how to make
    keys of each role, where the data live, and what the first minutes look like."""
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    base = f"http://{host}:{settings.port}"
    key = admin_key or "<key>"
    shown = admin_key or "(made on the first start and shown then)"
    where = (
        f"{settings.sqlite_path} (data directory {settings.home})"
        if settings.sqlite_path is not None
        else f"{_redact(settings.database_url)}"
    )
    lines = [
        f"\n[bold green]greenopt is serving[/bold green] on {base}",
        f"  dashboard:  {base}/ui (sign in with a key)",
        f"  API docs:   {base}/docs (and {base}/redoc)",
        f"  database:   {where}",
        f"  admin key:  {shown}",
        *(["  (the key is shown this once: keep it)"] if admin_key else []),
        "  more keys:  greenopt keys create --role viewer|planner|admin --name <who>",
        "              (viewer reads and scrapes /metrics, planner also solves, admin also "
        "changes data, keys and the schedule)",
        *(
            ["  nightly:    the scheduler runs in this process (GET /schedule)"]
            if settings.scheduler_in_process
            else []
        ),
        *(
            [
                f"  first plan: solving now (run {first_run_id}); {base}/readyz answers 503 "
                "with its progress until it is done, /healthz 200 already"
            ]
            if first_run_id is not None
            else []
        ),
        "  try:",
        f"    curl -s -H 'X-API-Key: {key}' {base}/plans/active",
        f"    curl -s -X POST -H 'X-API-Key: {key}' -H 'Content-Type: application/json' "
        f"-d '{{\"activate\": true}}' {base}/runs",
    ]
    out.print("\n".join(lines) + "\n", soft_wrap=True)


FIRST_PLAN_LINE_S = 10.0  # how often the console hears about the first plan


def _follow_first_plan(db: Any, run_id: int) -> None:
    """Print the first plan's progress now and then, and its outcome (the same words as
    /readyz)."""
    from service import plans, runs
    from service.bootstrap import first_plan_status

    last = ""
    deadline = 0.0
    while True:
        try:
            with db.read() as s:
                done, detail, progress = first_plan_status(s, run_id)
                made = None
                if done and progress.get("state") == "succeeded":
                    plan_id = runs.get_run(s, run_id).plan_id
                    made = plans.get_plan(s, plan_id) if plan_id is not None else None
        except Exception:  # the server is stopping (or the database hiccuped)
            return
        if done:
            if made is not None:
                console.print(
                    f"[green]plan {made.id} active[/green]: {made.status}, "
                    f"total cost {made.total_cost or 0.0:,.0f} "
                    f"{made.summary.get('currency', 'CNY')}, "
                    f"emissions {made.emissions_t or 0.0:,.1f} t, "
                    f"green share {made.green_share or 0.0:.1%}, "
                    + (f"gap {made.gap:.3%}" if made.gap is not None else "no bound")
                )
            else:
                console.print(f"[yellow]{detail}[/yellow]; serving anyway (POST /runs to retry)")
            return
        if detail != last and time.monotonic() >= deadline:
            console.print(detail, markup=False, highlight=False)
            last, deadline = detail, time.monotonic() + FIRST_PLAN_LINE_S
        time.sleep(1.0)


@app.command()
def scheduler(
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(
            "--heartbeat-file",
            help="touched at every schedule poll; a container healthcheck tests its age",
        ),
    ] = None,
) -> None:
    """Run the nightly scheduler as its own process (one per deployment; a second one is
    harmless: the night's unique key lets only one of them run it). Its runs execute on
    the configured runner (GREENOPT_RUNNER). Stops cleanly on SIGTERM or Ctrl-C."""
    import signal

    from optimizer import InputValidationError
    from service.bootstrap import prepare_database
    from service.db import Database
    from service.instances import InstanceHeartbeat
    from service.logs import configure_logging
    from service.runner import make_runner
    from service.scheduler import NightlyScheduler
    from service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    db = Database(settings.database_url)
    console.print(f"database: {_redact(settings.database_url)}")
    try:
        prepare_database(db, settings)
    except InputValidationError as err:
        console.print(f"[red]the default scenario {settings.default_scenario} is invalid[/red]")
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    # The runner's start() is not called: start-up recovery re-hands queued runs, the API's
    # job, and the Celery runner's reconciler runs in the API (this process only publishes).
    # Its runs carry this process's instance, so an API's recovery leaves them alone.
    instance = InstanceHeartbeat(db, settings, kind="scheduler").start()
    runner = make_runner(settings, db, instance_id=instance.id)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sched = NightlyScheduler(settings, db, runner, heartbeat_file=heartbeat_file, instance=instance)
    try:
        sched.start()
        view = sched.sync()
        console.print(
            f"nightly scheduler {sched.scheduler_id}: cron '{view.cron}' in {view.timezone}"
            + (f", next night at {sched.next_run_time()}" if view.enabled else " (disabled)")
        )
        while not stop.wait(1.0):
            pass
        console.print("stopping the nightly scheduler")
    finally:
        sched.shutdown()
        runner.shutdown()
        # a night whose solve the shutdown interrupted is recorded now, not at the next start
        from service.nightly import settle_nights

        try:
            settle_nights(db, settings)
        finally:
            instance.stop()
            db.dispose()


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", help="solves at once (default: GREENOPT_WORKER_CONCURRENCY)"
        ),
    ] = None,
    queues: Annotated[
        str,
        typer.Option("--queues", "-Q", help="broker queues to take runs from, most urgent first"),
    ] = "solve-high,solve-bulk",
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", "-n", help="Celery node name (default: celery@<host>)"),
    ] = None,
) -> None:
    """Run a solve worker of the distributed mode (Celery over GREENOPT_BROKER_URL): it takes
    runs from the broker and stores their plans in GREENOPT_DATABASE_URL, the API's database.
    Start as many as you like, on any host that reaches both (docs/scale-out.md)."""
    from service.celery_app import run_worker
    from service.settings import Settings

    given = {"worker_concurrency": concurrency}
    settings = Settings(**cast(dict[str, Any], {k: v for k, v in given.items() if v is not None}))
    console.print(
        f"solve worker: broker {_redact(settings.broker_url)}, "
        f"database {_redact(settings.database_url)}"
    )
    try:
        run_worker(
            settings,
            queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
            hostname=hostname,
        )
    except ValueError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def main() -> None:
    app(prog_name="greenopt")


if __name__ == "__main__":
    main()
