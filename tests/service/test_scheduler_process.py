"""The nightly scheduler as real processes, on SQLite and PostgreSQL: two `greenopt
scheduler` processes with a cron that fires every two seconds run exactly one night (its
run executed by the scheduler's own runner, with no API process anywhere), and stop cleanly
on SIGTERM; `greenopt serve --scheduler` runs a night in-process and shows it over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service import plans
from service.db import Database
from service.models import NightlyRun, Plan, Run
from tests.service.helpers import BACKENDS, DEMO, free_port, fresh_database, wait_until

FAST_CRON = "*/2 * * * * *"  # every two seconds: many fires, one night
KEY = re.compile(r"admin key:\s+(gok_[A-Za-z0-9_-]+)")


def _greenopt() -> list[str]:
    script = Path(sys.executable).with_name("greenopt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]


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


class Proc:
    """A greenopt command in its own process group, output in files."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str], name: str) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [*_greenopt(), *args],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: the solver pool too
            )

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.err.read_text()[-3000:]}")
        return True

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.err.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM to the command alone (as docker stop does), then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:  # it hung: do not leave it behind
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.proc.wait(10)


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
    procs = [Proc(["scheduler", "--heartbeat-file", str(beat)], tmp_path, env, "scheduler-a")]
    db = Database(url)
    try:
        if backend == "sqlite":
            # two processes migrating one fresh SQLite file at once collide ("database is
            # locked": start-up is serialised on PostgreSQL only); let the first one finish
            wait_until(lambda: procs[0].alive() and beat.is_file(), 120, "the first scheduler")
        procs.append(Proc(["scheduler"], tmp_path, env, "scheduler-b"))

        def night_done() -> bool:
            for p in procs:
                p.alive()
            nights = _nights(db) if _migrated(db) else []
            return bool(nights) and nights[0].state != "running"

        wait_until(night_done, 180, "a night to run and be recorded")
        # both keep firing every two seconds meanwhile: still one night
        time.sleep(3)
        for p in procs:
            p.alive()
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
        stood_down = [
            line
            for p in procs
            for line in p.log_lines()
            if "stands down" in line["msg"] and line["logger"] == "greenopt.nightly"
        ]
        assert stood_down, "the later fires should have found the night taken"
        assert beat.is_file() and time.time() - beat.stat().st_mtime < 10
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
    serve = Proc(["serve", "--scheduler", "--port", str(port)], tmp_path, _env(url), "serve")
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            serve.alive()
            try:
                # ready: the first plan solved (the port opened before it)
                return httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 180, "greenopt serve --scheduler to be ready")
        m = KEY.search(serve.out.read_text())
        assert m, serve.out.read_text()
        headers = {"X-API-Key": m.group(1)}
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
