"""`CeleryRunner`: the `SolveRunner` of the distributed mode (`GREENOPT_RUNNER=celery`).

`submit` publishes the run id to the broker queue of the run's kind (`solve-high` or
`solve-bulk`) and records the hand-over in the run (`heartbeat_at` of a queued run). The
database stays the record: a reconciler thread (in every API process; one at a time does the
work on PostgreSQL) repairs what the broker and the workers cannot:

* a `running` run whose heartbeat is older than `heartbeat_timeout_s` lost its worker: it is
  queued again and re-published (failed after `max_attempts` starts; cancelled if a cancel
  was asked for). Only by heartbeat age: other workers may be solving right now.
* a `queued` run never handed over (the publish failed, or its publisher died after the
  commit) is published; so is every queued run when the broker lost its data (Redis keeps
  nothing on disk: a marker key that has gone missing tells), and, as a last resort, a
  queued run handed over more than `redispatch_after_s` ago.

A run published twice is harmless: the claim in `execute_run` lets one delivery run it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text

from service.celery_app import QUEUES, SOLVE_TASK, create_celery, queue_for
from service.db import Database
from service.models import utcnow
from service.repo import runs as runs_repo
from service.settings import Settings

log = logging.getLogger("greenopt.celery.runner")

# a Redis key that only disappears when Redis lost its data (restart without persistence,
# FLUSHALL): its absence means every message the broker held is gone
BROKER_EPOCH_KEY = "greenopt:broker-epoch"
# arbitrary constant: the PostgreSQL advisory lock one reconciler holds per pass, so API
# replicas do not all re-publish the same runs
RECONCILE_LOCK_ID = 0x7265636F  # "reco"
SUBMIT_GRACE_S = 10.0  # a queued run this young may still be on its way to the broker
RECONCILE_BATCH = 1000  # runs handed over per pass at most
REDIS_TIMEOUT_S = 5.0
# after a failed publish, runs are left to the reconciler for this long instead of each
# paying the broker's timeout again (a sweep submitted while Redis is away answers at once)
BROKER_BACKOFF_S = 2.0


@dataclass
class Reconciled:
    """What one reconciler pass did."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    broker_wiped: bool = False  # this pass found the broker's data lost
    skipped: bool = False  # another process holds the reconciler lock


class CeleryRunner:
    """Publishes runs to Celery workers; recovers lost ones from the database."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.app = create_celery(settings)
        self._redis = redis.Redis.from_url(
            settings.broker_url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_lock = threading.Lock()
        self._broker_down_until = 0.0  # time.monotonic()
        # when this process found the broker's data lost, until every queued run was handed
        # to it again (passes that fail to publish them all leave it set)
        self._wiped_at: dt.datetime | None = None

    # ------------------------------------------------------------------ SolveRunner
    def submit(self, run_id: int, priority: int = 0) -> None:
        """Publish a queued run now. A broker that is away costs the caller a fraction of a
        second, then the run waits in the database for the reconciler."""
        self.publish([run_id])

    def queue_depth(self) -> int:
        """Messages waiting in the broker (all replicas' and the scheduler's); 0 when the
        broker cannot be reached (`greenopt_broker_up` says so)."""
        lengths = self.queue_lengths()
        return sum(lengths.values()) if lengths is not None else 0

    def shutdown(self) -> None:
        """Stop reconciling. Runs being solved go on: they are the workers'."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            self._redis.close()
        self.app.close()

    def start(self) -> tuple[list[int], list[int]]:
        """One reconciler pass now, then one every `reconcile_interval_s` in a thread.
        Returns (runs failed or cancelled for good, runs handed to the broker)."""
        try:
            done = self.reconcile()
        except Exception:  # the database is checked by the API's own start-up
            log.exception("first reconciliation failed; the reconciler will retry")
            done = Reconciled()
        self._thread = threading.Thread(target=self._loop, name="celery-reconciler", daemon=True)
        self._thread.start()
        return done.failed, done.published

    # ------------------------------------------------------------------ publishing
    def publish(self, run_ids: Sequence[int]) -> list[int]:
        """Hand these runs (those still queued) to the broker, each to its kind's queue;
        returns those handed over. Failures are logged, never raised."""
        try:
            with self.db.read() as s:
                todo = runs_repo.dispatch_info(s, run_ids)
        except Exception:
            log.exception("could not read runs %s to hand them over", list(run_ids))
            return []
        return self._publish(todo)

    def _publish(self, todo: Sequence[tuple[int, str, int]]) -> list[int]:
        sent: list[int] = []
        if not todo or time.monotonic() < self._broker_down_until:
            return sent
        try:
            with self._publish_lock, self.app.producer_or_acquire() as producer:
                for run_id, kind, _priority in todo:
                    self.app.send_task(
                        SOLVE_TASK, args=[run_id], queue=queue_for(kind), producer=producer
                    )
                    sent.append(run_id)
        except Exception as exc:
            self._broker_down_until = time.monotonic() + BROKER_BACKOFF_S
            log.warning(
                "broker unavailable: %d run(s) wait in the database for the reconciler (%s)",
                len(todo) - len(sent),
                exc,
            )
        if sent:
            try:
                with self.db.write() as s:
                    runs_repo.mark_dispatched(s, sent, utcnow())
            except Exception:  # they look undelivered and get a harmless second message
                log.exception("could not record the hand-over of runs %s", sent)
        return sent

    # ------------------------------------------------------------------ reconciling
    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_interval_s):
            try:
                self.reconcile()
            except Exception:
                log.exception(
                    "reconciliation failed; retrying in %s s", self.settings.reconcile_interval_s
                )

    def reconcile(self) -> Reconciled:
        """One pass: take runs from lost workers, hand undelivered runs to the broker."""
        out = Reconciled()
        with self._lock() as held:
            if not held:
                out.skipped = True
                return out
            now = utcnow()
            stale_before = now - dt.timedelta(seconds=self.settings.heartbeat_timeout_s)
            with self.db.write() as s:
                for run_id in runs_repo.stale_running(s, stale_before):
                    state = runs_repo.requeue_stale(
                        s,
                        run_id,
                        stale_before=stale_before,
                        max_attempts=self.settings.max_attempts,
                        now=now,
                    )
                    if state == "queued":
                        out.requeued.append(run_id)
                    elif state is not None:
                        out.failed.append(run_id)
            if out.requeued or out.failed:
                log.warning(
                    "runs of lost workers: %s queued again, %s ended",
                    out.requeued,
                    out.failed,
                    extra={"requeued": out.requeued, "ended": out.failed},
                )
            if self._wiped_at is None and self._broker_lost_data():
                self._wiped_at = now
                out.broker_wiped = True
            redispatch_before = now - dt.timedelta(seconds=self.settings.redispatch_after_s)
            if self._wiped_at is not None:
                # every message handed over before the broker lost its data went with it
                redispatch_before = max(redispatch_before, self._wiped_at)
            with self.db.read() as s:
                due = runs_repo.undelivered(
                    s,
                    created_before=now - dt.timedelta(seconds=SUBMIT_GRACE_S),
                    dispatched_before=redispatch_before,
                    limit=RECONCILE_BATCH,
                )
            # requeued runs have no hand-over yet but are not young: add them explicitly
            seen = {r for r, _, _ in due}
            with self.db.read() as s:
                due += [r for r in runs_repo.dispatch_info(s, out.requeued) if r[0] not in seen]
            out.published = self._publish(due)
            if due:
                log.info(
                    "handed %d of %d undelivered run(s) to the broker%s",
                    len(out.published),
                    len(due),
                    " (it had lost its data)" if self._wiped_at is not None else "",
                    extra={"published": out.published},
                )
            complete = len(out.published) == len(due) and len(due) < RECONCILE_BATCH
            if self._wiped_at is not None and complete and self._mark_broker():
                # all handed over again: until the marker goes missing, nothing more to do
                self._wiped_at = None
        return out

    def _broker_lost_data(self) -> bool:
        """True when the broker's marker key is missing: the broker is new or lost its data,
        and with it every message. False when it cannot be reached (nothing can be handed
        over anyway: the question is asked again at the next pass) or the marker is there."""
        try:
            return not self._redis.exists(BROKER_EPOCH_KEY)
        except redis.RedisError as exc:
            log.warning("broker unreachable: %s", exc)
            return False

    def _mark_broker(self) -> bool:
        """Set the marker once every queued run was handed to this broker."""
        try:
            return bool(self._redis.set(BROKER_EPOCH_KEY, uuid.uuid4().hex))
        except redis.RedisError:
            return False

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        """Whether this process may reconcile now: on PostgreSQL one process at a time
        (a try-lock, never a wait); SQLite is the single-process embedded mode."""
        if self.db.dialect != "postgresql":
            yield True
            return
        with self.db.engine.connect() as conn:
            held = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": RECONCILE_LOCK_ID}
                ).scalar()
            )
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RECONCILE_LOCK_ID})
                    conn.commit()

    # ------------------------------------------------------------------ metrics
    def queue_lengths(self) -> dict[str, int] | None:
        """Messages waiting per broker queue (None: the broker cannot be reached). With one
        priority step per queue, kombu keeps each queue in the Redis list of its name."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for q in QUEUES:
                pipe.llen(q)
            return {q: int(n) for q, n in zip(QUEUES, pipe.execute(), strict=True)}
        except redis.RedisError:
            return None

    def collect_metrics(self) -> Iterator[Metric]:
        """Broker gauges for /metrics: reachability and queue lengths."""
        lengths = self.queue_lengths()
        up = GaugeMetricFamily("greenopt_broker_up", "1 if the Celery broker answered")
        up.add_metric([], 0.0 if lengths is None else 1.0)
        yield up
        if lengths is None:
            return
        g = GaugeMetricFamily(
            "greenopt_broker_queue_length",
            "runs waiting in a broker queue (solve-high, solve-bulk)",
            labels=["queue"],
        )
        for q, n in lengths.items():
            g.add_metric([q], float(n))
        yield g
