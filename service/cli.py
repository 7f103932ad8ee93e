"""The `greenopt` command: plan and validate from the shell; serve, schedule and work as
processes of the service. Heavy imports happen inside the commands so `greenopt plan`
does not pay for the web stack."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

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
EXIT_INVALID_PLAN = 3


def _print_problems(err: Exception) -> None:
    problems = getattr(err, "problems", None)
    if problems is None:
        console.print(f"[red]error:[/red] {err}")
        return
    console.print(f"[red]{len(problems)} problem(s) in the input:[/red]")
    for p in problems:
        console.print(f"  - {p}", markup=False, highlight=False)


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
    backend: Annotated[str, typer.Option("--backend", help="pyomo (default) or matrix")] = "pyomo",
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="skip the independent check of the plan")
    ] = False,
) -> None:
    """Solve a scenario and write a plan bundle; prints a summary against the baselines."""
    from optimizer import InputValidationError, SolverSettings, load_scenario, optimize
    from optimizer.whatif import with_policy

    t0 = time.perf_counter()
    try:
        sc = load_scenario(scenario)
        overrides = {
            k: v
            for k, v in {
                "carbon_price_cny_per_t": carbon_price,
                "min_green_share": min_green_share,
                "carbon_budget_t": carbon_budget,
                "plan_stability_weight": stability,
            }.items()
            if v is not None
        }
        if overrides:
            sc = with_policy(sc, **overrides)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    t_validate = time.perf_counter() - t0
    if backend not in ("pyomo", "matrix"):
        console.print("[red]--backend must be pyomo or matrix[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = SolverSettings(
        time_limit_s=time_limit,
        mip_rel_gap=gap,
        threads=threads,
        seed=seed,
        backend="pyomo" if backend == "pyomo" else "matrix",
    )
    console.print(
        f"[bold]{sc.name}[/bold]: {len(sc.sites)} sites, {sc.hours} h, {len(sc.jobs)} jobs, "
        f"{len(sc.services)} services (fingerprint {sc.fingerprint})"
    )
    with console.status("planning...") as status:

        def progress(ev: dict[str, Any]) -> None:
            if ev.get("phase") == "solve" and ev.get("objective_cny") is not None:
                g = ev.get("gap")
                status.update(
                    f"solving: {ev['elapsed_s']:.1f} s, best {ev['objective_cny']:,.0f} CNY, "
                    f"bound {ev.get('bound_cny') or float('nan'):,.0f}, gap {g if g is not None else float('nan'):.2%}, "
                    f"nodes {ev.get('nodes', 0)}"
                )
            else:
                status.update(f"{ev.get('phase')}... ({ev.get('elapsed_s', 0.0):.1f} s)")

        result = optimize(sc, settings, progress=progress, validate_s=t_validate)
    if overrides:
        # the bundle says which policy it was planned under, so `greenopt validate` checks it
        # against the same scenario
        result.summary["policy_overrides"] = overrides
    if not no_validate:
        from optimizer.validate import validate_plan

        t = time.perf_counter()
        report = validate_plan(sc, result)
        result.summary["timings_s"]["check"] = time.perf_counter() - t
        result.summary["validation"] = {"ok": report.ok, "violations": len(report.violations)}
        if not report.ok:
            console.print(f"[red]the plan failed the independent check:[/red]\n{report}")
    result.write_bundle(out_dir)
    _summary_table(result.summary)
    console.print(f"plan bundle written to [bold]{out_dir}[/bold]")
    if not no_validate and not result.summary["validation"]["ok"]:
        raise typer.Exit(EXIT_INVALID_PLAN)


def _summary_table(s: dict[str, Any]) -> None:
    base = s.get("baselines", {})
    t = Table(
        title=f"plan: {s['status']}  gap {s['gap'] if s['gap'] is not None else float('nan'):.3%}"
    )
    t.add_column("")
    t.add_column("optimizer", justify="right")
    for name in base:
        t.add_column(name.replace("_", "-"), justify="right")
    for name in base:
        t.add_column(f"vs {name.replace('_', '-')}", justify="right")
    rows = [
        ("total cost, CNY", "total_cost_cny", "{:,.0f}"),
        ("energy cost, CNY", "energy_cost_cny", "{:,.0f}"),
        ("carbon cost, CNY", "carbon_cost_cny", "{:,.0f}"),
        ("migration cost, CNY", "migration_cost_cny", "{:,.0f}"),
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
                and key.endswith(("_cny", "_t", "_mwh"))
            ):
                cells.append(f"{(mine - other) / abs(other):+.1%}")
            else:
                cells.append("")
        t.add_row(label, *cells)
    out.print(t)
    tim = s.get("timings_s", {})
    ms = s.get("model_size", {})
    out.print(
        "timings (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in tim.items())
        + f"\nmodel: {ms.get('variables', 0):,} variables ({ms.get('binaries', 0):,} binary, "
        f"{ms.get('integers', 0):,} integer), {ms.get('constraints', 0):,} constraints, {ms.get('nonzeros', 0):,} nonzeros"
    )


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
    jobs: Annotated[int, typer.Option("--jobs", help="training, fine-tuning and batch jobs")] = 300,
    services: Annotated[int, typer.Option("--services", help="inference services")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same scenario)")] = 7,
    sites: Annotated[
        int | None, typer.Option("--sites", help="number of sites (default: the pack's)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="scenario name")] = None,
) -> None:
    """Generate a complete scenario from a region pack (seeded, reproducible)."""
    from optimizer import InputValidationError
    from optimizer.generator import build_scenario
    from optimizer.scenario import write_scenario

    try:
        sc = build_scenario(region, start, hours, jobs, services, seed, n_sites=sites, name=name)
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


@scenario_app.command("check")
def scenario_check(scenario: Annotated[Path, typer.Argument(help="scenario directory")]) -> None:
    """Validate a scenario directory and list every problem."""
    from optimizer import InputValidationError, load_scenario

    try:
        sc = load_scenario(scenario)
    except InputValidationError as err:
        _print_problems(err)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(
        f"[green]ok[/green]: {sc.name}, {len(sc.sites)} sites, {sc.hours} h, {len(sc.jobs)} jobs, {len(sc.services)} services"
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


@keys_app.command("create")
def keys_create(
    role: Annotated[RoleChoice, typer.Option("--role", help="viewer, planner or admin")],
    name: Annotated[str, typer.Option("--name", help="who or what uses the key")] = "",
) -> None:
    """Create an API key and print it (on stdout, alone, so scripts can capture it).
    Only its hash is stored: it cannot be shown again."""
    from service import security
    from service.db import Database
    from service.settings import Settings

    settings = Settings()
    db = Database(settings.database_url)
    try:
        with db.startup_lock():
            db.upgrade()
        with db.write() as s:
            key, text = security.create_key(s, role=role.value, name=name or role.value)
            key_id = key.id
    finally:
        db.dispose()
    console.print(
        f"created {role.value} key #{key_id} ({name or role.value}); it is shown this once:"
    )
    print(text)


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
    make an admin key if there is none, solve a first plan if none is active, then serve."""
    import uvicorn

    from optimizer import InputValidationError
    from service import security
    from service.app import create_app
    from service.bootstrap import prepare_database
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
    if settings.initial_plan:
        _first_plan(db, settings)
    db.dispose()

    base = f"http://{settings.host if settings.host not in ('0.0.0.0', '::') else '127.0.0.1'}:{settings.port}"
    shown = admin_key or "(made on the first start; another: greenopt keys create --role admin)"
    out.print(
        f"\n[bold green]greenopt is serving[/bold green] on {base}\n"
        f"  API docs:   {base}/docs\n"
        f"  admin key:  {shown}\n"
        + ("  (the key is shown this once: keep it)\n" if admin_key else "")
        + (
            "  nightly:    the scheduler runs in this process (GET /schedule)\n"
            if settings.scheduler_in_process
            else ""
        )
        + "  try:\n"
        f"    curl -s -H 'X-API-Key: {admin_key or '<key>'}' {base}/plans/active\n"
        f"    curl -s -X POST -H 'X-API-Key: {admin_key or '<key>'}' -H 'Content-Type: application/json' "
        f"-d '{{\"activate\": true}}' {base}/runs\n",
        soft_wrap=True,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


def _first_plan(db: Any, settings: Any) -> None:
    """Solve and activate a plan when none is active, showing its progress. Same path as
    POST /runs: a run row, `execute_run`, the plan stored and checked."""
    import threading

    from service import plans, runs
    from service.execution import execute_run
    from service.runs import RunRequest

    with db.read() as s:
        if plans.active_plan_id(s) is not None:
            return
    queued: list[int] = []

    class _Here:
        def submit(self, run_id: int, priority: int = 0) -> None:
            queued.append(run_id)

    with db.write() as s:
        run, _ = runs.submit_run(
            s,
            RunRequest(activate=True, note="first plan, solved by greenopt serve"),
            settings=settings,
            runner=_Here(),
            actor="greenopt serve",
        )
        run_id = run.id
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(
            execute_run(run_id, db.url, monitor_interval_s=settings.progress_interval_s)
        ),
        name="first-plan",
        daemon=True,
    )
    worker.start()
    last_line = 0.0
    try:
        with console.status(f"solving a first plan (run {run_id})...") as status:
            while worker.is_alive():
                worker.join(0.5)
                with db.read() as s:
                    p = runs.get_run(s, run_id).progress
                obj, gap = p.get("objective_cny"), p.get("gap")
                line = (
                    f"first plan (run {run_id}): {p.get('phase', '...')}, "
                    f"{p.get('run_elapsed_s') or 0.0:.1f} s"
                    + (f", best {obj:,.0f} CNY" if isinstance(obj, int | float) else "")
                    + (f", gap {gap:.2%}" if isinstance(gap, int | float) else "")
                )
                status.update(line)
                if not console.is_terminal and time.monotonic() - last_line >= 5.0:
                    # no spinner without a terminal: a line now and then instead
                    console.print(line)
                    last_line = time.monotonic()
    except KeyboardInterrupt:
        with db.write() as s:
            runs.cancel_run(s, run_id)
        worker.join(10)
        raise typer.Exit(130) from None
    with db.read() as s:
        run = runs.get_run(s, run_id)
        if run.state == "succeeded" and run.plan_id is not None:
            made = plans.get_plan(s, run.plan_id)
            console.print(
                f"[green]plan {made.id} active[/green]: {made.status}, "
                f"total cost {made.total_cost_cny or 0.0:,.0f} CNY, "
                f"emissions {made.emissions_t or 0.0:,.1f} t, green share {made.green_share or 0.0:.1%}, "
                f"gap {made.gap if made.gap is not None else float('nan'):.3%}"
            )
        else:
            console.print(
                f"[yellow]the first plan did not succeed ({run.state}): {run.error}[/yellow]; "
                "serving anyway (POST /runs to try again)"
            )


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
    import threading

    from optimizer import InputValidationError
    from service.bootstrap import prepare_database
    from service.db import Database
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
    # The runner's start() is not called: the local pool's start-up recovery marks every
    # running run interrupted, right only in the API process that owns them, and the
    # Celery runner's reconciler runs in the API (this process only publishes)
    runner = make_runner(settings, db)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sched = NightlyScheduler(settings, db, runner, heartbeat_file=heartbeat_file)
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
