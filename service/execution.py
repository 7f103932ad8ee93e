"""`execute_run(run_id, database_url)`: the one function every runner calls (the local
process pool today, a Celery task later) to carry out a queued run.

It claims the run (queued -> running, exactly once), loads the run's scenario version,
applies its overrides, optimizes, checks the plan with the independent validator and stores
plan + rows + artifacts + the run's final state in one transaction. While HiGHS works, a
monitor thread writes throttled progress and a heartbeat, and looks for a cancel request,
all at most once per interval: the solver never waits on the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from typing import Any

from sqlalchemy.orm import Session

from optimizer import InputValidationError, SolveCancelled, SolverSettings, optimize
from optimizer.plan import Plan as OptPlan
from optimizer.whatif import apply_overrides, parse_overrides
from service import plans, scenarios
from service.db import Database
from service.errors import problem_dicts
from service.models import utcnow
from service.repo import runs as runs_repo

log = logging.getLogger("greenopt.execution")

MAX_VIOLATIONS_KEPT = 100  # a failed check keeps this many violations in the run's error
MAX_TRACEBACK_CHARS = 4000

_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def database(url: str) -> Database:
    """One engine per database URL per process (workers run many runs)."""
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url)
        return db


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Abandoned(Exception):
    """The run stopped being ours while we solved (marked interrupted, or given to another
    worker after our heartbeat went stale): store nothing."""


class _Monitor:
    """Progress, heartbeat and cancel requests of one running run, on its own thread."""

    def __init__(self, db: Database, run_id: int, interval_s: float) -> None:
        self.db, self.run_id, self.interval_s = db, run_id, interval_s
        self.cancel = threading.Event()
        # set when a heartbeat finds the run no longer ours: the solve stops, stores nothing
        self.lost = False
        self._t0 = time.perf_counter()
        self._latest: dict[str, Any] = {"phase": "loading"}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"run-{run_id}-monitor", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def on_event(self, ev: dict[str, Any]) -> None:
        """The optimizer's progress callback. Between phases it may stop the run; inside
        HiGHS' callbacks (events carrying an incumbent) it must not raise, and HiGHS is
        interrupted through `cancel` instead."""
        with self._lock:
            self._latest = {**ev, "run_elapsed_s": round(time.perf_counter() - self._t0, 3)}
        if self.cancel.is_set() and "objective" not in ev and ev.get("phase") != "solve":
            raise SolveCancelled("cancelled on request")

    def latest(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._latest)

    def phase(self, name: str) -> None:
        with self._lock:
            self._latest = {
                **self._latest,
                "phase": name,
                "run_elapsed_s": round(time.perf_counter() - self._t0, 3),
            }

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self._lock:
                    snapshot = dict(self._latest)
                # HiGHS reports only on news (a better incumbent, a log line): keep the
                # run's own clock moving between reports
                snapshot["run_elapsed_s"] = round(time.perf_counter() - self._t0, 3)
                with self.db.write() as s:
                    ours = runs_repo.write_progress(
                        s, self.run_id, snapshot, utcnow(), worker=worker_id()
                    )
                    wanted = runs_repo.cancel_requested(s, self.run_id)
                if not ours:
                    self.lost = True
                if wanted or not ours:
                    self.cancel.set()
            except Exception:  # a missed progress write must never kill the solve
                log.exception("run %s: progress/cancel check failed", self.run_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5 * self.interval_s + 5)


def execute_run(
    run_id: int,
    database_url: str,
    *,
    monitor_interval_s: float = 1.0,
    time_limit_cap_s: float | None = None,
) -> str:
    """Carry out run `run_id`; returns its final state ("skipped" if it was not queued,
    "abandoned" if it was taken from this worker meanwhile). `time_limit_cap_s` lowers the
    run's solver time limit (a Celery worker's soft limit): HiGHS then stops with its best
    plan and gap."""
    db = database(database_url)
    with db.write() as s:
        if not runs_repo.claim(s, run_id, worker=worker_id(), now=utcnow()):
            log.info("run %s is not queued any more; not executed", run_id)
            return "skipped"
    log.info("run %s started", run_id)
    monitor = _Monitor(db, run_id, monitor_interval_s)
    monitor.start()
    try:
        return _solve_check_store(db, run_id, monitor, time_limit_cap_s)
    except SolveCancelled:
        monitor.stop()
        if monitor.lost:
            log.warning("run %s was taken from this worker while it solved; stopped", run_id)
            return "abandoned"
        with db.write() as s:
            runs_repo.finish(
                s,
                run_id,
                state="cancelled",
                now=utcnow(),
                error="cancelled on request",
                progress={**monitor.latest(), "phase": "cancelled"},
                worker=worker_id(),
            )
        log.info("run %s cancelled", run_id)
        return "cancelled"
    except InputValidationError as err:
        monitor.stop()
        _fail(
            db,
            run_id,
            f"{len(err.problems)} problem(s) in the input",
            {"problems": problem_dicts(err)},
        )
        return "failed"
    except _Abandoned:
        monitor.stop()
        log.warning("run %s was taken from this worker while it solved; plan discarded", run_id)
        return "abandoned"
    except Exception as exc:
        monitor.stop()
        log.exception("run %s failed", run_id)
        tb = traceback.format_exc()[-MAX_TRACEBACK_CHARS:]
        _fail(db, run_id, f"{type(exc).__name__}: {exc}", {"traceback": tb})
        return "failed"
    finally:
        monitor.stop()


def _solve_check_store(
    db: Database, run_id: int, monitor: _Monitor, time_limit_cap_s: float | None
) -> str:
    """Load the run's scenario with its overrides, solve, check the plan independently and
    store it; the run's final state."""
    from optimizer.validate import validate_plan  # written alongside; imported when used

    t = time.perf_counter()
    with db.read() as s:
        run = runs_repo.get(s, run_id)
        assert run is not None
        version = scenarios.get_version(s, run.scenario_version_id)
        sc = scenarios.scenario_of(s, version)
        overrides = dict(run.overrides)
        solve = dict(run.settings)
        warm_id = run.warm_start_plan_id
        warm = _warm_start(s, run_id, warm_id)
    # the one application of the overrides on the worker side (the request checked them
    # once); a policy-only change is a `dataclasses.replace`
    sc = apply_overrides(sc, parse_overrides(overrides))
    settings = SolverSettings(
        time_limit_s=min(
            float(solve["time_limit_s"]),
            time_limit_cap_s if time_limit_cap_s is not None else float("inf"),
        ),
        mip_rel_gap=float(solve["mip_rel_gap"]),
        threads=int(solve.get("threads", 1)),
        seed=int(solve.get("seed", 0)),
        finish_by_limit=bool(solve.get("finish_by_limit", False)),  # runs stored before it: off
    )
    plan = optimize(
        sc,
        settings,
        progress=monitor.on_event,
        cancel=monitor.cancel,
        warm_start=warm,
        validate_s=time.perf_counter() - t,
    )
    if warm_id is not None:
        plan.summary["warm_start"] = {"plan_id": warm_id, "loaded": warm is not None}
    monitor.phase("check")
    t = time.perf_counter()
    report = validate_plan(sc, plan)
    plan.summary["timings_s"]["check"] = time.perf_counter() - t
    monitor.stop()
    if not report.ok:
        _fail(
            db,
            run_id,
            f"the plan failed the independent check: {len(report.violations)} violation(s)",
            {"violations": [v.as_dict() for v in report.violations[:MAX_VIOLATIONS_KEPT]]},
        )
        return "failed"
    validation = {"ok": True, "violations": 0, "checked": dict(report.checked)}
    return _store(db, run_id, plan, validation)


def _warm_start(s: Session, run_id: int, plan_id: int | None) -> OptPlan | None:
    """The stored plan a run is warm-started from, or None. A warm start only helps HiGHS
    find a first incumbent, so a plan that cannot be read back means a cold solve, not a
    failed run."""
    if plan_id is None:
        return None
    try:
        return plans.load_plan(s, plan_id)
    except Exception:
        log.warning(
            "run %s: warm-start plan %s unreadable; solving cold", run_id, plan_id, exc_info=True
        )
        return None


def _store(db: Database, run_id: int, plan: Any, validation: dict[str, Any]) -> str:
    with db.write() as s:
        if runs_repo.cancel_requested(s, run_id):
            # a cancel that arrived while the last incumbent was polished still wins: a
            # cancelled run never produces (or activates) a plan
            runs_repo.finish(
                s,
                run_id,
                state="cancelled",
                now=utcnow(),
                error="cancelled on request",
                progress={"phase": "cancelled"},
                worker=worker_id(),
            )
            return "cancelled"
        run = runs_repo.get(s, run_id)
        assert run is not None
        version = scenarios.get_version(s, run.scenario_version_id)
        extra: dict[str, Any] = {"validation": validation}
        if version.feeds:  # a night's window from forecast feeds: which, and the fall backs
            extra["feeds"] = version.feeds
        row = plans.store_plan(s, run=run, plan=plan, version=version, extra_summary=extra)
        activated = False
        # a greedy fallback is better than no plan, but not better than a solved one
        if run.activate_on_success and (
            plan.status != "fallback" or plans.active_plan_id(s) is None
        ):
            plans.activate(
                s, row.id, by=run.created_by or "run", run_id=run_id, reason=f"run {run_id}"
            )
            activated = True
        progress = {
            "phase": "done",
            "status": plan.status,
            "objective": row.objective,
            "bound": row.bound,
            "gap": row.gap,
            "elapsed_s": row.timings.get("total"),
            "activated": activated,
        }
        if not runs_repo.finish(
            s,
            run_id,
            state="succeeded",
            now=utcnow(),
            plan_id=row.id,
            progress=progress,
            worker=worker_id(),
        ):
            raise _Abandoned()
    log.info("run %s succeeded: plan %s (%s, gap %s)", run_id, row.id, plan.status, row.gap)
    return "succeeded"


def _fail(db: Database, run_id: int, error: str, detail: dict[str, Any]) -> None:
    with db.write() as s:
        runs_repo.finish(
            s,
            run_id,
            state="failed",
            now=utcnow(),
            error=error,
            error_detail=detail,
            worker=worker_id(),
        )
    log.warning("run %s failed: %s", run_id, error)
