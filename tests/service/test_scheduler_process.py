"""The nightly scheduler as real processes, on SQLite and PostgreSQL: two `greenopt
scheduler` processes with a cron that fires every two seconds run exactly one night (its
run executed by the scheduler's own runner, with no API process anywhere), and stop cleanly
on SIGTERM; `greenopt serve --scheduler` runs a night in-process and shows it over HTTP."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service import plans
from service.db import Database
from service.models import NightlyRun, Plan, Run
from tests.service.helpers import (
    BACKENDS,
    DEMO,
    GreenoptProcess,
    free_port,
    fresh_database,
    wait_until,
)

# real processes (schedulers, an API with its solver pool): not in the fast lane
pytestmark = pytest.mark.slow

FAST_CRON = "*/2 * * * * *"  # every two seconds: many fires, one night


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENOPT_")}
    env.update(
        {
            "GREENOPT_DATABASE_URL": url,
            "GREENOPT_DEFAULT_SCENARIO": str(DEMO),
            "GREENOPT_RUNNER": "local",
            "GREENOPT_MAX_CONCURRENT_SOLVES": "1",
            "GREENOPT_PROGRESS_INTERVAL_S": "0.25",
            "GREENOPT_SCHEDULE_CRON": FAST_CRON,
            "GREENOPT_SCHEDULE_TIME_LIMIT_S": "30",
            "GREENOPT_SCHEDULER_POLL_S": "0.5",
            "GREENOPT_SCHEDULER_MISFIRE_GRACE_S": "60",
            "GREENOPT_LOG_JSON": "true",
        }
    )
    env.update(extra)
    return env


def _nights(db: Database) -> list[NightlyRun]:
    with db.read() as s:
        return list(s.scalars(select(NightlyRun).order_by(NightlyRun.id)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_scheduler_processes_run_one_night_and_stop_on_sigterm(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path, "scheduler_proc")
    env = _env(url)
    beat = tmp_path / "scheduler.alive"
    procs = [
        GreenoptProcess(["scheduler", "--heartbeat-file", str(beat)], tmp_path, env, "scheduler-a")
    ]
    db = Database(url)
    try:
        if backend == "sqlite":
            # two processes migrating one fresh SQLite file at once collide ("database is
            # locked": start-up is serialised on PostgreSQL only); let the first one finish
            wait_until(lambda: procs[0].alive() and beat.is_file(), 120, "the first scheduler")
        procs.append(GreenoptProcess(["scheduler"], tmp_path, env, "scheduler-b"))

        def night_done() -> bool:
            for p in procs:
                p.alive()
            nights = _nights(db) if _migrated(db) else []
            return bool(nights) and nights[0].state != "running"

        wait_until(night_done, 180, "a night to run and be recorded")
        # both keep firing every two seconds meanwhile, and stand down: still one night
        seen = {p.name: _stood_down(p) for p in procs}
        wait_until(
            lambda: all(p.alive() and _stood_down(p) > seen[p.name] for p in procs),
            60,
            "both schedulers to fire again after the night and stand down",
        )
        # the heartbeat file is touched at every poll: a healthcheck can test its age
        touched = beat.stat().st_mtime_ns
        wait_until(lambda: beat.stat().st_mtime_ns != touched, 30, "the next heartbeat")
        nights = _nights(db)
        assert len(nights) == 1, [(n.night, n.state, n.reason) for n in nights]
        night = nights[0]
        assert night.state == "succeeded", night.reason
        assert night.trigger == "schedule" and night.run_id is not None
        with db.read() as s:
            run = s.get(Run, night.run_id)
            assert run is not None
            n_runs = s.scalar(select(func.count()).select_from(Run))
            n_plans = s.scalar(select(func.count()).select_from(Plan))
            active = plans.active_plan_id(s)
        # no API anywhere: the scheduler's own pool executed it
        assert run.kind == "nightly" and run.state == "succeeded" and run.worker
        assert (n_runs, n_plans) == (1, 1) and active == run.plan_id == night.plan_id
    finally:
        codes = [p.terminate() for p in procs]
        for p in procs:
            p.kill_group()
        db.dispose()
    assert codes == [0, 0], [p.err.read_text()[-3000:] for p in procs]
    for p in procs:
        msgs = [line["msg"] for line in p.log_lines()]
        assert any("nightly scheduler" in m and "stopped" in m for m in msgs), msgs[-10:]
        assert not [line for line in p.log_lines() if line["level"] in ("error", "critical")]


def _stood_down(p: GreenoptProcess) -> int:
    """How often `p` found the night taken by another scheduler (or by itself earlier)."""
    return sum(
        "stands down" in line["msg"] and line["logger"] == "greenopt.nightly"
        for line in p.log_lines()
    )


def _migrated(db: Database) -> bool:
    try:
        return db.current_revision() is not None and _has_nights_table(db)
    except Exception:
        return False


def _has_nights_table(db: Database) -> bool:
    from sqlalchemy import inspect

    with db.engine.connect() as conn:
        return bool(inspect(conn).has_table("nightly_runs"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_with_the_scheduler_in_process_runs_a_night(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path, "serve_scheduler")
    port = free_port()
    args = ["serve", "--scheduler", "--port", str(port)]
    serve = GreenoptProcess(args, tmp_path, _env(url), "serve")
    base = f"http://127.0.0.1:{port}"
    try:
        serve.wait_ready(base, 180)  # the first plan solved (the port opened before it)
        key = serve.admin_key()
        assert key, serve.out.read_text()
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            first = c.get("/plans/active").json()["id"]  # the plan serve solved at start

            def scheduled_night() -> dict[str, Any] | None:
                serve.alive()
                items = c.get("/schedule/history").json()["items"]
                done = [i for i in items if i["trigger"] == "schedule" and i["state"] != "running"]
                return done[0] if done else None

            night = wait_until(scheduled_night, 180, "the in-process scheduler's night")
            assert night["state"] == "succeeded", night
            assert night["previous_plan_id"] == first and night["activated"] is True
            assert c.get("/plans/active").json()["id"] == night["plan_id"] != first
            sched = c.get("/schedule").json()
            assert sched["cron"] == FAST_CRON and sched["scheduler_seen_at"] is not None
            [me] = sched["instances"]
            assert me["kind"] == "api" and me["alive"] and me["holds_scheduler"], me
            run = c.get(f"/runs/{night['run_id']}").json()
            assert run["warm_start_plan_id"] == first
        assert "nightly:    the scheduler runs in this process" in serve.out.read_text()
    finally:
        code = serve.terminate()
        serve.kill_group()
    # a graceful stop: uvicorn re-raises the SIGTERM it handled, so the exit reports it
    assert code in (0, -signal.SIGTERM), serve.err.read_text()[-3000:]
    msgs = [line["msg"] for line in serve.log_lines()]
    assert any("nightly scheduler" in m and "stopped" in m for m in msgs)
    assert "Application shutdown complete." in msgs
    # the poll ran many times (every 0.5 s), but its runs are not INFO news (APScheduler
    # logged "Running job" and "executed successfully" at INFO for every one)
    polls = [
        x
        for x in serve.log_lines()
        if "schedule poll" in x["msg"] and x["logger"].startswith("apscheduler.executors")
    ]
    assert polls == [] or all(x["level"] == "debug" for x in polls), polls[:3]
    assert any(x["msg"].startswith('Running job "nightly') for x in serve.log_lines())
