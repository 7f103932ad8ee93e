"""The benchmark run: for each size, its tasks (each in a fresh subprocess unless told
otherwise), the run's JSON record under bench/results/, the scale-curve plot and the
section of bench/README.md. Entry point of `python -m bench`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.changes import CHANGES
from bench.sizes import FULL, NAMED, QUICK, Size

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
DEFAULT_MEM_LIMIT_GIB = 16.0  # of the machine's 24: a runaway XL fails rather than swaps
# a subprocess that overruns its solves' limits by this much (and this factor) is hung
TIMEOUT_FACTOR, TIMEOUT_SLACK_S = 2.0, 900.0
SOLVES_PER_TASK = {
    "milp": 1,
    "at_target_time": 1,
    "matrix": 1,
    "builds": 1,
    "lp": 1,
    "reopt": 2,
    "handover": 0,
}
MEMORY_ISOLATED = (
    "each task runs in a fresh Python subprocess; its peak is that process's ru_maxrss "
    "(getrusage RUSAGE_SELF, read at the end of the task), interpreter and imports included "
    "(`rss_after_setup_mib`: resident after imports and scenario generation)."
)
MEMORY_IN_PROCESS = (
    "in-process run: ru_maxrss of the one process running every task, a high-water mark "
    "over the whole run, not per task."
)


@dataclass
class RunPlan:
    """What to run."""

    mode: str
    sizes: Sequence[Size]
    reopt: dict[str, Sequence[str]] = field(default_factory=dict)  # size -> changes
    matrix: Sequence[str] = ()  # sizes solved again with backend="matrix"
    handover: Sequence[str] = ()  # sizes of the hand-over experiment
    only_milp: Sequence[str] = ()  # scale-curve sizes: the MILP task alone
    skip: Sequence[str] = ()  # tasks left out everywhere (the milp task always runs)
    isolate: bool = True
    mem_limit_gib: float | None = DEFAULT_MEM_LIMIT_GIB


def quick_plan() -> RunPlan:
    # the matrix MILP solve and two of the three re-solves on M would each cost as much as
    # M's own solve; the builds task still gives M's build ratio
    return RunPlan(
        "quick",
        QUICK,
        reopt={"S": CHANGES, "M": ("price",)},
        matrix=("S",),
        handover=("S", "M"),
    )


def full_plan() -> RunPlan:
    named = ("S", "M", "L", "XL")
    return RunPlan(
        "full",
        FULL,
        reopt={"S": CHANGES, "M": CHANGES, "L": CHANGES},
        matrix=("S", "M", "L"),
        handover=("S", "M", "L"),
        only_milp=tuple(s.name for s in FULL if s.name not in named),
    )


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_task(plan: RunPlan, task: str, size: Size, workdir: Path, **params: Any) -> dict[str, Any]:
    """One task, in a fresh subprocess (or in this process when `plan.isolate` is off)."""
    t = time.perf_counter()
    if not plan.isolate:
        from bench.tasks import run_task as run_here

        out = run_here(task, size, workdir, **params)
    else:
        job = {
            "task": task,
            "size": size.as_dict(),
            "params": params,
            "workdir": str(workdir),
            "mem_limit_gib": plan.mem_limit_gib,
        }
        job_path = workdir / f"{size.name}-{task}-{params.get('change', '')}-job.json"
        out_path = job_path.with_name(job_path.name.replace("-job.json", "-out.json"))
        job_path.write_text(json.dumps(job))
        timeout = TIMEOUT_FACTOR * SOLVES_PER_TASK[task] * size.time_limit_s + TIMEOUT_SLACK_S
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.worker", str(job_path), str(out_path)],
                cwd=BENCH_DIR.parent,
                timeout=timeout,
                capture_output=True,
                text=True,
            )
        except subprocess.TimeoutExpired:
            out = {"error": f"timed out after {timeout:.0f} s"}
        else:
            if proc.returncode == 0 and out_path.is_file():
                out = json.loads(out_path.read_text())
            else:
                out = {"error": f"worker exited {proc.returncode}", "stderr": proc.stderr[-4000:]}
    wall = time.perf_counter() - t
    status = f"failed: {out['error']}" if "error" in out else "done"
    log(
        f"{size.name} {task}{' ' + params['change'] if 'change' in params else ''}: {status} in {wall:.1f} s"
    )
    return out


def run_size(plan: RunPlan, size: Size, workdir: Path) -> dict[str, Any]:
    """Every task of one size, merged into its record."""
    rec: dict[str, Any] = {
        "size": size.as_dict(),
        "memory": {"peak_rss_mib": {}},
        "tasks_failed": {},
    }

    def take(task: str, out: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        if "error" in out:
            rec["tasks_failed"][key or task] = out
            return out
        rec["memory"]["peak_rss_mib"][key or task] = out.pop("peak_rss_mib", None)
        out.pop("task_wall_s", None)
        return out

    out = take("milp", run_task(plan, "milp", size, workdir))
    if "error" not in out:
        rec["scenario"] = out["scenario"]
        rec["memory"]["rss_after_setup_mib"] = out.get("rss_after_setup_mib")
        rec["milp"] = out["milp"]
        rec["plans"] = out["plans"]
    if size.name in plan.only_milp:
        return rec
    if "builds" not in plan.skip:
        out = take("builds", run_task(plan, "builds", size, workdir))
        if "error" not in out:
            rec["builds"] = out["builds"]
    if "lp" not in plan.skip:
        out = take("lp", run_task(plan, "lp", size, workdir))
    if "lp" not in plan.skip and "error" not in out:
        lp = out["lp_relaxation"]
        rec["lp_relaxation"] = {k: v for k, v in lp.items() if k != "kpis"}
        rec.setdefault("plans", {})["lp_relaxation"] = {
            "status": lp["status"],
            "kpis": lp["kpis"],
            "validated": None,
            "note": "the LP relaxation's optimum: a bound; its solution is fractional, not a plan",
        }
    if size.target_s is not None and "milp" in rec and "at_target_time" not in plan.skip:
        out = take("at_target_time", run_task(plan, "at_target_time", size, workdir))
        if "error" not in out:
            rec["at_target_time"] = out["at_target_time"]
    if size.name in plan.matrix and "matrix" not in plan.skip:
        out = take("matrix", run_task(plan, "matrix", size, workdir))
        if "error" not in out:
            rec["matrix"] = out["matrix"]
    for change in () if "reopt" in plan.skip else plan.reopt.get(size.name, ()):
        out = take(
            "reopt", run_task(plan, "reopt", size, workdir, change=change), f"reopt_{change}"
        )
        rec.setdefault("reopt", {})[change] = out.get("reopt", out)
    if size.name in plan.handover and "handover" not in plan.skip:
        out = take("handover", run_task(plan, "handover", size, workdir))
        if "error" not in out:
            rec["handover"] = out["handover"]
    rec["derived"] = report.derive(rec)
    return rec


def run(
    plan: RunPlan,
    *,
    results_dir: Path | None = RESULTS_DIR,
    readme: Path | None = README,
    plot_path: Path | None = None,
) -> tuple[dict[str, Any], Path | None]:
    """Run `plan`; write the JSON record, the plot and the README section. Returns the record
    and the JSON path (None when `results_dir` is None)."""
    started = dt.datetime.now().astimezone()
    run_id = f"{started:%Y-%m-%dT%H%M%S}-{plan.mode}"
    t0 = time.perf_counter()
    log(
        f"run {run_id}: sizes {', '.join(s.name for s in plan.sizes)}; "
        f"{'a subprocess per task' if plan.isolate else 'in-process'}"
    )
    record: dict[str, Any] = {
        "id": run_id,
        "mode": plan.mode,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "plan": {
            "sizes": [s.as_dict() for s in plan.sizes],
            "reopt": {k: list(v) for k, v in plan.reopt.items()},
            "matrix": list(plan.matrix),
            "handover": list(plan.handover),
            "only_milp": list(plan.only_milp),
            "skip": list(plan.skip),
            "isolate": plan.isolate,
            "mem_limit_gib": plan.mem_limit_gib,
        },
        "memory_method": MEMORY_ISOLATED if plan.isolate else MEMORY_IN_PROCESS,
        "calibration_s": {"start": machine.calibration_s()},
        "optimizer_digest_at_start": machine.optimizer_digest(),
        "instances": {},
    }
    partial = None
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        partial = results_dir / f"{run_id}.partial.json"
    with tempfile.TemporaryDirectory(prefix="greenopt-bench-") as tmp:
        for size in plan.sizes:
            record["instances"][size.name] = run_size(plan, size, Path(tmp))
            if partial is not None:
                # a long run that is stopped still leaves what it measured
                partial.write_text(
                    json.dumps(plain_json(record), indent=1, default=str, allow_nan=False) + "\n"
                )
    record["optimizer_digests"] = sorted(_digests(record) | {machine.optimizer_digest()})
    record["calibration_s"]["end"] = machine.calibration_s()
    record["load_average_at_end"] = machine.load_average()
    record["wall_s"] = time.perf_counter() - t0
    record["targets"] = report.targets(record["instances"])
    path = None
    plot_name = None
    if plot_path is None and results_dir is not None:
        plot_path = results_dir / f"scale-{plan.mode}.png"
    if plot_path is not None:
        report.plot(record, plot_path)
        record["plot"] = str(plot_path)
        if readme is not None:
            try:
                plot_name = str(plot_path.resolve().relative_to(readme.resolve().parent))
            except ValueError:
                plot_name = str(plot_path)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{run_id}.json"
        path.write_text(
            json.dumps(plain_json(record), indent=1, default=str, allow_nan=False) + "\n"
        )
        if partial is not None:
            partial.unlink(missing_ok=True)
        log(f"results: {path}")
    if readme is not None:
        report.update_readme(readme, plan.mode, report.markdown(record, plot_name))
        log(f"table: {readme} ({plan.mode} section)")
    log(f"run {run_id} done in {record['wall_s'] / 60:.1f} min")
    return record, path


def plain_json(x: Any) -> Any:
    """`x` with non-finite floats as the strings "inf", "-inf", "nan": strict JSON has no
    Infinity, and a gap can be infinite (a plan without a bound)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: plain_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain_json(v) for v in x]
    return x


def _digests(record: dict[str, Any]) -> set[str]:
    """Every optimizer/ sources digest a solve of this run saw."""
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            d = x.get("optimizer_digest")
            if isinstance(d, str):
                found.add(d)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(record["instances"])
    found.add(record["optimizer_digest_at_start"])
    return found


def render(record: dict[str, Any], results_dir: Path, readme: Path | None) -> None:
    """The plot and the README section of a run's record (comparisons and targets
    recomputed, so a change to bench/report.py shows on old records)."""
    for inst in record["instances"].values():
        inst["derived"] = report.derive(inst)
    record["targets"] = report.targets(record["instances"])
    plot_path = results_dir / f"scale-{record['mode']}.png"
    report.plot(record, plot_path)
    if readme is not None:
        name = str(plot_path.resolve().relative_to(readme.resolve().parent))
        report.update_readme(readme, record["mode"], report.markdown(record, name))
    log(f"rendered {record['id']}: {plot_path}" + (f", {readme}" if readme else ""))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark greenopt's MILP by instance size (bench/README.md).",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="S and M (a few minutes; the default)")
    mode.add_argument("--full", action="store_true", help="every size, S to XL (long)")
    ap.add_argument("--sizes", help=f"comma-separated sizes instead ({', '.join(NAMED)})")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run the tasks in this process (no per-task peak memory)",
    )
    ap.add_argument(
        "--time-limit-scale",
        type=float,
        default=1.0,
        help="multiply every size's generous HiGHS time limit",
    )
    ap.add_argument(
        "--mem-limit-gib",
        type=float,
        default=DEFAULT_MEM_LIMIT_GIB,
        help="address-space limit of each task's subprocess (0: none)",
    )
    ap.add_argument(
        "--skip",
        default="",
        help=f"comma-separated tasks to leave out ({', '.join(t for t in SOLVES_PER_TASK if t != 'milp')})",
    )
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    ap.add_argument(
        "--render",
        type=Path,
        help="run nothing: redraw the plot and rewrite the README section of a results JSON",
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.render:
        render(
            json.loads(args.render.read_text()),
            args.results_dir,
            None if args.no_readme else README,
        )
        return 0
    plan = full_plan() if args.full else quick_plan()
    if args.sizes:
        names = [n.strip() for n in args.sizes.split(",") if n.strip()]
        unknown = [n for n in names if n not in NAMED]
        if unknown:
            ap.error(f"unknown size(s) {', '.join(unknown)}; known: {', '.join(NAMED)}")
        plan = replace(
            plan,
            mode="custom",
            sizes=[NAMED[n] for n in names],
            matrix=names,
            handover=names,
            reopt=dict.fromkeys(names, CHANGES),
        )
    if args.time_limit_scale != 1.0:
        plan = replace(
            plan,
            sizes=[
                replace(s, time_limit_s=s.time_limit_s * args.time_limit_scale) for s in plan.sizes
            ],
        )
    skip = [t.strip() for t in args.skip.split(",") if t.strip()]
    unknown = [t for t in skip if t not in SOLVES_PER_TASK or t == "milp"]
    if unknown:
        ap.error(f"unknown or required task(s) {', '.join(unknown)}")
    plan = replace(
        plan,
        isolate=not args.in_process,
        mem_limit_gib=args.mem_limit_gib or None,
        skip=skip,
    )
    # a custom selection writes its own README section ("custom"), never the quick or full one
    readme = None if args.no_readme else README
    run(plan, results_dir=args.results_dir, readme=readme)
    return 0
