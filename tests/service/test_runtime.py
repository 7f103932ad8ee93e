"""`greenopt serve` as real processes, for what the first minutes and a crash look like:
the port opens before the first plan is solved (/readyz 503 with progress, then 200); the
database sits in the data directory with owner-only permissions, so a key made from
another folder works; /metrics needs a key; /docs loads nothing from outside; the solver
pool dies with a SIGKILLed server; two servers on one database leave each other's runs
alone and /schedule shows both."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.helpers import (
    BACKENDS,
    DEMO,
    LiveServer,
    free_port,
    fresh_database,
    make_settings,
    slow_run_body,
    wait_until,
)

KEY = re.compile(r"admin key:\s+(gok_[A-Za-z0-9_-]+)")
EXTERNAL_URL = re.compile(r"(https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}")


def _greenopt() -> list[str]:
    script = Path(sys.executable).with_name("greenopt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENOPT_")}
    env.update(
        {
            "GREENOPT_DEFAULT_SCENARIO": str(DEMO),
            "GREENOPT_SOLVE_THREADS": "1",
            "GREENOPT_PROGRESS_INTERVAL_S": "0.25",
            "GREENOPT_SOLVE_TIME_LIMIT_S": "30",
            "GREENOPT_INSTANCE_HEARTBEAT_S": "0.5",
            "GREENOPT_LOG_JSON": "true",
        }
    )
    env.update(values)
    return env


class Serve:
    """One `greenopt serve` in its own process group, output in files."""

    def __init__(self, cwd: Path, env: dict[str, str], name: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [*_greenopt(), "serve", "--port", str(self.port), *args],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def get(self, path: str, key: str | None = None) -> httpx.Response | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.err.read_text()[-3000:]}")
        headers = {"X-API-Key": key} if key else {}
        try:
            return httpx.get(f"{self.url}{path}", headers=headers, timeout=10)
        except httpx.HTTPError:
            return None

    def first_answer(self, path: str, timeout: float = 120.0) -> httpx.Response:
        """The first response `path` gives once the port is open."""
        return wait_until(lambda: self.get(path), timeout, f"{self.url}{path} to answer")

    def wait_ready(self, timeout: float = 180.0) -> None:
        def ready() -> bool:
            r = self.get("/readyz")
            return r is not None and r.status_code == 200

        wait_until(ready, timeout, "greenopt serve to be ready")

    def admin_key(self) -> str:
        m = KEY.search(self.out.read_text())
        assert m, self.out.read_text()
        return m.group(1)

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=30)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        self.kill_group()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _exists(pid: int) -> bool:
    """Still a process (a zombie, dead but not yet reaped, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _solving(c: httpx.Client, run_id: int) -> dict[str, Any] | None:
    run = c.get(f"/runs/{run_id}").json()
    return run if run["state"] == "running" and run["progress"].get("phase") == "solve" else None


# ----------------------------------------------------------------------------- first start
def test_a_fresh_serve_answers_at_once_and_is_ready_once_its_first_plan_is_solved(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"  # GREENOPT_HOME; no GREENOPT_DATABASE_URL: the default database
    here, elsewhere = tmp_path / "ops", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    env = _env(GREENOPT_HOME=str(home))
    serve = Serve(here, env, "fresh")
    try:
        # the banner comes before the port opens, and the port before the first plan
        first = serve.first_answer("/readyz")
        banner = serve.out.read_text()
        assert "greenopt keys create --role viewer|planner|admin" in banner
        assert f"{home / 'greenopt.db'} (data directory {home})" in banner
        assert first.status_code == 503, first.text
        body = first.json()
        assert body["status"] == "not_ready" and body["checks"]["first_plan"]["ok"] is False
        assert body["progress"]["run_id"] >= 1
        assert body["progress"]["state"] in ("queued", "running"), body
        assert serve.get("/healthz").status_code == 200  # type: ignore[union-attr]
        key = serve.admin_key()
        assert serve.get("/plans/active", key).status_code == 404  # type: ignore[union-attr]

        serve.wait_ready()
        ready = serve.get("/readyz").json()  # type: ignore[union-attr]
        assert ready["checks"]["first_plan"]["ok"] and ready["progress"] is None
        active = serve.get("/plans/active", key)
        assert active is not None and active.status_code == 200, active
        assert active.json()["run_id"] == body["progress"]["run_id"]

        # owner-only data directory and database file
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE((home / "greenopt.db").stat().st_mode) == 0o600

        # a key made from another folder reaches the same database: the data directory is
        # absolute (it used to be var/greenopt.db under the current folder: a new database)
        made = subprocess.run(
            [*_greenopt(), "keys", "create", "--role", "viewer", "--name", "prometheus"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        viewer_key = made.stdout.strip().splitlines()[-1]
        assert not list(elsewhere.iterdir())  # no stray database
        # /metrics shows plan cost and emissions: a key is needed, a viewer's will do
        assert serve.get("/metrics").status_code == 401  # type: ignore[union-attr]
        metrics = serve.get("/metrics", viewer_key)
        assert metrics is not None and metrics.status_code == 200
        assert "greenopt_active_plan_cost_cny" in metrics.text
    finally:
        serve.stop()


def test_the_api_docs_load_nothing_from_outside(tmp_path: Path) -> None:
    server = LiveServer(make_settings(fresh_database("sqlite", tmp_path, "docs"))).start()
    try:
        with server.client(None) as anon:
            for page in ("/docs", "/redoc"):
                r = anon.get(page)
                assert r.status_code == 200 and "text/html" in r.headers["content-type"]
                assert not EXTERNAL_URL.search(r.text), (page, EXTERNAL_URL.findall(r.text))
                assets = re.findall(r"""(?:src|href)=["']?(/[^"' >]+)""", r.text)
                assert any(a.endswith(".js") for a in assets), r.text
                for asset in assets:
                    got = anon.get(asset)
                    assert got.status_code == 200 and len(got.content) > 1000, asset
            assert anon.get("/openapi.json").status_code == 200
    finally:
        server.stop()


# ----------------------------------------------------------------------------- a crash
def test_the_solver_processes_die_with_a_killed_server(tmp_path: Path) -> None:
    """SIGKILL to the server alone (not its process group): its pool workers, one of them
    in the middle of a solve, must not live on."""
    url = fresh_database("sqlite", tmp_path, "orphans")
    serve = Serve(tmp_path, _env(GREENOPT_DATABASE_URL=url), "orphans")
    try:
        serve.wait_ready()
        with serve.client(serve.admin_key()) as c:
            r = c.post("/runs", json=slow_run_body(time_limit_s=600))
            assert r.status_code == 202, r.text
            wait_until(lambda: _solving(c, r.json()["id"]), 90, "the slow run to be solving")
        workers = [p for p in _children(serve.proc.pid) if _exists(p)]
        assert len(workers) >= 2, workers  # the pool (and multiprocessing's tracker)
        os.kill(serve.proc.pid, signal.SIGKILL)
        serve.proc.wait(30)
        wait_until(
            lambda: not [p for p in workers if _exists(p)], 30, f"solver processes {workers} to die"
        )
    finally:
        serve.kill_group()


# ----------------------------------------------------------------------------- two instances
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_servers_on_one_database_see_each_other_and_leave_each_others_runs_alone(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path, "two")
    env = _env(GREENOPT_DATABASE_URL=url, GREENOPT_INSTANCE_STALE_AFTER_S="5")
    a = Serve(tmp_path, env, "a", "--scheduler")
    b: Serve | None = None
    try:
        a.wait_ready()
        key = a.admin_key()
        with a.client(key) as ca:
            r = ca.post("/runs", json=slow_run_body(time_limit_s=600))
            assert r.status_code == 202, r.text
            run_id = r.json()["id"]
            wait_until(lambda: _solving(ca, run_id), 90, "a's slow run to be solving")

        b = Serve(tmp_path, env, "b")
        b.wait_ready()
        with b.client(key) as cb:
            # b started while a solves: a's run is a's, still running
            run = cb.get(f"/runs/{run_id}").json()
            assert run["state"] == "running", run

            # a's scheduler starts just after its first plan and says so with its next
            # heartbeat: wait for that event rather than race it
            def a_holds_it() -> list[dict[str, Any]] | None:
                listed = cb.get("/schedule").json()["instances"]
                pids = {i["pid"]: i for i in listed}
                held = pids.get(a.proc.pid, {}).get("holds_scheduler") is True
                return listed if held else None

            instances = wait_until(a_holds_it, 60, "a's instance to hold the scheduler")
            assert len(instances) == 2 and all(i["alive"] for i in instances), instances
            by_pid = {i["pid"]: i for i in instances}
            assert by_pid[b.proc.pid]["holds_scheduler"] is False

            a.kill_group()
            # b's heartbeat notices a is gone and settles its run
            done = wait_until(
                lambda: (x := cb.get(f"/runs/{run_id}").json())["state"] != "running" and x,
                30,
                "a's run to be marked interrupted",
            )
            assert done["state"] == "interrupted" and "instance" in done["error"], done
            instances = {i["pid"]: i for i in cb.get("/schedule").json()["instances"]}
            assert instances[a.proc.pid]["alive"] is False and instances[b.proc.pid]["alive"]
    finally:
        a.kill_group()
        if b is not None:
            b.stop()
