"""`greenopt serve` as a real process: killed (SIGKILL, the whole process group) while a run
is solving, then started again. The run must come back `interrupted`, no plan may exist
for it, and a new run must work — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.db import Database
from service.models import Plan, Run
from tests.service.helpers import (
    BACKENDS,
    DEMO,
    GreenoptProcess,
    alive_in_group,
    free_port,
    fresh_database,
    slow_run_body,
    wait_run,
    wait_until,
)


@pytest.mark.slow  # real processes, killed and started again
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_mid_solve_the_run_is_interrupted_and_the_service_recovers(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path, "restart")
    env = {
        **os.environ,
        "GREENOPT_DATABASE_URL": url,
        "GREENOPT_DEFAULT_SCENARIO": str(DEMO),
        "GREENOPT_SOLVE_THREADS": "1",
        "GREENOPT_PROGRESS_INTERVAL_S": "0.25",
        "GREENOPT_SOLVE_TIME_LIMIT_S": "30",
    }
    port = free_port()
    url_of_api = f"http://127.0.0.1:{port}"
    first = GreenoptProcess(["serve", "--port", str(port)], tmp_path, env, "first")
    try:
        first.wait_ready(url_of_api, 120)
        key = first.admin_key()
        assert key, first.out.read_text()
        c = httpx.Client(base_url=url_of_api, headers={"X-API-Key": key}, timeout=30)
        # serve solved and activated a first plan before it said it was ready
        active = c.get("/plans/active").json()
        assert active["status"] in ("optimal", "feasible")
        r = c.post("/runs", json=slow_run_body(time_limit_s=600))
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        def in_highs() -> dict[str, Any] | None:
            # HiGHS' own progress reports carry its node count: the solve is inside HiGHS
            run = c.get(f"/runs/{run_id}").json()
            progress = run["progress"]
            inside = run["state"] == "running" and progress.get("phase") == "solve"
            return run if inside and "nodes" in progress else None

        wait_until(in_highs, 60, "the slow run to be solving inside HiGHS")
        first.kill_group()
    finally:
        if first.proc.poll() is None:
            first.kill_group()

    db = Database(url)
    try:
        with db.read() as s:
            run = s.get(Run, run_id)
            assert run is not None and run.state == "running"  # nobody could say otherwise
            assert s.scalars(select(Plan).where(Plan.run_id == run_id)).first() is None
    finally:
        db.dispose()

    second = GreenoptProcess(["serve", "--port", str(port)], tmp_path, env, "second")
    try:
        second.wait_ready(url_of_api, 120)
        assert second.admin_key() is None  # made once, on the first start
        c = httpx.Client(base_url=url_of_api, headers={"X-API-Key": key}, timeout=30)
        run = c.get(f"/runs/{run_id}").json()
        assert run["state"] == "interrupted", run
        assert "interrupted" in run["error"] and run["plan_id"] is None
        plans = c.get("/plans", params={"limit": 500}).json()["items"]
        assert all(p["run_id"] != run_id for p in plans)
        assert c.get("/plans/active").json()["id"] == active["id"]  # the old plan stays active
        r = c.post("/runs", json={"activate": True})
        assert r.status_code == 202, r.text
        done = wait_run(c, r.json()["id"])
        assert done["state"] == "succeeded" and done["plan_id"]
        assert c.get("/plans/active").json()["id"] == done["plan_id"]
    finally:
        code = second.terminate()
    # a graceful stop: uvicorn re-raises the SIGTERM it handled, so the exit reports it
    assert code in (0, -signal.SIGTERM), second.err.read_text()[-3000:]
    assert "Application shutdown complete" in second.err.read_text()
    wait_until(lambda: not alive_in_group(second.proc.pid), 30, "the solver workers to exit")
