"""The nightly re-optimisation, on SQLite and PostgreSQL: the cron and its nights under a
controlled clock (day boundaries, DST), the job itself (current scenario, warm start,
stability weight, activation), one run per night however many schedulers race for it
(threads and processes), failed nights keeping the active plan, the APScheduler job
following the schedule table and catching up a missed night, and the /schedule API."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import OperationalError

import optimizer.validate
import service.app
import service.execution
from optimizer import SolverSettings
from optimizer.validate import ValidationReport, Violation
from service import nightly, plans, runs, scenarios
from service.bootstrap import prepare_database
from service.db import Database
from service.errors import Conflict
from service.execution import execute_run
from service.models import SCHEDULER_JOBS_TABLE, NightlyRun, Plan, Run, utcnow
from service.nightly import NIGHTLY_PRIORITY, ScheduleUpdate
from service.repo import scenarios as scenarios_repo
from service.runs import RunRequest
from service.scheduler import JOB_ID, NightlyScheduler
from service.settings import Settings
from tests.service.helpers import (
    BACKENDS,
    LiveServer,
    fresh_database,
    make_settings,
    wait_run,
    wait_until,
)

UTC = dt.UTC
SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"
# 01:30 in Shanghai on 16 July 2025 is 17:30 UTC on the 15th: the night is the 16th
FIRE_0716 = dt.datetime(2025, 7, 15, 17, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- the cron
def fire_times(cron: str, tz: str, start: dt.datetime, n: int) -> list[dt.datetime]:
    trigger = nightly.make_trigger(cron, tz)
    out: list[dt.datetime] = []
    t = trigger.get_next_fire_time(None, start)
    while t is not None and len(out) < n:
        out.append(t)
        # in UTC: adding to a local time drops its DST fold
        t = trigger.get_next_fire_time(t, t.astimezone(UTC) + dt.timedelta(microseconds=1))
    return out


def test_01_30_in_shanghai_across_the_utc_day_boundary() -> None:
    just_before = FIRE_0716 - dt.timedelta(seconds=1)
    nxt = nightly.next_fire_time("30 1 * * *", SHANGHAI, just_before)
    assert nxt == FIRE_0716
    assert nxt is not None and nxt.isoformat() == "2025-07-16T01:30:00+08:00"
    # the UTC date is the 15th, the night (local date) the 16th
    assert nightly.night_of(FIRE_0716, SHANGHAI) == dt.date(2025, 7, 16)
    # at the fire time itself it is that fire; a second later, the next night's
    assert nightly.next_fire_time("30 1 * * *", SHANGHAI, FIRE_0716) == FIRE_0716
    after = nightly.next_fire_time("30 1 * * *", SHANGHAI, FIRE_0716 + dt.timedelta(seconds=1))
    assert after == FIRE_0716 + dt.timedelta(days=1)
    # a late fire (the scheduler was down at 01:30) still belongs to that night
    late = FIRE_0716 + dt.timedelta(minutes=40)
    hour = dt.timedelta(hours=1)
    assert nightly.last_fire_time("30 1 * * *", SHANGHAI, late, hour) == FIRE_0716
    assert nightly.last_fire_time("30 1 * * *", SHANGHAI, just_before, hour) is None


def test_a_late_night_past_local_midnight_is_still_the_night_it_was_scheduled_for() -> None:
    # 23:50 on the 15th, run ten minutes after midnight: the 15th's night, not the 16th's
    fired = dt.datetime(2025, 7, 15, 15, 50, tzinfo=UTC)  # 23:50 +08:00
    now = fired + dt.timedelta(minutes=20)
    last = nightly.last_fire_time("50 23 * * *", SHANGHAI, now, dt.timedelta(hours=1))
    assert last == fired
    assert nightly.night_of(last, SHANGHAI) == dt.date(2025, 7, 15)
    assert now.astimezone(nightly.check_timezone(SHANGHAI)).date() == dt.date(2025, 7, 16)


def test_01_30_in_berlin_keeps_local_time_across_both_dst_changes() -> None:
    spring = fire_times("30 1 * * *", BERLIN, dt.datetime(2025, 3, 29, tzinfo=UTC), 3)
    assert [t.isoformat() for t in spring] == [
        "2025-03-29T01:30:00+01:00",
        "2025-03-30T01:30:00+01:00",  # before the 02:00 -> 03:00 jump
        "2025-03-31T01:30:00+02:00",
    ]
    # (aware datetimes in one zone subtract as wall clocks: compare instants in UTC)
    assert spring[2].astimezone(UTC) - spring[1].astimezone(UTC) == dt.timedelta(hours=23)
    autumn = fire_times("30 1 * * *", BERLIN, dt.datetime(2025, 10, 24, 12, tzinfo=UTC), 3)
    assert [t.isoformat() for t in autumn] == [
        "2025-10-25T01:30:00+02:00",
        "2025-10-26T01:30:00+02:00",
        "2025-10-27T01:30:00+01:00",
    ]
    assert autumn[2].astimezone(UTC) - autumn[1].astimezone(UTC) == dt.timedelta(hours=25)


def test_a_cron_inside_the_dst_fall_back_hour_fires_twice_but_is_one_night() -> None:
    # 02:30 happens twice in Berlin on 26 October 2025; APScheduler fires at both
    fires = fire_times("30 2 * * *", BERLIN, dt.datetime(2025, 10, 25, 12, tzinfo=UTC), 3)
    assert [t.isoformat() for t in fires] == [
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:30:00+01:00",
        "2025-10-27T02:30:00+01:00",
    ]
    nights = [nightly.night_of(t, BERLIN) for t in fires]
    assert nights == [dt.date(2025, 10, 26), dt.date(2025, 10, 26), dt.date(2025, 10, 27)]
    # the skipped 02:30 of the spring change fires once, an hour late in local time
    spring = fire_times("30 2 * * *", BERLIN, dt.datetime(2025, 3, 29, 12, tzinfo=UTC), 2)
    assert [t.astimezone(UTC).isoformat() for t in spring] == [
        "2025-03-30T01:30:00+00:00",
        "2025-03-31T00:30:00+00:00",
    ]


def test_cron_weekdays_mean_what_they_mean_in_crontab() -> None:
    # APScheduler 3 counts Monday = 0; crontab Sunday = 0 (and 7)
    def first_day(cron: str) -> str:
        t = nightly.next_fire_time(cron, "UTC", dt.datetime(2025, 7, 14, tzinfo=UTC))  # a Monday
        assert t is not None
        return t.strftime("%a")

    assert first_day("30 1 * * 0") == "Sun"
    assert first_day("30 1 * * 7") == "Sun"
    assert first_day("30 1 * * 6") == "Sat"
    assert first_day("30 1 * * sat") == "Sat"
    assert nightly.cron_fields("30 1 * * 1-5")["day_of_week"] == "mon,tue,wed,thu,fri"
    assert nightly.cron_fields("30 1 * * */2")["day_of_week"] == "sun,tue,thu,sat"
    assert nightly.cron_fields("*/5 * * * * *")["second"] == "*/5"
    for bad, words in [
        ("30 1 * *", "expected 5 fields"),
        ("61 1 * * *", "61"),
        ("30 1 * * 8", "not a weekday"),
        ("30 1 * * 5-1", "backwards"),
    ]:
        with pytest.raises(ValueError, match=words):
            nightly.make_trigger(bad, "UTC")
    with pytest.raises(ValueError, match="IANA"):
        nightly.check_timezone("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="never fires"):
        ScheduleUpdate(cron="0 0 30 2 *")


# ----------------------------------------------------------------------------- fixtures
class Collect:
    """A runner that only remembers what it was handed (the test executes it)."""

    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []

    def submit(self, run_id: int, priority: int = 0) -> None:
        self.got.append((run_id, priority))


class Refuses:
    def submit(self, run_id: int, priority: int = 0) -> None:
        raise ConnectionError("the broker is unreachable")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database per test, with the demo scenario loaded as version 1."""
    url = fresh_database(str(request.param), tmp_path, "nightly")
    database = Database(url)
    prepare_database(database, make_settings(url))
    yield database
    database.dispose()


def settings_of(db: Database, **changes: Any) -> Settings:
    return make_settings(db.url, **changes)


def solve(db: Database, run_id: int) -> str:
    return execute_run(run_id, db.url, monitor_interval_s=0.2)


def first_plan(db: Database) -> int:
    """An active plan, as `greenopt serve` makes one."""
    with db.write() as s:
        run, _ = runs.submit_run(
            s, RunRequest(activate=True), settings=settings_of(db), runner=Collect(), actor="t"
        )
        run_id = run.id
    assert solve(db, run_id) == "succeeded"
    with db.read() as s:
        active = plans.active_plan_id(s)
    assert active is not None
    return active


def set_schedule(db: Database, **change: Any) -> None:
    with db.write() as s:
        nightly.update_schedule(s, ScheduleUpdate(**change), settings=settings_of(db), actor="test")


def counts(db: Database) -> tuple[int, int, int]:
    """(nights, nightly runs, plans of nightly runs)."""
    with db.read() as s:
        n = s.scalar(select(func.count()).select_from(NightlyRun))
        r = s.scalar(select(func.count()).select_from(Run).where(Run.kind == "nightly"))
        p = s.scalar(select(func.count()).select_from(Plan).where(Plan.kind == "nightly"))
    return int(n or 0), int(r or 0), int(p or 0)


def night_row(db: Database, night_id: int) -> NightlyRun:
    with db.read() as s:
        row = s.get(NightlyRun, night_id)
        assert row is not None
        return row


def active_id(db: Database) -> int | None:
    with db.read() as s:
        return plans.active_plan_id(s)


# ----------------------------------------------------------------------------- the job
def test_a_night_solves_the_current_scenario_warm_started_and_activates_its_plan(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = first_plan(db)
    set_schedule(db, stability_weight=2.5, time_limit_s=45)
    settings = settings_of(db)
    runner = Collect()
    # the job fires 0.2 s after 01:30 Shanghai time
    row = nightly.run_night(
        db, settings, runner, now=FIRE_0716 + dt.timedelta(milliseconds=200), actor="s1"
    )
    assert row is not None
    assert row.night == dt.date(2025, 7, 16) and row.trigger == "schedule"
    assert row.scheduled_for == FIRE_0716 and row.previous_plan_id == before
    assert runner.got == [(row.run_id, NIGHTLY_PRIORITY)]
    with db.read() as s:
        run = s.get(Run, row.run_id)
        current = scenarios.current_version(s)
        assert run is not None
        assert (run.kind, run.state, run.activate_on_success) == ("nightly", "queued", True)
        assert run.scenario_version_id == current.id
        assert run.warm_start_plan_id == before
        assert run.settings["time_limit_s"] == 45
        assert run.overrides == {"plan_stability_weight": 2.5, "robust_green_quantile": 0.1}
        assert run.idempotency_key == "nightly:2025-07-16"
        assert [v.state for v in nightly.history(s, offset=0, limit=5)[0]] == ["running"]

    seen: list[Any] = []
    real = service.execution.optimize

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("warm_start"))
        return real(*args, **kwargs)

    monkeypatch.setattr(service.execution, "optimize", spy)
    assert solve(db, row.run_id) == "succeeded"
    # the stored active plan, read back, is what the solver started from
    assert len(seen) == 1 and seen[0] is not None
    with db.read() as s:
        assert len(seen[0].assignments) == len(plans.load_plan(s, before).assignments)
        # the outcome shows before any scheduler has recorded it
        view = nightly.history(s, offset=0, limit=5)[0][0]
        assert view.state == "succeeded" and view.activated

    assert nightly.settle_nights(db, settings) == [row.id]
    assert nightly.settle_nights(db, settings) == []  # once
    done = night_row(db, row.id)
    with db.read() as s:
        run = s.get(Run, row.run_id)
        assert run is not None and run.plan_id is not None
        made = s.get(Plan, run.plan_id)
        assert made is not None
    assert done.state == "succeeded" and done.plan_id == made.id
    assert (
        f"plan {made.id} ({made.status}" in done.reason
        and f"replacing plan {before}" in done.reason
    )
    assert done.finished_at is not None
    assert active_id(db) == made.id
    # the warm start was loaded and handed to HiGHS; the weight reached the optimizer
    assert made.summary["warm_start"] == {"plan_id": before, "loaded": True}
    assert made.summary["solver"]["mip_start_accepted"] is True
    assert made.summary["policy"]["plan_stability_weight"] == 2.5


def test_the_stability_weight_decides_whether_a_running_job_moves(db: Database) -> None:
    """In the demo, `running-1` runs on the expensive eastern site: moving it west saves
    energy but loses an hour of 16 devices and moves 800 GB. Free moves (weight 0) move
    it; at weight 1 the move does not pay."""
    first_plan(db)
    settings = settings_of(db)
    moved: dict[float, tuple[int, set[str]]] = {}
    for night, weight in ((dt.date(2025, 7, 16), 0.0), (dt.date(2025, 7, 17), 1.0)):
        set_schedule(db, stability_weight=weight)
        runner = Collect()
        row = nightly.run_night(db, settings, runner, night=night)
        assert row is not None and row.run_id is not None
        assert solve(db, row.run_id) == "succeeded"
        with db.read() as s:
            run = s.get(Run, row.run_id)
            assert run is not None and run.plan_id is not None
            p = s.get(Plan, run.plan_id)
            assert p is not None
            sites = {
                r["site_id"]
                for r in plans.rows(
                    s,
                    p.id,
                    "assignments",
                    site_id=None,
                    workload_id="running-1",
                    offset=0,
                    limit=1000,
                )[0]
            }
            moved[weight] = (int(p.summary["moved_jobs"]), sites)
    assert moved[0.0] == (1, {"nx-west"})
    assert moved[1.0] == (0, {"sh-east"})


def test_one_night_runs_once_however_often_and_late_it_fires(db: Database) -> None:
    settings = settings_of(db)
    runner = Collect()
    first = nightly.run_night(db, settings, runner, now=FIRE_0716 + dt.timedelta(seconds=1))
    assert first is not None
    # the same night again: a second scheduler, a retry, the job firing late
    for later in (dt.timedelta(seconds=2), dt.timedelta(minutes=40)):
        assert nightly.run_night(db, settings, runner, now=FIRE_0716 + later) is None
    assert counts(db)[:2] == (1, 1)
    assert len(runner.got) == 1
    # the next night is a new one
    nxt = nightly.run_night(db, settings, runner, now=FIRE_0716 + dt.timedelta(days=1))
    assert nxt is not None and nxt.night == dt.date(2025, 7, 17)
    assert counts(db)[:2] == (2, 2)


def test_a_cron_firing_twice_in_the_dst_fall_back_hour_makes_one_night(db: Database) -> None:
    set_schedule(db, cron="30 2 * * *", timezone=BERLIN)
    settings = settings_of(db)
    fires = fire_times("30 2 * * *", BERLIN, dt.datetime(2025, 10, 25, 12, tzinfo=UTC), 2)
    results = [nightly.run_night(db, settings, Collect(), now=t) for t in fires]
    assert results[0] is not None and results[0].night == dt.date(2025, 10, 26)
    assert results[1] is None
    assert counts(db)[:2] == (1, 1)


def test_two_threads_racing_for_a_night_make_one_run_and_one_plan(db: Database) -> None:
    settings = settings_of(db)
    n = 4
    barrier = threading.Barrier(n)
    results: list[NightlyRun | None] = []
    errors: list[BaseException] = []
    runner = Collect()

    def race(i: int) -> None:
        try:
            barrier.wait(10)
            results.append(
                nightly.run_night(db, settings, runner, now=FIRE_0716, actor=f"thread-{i}")
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    winners = [r for r in results if r is not None]
    assert len(results) == n and len(winners) == 1
    assert counts(db) == (1, 1, 0)
    assert runner.got == [(winners[0].run_id, NIGHTLY_PRIORITY)]
    assert solve(db, winners[0].run_id) == "succeeded"
    assert counts(db) == (1, 1, 1)


def _race_in_a_process(url: str, barrier: Any, out: Any, name: str) -> None:
    """Child process: one scheduler's job for the night of 16 July."""
    db = Database(url)
    try:
        barrier.wait(60)
        row = nightly.run_night(db, make_settings(url), Collect(), now=FIRE_0716, actor=name)
        out.put((name, row.run_id if row is not None else None))
    except BaseException as exc:
        out.put((name, f"error: {exc!r}"))
    finally:
        db.dispose()


@pytest.mark.slow  # two spawned interpreters
def test_two_scheduler_processes_racing_for_a_night_make_one_run_and_one_plan(
    db: Database,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_race_in_a_process, args=(db.url, barrier, out, f"proc-{i}"))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert not [v for v in got.values() if isinstance(v, str)], got
    run_ids = [v for v in got.values() if v is not None]
    assert len(run_ids) == 1, got
    assert counts(db) == (1, 1, 0)
    assert solve(db, run_ids[0]) == "succeeded"
    assert counts(db) == (1, 1, 1)


# ----------------------------------------------------------------------------- failures
def _add_invalid_version(db: Database) -> int:
    """A newer version the optimizer rejects (negative gang), stored past validation the
    way a version made under older rules would be."""
    with db.write() as s:
        base = scenarios.current_version(s)
        tables = dict(scenarios.raw_tables(s, base))
        jobs = tables["jobs"].copy()
        jobs.loc[jobs["job_id"] == "finetune-1", "gang"] = "-4"
        tables["jobs"] = jobs
        digests = {}
        for name, df in tables.items():
            digest, gz, _ = scenarios.encode_table(df)
            if not scenarios_repo.existing_blobs(s, [digest]):
                scenarios_repo.add_blob(
                    s, sha256=digest, content=gz, rows=len(df), size_bytes=len(gz)
                )
                s.flush()
            digests[name] = digest
        v = scenarios_repo.add_version(
            s,
            parent_id=base.id,
            created_by="test",
            note="invalid on purpose",
            fingerprint="0" * 16,
            manifest=dict(base.manifest),
            tables=digests,
            sizes=dict(base.sizes),
        )
        return v.id


def test_a_night_on_an_invalid_scenario_fails_and_keeps_the_active_plan(db: Database) -> None:
    before = first_plan(db)
    bad = _add_invalid_version(db)
    row = nightly.run_night(db, settings_of(db), Collect(), now=FIRE_0716)
    assert row is not None and row.state == "failed" and row.run_id is None
    assert f"scenario version {bad} is invalid" in row.reason
    assert "gang" in row.reason and f"plan {before} stays active" in row.reason
    assert counts(db) == (1, 0, 0)
    assert active_id(db) == before
    # the night is spent: a retry does not run it again
    assert nightly.run_night(db, settings_of(db), Collect(), now=FIRE_0716) is None
    with db.read() as s:
        view = nightly.history(s, offset=0, limit=5)[0][0]
        assert view.state == "failed" and view.reason == row.reason


@pytest.mark.parametrize("fault", ["solver crash", "plan fails the check"])
def test_a_failed_solve_keeps_the_active_plan_and_records_why(
    db: Database, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    before = first_plan(db)
    if fault == "solver crash":

        def boom(*a: Any, **k: Any) -> Any:
            raise RuntimeError("HiGHS crashed")

        monkeypatch.setattr(service.execution, "optimize", boom)
        expected = "RuntimeError: HiGHS crashed"
    else:
        bad = Violation("capacity", "devices", "more devices than installed", site_id="sh-east")
        monkeypatch.setattr(
            optimizer.validate,
            "validate_plan",
            lambda sc, plan: ValidationReport([bad], {"capacity": 1}, {}),
        )
        expected = "independent check"
    settings = settings_of(db)
    row = nightly.run_night(db, settings, Collect(), now=FIRE_0716)
    assert row is not None and row.run_id is not None
    assert solve(db, row.run_id) == "failed"
    assert nightly.settle_nights(db, settings) == [row.id]
    done = night_row(db, row.id)
    assert done.state == "failed" and done.plan_id is None
    assert expected in done.reason and f"plan {before} stays active" in done.reason
    assert active_id(db) == before


def test_a_runner_that_refuses_the_run_fails_the_night_at_once(db: Database) -> None:
    before = first_plan(db)
    row = nightly.run_night(db, settings_of(db), Refuses(), now=FIRE_0716)
    assert row is not None and row.state == "failed"
    assert "the broker is unreachable" in row.reason
    assert night_row(db, row.id).state == "failed"
    with db.read() as s:
        run = s.get(Run, row.run_id)
        assert run is not None and run.state == "failed"
        assert run.error is not None and "refused" in run.error
    assert active_id(db) == before


def test_a_greedy_fallback_night_does_not_replace_a_solved_plan(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = first_plan(db)

    def no_time(**kw: Any) -> SolverSettings:
        # HiGHS gets no time and no start: it finds nothing, the greedy plan stands in
        return SolverSettings(**{**kw, "time_limit_s": 1e-6, "mip_start": False})

    monkeypatch.setattr(service.execution, "SolverSettings", no_time)
    settings = settings_of(db)
    row = nightly.run_night(db, settings, Collect(), now=FIRE_0716)
    assert row is not None and row.run_id is not None
    assert solve(db, row.run_id) == "succeeded"
    nightly.settle_nights(db, settings)
    done = night_row(db, row.id)
    with db.read() as s:
        stored = s.get(Plan, done.plan_id)
        assert stored is not None and stored.status == "fallback"
    assert done.state == "failed"
    assert f"greedy fallback plan {stored.id} was stored, not activated" in done.reason
    assert active_id(db) == before


class _Seen(logging.Handler):
    """Sets `event` when a log record's message contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_a_full_queue_is_waited_for_then_the_night_fails(db: Database) -> None:
    settings = settings_of(db, queue_limit=1, retry_after_s=1, nightly_queue_wait_s=120)
    with db.write() as s:
        blocker, _ = runs.submit_run(
            s, RunRequest(note="blocks the queue"), settings=settings, runner=Collect(), actor="t"
        )
        blocker_id = blocker.id
    waits = _Seen("retrying in")  # the night found the queue full and waits for it

    def free_the_queue_once_the_night_waits() -> None:
        if waits.event.wait(120):
            with db.write() as s:
                runs.cancel_run(s, blocker_id)

    t = threading.Thread(target=free_the_queue_once_the_night_waits)
    nightly.log.addHandler(waits)
    try:
        t.start()
        row = nightly.run_night(db, settings, Collect(), now=FIRE_0716)
        waited = waits.event.is_set()
    finally:
        nightly.log.removeHandler(waits)
        waits.event.set()  # let the thread end whatever happened
        t.join()
    assert waited, "the night should have found the queue full"
    assert row is not None and row.state == "running" and row.run_id is not None

    # and with the queue full for longer than it may wait (the night's run and another):
    # a failed night
    impatient = settings_of(db, queue_limit=2, retry_after_s=1, nightly_queue_wait_s=0)
    with db.write() as s:
        runs.submit_run(
            s, RunRequest(note="blocks again"), settings=impatient, runner=Collect(), actor="t"
        )
    failed = nightly.run_night(db, impatient, Collect(), night=dt.date(2025, 7, 17))
    assert failed is not None and failed.state == "failed" and failed.run_id is None
    assert "the run queue stayed full" in failed.reason


def test_a_disabled_schedule_runs_no_night(db: Database) -> None:
    set_schedule(db, enabled=False)
    assert nightly.run_night(db, settings_of(db), Collect(), now=FIRE_0716) is None
    assert counts(db) == (0, 0, 0)


def test_a_nightly_run_that_went_silent_is_interrupted_and_its_night_closed(
    db: Database,
) -> None:
    from service.repo import runs as runs_repo

    before = first_plan(db)
    settings = settings_of(db)
    row = nightly.run_night(db, settings, Collect(), now=FIRE_0716)
    assert row is not None and row.run_id is not None
    long_ago = utcnow() - dt.timedelta(hours=1)
    with db.write() as s:
        assert runs_repo.claim(s, row.run_id, worker="dead-host:1", now=long_ago)
    # a heartbeat a minute old is a slow solver, not a dead one
    with db.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == row.run_id)
            .values(heartbeat_at=utcnow() - dt.timedelta(minutes=1))
        )
    assert nightly.settle_nights(db, settings) == []
    assert night_row(db, row.id).state == "running"
    with db.write() as s:
        s.execute(update(Run).where(Run.id == row.run_id).values(heartbeat_at=long_ago))
    assert nightly.settle_nights(db, settings) == [row.id]
    done = night_row(db, row.id)
    assert done.state == "failed" and "no heartbeat" in done.reason
    assert f"plan {before} stays active" in done.reason
    with db.read() as s:
        run = s.get(Run, row.run_id)
        assert run is not None and run.state == "interrupted"


def test_run_now_has_its_own_key_and_one_at_a_time(db: Database) -> None:
    settings = settings_of(db)
    with db.write() as s:
        manual = nightly.run_now(s, settings=settings, runner=Collect(), actor="admin")
    assert manual.night is None and manual.trigger == "manual"
    # it does not block tonight
    tonight = nightly.run_night(db, settings, Collect(), now=FIRE_0716)
    assert tonight is not None and tonight.night == dt.date(2025, 7, 16)
    # but a second run-now while a nightly run is queued is refused
    with pytest.raises(Conflict, match="still queued"), db.write() as s:
        nightly.run_now(s, settings=settings, runner=Collect(), actor="admin")
    assert counts(db)[:2] == (2, 2)


# ----------------------------------------------------------------------------- APScheduler
def job_state(sched: NightlyScheduler) -> tuple[dict[str, Any], dt.datetime | None]:
    job = sched._aps.get_job(JOB_ID, jobstore="default")
    assert job is not None
    return dict(job.kwargs), job.next_run_time


def test_the_scheduler_follows_the_schedule_table(db: Database) -> None:
    settings = settings_of(db, scheduler_poll_s=0.2)
    sched = NightlyScheduler(settings, db, Collect(), scheduler_id="test-scheduler")
    sched.start()
    try:
        kwargs, nxt = job_state(sched)
        assert kwargs == {"cron": "30 1 * * *", "timezone": SHANGHAI}
        assert nxt == nightly.next_fire_time("30 1 * * *", SHANGHAI, utcnow())
        wait_until(lambda: nightly_schedule(db).scheduler_id == "test-scheduler", 10, "a poll")
        # PUT /schedule's change reaches the job within a poll
        set_schedule(db, cron="0 3 * * 0", timezone=BERLIN)
        wait_until(lambda: job_state(sched)[0]["timezone"] == BERLIN, 10, "the reschedule")
        nxt = job_state(sched)[1]
        assert (
            nxt is not None
            and nxt.astimezone(nightly.check_timezone(BERLIN)).strftime("%a %H:%M") == "Sun 03:00"
        )
        set_schedule(db, enabled=False)
        wait_until(lambda: job_state(sched)[1] is None, 10, "the pause")
        set_schedule(db, enabled=True)
        wait_until(lambda: job_state(sched)[1] is not None, 10, "the resume")
        with pytest.raises(RuntimeError, match="already runs"):
            NightlyScheduler(settings, db, Collect()).start()
    finally:
        sched.shutdown()


def test_the_scheduler_starts_on_sqlite_while_another_connection_writes(tmp_path: Path) -> None:
    """APScheduler's job store reads (is its table there?) and then writes (creates it) in one
    transaction. Begun DEFERRED, a write committed by another connection in between fails it
    at once with "database is locked" (the server's own solve progress did, in CI); begun
    IMMEDIATE it waits its turn."""
    url = fresh_database("sqlite", tmp_path, "locked")
    db = Database(url)
    prepare_database(db, make_settings(url))
    holding, done = threading.Event(), threading.Event()

    def other_writer() -> None:
        con = sqlite3.connect(tmp_path / "greenopt-locked.db", isolation_level=None, timeout=30)
        con.execute("BEGIN IMMEDIATE")
        con.execute("CREATE TABLE other_writer (x INTEGER)")
        holding.set()
        time.sleep(1.0)  # the scheduler's read happens now, its write waits for this commit
        con.execute("COMMIT")
        con.close()
        done.set()

    sched = NightlyScheduler(settings_of(db), db, Collect())
    threading.Thread(target=other_writer, daemon=True).start()
    assert holding.wait(10)
    try:
        # the step of start() that failed: APScheduler opening its job store
        sched._aps.start(paused=True)
        assert done.is_set()  # it waited for the other writer instead of failing
        assert inspect(db.engine).has_table(SCHEDULER_JOBS_TABLE)
    finally:
        sched._aps.shutdown()
        db.dispose()


def test_the_service_tries_again_when_its_scheduler_does_not_start(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.app, "SCHEDULER_START_RETRY_S", 0.01)
    attempts: list[int] = []

    def start() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("BEGIN", {}, Exception("database is locked"))

    with caplog.at_level(logging.ERROR, logger="greenopt"):
        service.app._after_first_plan(None, None, threading.Event(), start)  # type: ignore[arg-type]
    assert len(attempts) == 3
    assert caplog.text.count("did not start; trying again") == 2


def nightly_schedule(db: Database) -> nightly.ScheduleView:
    with db.read() as s:
        return nightly.get_schedule(s, settings_of(db))


def _persist_a_past_fire(db: Database, settings: Settings, ago: dt.timedelta) -> dt.datetime:
    """Leave the persisted job as a scheduler that stopped before its fire `ago` would."""
    fired = (utcnow() - ago).replace(second=0, microsecond=0)
    local = fired.astimezone(nightly.check_timezone(SHANGHAI))
    set_schedule(db, cron=f"{local.minute} {local.hour} * * *")
    first = NightlyScheduler(settings, db, Collect())
    first.start()
    first.shutdown()  # the nightly job is persisted, its next fire tomorrow
    # the past is written through a scheduler that never processes a job (started paused):
    # pausing a running one races its loop, which could fire the night it was handed
    writer = NightlyScheduler(settings, db, Collect())
    writer._aps.start(paused=True)
    try:
        writer._aps.modify_job(JOB_ID, jobstore="default", next_run_time=fired)
    finally:
        writer._aps.remove_jobstore("default")  # left in the database as it is
        writer._aps.shutdown(wait=False)
    return fired


def test_a_night_missed_while_no_scheduler_ran_is_caught_up_when_one_starts(
    db: Database,
) -> None:
    settings = settings_of(db, scheduler_poll_s=0.2, scheduler_misfire_grace_s=3600)
    fired = _persist_a_past_fire(db, settings, dt.timedelta(minutes=10))
    runner = Collect()
    second = NightlyScheduler(settings, db, runner, scheduler_id="late-scheduler")
    second.start()
    try:
        wait_until(lambda: counts(db)[0] == 1, 20, "the caught-up night")
        with db.read() as s:
            row = s.scalar(select(NightlyRun))
            assert row is not None
        assert row.night == nightly.night_of(fired, SHANGHAI) and row.scheduled_for == fired
        assert row.created_by == "late-scheduler" and row.state == "running"
        assert runner.got == [(row.run_id, NIGHTLY_PRIORITY)]
    finally:
        second.shutdown()


def test_a_night_missed_beyond_the_grace_time_is_recorded_as_missed(db: Database) -> None:
    first_plan(db)
    settings = settings_of(db, scheduler_poll_s=0.2, scheduler_misfire_grace_s=600)
    fired = _persist_a_past_fire(db, settings, dt.timedelta(hours=2))
    second = NightlyScheduler(settings, db, Collect())
    second.start()
    try:
        wait_until(lambda: counts(db)[0] == 1, 20, "the missed night's record")
    finally:
        second.shutdown()
    with db.read() as s:
        row = s.scalar(select(NightlyRun))
        assert row is not None
    assert row.state == "failed" and row.run_id is None
    assert row.night == nightly.night_of(fired, SHANGHAI)
    assert (
        row.reason.startswith("missed: no scheduler was running") and "stays active" in row.reason
    )
    assert counts(db)[1] == 0


# ----------------------------------------------------------------------------- HTTP
def test_get_schedule_shows_the_defaults_in_the_sites_zone(server: LiveServer) -> None:
    with server.client("viewer") as v:
        r = v.get("/schedule")
    assert r.status_code == 200, r.text
    body = r.json()
    if body["updated_at"] is None:  # untouched by the other tests of this module yet
        assert (body["cron"], body["timezone"]) == ("30 1 * * *", SHANGHAI)
        assert body["enabled"] is True and body["stability_weight"] == 1.0
        assert body["time_limit_s"] == 600.0
    nxt = dt.datetime.fromisoformat(body["next_run_at"])
    expected = nightly.next_fire_time(body["cron"], body["timezone"], utcnow())
    assert nxt == expected
    # no scheduler runs beside this test server, and the schedule says so
    assert body["scheduler_seen_at"] is None
    with server.client(None) as anon:
        assert anon.get("/schedule").status_code == 401


def test_put_schedule_validates_every_field_and_needs_admin(server: LiveServer) -> None:
    with server.client("planner") as p:
        r = p.put("/schedule", json={"cron": "0 2 * * *"})
        assert r.status_code == 403, r.text
    with server.client("admin") as a:
        for body, column in [
            ({"cron": "0 25 * * *"}, "cron"),
            ({"cron": "every night"}, "cron"),
            ({"cron": "0 0 30 2 *"}, "cron"),
            ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
            ({"timezone": "+08:00"}, "timezone"),
            ({"time_limit_s": 0}, "time_limit_s"),
            ({"time_limit_s": 1e9}, "time_limit_s"),
            ({"cron": None}, "cron"),
            ({"stability_weight": -1}, "stability_weight"),
            ({"bogus": 1}, "bogus"),
        ]:
            r = a.put("/schedule", json=body)
            assert r.status_code == 422, (body, r.text)
            err = r.json()
            assert err["error"] == "invalid_input"
            assert [p["column"] for p in err["problems"]] == [column], (body, err)
        before = a.get("/schedule").json()
        r = a.put(
            "/schedule",
            json={"cron": " 0  2 * * 1-5 ", "timezone": BERLIN, "stability_weight": None},
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["cron"], got["timezone"], got["stability_weight"]) == (
            "0 2 * * 1-5",
            BERLIN,
            None,
        )
        assert got["time_limit_s"] == before["time_limit_s"]  # left out: unchanged
        assert got["updated_by"].startswith("key:test-admin")
        nxt = dt.datetime.fromisoformat(got["next_run_at"])
        local = nxt.astimezone(nightly.check_timezone(BERLIN))
        assert local.strftime("%H:%M") == "02:00" and local.weekday() < 5
        assert a.get("/schedule").json() == got
        r = a.put("/schedule", json={"enabled": False})
        assert r.json()["next_run_at"] is None
        r = a.put(
            "/schedule",
            json={
                "cron": "30 1 * * *",
                "timezone": SHANGHAI,
                "enabled": True,
                "stability_weight": 1.0,
            },
        )
        assert r.status_code == 200, r.text


def test_run_now_replaces_the_active_plan_and_shows_in_the_history(server: LiveServer) -> None:
    with server.client("planner") as p:
        assert p.post("/schedule/run-now").status_code == 403
    with server.client("admin") as a:
        before = a.get("/plans/active")
        previous = before.json()["id"] if before.status_code == 200 else None
        r = a.post("/schedule/run-now", json={"note": "after the wind alert"})
        assert r.status_code == 202, r.text
        night = r.json()
        assert night["trigger"] == "manual" and night["night"] is None
        assert night["state"] == "running" and night["previous_plan_id"] == previous
        assert r.headers["Location"] == f"/runs/{night['run_id']}"
        run = wait_run(a, night["run_id"])
        assert run["state"] == "succeeded", run
        assert run["kind"] == "nightly" and run["warm_start_plan_id"] == previous
        assert run["overrides"] == {"plan_stability_weight": 1.0, "robust_green_quantile": 0.1}
        assert "after the wind alert" in run["note"]
        assert a.get("/plans/active").json()["id"] == run["plan_id"]
        item = a.get("/schedule/history", params={"limit": 1}).json()["items"][0]
        assert item["id"] == night["id"] and item["state"] == "succeeded"
        assert item["activated"] is True and item["plan_id"] == run["plan_id"]
        assert item["duration_s"] is not None and item["started_at"] is not None


def test_history_pages_newest_first(server: LiveServer) -> None:
    db = Database(server.settings.database_url)
    try:
        for day in range(1, 6):
            nightly.record_failure(
                db,
                night=dt.date(2024, 1, day),
                scheduled_for=dt.datetime(2024, 1, day, tzinfo=UTC),
                reason=f"test night {day}",
                actor="test",
            )
    finally:
        db.dispose()
    with server.client("viewer") as v:
        whole = v.get("/schedule/history", params={"limit": 500}).json()
        total = whole["total"]
        assert total == len(whole["items"]) >= 5
        ids = [i["id"] for i in whole["items"]]
        assert ids == sorted(ids, reverse=True)
        page = v.get("/schedule/history", params={"offset": 1, "limit": 2}).json()
        assert (page["total"], page["offset"], page["limit"]) == (total, 1, 2)
        assert [i["id"] for i in page["items"]] == ids[1:3]
        tests = [i for i in whole["items"] if i["reason"].startswith("test night")]
        assert [i["night"] for i in tests[:5]] == [f"2024-01-0{d}" for d in (5, 4, 3, 2, 1)]
        assert all(i["state"] == "failed" and i["run_id"] is None for i in tests)
        assert v.get("/schedule/history", params={"limit": 0}).status_code == 422
        assert v.get("/schedule/history", params={"offset": -1}).status_code == 422
    with server.client(None) as anon:
        assert anon.get("/schedule/history").status_code == 401
