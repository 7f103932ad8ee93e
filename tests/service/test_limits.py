"""A fresh service with a queue of one: no active plan yet (404), and the queue bound
(429 with Retry-After) — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.db import Database
from service.models import Run
from tests.service.helpers import (
    BACKENDS,
    LiveServer,
    fresh_database,
    make_settings,
    slow_run_body,
    wait_run,
    wait_until,
)


@pytest.fixture(params=BACKENDS)
def tiny(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = fresh_database(str(request.param), tmp_path, "tiny")
    srv = LiveServer(
        make_settings(url, queue_limit=1, max_concurrent_solves=1, retry_after_s=7)
    ).start()
    yield srv
    srv.stop()


def test_no_active_plan_is_a_clear_404(tiny: LiveServer) -> None:
    with tiny.client("viewer") as c:
        r = c.get("/plans/active")
        assert r.status_code == 404
        body = r.json()
        assert body["error"] == "not_found"
        assert "no plan is active yet" in body["message"] and "POST /runs" in body["message"]
        assert c.get("/plans").json() == {"items": [], "total": 0, "offset": 0, "limit": 50}


@pytest.mark.slow  # solves the deliberately hard model
def test_a_full_queue_answers_429_with_retry_after(tiny: LiveServer) -> None:
    with tiny.client("planner") as c:
        first = c.post("/runs", json=slow_run_body(), headers={"Idempotency-Key": "slow"})
        assert first.status_code == 202, first.text
        r = c.post("/runs", json={})
        assert r.status_code == 429, r.text
        assert r.headers["Retry-After"] == "7"
        assert r.json()["error"] == "queue_full"
        # retrying the accepted request is not a new run, so the full queue does not refuse it
        again = c.post("/runs", json=slow_run_body(), headers={"Idempotency-Key": "slow"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert c.get("/runs").json()["total"] == 1
        assert c.delete(f"/runs/{first.json()['id']}").status_code in (200, 202)
        assert wait_run(c, first.json()["id"], timeout=30)["state"] == "cancelled"
        ok = c.post("/runs", json={"activate": True})
        assert ok.status_code == 202, ok.text
        assert wait_run(c, ok.json()["id"])["state"] == "succeeded"
        assert c.get("/plans/active").json()["run_id"] == ok.json()["id"]


@pytest.mark.slow  # solves the deliberately hard model
def test_stopping_the_service_interrupts_its_running_solves(tiny: LiveServer) -> None:
    with tiny.client("planner") as c:
        r = c.post("/runs", json=slow_run_body())
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        wait_until(
            lambda: c.get(f"/runs/{run_id}").json()["progress"].get("phase") == "solve",
            what="the slow run to be solving",
        )
    tiny.stop()  # graceful: the lifespan shuts the runner down
    db = Database(tiny.settings.database_url)
    try:
        with db.read() as s:
            run = s.get(Run, run_id)
            assert run is not None
            assert (run.state, run.error) == ("interrupted", "interrupted: the service shut down")
            assert run.plan_id is None
    finally:
        db.dispose()


@pytest.mark.slow  # solves the deliberately hard model
def test_a_solver_process_that_dies_interrupts_its_run_and_the_next_run_works(
    tiny: LiveServer,
) -> None:
    with tiny.client("planner") as c:
        run_id = c.post("/runs", json=slow_run_body()).json()["id"]
        run = wait_until(
            lambda: (
                (r := c.get(f"/runs/{run_id}").json())["progress"].get("phase") == "solve" and r
            ),
            what="the slow run to be solving",
        )
        host, pid = run["worker"].rsplit(":", 1)
        assert host == socket.gethostname() and int(pid) != os.getpid()
        os.kill(int(pid), signal.SIGKILL)  # e.g. the kernel's OOM killer
        done = wait_run(c, run_id, timeout=30)
        assert done["state"] == "interrupted" and "died" in done["error"]
        assert done["plan_id"] is None
        ok = c.post("/runs", json={})
        assert ok.status_code == 202, ok.text
        assert wait_run(c, ok.json()["id"])["state"] == "succeeded"
