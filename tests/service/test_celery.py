"""The distributed runner end to end: a real API (uvicorn) with GREENOPT_RUNNER=celery, real
`greenopt worker` processes, the real Redis and PostgreSQL on loopback. Workers are killed
with SIGKILL and Redis is restarted empty; every run must still end with exactly one plan
(or fail, recorded), and the local pool and Celery must make the same plan."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.celery_app import QUEUE_BULK, QUEUE_HIGH, SOLVE_TASK
from tests.service.celery_harness import (
    HEARTBEAT_TIMEOUT_S,
    Worker,
    alive_in_group,
    celery_database,
    celery_server,
    drop_database,
    fresh_broker,
    plans_of,
    redis_restored,
    runs_of,
    start_redis,
    stop_redis,
    wait_heartbeat_stale,
    worker_env,
    workers,
)
from tests.service.helpers import (
    LiveServer,
    make_settings,
    slow_run_body,
    wait_run,
    wait_until,
)

# real worker processes, Redis restarts: not in the fast lane. Each test starts its workers,
# and the waits a loaded machine may need (a sweep's 240 s) go past the default timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture()
def pg() -> Iterator[str]:
    url = celery_database("celery")
    yield url
    drop_database(url)


@pytest.fixture()
def broker() -> str:
    return fresh_broker()


def _run(c: httpx.Client, run_id: int) -> dict[str, Any]:
    r = c.get(f"/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _solving(c: httpx.Client, run_id: int) -> dict[str, Any] | None:
    run = _run(c, run_id)
    phase = run["progress"].get("phase")
    return run if run["state"] == "running" and phase == "solve" else None


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def _sweep(c: httpx.Client, n: int, time_limit_s: float = 20.0) -> tuple[int, list[int]]:
    """POST /what-if/sweep over `n` carbon prices of scenario version 1: (sweep id, run ids)."""
    r = c.post(
        "/what-if/sweep",
        json={
            "parameter": "carbon_price_cny_per_t",
            "values": [50.0 * i for i in range(n)],
            "scenario_version_id": 1,
            "settings": {"time_limit_s": time_limit_s},
            "note": "celery test",
        },
    )
    assert r.status_code == 202, r.text
    sweep = r.json()
    return sweep["id"], [p["run_id"] for p in sweep["points"]]


def _sweep_done(c: httpx.Client, sweep_id: int, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view = c.get(f"/what-if/sweep/{sweep_id}").json()
        return view if view["state"] != "running" else None

    result: dict[str, Any] = wait_until(done, timeout, f"sweep {sweep_id} to finish")
    return result


def _pid(run: dict[str, Any] | Any) -> int:
    worker = run["worker"] if isinstance(run, dict) else run.worker
    return int(worker.rsplit(":", 1)[1])


# ----------------------------------------------------------------------------- sweeps
def test_two_workers_finish_a_sweep_and_the_curve_is_complete(
    pg: str, broker: str, tmp_path: Path
) -> None:
    server = celery_server(pg)
    try:
        with (
            workers(tmp_path, worker_env(pg, broker), "a", "b") as (a, b),
            server.client("planner") as c,
        ):
            sweep_id, ids = _sweep(c, 8)
            assert len(ids) == 8
            sweep = _sweep_done(c, sweep_id, 240)
            assert sweep["state"] == "done", sweep
            points = sweep["points"]
            assert [p["value"] for p in points] == [50.0 * i for i in range(8)]
            for p in points:
                assert p["state"] == "succeeded" and p["plan_id"], p
                for key in ("total_cost", "emissions_t", "green_share", "pareto"):
                    assert p[key] is not None, (key, p)

            # both workers took part, and each point ran once
            rows = runs_of(pg, ids)
            pids = {_pid(r) for r in rows.values()}
            assert pids & set(alive_in_group(a.proc.pid)), pids
            assert pids & set(alive_in_group(b.proc.pid)), pids
            assert all(r.attempts == 1 for r in rows.values())

            # every message again, as after a redelivery: finished runs stay as they are
            runner = server.app.state.runner
            for run_id in ids:
                runner.app.send_task(SOLVE_TASK, args=[run_id], queue=QUEUE_BULK)

            def skipped() -> bool:
                logs = a.text() + b.text()
                return all(f"run {i} is not queued any more" in logs for i in ids)

            wait_until(skipped, 60, "the workers to skip every finished run")
            assert c.get(f"/what-if/sweep/{sweep_id}").json()["points"] == points
        assert plans_of(pg, ids) == {i: 1 for i in ids}
    finally:
        server.stop()


# ----------------------------------------------------------------------------- faults
def test_a_worker_killed_mid_solve_its_run_ends_on_another_with_one_plan(
    pg: str, broker: str, tmp_path: Path
) -> None:
    server = celery_server(pg)
    env = worker_env(pg, broker)
    a = Worker(tmp_path, "a", env)
    b: Worker | None = None
    try:
        a.wait_ready()
        with server.client("planner") as c:
            r = c.post("/runs", json=slow_run_body(time_limit_s=8))
            assert r.status_code == 202, r.text
            run_id = r.json()["id"]
            first = wait_until(lambda: _solving(c, run_id), 90, "the run to be solving on a")
            assert _pid(first) in alive_in_group(a.proc.pid)
            b = Worker(tmp_path, "b", env).wait_ready()
            a.kill()
            last_beat = runs_of(pg, [run_id])[run_id].heartbeat_at  # a's last: it is dead
            assert last_beat is not None

            # the message comes back at once (as a redelivery would): b must leave the run
            # alone while a's heartbeat is fresh, another worker might still be solving it
            server.app.state.runner.app.send_task(SOLVE_TASK, args=[run_id], queue=QUEUE_HIGH)
            skipped = f"run {run_id} is not queued any more"
            taken = f"run {run_id}: its worker was lost"
            wait_until(lambda: skipped in b.text() or taken in b.text(), 60, "b to decide")
            assert skipped in b.text(), "b took the run over while a's heartbeat was fresh"
            assert _run(c, run_id)["attempts"] == 1

            done = wait_run(c, run_id, timeout=120)
        assert done["state"] == "succeeded", done
        # retried only once a's heartbeat was stale (by the run's own record), on b, and once
        retried_at = runs_of(pg, [run_id])[run_id].started_at
        assert retried_at is not None
        assert retried_at - last_beat > dt.timedelta(seconds=HEARTBEAT_TIMEOUT_S)
        assert done["attempts"] == 2
        assert _pid(done) in alive_in_group(b.proc.pid)
        assert plans_of(pg, [run_id]) == {run_id: 1}
        assert f"run {run_id} succeeded" in b.text()
    finally:
        a.stop()
        if b is not None:
            b.stop()
        server.stop()


def test_a_redelivered_task_takes_over_only_a_stale_run_and_attempts_are_bounded(
    pg: str, broker: str, tmp_path: Path
) -> None:
    """The worker side of recovery alone (the API's reconciler is slowed down so that it
    never acts): a task for a run left `running` by a dead worker takes it over once its
    heartbeat is stale, and a run that lost its worker `max_attempts` times fails."""
    server = celery_server(pg, reconcile_interval_s=3600.0)
    env = worker_env(pg, broker, GREENOPT_MAX_ATTEMPTS="2")
    runner = server.app.state.runner
    started: list[Worker] = []

    def worker(name: str) -> Worker:
        w = Worker(tmp_path, name, env)
        started.append(w)
        return w.wait_ready()

    try:
        with server.client("planner") as c:
            a = worker("a")
            run_id = c.post("/runs", json=slow_run_body(time_limit_s=60)).json()["id"]
            wait_until(lambda: _solving(c, run_id), 90, "the run to be solving on a")
            a.kill()
            b = worker("b")
            wait_heartbeat_stale(pg, run_id)  # a's
            runner.app.send_task(SOLVE_TASK, args=[run_id], queue=QUEUE_HIGH)
            second = wait_until(
                lambda: (run := _solving(c, run_id)) and run["attempts"] == 2 and run,
                60,
                "b to take the stale run over",
            )
            assert _pid(second) in alive_in_group(b.proc.pid)
            b.kill()
            wait_heartbeat_stale(pg, run_id)  # b's
            c_ = worker("c")
            runner.app.send_task(SOLVE_TASK, args=[run_id], queue=QUEUE_HIGH)
            done = wait_run(c, run_id, timeout=60)
        assert done["state"] == "failed", done
        assert "stopped sending heartbeats" in done["error"]
        assert "started 2 times, the limit is 2" in done["error"]
        assert plans_of(pg, [run_id]) == {}
        assert f"run {run_id}: its worker was lost; now failed" in c_.text()
    finally:
        for w in started:
            w.stop()
        server.stop()


def test_time_limits_soft_keeps_the_best_plan_hard_fails_the_run(
    pg: str, broker: str, tmp_path: Path
) -> None:
    server = celery_server(pg)
    try:
        with server.client("planner") as c:
            # soft: the worker lowers the solver's time limit; HiGHS stops with a plan + gap
            soft_env = worker_env(pg, broker, GREENOPT_TASK_SOFT_TIME_LIMIT_S="2")
            with workers(tmp_path, soft_env, "soft"):
                run_id = c.post("/runs", json=slow_run_body(time_limit_s=300)).json()["id"]
                done = wait_run(c, run_id, timeout=90)
            assert done["state"] == "succeeded", done
            plan = c.get(f"/plans/{done['plan_id']}").json()
            assert plan["summary"]["solver"]["settings"]["time_limit_s"] == 2.0
            assert plan["gap"] is not None and plan["gap"] > 0  # stopped early: gap 0 was asked
            assert done["settings"]["time_limit_s"] == 300  # what was asked is kept

            # hard: the solving process is killed and the run failed, with the reason
            hard_env = worker_env(
                pg,
                broker,
                GREENOPT_TASK_SOFT_TIME_LIMIT_S="120",
                GREENOPT_TASK_TIME_LIMIT_S="20",
            )
            with workers(tmp_path, hard_env, "hard") as (hard,):
                run_id = c.post("/runs", json=slow_run_body(time_limit_s=300)).json()["id"]
                # ended by the hard limit (20 s; the error below says which), not the soft one
                done = wait_run(c, run_id, timeout=180)
                # the worker replaced its solver process and goes on working. A demo run with
                # the default time limit ran 7.8 s here on an idle machine (6.2 s of it the
                # solve) and CI failed it under load with the limit at 8 s, so this run asks
                # for a 3 s solve and the limit is 20 s
                after_body = {"settings": {"time_limit_s": 3}, "note": "after the hard limit"}
                after = c.post("/runs", json=after_body).json()["id"]
                ok = wait_run(c, after, timeout=90)
            assert done["state"] == "failed", done
            assert "hard time limit of 20 s" in done["error"]
            assert done["plan_id"] is None and plans_of(pg, [run_id]) == {}
            assert ok["state"] == "succeeded", (ok["error"], ok["started_at"], ok["finished_at"])
            assert "Hard time limit (20.0s) exceeded" in hard.text()
    finally:
        server.stop()


def test_a_redis_restart_loses_no_run(pg: str, broker: str, tmp_path: Path) -> None:
    """Redis keeps nothing on disk: what was queued in it is gone after a restart. The
    reconciler notices (its marker key went missing) and hands every queued run over again
    from the database; a run submitted while Redis is down waits in the database too."""
    server = celery_server(pg)
    env = worker_env(pg, broker)
    with redis_restored(), workers(tmp_path, env, "a") as (a,), server.client("planner") as c:
        try:
            ids = [c.post("/runs", json=slow_run_body(time_limit_s=4)).json()["id"]]
            wait_until(lambda: _solving(c, ids[0]), 90, "the first run to be solving")
            sweep_id, points = _sweep(c, 6)
            ids += points
            waiting = server.app.state.runner.queue_lengths()
            assert waiting is not None and sum(waiting.values()) >= 5, waiting

            stop_redis()
            r = c.post("/runs", json={"note": "while Redis is away"})
            assert r.status_code == 202, r.text  # accepted: the database has it
            ids.append(r.json()["id"])
            metrics = c.get("/metrics").text
            assert _metric(metrics, "greenopt_broker_up") == 0.0
            wait_until(lambda: "Connection to broker lost" in a.text(), 60, "a to lose Redis")
            start_redis()

            done = [wait_run(c, i, timeout=180) for i in ids]
            sweep = _sweep_done(c, sweep_id, 30)
        finally:
            server.stop()
    assert [d["state"] for d in done] == ["succeeded"] * len(ids), done
    assert sweep["state"] == "done" and all(p["plan_id"] for p in sweep["points"]), sweep
    assert plans_of(pg, ids) == {i: 1 for i in ids}
    assert "Connection to broker lost" in a.text()


# ----------------------------------------------------------------------------- behaviour
def test_back_pressure_queues_and_priorities(pg: str, broker: str, tmp_path: Path) -> None:
    """With no worker running, runs pile up: the broker's queues and the database's counts
    show in /metrics, and past `queue_limit` a new run gets 429 with Retry-After. Once a
    worker starts, the nightly run and planner runs (solve-high) go before every sweep point
    (solve-bulk)."""
    server = celery_server(pg, queue_limit=6, retry_after_s=7)
    try:
        with server.client("planner") as c, server.client("admin") as admin:
            _, bulk = _sweep(c, 4)
            night = admin.post("/schedule/run-now", json={"note": "celery test"})
            assert night.status_code == 202, night.text
            high = [night.json()["run_id"], c.post("/runs", json={"note": "planner"}).json()["id"]]
            assert _run(c, high[0])["kind"] == "nightly"
            metrics = c.get("/metrics").text
            assert _metric(metrics, 'greenopt_broker_queue_length{queue="solve-high"}') == 2
            assert _metric(metrics, 'greenopt_broker_queue_length{queue="solve-bulk"}') == 4
            assert _metric(metrics, "greenopt_queue_depth") == 6
            assert _metric(metrics, 'greenopt_runs{state="queued"}') == 6
            for path, body in (
                ("/runs", {}),
                ("/what-if", {"scenario_version_id": 1, "overrides": {"min_green_share": 0.3}}),
                (
                    "/what-if/sweep",
                    {"parameter": "min_green_share", "values": [0.1], "scenario_version_id": 1},
                ),
            ):
                r = c.post(path, json=body)
                assert r.status_code == 429, (path, r.text)
                assert r.headers["Retry-After"] == "7"
            with workers(tmp_path, worker_env(pg, broker), "a"):
                done = [wait_run(c, i, timeout=120) for i in high + bulk]
        assert all(d["state"] == "succeeded" for d in done), done
        rows = runs_of(pg, high + bulk)
        started = {i: rows[i].started_at for i in high + bulk}
        high_t = [t for i in high if (t := started[i]) is not None]
        bulk_t = [t for i in bulk if (t := started[i]) is not None]
        assert len(high_t) + len(bulk_t) == len(started), started
        assert max(high_t) < min(bulk_t), started
    finally:
        server.stop()


def _plan_and_bundle(c: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Solve `body` through the API: the plan and its bundle."""
    r = c.post("/runs", json=body)
    done = wait_run(c, r.json()["id"])
    assert done["state"] == "succeeded", done
    plan = c.get(f"/plans/{done['plan_id']}").json()
    return plan, c.get(f"/plans/{done['plan_id']}/bundle").content


def test_local_pool_and_celery_make_the_same_plan(broker: str, tmp_path: Path) -> None:
    body = {"overrides": {"carbon_price_cny_per_t": 180.0}, "settings": {"time_limit_s": 30}}
    local_db = celery_database("celery_local")
    local = LiveServer(make_settings(local_db)).start()
    try:
        with local.client("planner") as c:
            local_plan, local_bundle = _plan_and_bundle(c, body)
    finally:
        local.stop()
        drop_database(local_db)
    pg = celery_database("celery")
    server = celery_server(pg)
    try:
        with workers(tmp_path, worker_env(pg, broker), "a"), server.client("planner") as c:
            celery_plan, celery_bundle = _plan_and_bundle(c, body)
    finally:
        server.stop()
        drop_database(pg)
    assert celery_plan["objective"] == local_plan["objective"]
    assert celery_plan["total_cost"] == local_plan["total_cost"]
    a, b = _tables(local_bundle), _tables(celery_bundle)
    assert sorted(a) == sorted(b) and "assignments.csv" in a and "site_hours.csv" in a
    for name in a:
        assert a[name] == b[name], f"{name} differs between the local pool and Celery"


def _tables(bundle: bytes) -> dict[str, bytes]:
    """Every CSV table of a bundle (summary.json names its run, plan and timings)."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        return {Path(n).name: z.read(n) for n in z.namelist() if n.endswith(".csv")}


def test_a_task_that_finds_the_database_away_is_tried_again(
    pg: str, broker: str, tmp_path: Path
) -> None:
    """The message is all that says a run waits: a worker that cannot reach the database
    keeps it (a Celery retry) instead of dropping it, and solves the run once it can."""
    server = celery_server(pg, reconcile_interval_s=3600.0)
    name = make_url(pg).database
    admin = make_url(pg).set(drivername="postgresql", database="postgres")

    def connections(allowed: bool) -> None:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as db:
            db.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                db.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    # this worker takes only solve-bulk: the run's own message (solve-high) stays put
    a = Worker(tmp_path, "a", worker_env(pg, broker), "--queues", "solve-bulk")
    try:
        with server.client("planner") as c:
            a.wait_ready()
            run_id = c.post("/runs", json={"note": "while the database is away"}).json()["id"]
            connections(False)
            try:
                server.app.state.runner.app.send_task(SOLVE_TASK, args=[run_id], queue=QUEUE_BULK)
                wait_until(
                    lambda: f"run {run_id}: database unavailable, retrying" in a.text(),
                    30,
                    "the worker to find the database away",
                )
            finally:
                connections(True)
            done = wait_run(c, run_id, timeout=60)
        assert done["state"] == "succeeded", done
        assert plans_of(pg, [run_id]) == {run_id: 1}
    finally:
        a.stop()
        server.stop()
