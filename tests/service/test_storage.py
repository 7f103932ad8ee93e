"""Storage and execution below the HTTP layer, on SQLite and PostgreSQL: migrations match
the models, a run executes once, a plan is stored once, failures are recorded, recovery
after a restart, concurrent scenario edits, and the `db`/`keys` commands."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

import optimizer.validate
from optimizer.validate import ValidationReport, Violation
from service import instances, plans, runs, scenarios, security
from service.api.deps import wants_csv
from service.bootstrap import prepare_database
from service.cli import app as cli
from service.db import Database, head_revision
from service.execution import execute_run
from service.models import Base, Plan, Run, utcnow
from service.repo import instances as instances_repo
from service.repo import runs as runs_repo
from service.runs import RunRequest
from tests.service.helpers import BACKENDS, fresh_database, make_settings


class Collect:
    """A runner that only remembers what it was handed."""

    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []

    def submit(self, run_id: int, priority: int = 0) -> None:
        self.got.append((run_id, priority))


@pytest.fixture(scope="module", params=BACKENDS)
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    url = fresh_database(str(request.param), tmp_path_factory.mktemp("storage"), "storage")
    database = Database(url)
    prepare_database(database, make_settings(url))
    yield database
    database.dispose()


def queue(db: Database, **request: Any) -> int:
    with db.write() as s:
        run, _ = runs.submit_run(
            s, RunRequest(**request), settings=make_settings(db.url), runner=Collect(), actor="test"
        )
        return run.id


def state(db: Database, run_id: int) -> Run:
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run


def test_migrations_create_exactly_the_models(db: Database) -> None:
    assert db.current_revision() == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    db.upgrade()  # again: nothing to do, nothing breaks
    assert db.current_revision() == head_revision()


def test_a_run_is_executed_once_even_when_two_executors_race(db: Database) -> None:
    run_id = queue(db, note="race")
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(execute_run(run_id, db.url, monitor_interval_s=0.2))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == ["skipped", "succeeded"]
    run = state(db, run_id)
    assert run.state == "succeeded" and run.attempts == 1 and run.plan_id is not None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Plan).where(Plan.run_id == run_id)) == 1
    assert execute_run(run_id, db.url) == "skipped"  # and never again later


def test_a_second_plan_for_the_same_run_is_refused(db: Database) -> None:
    run_id = queue(db, note="unique")
    assert execute_run(run_id, db.url, monitor_interval_s=0.2) == "succeeded"
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.plan_id is not None
        stored = plans.load_plan(s, run.plan_id)
        version = scenarios.get_version(s, run.scenario_version_id)
    with pytest.raises(IntegrityError), db.write() as s:
        plans.store_plan(s, run=run, plan=stored, version=version)


def test_a_plan_failing_the_independent_check_is_not_stored(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = Violation("capacity", "devices", "more devices than installed", site_id="sh-east", hour=3)

    def failing(sc: Any, plan: Any) -> ValidationReport:
        return ValidationReport([bad], {"capacity": 1}, {})

    monkeypatch.setattr(optimizer.validate, "validate_plan", failing)
    with db.read() as s:
        plans_before = s.scalar(select(func.count()).select_from(Plan))
    run_id = queue(db, activate=True, note="invalid plan")
    assert execute_run(run_id, db.url, monitor_interval_s=0.2) == "failed"
    run = state(db, run_id)
    assert run.state == "failed" and run.plan_id is None
    assert "independent check" in (run.error or "")
    assert run.error_detail is not None
    assert run.error_detail["violations"][0]["site_id"] == "sh-east"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Plan)) == plans_before


def test_a_crashing_solve_is_recorded_as_failed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.execution

    def boom(*a: Any, **k: Any) -> Any:
        raise MemoryError("the solver ran out of memory")

    monkeypatch.setattr(service.execution, "optimize", boom)
    run_id = queue(db, note="crash")
    assert execute_run(run_id, db.url) == "failed"
    run = state(db, run_id)
    assert run.state == "failed" and run.error == "MemoryError: the solver ran out of memory"
    assert run.error_detail is not None and "Traceback" in run.error_detail["traceback"]
    assert run.finished_at is not None and run.duration_s is not None


def test_recovery_interrupts_running_runs_and_requeues_queued_ones_by_priority(
    db: Database,
) -> None:
    running = queue(db, note="was running")
    with db.write() as s:
        assert runs_repo.claim(s, running, worker="dead:1", now=utcnow())
    low = queue(db, priority=-5, note="low")
    high = queue(db, priority=50, note="high")
    mid = queue(db, note="mid")
    collect = Collect()
    with db.write() as s:
        interrupted, requeued = runs.recover(s, collect, live_instances=())
    assert running in interrupted
    assert [r for r, _ in collect.got if r in (low, high, mid)] == [high, mid, low]
    run = state(db, running)
    assert run.state == "interrupted" and run.plan_id is None and "stopped" in (run.error or "")
    for rid in (low, high, mid):  # leave the database as the next tests expect it
        with db.write() as s:
            runs.cancel_run(s, rid)


def test_recovery_leaves_the_runs_of_live_instances_alone(db: Database) -> None:
    """A second instance starting on the database: the runs a live instance's pool holds
    (running, or about to start) stay its own; a dead instance's running run is
    interrupted."""
    mine, dead = queue(db, note="live instance's"), queue(db, note="dead instance's")
    starting = queue(db, note="live instance's, about to start")
    with db.write() as s:
        for run_id, owner in ((mine, "live"), (dead, "dead"), (starting, "live")):
            assert runs_repo.assign_instance(s, run_id, owner)
        assert runs_repo.claim(s, mine, worker="live:1", now=utcnow())
        assert runs_repo.claim(s, dead, worker="dead:1", now=utcnow())
    collect = Collect()
    with db.write() as s:
        interrupted, requeued = runs.recover(s, collect, live_instances=["live"])
    assert dead in interrupted and mine not in interrupted and starting not in requeued
    assert state(db, mine).state == "running" and state(db, dead).state == "interrupted"
    assert state(db, starting).state == "queued"
    with db.write() as s:  # leave the database as the next tests expect it
        runs.cancel_run(s, starting)
        runs_repo.finish(s, mine, state="failed", now=utcnow())


def test_a_heartbeat_settles_the_runs_of_dead_instances_only(db: Database) -> None:
    """Alive: a fresh heartbeat from another host, or from this host with its process
    running. Dead: a stale heartbeat, or a process of this host that is gone. Each beat
    interrupts the dead ones' running runs, and drops instances silent for a day."""
    settings = make_settings(db.url, instance_heartbeat_s=3600.0, instance_stale_after_s=30.0)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this host that no longer runs
    now, host = utcnow(), instances.this_host()
    rows = {
        "remote-fresh": ("elsewhere", 1, now),
        "remote-stale": ("elsewhere", 1, now - dt.timedelta(minutes=5)),
        "local-gone": (host, gone.pid, now),
        "ancient": ("elsewhere", 1, now - dt.timedelta(days=2)),
    }
    with db.write() as s:
        for name, (where, pid, beat) in rows.items():
            instances_repo.add(
                s, id=name, kind="api", host=where, pid=pid, started_at=beat, heartbeat_at=beat
            )
    owned = {}
    for name in rows:
        owned[name] = queue(db, note=f"run of {name}")
        with db.write() as s:
            runs_repo.assign_instance(s, owned[name], name)
            runs_repo.claim(s, owned[name], worker=f"{name}:1", now=utcnow())
    me = instances.InstanceHeartbeat(db, settings, kind="api").start()
    try:
        me.beat()
        assert state(db, owned["remote-fresh"]).state == "running"
        for name in ("remote-stale", "local-gone", "ancient"):
            run = state(db, owned[name])
            assert run.state == "interrupted" and "instance" in (run.error or ""), name
        with db.read() as s:
            seen = {
                r.id: alive
                for r, alive in instances.describe(instances_repo.all_instances(s), settings)
            }
        assert seen == {
            "remote-fresh": True,
            "remote-stale": False,
            "local-gone": False,
            me.id: True,
        }
    finally:
        me.stop()
        with db.write() as s:
            runs_repo.finish(s, owned["remote-fresh"], state="failed", now=utcnow())
            for name in rows:
                instances_repo.remove(s, name)
    with db.read() as s:
        assert me.id not in {r.id for r in instances_repo.all_instances(s)}


def test_concurrent_scenario_edits_all_land_in_a_line(db: Database) -> None:
    with db.read() as s:
        start = scenarios.current_version(s).id
    errors: list[BaseException] = []

    def edit(i: int) -> None:
        try:
            with db.write() as s:
                up = scenarios.parse_upload(
                    "json", f'[{{"job_id": "batch-night", "priority": {i + 2}}}]'.encode(), "jobs"
                )
                scenarios.upsert_rows(s, "jobs", up, actor=f"t{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with db.read() as s:
        versions, _ = scenarios.list_versions(s, offset=0, limit=10)
    mine = [v for v in versions if v.id > start]
    assert len(mine) == 4
    assert sorted(v.parent_id for v in mine) == [start, *sorted(v.id for v in mine)[:-1]]


def test_content_negotiation() -> None:
    class R:
        def __init__(self, accept: str) -> None:
            self.headers = {"accept": accept}

    assert wants_csv(R("text/csv")) is True  # type: ignore[arg-type]
    assert wants_csv(R("*/*")) is False  # type: ignore[arg-type]
    assert wants_csv(R("application/json, text/csv")) is False  # type: ignore[arg-type]
    assert wants_csv(R("application/json;q=0.4, text/csv;q=0.9")) is True  # type: ignore[arg-type]
    assert wants_csv(R("text/csv;q=0")) is False  # type: ignore[arg-type]


def test_db_upgrade_and_keys_create_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("GREENOPT_DATABASE_URL", url)
    runner = CliRunner()
    r = runner.invoke(cli, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert head_revision() in r.output
    r = runner.invoke(cli, ["keys", "create", "--role", "planner", "--name", "ci"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    d = Database(url)
    try:
        with d.read() as s:
            who = security.authenticate(s, key)
        assert (who.role, who.name) == ("planner", "ci")
    finally:
        d.dispose()
    assert runner.invoke(cli, ["keys", "create", "--role", "root"]).exit_code != 0
