"""Sweep throughput of the distributed runner: solves per minute with 1 and with 2 (or more)
`greenopt worker` processes, measured in one invocation so the ratios compare like with
like on a shared, noisy machine.

For each scenario it starts `greenopt serve` (GREENOPT_RUNNER=celery) on a fresh PostgreSQL
database, then for each repetition and worker count: starts that many workers
(concurrency 1), waits until they are ready, posts one sweep of `points` carbon prices and
times it from the POST to the last point's plan. Worker start-up is not counted.

    python deploy/sweep_throughput.py --out bench/results/celery_sweep_$(date +%F).json

Needs PostgreSQL (GREENOPT_BENCH_DATABASE_URL's server; a database per scenario is
created) and Redis (GREENOPT_BENCH_BROKER_URL). docs/scale-out.md records the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "demo": ROOT / "data" / "demo",
    "cn-edwc-48h": ROOT / "data" / "scenarios" / "cn-edwc-48h",
}
KEY = re.compile(r"admin key:\s+(gok_[A-Za-z0-9_-]+)")
PG = os.environ.get(
    "GREENOPT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/greenopt_bench"
)
BROKER = os.environ.get("GREENOPT_BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")


def _greenopt() -> list[str]:
    script = Path(sys.executable).with_name("greenopt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]


def _fresh_database(suffix: str) -> str:
    base = make_url(PG)
    name = f"{base.database}_{suffix}".replace("-", "_")
    admin = base.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False)


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return v


class Proc:
    """A greenopt process in its own process group, output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.p = subprocess.Popen(
                [*_greenopt(), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(30)


def _measure(
    client: httpx.Client,
    env: dict[str, str],
    workdir: Path,
    workers: int,
    points: int,
    time_limit_s: float,
    tag: str,
) -> dict[str, Any]:
    nodes = [f"bench{tag}{i}@{os.uname().nodename}" for i in range(workers)]
    procs = [
        Proc(["worker", "--concurrency", "1", "--hostname", n], env, workdir / f"{n}.log")
        for n in nodes
    ]
    try:
        for n, p in zip(nodes, procs, strict=True):
            _wait(lambda n=n, p=p: f"{n} ready." in p.text(), 120, f"{n} to be ready")
        body = {
            "parameter": "carbon_price_cny_per_t",
            "values": [25.0 * i for i in range(points)],
            "scenario_version_id": 1,
            "settings": {"time_limit_s": time_limit_s},
            "note": f"throughput, {workers} worker(s)",
        }
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        r = client.post("/what-if/sweep", json=body)
        r.raise_for_status()
        sweep_id = r.json()["id"]

        def finished() -> dict[str, Any] | None:
            view: dict[str, Any] = client.get(f"/what-if/sweep/{sweep_id}").json()
            return view if view["state"] != "running" else None

        view = _wait(finished, 3600, f"sweep {sweep_id}")
        wall = time.perf_counter() - t0
        durations = []
        for point in view["points"]:
            run = client.get(f"/runs/{point['run_id']}").json()
            started = dt.datetime.fromisoformat(run["started_at"])
            durations.append(
                (dt.datetime.fromisoformat(run["finished_at"]) - started).total_seconds()
            )
        return {
            "workers": workers,
            "points": points,
            "state": view["state"],
            "wall_s": round(wall, 2),
            "solves_per_min": round(points / wall * 60, 2),
            "mean_run_s": round(sum(durations) / len(durations), 2),
            "loadavg_1m_before": round(load0, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
    finally:
        for p in procs:
            p.stop()


def bench_scenario(
    name: str, points: int, time_limit_s: float, counts: list[int], reps: int, workdir: Path
) -> dict[str, Any]:
    url = _fresh_database(f"sweep_{name}")
    redis.Redis.from_url(BROKER).flushdb()
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "GREENOPT_DATABASE_URL": url,
        "GREENOPT_BROKER_URL": BROKER,
        "GREENOPT_RUNNER": "celery",
        "GREENOPT_DEFAULT_SCENARIO": str(SCENARIOS[name]),
        "GREENOPT_INITIAL_PLAN": "false",
        "GREENOPT_SOLVE_THREADS": "1",
        "GREENOPT_QUEUE_LIMIT": str(max(64, points)),
        "GREENOPT_LOG_JSON": "true",
    }
    api = Proc(["serve", "--port", str(port)], env, workdir / f"api-{name}.log")
    try:
        key = _wait(lambda: (m := KEY.search(api.text())) and m.group(1), 300, "the API")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=60
        )
        _wait(lambda: _ready(client), 120, "the API to be ready")
        runs = []
        for rep in range(reps):
            for n in counts:
                tag = f"{'x' * (rep + 1)}{n}"
                m = _measure(client, env, workdir, n, points, time_limit_s, tag)
                m["rep"] = rep
                print(json.dumps({"scenario": name, **m}), flush=True)
                runs.append(m)
        best = {n: max(r["solves_per_min"] for r in runs if r["workers"] == n) for n in counts}
        return {
            "scenario": name,
            "points_per_sweep": points,
            "time_limit_s": time_limit_s,
            "measurements": runs,
            "best_solves_per_min": best,
            "speedup_vs_1": {n: round(best[n] / best[counts[0]], 2) for n in counts},
        }
    finally:
        api.stop()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--reps", type=int, default=2, help="repetitions of each worker count")
    ap.add_argument("--demo-points", type=int, default=16)
    ap.add_argument("--default-points", type=int, default=4, help="0: skip cn-edwc-48h")
    ap.add_argument("--default-time-limit", type=float, default=30.0)
    ap.add_argument("--workdir", type=Path, default=Path("var/sweep-throughput"))
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = [bench_scenario("demo", args.demo_points, 30.0, counts, args.reps, args.workdir)]
    if args.default_points > 0:
        results.append(
            bench_scenario(
                "cn-edwc-48h",
                args.default_points,
                args.default_time_limit,
                counts,
                args.reps,
                args.workdir,
            )
        )
    doc = {
        "what": "sweep throughput of the celery runner, 1 vs N workers (concurrency 1 each)",
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "results": results,
    }
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
