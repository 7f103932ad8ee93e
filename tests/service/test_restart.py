"""`greenopt serve` as a real process: killed (SIGKILL, the whole process group) while a run
is solving, then started again. The run must come back `interrupted`, no plan may exist
for it, and a new run must work — on SQLite and PostgreSQL."""

from __future__ import annotations

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
from sqlalchemy import select

from service.db import Database
from service.models import Plan, Run
from tests.service.helpers import (
    BACKENDS,
    DEMO,
    free_port,
    fresh_database,
    slow_run_body,
    wait_run,
    wait_until,
)

KEY = re.compile(r"admin key:\s+(gok_[A-Za-z0-9_-]+)")


def _greenopt() -> list[str]:
    script = Path(sys.executable).with_name("greenopt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]


class Serve:
    """One `greenopt serve` process in its own process group, output in files."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int, name: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [*_greenopt(), "serve", "--port", str(port)],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: the pool workers too
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until /readyz answers 200: the port opens at once, the first plan solves after."""

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.err.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=10).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, "greenopt serve to be ready")

    def admin_key(self) -> str | None:
        m = KEY.search(self.out.read_text())
        return m.group(1) if m else None

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def _alive_in_group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.slow
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
    first = Serve(tmp_path, env, port, "first")
    try:
        first.wait_ready()
        key = first.admin_key()
        assert key, first.out.read_text()
        c = httpx.Client(base_url=first.url, headers={"X-API-Key": key}, timeout=30)
        # serve solved and activated a first plan before it said it was ready
        active = c.get("/plans/active").json()
        assert active["status"] in ("optimal", "feasible")
        r = c.post("/runs", json=slow_run_body(time_limit_s=600))
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        def solving() -> dict[str, Any] | None:
            run = c.get(f"/runs/{run_id}").json()
            return (
                run
                if run["state"] == "running" and run["progress"].get("phase") == "solve"
                else None
            )

        wait_until(solving, 60, "the slow run to be solving")
        time.sleep(1.0)  # well inside HiGHS' branch and bound
        first.kill()
        wait_until(lambda: not _alive_in_group(first.proc.pid), 30, "the process group to die")
    finally:
        if first.proc.poll() is None:
            first.kill()

    db = Database(url)
    try:
        with db.read() as s:
            run = s.get(Run, run_id)
            assert run is not None and run.state == "running"  # nobody could say otherwise
            assert s.scalars(select(Plan).where(Plan.run_id == run_id)).first() is None
    finally:
        db.dispose()

    second = Serve(tmp_path, env, port, "second")
    try:
        second.wait_ready()
        assert second.admin_key() is None  # made once, on the first start
        c = httpx.Client(base_url=second.url, headers={"X-API-Key": key}, timeout=30)
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
        code = second.stop()
    # a graceful stop: uvicorn re-raises the SIGTERM it handled, so the exit reports it
    assert code in (0, -signal.SIGTERM), second.err.read_text()[-3000:]
    assert "Application shutdown complete" in second.err.read_text()
    wait_until(lambda: not _alive_in_group(second.proc.pid), 30, "the solver workers to exit")
