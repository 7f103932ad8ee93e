"""A what-if flood against a real server on loopback (issue 10, row 7): 30 what-ifs in 10 s
while a reader polls `GET /plans/active`; records the reader's p50/p99/max before and
during the flood and how long refusals (429) and acceptances took, into `bench/results/`.

Each source tree given (e.g. main's code, exported with `git archive`, and this one) is
served in turn by `greenopt serve` from that tree, on a fresh SQLite database with the
same settings, so one run compares them on the same machine at the same load:

    git archive main | tar -x -C /tmp/main-tree
    python -m bench.flood --tree before=/tmp/main-tree --tree after=.

Each what-if adds `EXTRA_JOBS` hard jobs to the demo and solves to gap 0 (HiGHS works on it
for its whole time limit), so both solver processes are busy through the flood, as in the
reported incident; it is sent with `wait_s=0`, so its latency is that of the submission
(checks and queueing), not of the solve.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

WHATIFS = 30  # what-ifs sent ...
FLOOD_S = 10.0  # ... evenly over this many seconds
IDLE_S = 5.0  # the reader alone first, for the baseline
DRAIN_MAX_S = 60.0  # the reader goes on until the queue drains, at most this long
READ_EVERY_S = 0.05  # the reader's pause between two reads
EXTRA_JOBS = 40  # hard jobs each what-if adds to the demo
WHATIF_TIME_LIMIT_S = 15.0
START_TIMEOUT_S = 300.0  # migration, demo load, first plan
SETTINGS = {  # the same for every tree: the defaults, but quiet and single-threaded solves
    "GREENOPT_SOLVE_THREADS": "1",
    "GREENOPT_LOG_LEVEL": "WARNING",
    "GREENOPT_SCHEDULER_IN_PROCESS": "false",
}


def _cli(tree: Path, env: dict[str, str], *args: str, **kw: Any) -> Any:
    """`greenopt <args>` with the code of `tree` (first on the path: it wins over any
    installed copy)."""
    code = "import sys; from service.cli import app; sys.argv[0] = 'greenopt'; app()"
    return (subprocess.Popen if kw.pop("background", False) else subprocess.run)(
        [sys.executable, "-c", code, *args],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        **kw,
    )


def _hard_jobs(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    jobs = []
    for i in range(EXTRA_JOBS):
        rel, gang = rng.randint(0, 12), rng.choice([4, 8, 16])
        end = rel + rng.randint(6, 12)
        jobs.append(
            {
                "job_id": f"flood-{seed}-{i}",
                "kind": "batch",
                "accelerators": rng.choice(["H100", "A100;H100", "H20;A100"]),
                "gang": gang,
                "work_device_hours": gang * rng.randint(2, 6),
                "release": f"2025-07-15T{rel:02d}:00:00+08:00",
                "deadline": f"2025-07-15T{end:02d}:00:00+08:00"
                if end < 24
                else "2025-07-16T00:00:00+08:00",
                "preemptible": rng.choice([True, False]),
            }
        )
    return jobs


def _stats(xs: list[float]) -> dict[str, float | int | None]:
    if not xs:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(xs)
    q = statistics.quantiles(s, n=100, method="inclusive") if len(s) > 1 else [s[0]] * 99
    return {
        "n": len(s),
        "p50_ms": round(1000 * statistics.median(s), 1),
        "p99_ms": round(1000 * q[98], 1),
        "max_ms": round(1000 * s[-1], 1),
    }


class Reader(threading.Thread):
    """GET /plans/active in a loop; each latency with the phase it fell in."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
        self.phase, self.stop = "idle", threading.Event()
        self.seen: dict[str, list[float]] = {"idle": [], "flood": []}
        self.errors = 0

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            r = self.client.get("/plans/active")
            took = time.perf_counter() - t0
            if r.status_code != 200:
                self.errors += 1
            self.seen[self.phase].append(took)
            self.stop.wait(READ_EVERY_S)


def _flood(base: str, key: str) -> dict[str, Any]:
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = {
            "overrides": {"add_jobs": _hard_jobs(i)},
            "settings": {"time_limit_s": WHATIF_TIME_LIMIT_S, "mip_rel_gap": 0.0},
            "note": f"flood {i}",
        }
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as c:
            t0 = time.perf_counter()
            r = c.post("/what-if", params={"wait_s": 0}, json=body)
            took = time.perf_counter() - t0
        with lock:
            answers.append((r.status_code, took))

    threads = []
    t_start = time.perf_counter()
    for i in range(WHATIFS):
        time.sleep(max(0.0, t_start + i * FLOOD_S / WHATIFS - time.perf_counter()))
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(180)
    return {
        "accepted": _stats([s for c, s in answers if c in (200, 202)]),
        "refused": _stats([s for c, s in answers if c == 429]),
        "other": sorted({c for c, _ in answers} - {200, 202, 429}),
    }


def _drained(base: str, key: str) -> bool:
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as c:
        active = [
            c.get("/runs", params={"state": s}).json()["total"] for s in ("queued", "running")
        ]
    return sum(active) == 0


def measure(name: str, tree: Path) -> dict[str, Any]:
    """Serve `tree` on a fresh database and flood it."""
    with tempfile.TemporaryDirectory(prefix=f"flood-{name}-") as tmp:
        port = _free_port()
        env = {
            **SETTINGS,
            "GREENOPT_HOME": tmp,
            "GREENOPT_DATABASE_URL": f"sqlite:///{tmp}/flood.db",
            "GREENOPT_DEFAULT_SCENARIO": str(ROOT / "data" / "demo"),
            "GREENOPT_PORT": str(port),
            "GREENOPT_HOST": "127.0.0.1",
        }
        server = _cli(
            tree,
            env,
            "serve",
            background=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            key = _cli(
                tree, env, "keys", "create", "--role", "planner", capture_output=True, text=True
            ).stdout.split()[-1]
            reader = Reader(base, key)
            reader.start()
            time.sleep(IDLE_S)
            reader.phase = "flood"
            t0 = time.perf_counter()
            submissions = _flood(base, key)
            while not _drained(base, key) and time.perf_counter() - t0 < DRAIN_MAX_S:
                time.sleep(1.0)
            flood_s = time.perf_counter() - t0
            reader.stop.set()
            reader.join(60)
        finally:
            server.terminate()
            server.wait(60)
    return {
        "tree": str(tree),
        "reader_idle": _stats(reader.seen["idle"]),
        "reader_flood": _stats(reader.seen["flood"]),
        "reader_errors": reader.errors,
        "flood_and_drain_s": round(flood_s, 1),
        **submissions,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base} was not ready after {START_TIMEOUT_S:g} s")


def _ratios(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """after / before of each figure (below 1: better)."""
    out: dict[str, float | None] = {}
    for part in ("reader_flood", "accepted", "refused"):
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            b, a = before[part][stat], after[part][stat]
            out[f"{part}.{stat}"] = round(a / b, 3) if a is not None and b else None
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tree",
        action="append",
        required=True,
        help="name=path of a source tree to serve (give before=... and after=... for ratios)",
    )
    args = p.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree)
    record: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "whatifs": WHATIFS,
        "flood_s": FLOOD_S,
        "runs": {name: measure(name, Path(path).resolve()) for name, path in trees.items()},
    }
    if {"before", "after"} <= record["runs"].keys():
        record["after_over_before"] = _ratios(record["runs"]["before"], record["runs"]["after"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"flood-{time.strftime('%Y-%m-%dT%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
