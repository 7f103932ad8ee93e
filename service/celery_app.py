"""The Celery side of the distributed runner: the app (Redis broker, no result backend), the
one task every kind of run goes through (`greenopt.solve(run_id)`), and `run_worker`, what
`greenopt worker` starts.

The database is the record of every run; the broker only says "run N is waiting". A task
carries nothing but the run id, so a message delivered twice, or late, or to a worker of
another host does no harm: `execute_run` claims the run atomically and a run that is not
`queued` any more is skipped. Tasks are acknowledged late (after the solve) and one at a
time, so a worker that dies mid-solve loses no message that Redis still holds; what Redis
itself loses (it keeps nothing on disk) the API's reconciler hands over again from the
database (`service.celery_runner`). docs/scale-out.md gives the reasons.

`celery -A service.celery_app inspect ping` (the worker's health check) finds the app
built from the environment as this module's `app`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import warnings
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import TimeLimitExceeded
from kombu import Exchange, Queue
from sqlalchemy.exc import DBAPIError

from service.db import Database
from service.models import utcnow
from service.repo import runs as runs_repo
from service.settings import Settings

log = logging.getLogger("greenopt.celery")

QUEUE_HIGH = "solve-high"
"""Runs a person or the schedule waits for: POST /runs, what-ifs, the nightly run."""
QUEUE_BULK = "solve-bulk"
"""Sweep points: many at once, nobody waits for one in particular."""
QUEUES = (QUEUE_HIGH, QUEUE_BULK)  # a worker consumes them in this order
BULK_KINDS = frozenset({"sweep_point"})
SOLVE_TASK = "greenopt.solve"

# Redis forgets unacknowledged messages only after this long past the hard limit: a message
# must not be handed to a second worker while the first is still within its limits (that
# would be harmless, the claim is atomic, but it would cost a worker a useless start).
VISIBILITY_MARGIN_S = 600.0
DB_RETRY_S = 5.0  # a task that found the database away asks again this much later
BROKER_CONNECT_TIMEOUT_S = 5.0


def queue_for(kind: str) -> str:
    """The broker queue of a run of this kind."""
    return QUEUE_BULK if kind in BULK_KINDS else QUEUE_HIGH


class GreenoptCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries the service's settings (read by the task in the worker)."""

    greenopt: Settings


class SolveTask(Task):  # type: ignore[misc]
    """Records a hard time limit in the run: Celery kills the solving process and calls this
    in the worker's main process, where nothing else would tell the database."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not isinstance(exc, TimeLimitExceeded) or not args:
            return
        run_id = int(args[0])
        settings: Settings = self.app.greenopt
        error = (
            f"the solve passed the worker's hard time limit of {settings.task_time_limit_s:g} s "
            "and was stopped"
        )
        try:
            with _main_process_db(settings.database_url).write() as s:
                # only while it is still running (a plan stored in the last instant stands)
                done = runs_repo.finish(s, run_id, state="failed", now=utcnow(), error=error)
        except Exception:
            log.exception("run %s: could not record the hard time limit", run_id)
            return
        if done:
            log.error("run %s failed: %s", run_id, error)


_main_db: Database | None = None
_main_db_lock = threading.Lock()


def _main_process_db(url: str) -> Database:
    """The worker main process's own engine (used only for hard time limits)."""
    global _main_db
    with _main_db_lock:
        if _main_db is None:
            _main_db = Database(url)
        return _main_db


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _forget_main_process_db(**_: Any) -> None:
    """A forked solver process must not use (nor close) the main process's connections."""
    if _main_db is not None:
        _main_db.engine.dispose(close=False)


def _solve(task: Task, run_id: int) -> str:
    """Carry out run `run_id` (any kind). A run left `running` by a worker whose heartbeat
    went stale is taken over (or failed after `max_attempts`); one running on a live worker,
    or already finished, is left alone."""
    from service.execution import database, execute_run

    settings: Settings = task.app.greenopt
    try:
        now = utcnow()
        with database(settings.database_url).write() as s:
            taken = runs_repo.requeue_stale(
                s,
                run_id,
                stale_before=now - dt.timedelta(seconds=settings.heartbeat_timeout_s),
                max_attempts=settings.max_attempts,
                now=now,
            )
        if taken is not None:
            log.warning("run %s: its worker was lost; now %s", run_id, taken)
            if taken != "queued":
                return taken
        return execute_run(
            run_id,
            settings.database_url,
            monitor_interval_s=settings.progress_interval_s,
            time_limit_cap_s=settings.task_soft_time_limit_s,
        )
    except DBAPIError as exc:
        # the database is away (execute_run records every other failure in the run): the
        # message is all that says the run waits, so keep it, and ask again shortly
        log.warning("run %s: database unavailable, retrying in %s s: %s", run_id, DB_RETRY_S, exc)
        raise task.retry(exc=exc, countdown=DB_RETRY_S, max_retries=None) from None


def create_celery(settings: Settings) -> GreenoptCelery:
    """The Celery app for these settings: the API publishes with it, workers run it."""
    app = GreenoptCelery("greenopt", broker=settings.broker_url, set_as_current=False)
    app.greenopt = settings
    # the default exchange ("") routes by queue name alone: nothing is looked up in Redis,
    # so publishing still reaches the queue after Redis restarted empty (a named exchange's
    # bindings live in Redis and would be gone until some worker declared them again)
    direct = Exchange("", type="direct")
    app.conf.update(
        task_queues=[Queue(q, direct, routing_key=q) for q in QUEUES],
        task_default_queue=QUEUE_HIGH,
        task_create_missing_queues=False,
        task_serializer="json",
        accept_content=["json"],
        # results live in the database; a result backend would be a second, weaker record
        task_ignore_result=True,
        result_backend=None,
        task_store_errors_even_if_ignored=False,
        # exactly once where it matters: acknowledge after the solve, take one message at a
        # time, and give a message back when the solving process dies
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # the hard limit kills the solving process (recorded by SolveTask.on_failure); the
        # soft limit is the solver's own time limit (time_limit_cap_s), which ends with the
        # best plan and its gap; Celery's soft limit would raise anywhere, even mid-store
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=None,
        broker_transport_options={
            # high before bulk, always: the worker asks Redis for the queues in this order
            "queue_order_strategy": "priority",
            # one Redis list per queue; the queue, not a priority step, is the class
            "priority_steps": [0],
            "visibility_timeout": int(settings.task_time_limit_s + VISIBILITY_MARGIN_S),
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        },
        # a request must not wait on a broker that is away: one quick retry, then the run
        # stays undelivered in the database and the reconciler hands it over later
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0.0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        # workers outlive a Redis restart: reconnect for as long as it takes, and keep
        # solving meanwhile (the run's state is in the database, not in the message)
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.task(name=SOLVE_TASK, bind=True, base=SolveTask, acks_late=True)(_solve)
    return app


def run_worker(
    settings: Settings, *, queues: tuple[str, ...] = QUEUES, hostname: str | None = None
) -> None:
    """`greenopt worker`: a Celery worker (prefork pool of `worker_concurrency` solver
    processes) consuming `queues` in order. Migrates the database first, as the API does
    (serialised by the same start-up lock), so workers may start before the API."""
    from service.logs import configure_logging

    configure_logging(settings.log_level, json_lines=settings.log_json)
    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; the queues are {list(QUEUES)}")
    if settings.task_time_limit_s <= settings.task_soft_time_limit_s:
        log.warning(
            "task_time_limit_s (%s) <= task_soft_time_limit_s (%s): a solve that uses its "
            "whole time limit is killed before it can store its plan",
            settings.task_time_limit_s,
            settings.task_soft_time_limit_s,
        )
    db = Database(settings.database_url)
    try:
        with db.startup_lock():
            db.upgrade()
    finally:
        db.dispose()  # before forking: the solver processes open their own connections
    # paid once here, before the pool forks, so every solver process starts warm
    import optimizer.planner  # noqa: F401
    import service.execution  # noqa: F401

    # solving on through a broker outage is deliberate (create_celery); Celery warns at every
    # reconnection that its default changes in 6.0, which this setting already overrides
    warnings.filterwarnings(
        "ignore", message=r"(?s).*worker_cancel_long_running_tasks_on_connection_loss"
    )
    app = create_celery(settings)
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={settings.worker_concurrency}",
        f"--queues={','.join(queues)}",
        f"--loglevel={settings.log_level.upper()}",
        # mingle and gossip exchange state between workers at start; we keep none there
        "--without-mingle",
        "--without-gossip",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    log.info(
        "worker starting",
        extra={"queues": list(queues), "concurrency": settings.worker_concurrency},
    )
    app.worker_main(argv)


def __getattr__(name: str) -> Any:
    # `celery -A service.celery_app ...` looks for `app`; build it from the environment
    # only when asked, so importing this module has no side effects
    if name == "app":
        return create_celery(Settings())
    raise AttributeError(name)
