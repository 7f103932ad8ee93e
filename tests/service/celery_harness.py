"""What the Celery tests share: the real Redis on loopback (failing, never skipping, when it
is away), `greenopt worker` processes in their own process groups, an API served with the
celery runner, and the PostgreSQL truth about runs and plans."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service.db import Database
from service.models import Plan, Run, utcnow
from tests.service.helpers import (
    DEMO,
    LiveServer,
    alive_in_group,
    fresh_postgres,
    greenopt_command,
    make_settings,
    wait_until,
)

# a Redis database of its own per test process: workers of two test runs on one machine
# must not take each other's messages (they would claim run ids in the wrong database)
BROKER_URL = os.environ.get(
    "GREENOPT_TEST_BROKER_URL", f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
)
# exactly how .ci/run starts Redis: the restart test must leave the machine as it found it
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
HEARTBEAT_TIMEOUT_S = 5.0  # short, so a lost worker is noticed within a test's patience
PROGRESS_INTERVAL_S = 0.25


def celery_database(name: str) -> str:
    """A fresh PostgreSQL database for one test, named after the test process too (so two
    test runs on one machine do not drop each other's schema); see `drop_database`."""
    return fresh_postgres(f"{name}_{os.getpid()}")


def drop_database(url: str) -> None:
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def redis_client(url: str = BROKER_URL) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def fresh_broker(url: str = BROKER_URL) -> str:
    """The test broker's Redis database, emptied. Fails when Redis cannot be reached."""
    try:
        redis_client(url).flushdb()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {url} ({exc}). The Celery tests run against a real "
            "Redis: start one (.ci/run does), or point GREENOPT_TEST_BROKER_URL at one.",
            pytrace=False,
        )
    return url


def redis_up(url: str = BROKER_URL) -> bool:
    try:
        return bool(redis_client(url).ping())
    except redis.RedisError:
        return False


def start_redis() -> None:
    """Start the loopback Redis exactly as .ci/run does, and wait for it."""
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True, capture_output=True)
    wait_until(redis_up, 30, "Redis to answer")


def stop_redis() -> None:
    """Stop the loopback Redis without saving (it keeps nothing on disk anyway)."""
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
        capture_output=True,
    )
    wait_until(lambda: not redis_up(), 30, "Redis to stop")


@contextmanager
def redis_restored() -> Iterator[None]:
    """Whatever happens inside, Redis is running again afterwards."""
    try:
        yield
    finally:
        if not redis_up():
            start_redis()


def worker_env(database_url: str, broker_url: str = BROKER_URL, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "GREENOPT_DATABASE_URL": database_url,
        "GREENOPT_BROKER_URL": broker_url,
        "GREENOPT_DEFAULT_SCENARIO": str(DEMO),
        "GREENOPT_PROGRESS_INTERVAL_S": str(PROGRESS_INTERVAL_S),
        "GREENOPT_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
        "GREENOPT_SOLVE_THREADS": "1",
        "GREENOPT_LOG_LEVEL": "INFO",
        "GREENOPT_LOG_JSON": "true",
        **extra,
    }


class Worker:
    """One `greenopt worker --concurrency 1` in its own process group, logs in a file."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str], *args: str) -> None:
        self.name = name
        self.node = f"{name}@{os.uname().nodename}"
        self.log = workdir / f"{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    *greenopt_command(),
                    "worker",
                    "--concurrency",
                    "1",
                    "--hostname",
                    self.node,
                    *args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the pool's children too
            )

    def text(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 90.0) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.text()[-3000:]}")
            return f"{self.node} ready." in self.text()

        wait_until(ready, timeout, f"worker {self.name} to be ready")
        return self

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and its solver processes."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        wait_until(lambda: not alive_in_group(self.proc.pid), 30, f"{self.name}'s group to die")

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT: do not wait for a solve), then SIGKILL what is left."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        if alive_in_group(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@contextmanager
def workers(workdir: Path, env: dict[str, str], *names: str) -> Iterator[list[Worker]]:
    """Workers started together (their imports overlap) and always stopped."""
    started = [Worker(workdir, n, env) for n in names]
    try:
        for w in started:
            w.wait_ready()
        yield started
    finally:
        for w in started:
            w.stop()


def celery_server(database_url: str, broker_url: str = BROKER_URL, **changes: Any) -> LiveServer:
    """An API (uvicorn in a thread) whose runner is Celery over the test broker."""
    values: dict[str, Any] = {
        "runner": "celery",
        "broker_url": broker_url,
        "reconcile_interval_s": 0.5,
        "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
        "progress_interval_s": PROGRESS_INTERVAL_S,
    }
    values.update(changes)
    return LiveServer(make_settings(database_url, **values)).start()


def plans_of(database_url: str, run_ids: list[int]) -> dict[int, int]:
    """Number of stored plans per run, read from the database itself."""
    db = Database(database_url)
    try:
        with db.read() as s:
            rows = s.execute(
                select(Plan.run_id, func.count())
                .where(Plan.run_id.in_(run_ids))
                .group_by(Plan.run_id)
            ).all()
        return {int(r): int(n) for r, n in rows if r is not None}
    finally:
        db.dispose()


def wait_heartbeat_stale(database_url: str, run_id: int) -> dt.datetime:
    """Until run `run_id`'s last heartbeat (its worker is dead: no new one comes) is older
    than HEARTBEAT_TIMEOUT_S by the clock the workers judge it with; returns that heartbeat."""
    beat = runs_of(database_url, [run_id])[run_id].heartbeat_at
    assert beat is not None, f"run {run_id} has no heartbeat"
    stale = dt.timedelta(seconds=HEARTBEAT_TIMEOUT_S)
    wait_until(lambda: utcnow() - beat > stale, HEARTBEAT_TIMEOUT_S + 60, "a stale heartbeat")
    return beat


def runs_of(database_url: str, run_ids: list[int]) -> dict[int, Run]:
    db = Database(database_url)
    try:
        with db.read() as s:
            return {r.id: r for r in s.scalars(select(Run).where(Run.id.in_(run_ids)))}
    finally:
        db.dispose()
