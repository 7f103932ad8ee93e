"""This process as a service instance: its row in `instances`, kept fresh by a heartbeat
thread, and which instances sharing the database are alive.

Two `greenopt serve` on one database see each other here. An instance is alive while its
heartbeat is younger than `instance_stale_after_s`; one on this machine whose process is
gone is dead at once (a restart right after a crash need not wait for the heartbeat to go
stale). Each heartbeat also marks `interrupted` the running runs of dead instances, so a
run is never left `running` by a crash of another instance.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.db import Database
from service.models import Instance, utcnow
from service.repo import instances as repo
from service.repo import runs as runs_repo
from service.settings import Settings

log = logging.getLogger("greenopt.instances")

_INIT_PID_NAMESPACE = 0xEFFFFFFC  # Linux's PROC_PID_INIT_INO: the host's own pid namespace
DEAD_OWNER_REASON = "interrupted: the service instance running it stopped"
# a dead instance stays listed (GET /schedule) this long, then its row is dropped
FORGET_DEAD_AFTER = dt.timedelta(days=1)


def this_host() -> str:
    """The host name, plus the pid namespace inside a container: a pid is only meaningful
    (and only checked) within the namespace it was taken in."""
    host = socket.gethostname()
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return host if ns == _INIT_PID_NAMESPACE else f"{host}/pidns-{ns}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def is_alive(row: Instance, *, now: dt.datetime, settings: Settings, host: str) -> bool:
    if row.heartbeat_at < now - dt.timedelta(seconds=settings.instance_stale_after_s):
        return False
    return row.host != host or _process_exists(row.pid)


def live_instance_ids(session: Session, settings: Settings) -> list[str]:
    now, host = utcnow(), this_host()
    return [
        row.id
        for row in repo.all_instances(session)
        if is_alive(row, now=now, settings=settings, host=host)
    ]


def interrupt_runs_of_dead_instances(session: Session, settings: Settings) -> list[int]:
    """Running runs whose instance is dead become `interrupted` (runs naming no instance are
    left alone: Celery workers' runs, watched by the Celery runner)."""
    return runs_repo.interrupt_orphans(
        session,
        live_instances=live_instance_ids(session, settings),
        now=utcnow(),
        reason=DEAD_OWNER_REASON,
        include_unowned=False,
    )


class InstanceHeartbeat:
    """Registers this process in `instances` and writes its heartbeat from a thread."""

    def __init__(self, db: Database, settings: Settings, *, kind: str) -> None:
        self.db = db
        self.settings = settings
        self.kind = kind
        self.id = uuid.uuid4().hex
        self.holds_scheduler = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="instance-heartbeat", daemon=True)

    def start(self) -> InstanceHeartbeat:
        now = utcnow()
        with self.db.write() as s:
            repo.add(
                s,
                id=self.id,
                kind=self.kind,
                host=this_host(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                holds_scheduler=self.holds_scheduler,
            )
        self._thread.start()
        log.info("instance %s (%s) registered", self.id, self.kind, extra={"instance": self.id})
        return self

    def beat(self) -> None:
        """Note this instance alive; settle the runs of instances that died."""
        now = utcnow()
        with self.db.write() as s:
            if not repo.beat(s, self.id, now, self.holds_scheduler):
                log.warning("instance %s had no row; registering it again", self.id)
                repo.add(
                    s,
                    id=self.id,
                    kind=self.kind,
                    host=this_host(),
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                    holds_scheduler=self.holds_scheduler,
                )
            orphans = interrupt_runs_of_dead_instances(s, self.settings)
            repo.forget_silent_since(s, now - FORGET_DEAD_AFTER)
        if orphans:
            log.warning("marked run(s) %s interrupted: their instance is gone", orphans)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.instance_heartbeat_s):
            try:
                self.beat()
            except Exception:  # a database hiccup must not end the heartbeat; next one retries
                log.exception("instance heartbeat failed")

    def stop(self) -> None:
        """Stop beating and remove the row: a clean stop leaves nothing to recover."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            with self.db.write() as s:
                repo.remove(s, self.id)
        except Exception:  # it goes stale instead
            log.exception("could not remove instance %s", self.id)


def describe(rows: Sequence[Instance], settings: Settings) -> list[tuple[Instance, bool]]:
    """Every registered instance and whether it is alive."""
    now, host = utcnow(), this_host()
    return [(row, is_alive(row, now=now, settings=settings, host=host)) for row in rows]
