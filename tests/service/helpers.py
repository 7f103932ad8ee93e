"""Helpers of the service tests: databases (SQLite and a real PostgreSQL, never skipped),
a live server (uvicorn on a free port in a background thread, reached over real HTTP with
httpx) with API keys for every role, `greenopt` commands as real processes, and waiting for
runs and conditions (polled against a deadline, never a fixed sleep)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from service import security
from service.app import create_app
from service.db import Database
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
PG_URL = os.environ.get(
    "GREENOPT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/greenopt_test"
)
BACKENDS = ("sqlite", "postgresql")
FINAL = ("succeeded", "failed", "interrupted", "cancelled")


# ----------------------------------------------------------------------------- databases
def _pg_admin_conninfo(url: str) -> tuple[str, str]:
    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), str(u.database)


def fresh_postgres(suffix: str) -> str:
    """An empty PostgreSQL database named after GREENOPT_TEST_DATABASE_URL's plus `suffix`
    (created when missing). Fails, never skips, when the server cannot be reached."""
    base = make_url(PG_URL)
    name = f"{base.database}{'_' + suffix if suffix else ''}"
    conninfo, _ = _pg_admin_conninfo(PG_URL)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {base.render_as_string(hide_password=True)} ({exc}). "
            "The service tests run against a real PostgreSQL: start one, or point "
            "GREENOPT_TEST_DATABASE_URL at one.",
            pytrace=False,
        )
    url = base.set(database=name).render_as_string(hide_password=False)
    target = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(target, autocommit=True) as conn:
        # a clean slate: everything a previous run left goes with the schema
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


def fresh_database(backend: str, tmp: Path, suffix: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'greenopt-{suffix}.db'}"
    return fresh_postgres(suffix)


# ----------------------------------------------------------------------------- server
def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as s:
        return int(s.getsockname()[1])


def make_settings(database_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "default_scenario": DEMO,
        "max_concurrent_solves": 2,
        "queue_limit": 16,
        "solve_time_limit_s": 30.0,
        "solve_threads": 1,
        "solve_seed": 0,
        "progress_interval_s": 0.25,
        "max_request_bytes": 2 * 1024 * 1024,
        "log_json": True,
    }
    values.update(changes)
    return Settings(**values)


@dataclass
class Keys:
    viewer: str
    planner: str
    admin: str


class LiveServer:
    """`create_app(settings)` served by uvicorn in a thread, on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = free_socket()
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_config=None, lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="live-server"
        )
        self.keys: Keys | None = None

    def start(self, timeout: float = 90.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server stopped while starting (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.05)
        db = Database(self.settings.database_url)
        try:
            with db.write() as s:
                self.keys = Keys(
                    *(
                        security.create_key(s, role=r, name=f"test-{r}", actor="test")[1]
                        for r in ("viewer", "planner", "admin")
                    )
                )
        finally:
            db.dispose()
        return self

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()

    def client(self, role: str | None = "admin", **kw: Any) -> httpx.Client:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            assert self.keys is not None
            headers["X-API-Key"] = getattr(self.keys, role)
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kw)


# ----------------------------------------------------------------------------- processes
# what `greenopt serve` prints once, on the first start
ADMIN_KEY = re.compile(r"admin key:\s+(gok_[A-Za-z0-9_-]+)")


def greenopt_command() -> list[str]:
    """The `greenopt` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("greenopt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]


def alive_in_group(pgid: int) -> list[int]:
    """The pids still alive in process group `pgid`."""
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


class GreenoptProcess:
    """`greenopt <args>` in its own process group (its solver processes too), stdout and
    stderr in files of `workdir`."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str], name: str) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [*greenopt_command(), *args],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """True, or an AssertionError with the end of its log once it has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.err.read_text()[-3000:]}")
        return True

    def wait_healthy(self, base_url: str, timeout: float = 180.0) -> None:
        """Until `GET /healthz` answers 200: the process is up (it fails at once if the
        process exits). `serve` answers this at once, before its first plan."""
        self._wait_for(f"{base_url}/healthz", timeout, "answer")

    def wait_ready(self, base_url: str, timeout: float = 180.0) -> None:
        """Until `GET /readyz` answers 200: `serve` has its first plan (the port opens at once,
        the first plan solves after)."""
        self._wait_for(f"{base_url}/readyz", timeout, "be ready")

    def _wait_for(self, url: str, timeout: float, what: str) -> None:
        def up() -> bool:
            self.alive()
            try:
                return httpx.get(url, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, f"{self.name} to {what}")

    def admin_key(self) -> str | None:
        m = ADMIN_KEY.search(self.out.read_text())
        return m.group(1) if m else None

    def log_lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines (GREENOPT_LOG_JSON=true) written so far; a line still being
        written (no newline yet) is left for the next call."""
        complete = self.err.read_text().split("\n")[:-1]
        return [json.loads(x) for x in complete if x.startswith("{")]

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM to the command alone (as docker stop does), then wait; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:  # it hung: do not leave it behind
                self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL to the whole process group; returns once every member is gone."""
        with suppress(ProcessLookupError):  # every member is gone already
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        wait_until(lambda: not alive_in_group(self.proc.pid), 30, f"{self.name}'s group to die")


# ----------------------------------------------------------------------------- helpers
def wait_run(
    client: httpx.Client, run_id: int, states: tuple[str, ...] = FINAL, timeout: float = 120.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        run = r.json()
        if run["state"] in states:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run['state']} after {timeout} s: {run}")
        time.sleep(0.1)


def wait_until(pred: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def slow_jobs(n: int = 40, seed: int = 7) -> list[dict[str, Any]]:
    """Extra demo jobs that make the MILP hard: with mip_rel_gap 0 HiGHS works on it for
    minutes (measured: the time limit of 60 s is hit), so a run stays `running` as long as a
    test needs it to."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rel = rng.randint(0, 12)
        dl = rel + rng.randint(6, 12)
        gang = rng.choice([4, 8, 16])
        rows.append(
            {
                "job_id": f"slow-{i}",
                "kind": "batch",
                "accelerators": rng.choice(["H100", "A100;H100", "H20;A100"]),
                "gang": gang,
                "work_device_hours": gang * rng.randint(2, 6),
                "release": f"2025-07-15T{rel:02d}:00:00+08:00",
                "deadline": f"2025-07-15T{dl:02d}:00:00+08:00"
                if dl < 24
                else "2025-07-16T00:00:00+08:00",
                "preemptible": rng.choice([True, False]),
                "data_origin_site": "sh-east",
                "data_gb": 10,
            }
        )
    return rows


def slow_run_body(time_limit_s: float = 300.0) -> dict[str, Any]:
    return {
        "settings": {"time_limit_s": time_limit_s, "mip_rel_gap": 0.0},
        "overrides": {"add_jobs": slow_jobs()},
        "note": "deliberately slow",
    }
