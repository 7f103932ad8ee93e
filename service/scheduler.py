"""The nightly scheduler: APScheduler 3 firing `service.nightly.run_night` at the schedule's
cron, in the schedule's timezone.

It runs as its own process (`greenopt scheduler`) or inside a single-worker API
(`greenopt serve --scheduler`): never in an API with several workers, each of which would
fire every night (the night's unique key would let only one of them run it, but the others
would still race and log). Its job lives in APScheduler's SQLAlchemyJobStore on the
service's database, so a night missed while no scheduler ran still fires when one starts
within `scheduler_misfire_grace_s`; later than that it is recorded as missed.

The `schedule` table is the truth: every `scheduler_poll_s` the scheduler re-reads it and
reschedules, pauses or resumes its job when PUT /schedule changed it, records the outcome
of finished nights, and notes that it is alive (`schedule.scheduler_seen_at`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from service import nightly
from service.db import Database
from service.instances import InstanceHeartbeat
from service.models import SCHEDULER_JOBS_TABLE, utcnow
from service.repo import nightly as repo
from service.runs import Submitter
from service.settings import Settings

log = logging.getLogger("greenopt.scheduler")

JOB_ID = "nightly"
POLL_JOB_ID = "schedule-poll"
POLL_JOB_NAME = "schedule poll"
# the nightly job and the poll; a night waiting on a full queue must not hold up the poll
EXECUTOR_THREADS = 2


class _RoutinePollAtDebug(logging.Filter):
    """APScheduler logs "Running job" and "executed successfully" at INFO for every job: for
    the poll that is two lines every `scheduler_poll_s`. Those become DEBUG; the nightly
    job's stay INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and POLL_JOB_NAME in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_QUIET_POLL = _RoutinePollAtDebug()
_current: NightlyScheduler | None = None
_current_lock = threading.Lock()


def fire_nightly(cron: str, timezone: str) -> None:
    """The persisted job's function. APScheduler stores it by name (module:function) with
    the cron it was scheduled for, so it must stay importable under this name."""
    scheduler = _current
    if scheduler is None:  # a job store shared with a process that stopped its scheduler
        log.error("the nightly job fired with no scheduler running in this process")
        return
    scheduler.fire()


class NightlyScheduler:
    """APScheduler's BackgroundScheduler around the nightly job; one per process.

    `runner` executes the runs this scheduler submits: the API's own runner when embedded,
    a runner of its own in `greenopt scheduler` (where the API's local pool could never see
    them)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        runner: Submitter,
        *,
        scheduler_id: str | None = None,
        heartbeat_file: Path | None = None,
        instance: InstanceHeartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.runner = runner
        self.scheduler_id = scheduler_id or f"scheduler@{socket.gethostname()}:{os.getpid()}"
        self.heartbeat_file = heartbeat_file
        # this process's row in `instances`: it says the process holds a scheduler
        self.instance = instance
        self._stop = threading.Event()
        # held while a poll (or sync) works on APScheduler's jobs; see shutdown()
        self._syncing = threading.RLock()
        self._aps = BackgroundScheduler(
            jobstores={
                # the job store reads, then writes, in one transaction (its table's creation,
                # a fire's next time): on SQLite that needs BEGIN IMMEDIATE, or a write by any
                # other connection in between fails it at once with "database is locked"
                "default": SQLAlchemyJobStore(
                    engine=db.write_engine, tablename=SCHEDULER_JOBS_TABLE
                ),
                # the poll is this process's own business: never persisted, never shared
                "local": MemoryJobStore(),
            },
            executors={"default": ThreadPoolExecutor(max_workers=EXECUTOR_THREADS)},
            job_defaults={
                "coalesce": True,  # a scheduler back after several missed fires runs one
                "max_instances": 1,
                "misfire_grace_time": int(settings.scheduler_misfire_grace_s),
            },
            timezone=dt.UTC,
        )
        self._aps.add_listener(self._on_missed, EVENT_JOB_MISSED)

    # ------------------------------------------------------------------------- life
    def start(self) -> None:
        """Write the schedule row if there is none, re-hand nightly runs left queued, put
        the job in line with the schedule and start firing."""
        global _current
        with _current_lock:
            if _current is not None:
                raise RuntimeError("a nightly scheduler already runs in this process")
            _current = self
        try:
            with self.db.write() as s:
                nightly.ensure_schedule(s, self.settings)
            requeued = nightly.requeue_nightly_runs(self.db, self.runner)
            if requeued:
                log.info("handed queued nightly run(s) %s to the runner", requeued)
            # paused: the job store must be open to read the persisted job before it fires
            self._aps.start(paused=True)
            self.sync()
            logging.getLogger("apscheduler.executors.default").addFilter(_QUIET_POLL)
            self._aps.add_job(
                self.poll,
                "interval",
                seconds=self.settings.scheduler_poll_s,
                id=POLL_JOB_ID,
                name=POLL_JOB_NAME,
                jobstore="local",
                next_run_time=utcnow(),  # settle what a previous process left at once
                misfire_grace_time=None,
            )
            self._aps.resume()
            if self.instance is not None:
                self.instance.holds_scheduler = True
                self.instance.beat()
        except BaseException:
            self._release()
            raise
        log.info(
            "nightly scheduler %s started; next night at %s",
            self.scheduler_id,
            self.next_run_time(),
            extra={"scheduler_id": self.scheduler_id},
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing; a night waiting for room in the queue gives up at once."""
        self._stop.set()
        if self._aps.running:
            # APScheduler 3's shutdown(wait=True) waits for running jobs while holding the
            # lock every job-store call takes: a poll inside sync() would deadlock it. So
            # wait for a poll in progress here; later ones see the stop and do nothing.
            with self._syncing:
                # its loop may also process due jobs once more after shutdown() stopped the
                # executors: a night due at that instant would be marked done without
                # running. So processing stops first and the persisted store is detached
                # (left as it is in the database; its engine, the service's, not disposed)
                self._aps.pause()
                self._aps.remove_jobstore("default")
            self._aps.shutdown(wait=wait)
        self._release()
        log.info("nightly scheduler %s stopped", self.scheduler_id)

    def _release(self) -> None:
        global _current
        if self.instance is not None:
            self.instance.holds_scheduler = False
        with _current_lock:
            if _current is self:
                _current = None

    # ------------------------------------------------------------------------- jobs
    def fire(self) -> None:
        """One night: claim it and submit its run (or stand down if another has it)."""
        try:
            nightly.run_night(
                self.db, self.settings, self.runner, actor=self.scheduler_id, stop=self._stop
            )
        except Exception:
            # the night's row (if any) says what happened; this is for the unexpected
            log.exception("the nightly job failed")

    def poll(self) -> None:
        """Note this scheduler alive, follow schedule changes, record finished nights."""
        with self._syncing:
            if self._stop.is_set():
                return
            try:
                with self.db.write() as s:
                    repo.mark_scheduler_seen(s, scheduler_id=self.scheduler_id, now=utcnow())
                self.sync()
                nightly.settle_nights(self.db, self.settings)
                if self.heartbeat_file is not None:
                    self.heartbeat_file.touch()
            except Exception:  # a database hiccup must not stop the scheduler; next poll retries
                log.exception("schedule poll failed")

    def sync(self) -> nightly.ScheduleView:
        """Put the persisted job in line with the `schedule` row."""
        with self._syncing:
            return self._sync()

    def _sync(self) -> nightly.ScheduleView:
        with self.db.read() as s:
            view = nightly.get_schedule(s, self.settings)
        try:
            trigger = nightly.make_trigger(view.cron, view.timezone)
        except ValueError as exc:  # PUT validates; only a hand-edited row gets here
            log.error(
                "schedule %r in %s is invalid (%s); keeping the job as it was",
                view.cron,
                view.timezone,
                exc,
            )
            return view
        wanted = {"cron": view.cron, "timezone": view.timezone}
        job = self._aps.get_job(JOB_ID, jobstore="default")
        if job is None:
            self._aps.add_job(
                fire_nightly,
                trigger,
                id=JOB_ID,
                name="nightly re-optimisation",
                jobstore="default",
                kwargs=wanted,
                replace_existing=True,
            )
            log.info("nightly job scheduled: %s (%s)", view.cron, view.timezone)
        elif dict(job.kwargs) != wanted:
            # a new cron: the next fire is computed from now (the old one no longer holds)
            self._aps.modify_job(JOB_ID, jobstore="default", kwargs=wanted)
            self._aps.reschedule_job(JOB_ID, jobstore="default", trigger=trigger)
            log.info("nightly job rescheduled: %s (%s)", view.cron, view.timezone)
        elif view.enabled and job.next_run_time is None:
            self._aps.resume_job(JOB_ID, jobstore="default")
            log.info("nightly job resumed")
        # else: unchanged. The persisted next fire time stays, so a night missed while no
        # scheduler ran is caught up (within the misfire grace time)
        if not view.enabled:
            job = self._aps.get_job(JOB_ID, jobstore="default")
            if job is not None and job.next_run_time is not None:
                self._aps.pause_job(JOB_ID, jobstore="default")
                log.info("nightly job paused: the schedule is disabled")
        return view

    def next_run_time(self) -> dt.datetime | None:
        job = self._aps.get_job(JOB_ID, jobstore="default")
        return job.next_run_time if job is not None else None

    def _on_missed(self, event: Any) -> None:
        """A night later than the misfire grace time: record it, so the history shows the
        gap instead of silence."""
        if not isinstance(event, JobExecutionEvent) or event.job_id != JOB_ID:
            return
        try:
            with self.db.read() as s:
                view = nightly.get_schedule(s, self.settings)
            fired = event.scheduled_run_time
            nightly.record_failure(
                self.db,
                night=nightly.night_of(fired, view.timezone),
                scheduled_for=fired,
                reason=f"missed: no scheduler was running at {fired.isoformat()} "
                f"(grace {self.settings.scheduler_misfire_grace_s:g} s)",
                actor=self.scheduler_id,
            )
        except Exception:
            log.exception("could not record the missed night")
