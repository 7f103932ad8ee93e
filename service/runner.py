"""Solve runners: where `execute_run` happens. The API only ever calls the `SolveRunner`
protocol; `make_runner(settings, db)` picks the implementation from the settings.

`LocalPoolRunner` (the embedded default) executes runs in a `ProcessPoolExecutor` with the
spawn start method: a solve never blocks the API's event loop or holds its GIL, and a
crashing solver takes only its worker process down. It keeps its own priority queue and
feeds at most `max_concurrent_solves` runs to the pool at a time, at a lower CPU priority
than the API process (`SOLVER_NICENESS`).

Its worker processes die with the API process, however it ends (a SIGKILL included), so a
crash never leaves solvers holding gigabytes: each worker asks Linux for a parent-death
signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), and where there is no prctl a watchdog thread
waits on multiprocessing's parent sentinel instead. Linux sends that signal when the
*thread* that forked the worker ends, not only the process; so every pool process is
forked by one long-lived thread of the runner (`solver-dispatch`), never by a request
thread or a callback thread that may end while its workers still have work.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, runtime_checkable

from service import runs
from service.db import Database
from service.models import utcnow
from service.repo import runs as runs_repo
from service.settings import Settings

log = logging.getLogger("greenopt.runner")

MAX_CRASHES_BEFORE_CLAIM = 3  # a run whose worker keeps dying before it starts fails


@runtime_checkable
class SolveRunner(Protocol):
    """Executes queued runs somewhere. `submit` must return at once."""

    def submit(self, run_id: int, priority: int = 0) -> None:
        """Hand over a queued run (committed to the database already)."""

    def queue_depth(self) -> int:
        """Runs handed over but not started yet."""

    def shutdown(self) -> None:
        """Stop executing; runs not started stay `queued` in the database."""

    def start(self) -> tuple[list[int], list[int]]:
        """Called once by the API at start: deal with runs a previous process left behind.
        Returns (ids marked interrupted, ids handed over again)."""


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> str:
    """Make this worker process end when the process that started it ends. Returns how:
    "prctl" (the kernel kills us with SIGKILL) or "watchdog" (a thread waits for the
    parent's sentinel, then exits the process)."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child: nothing to follow
        return "none"
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            # the parent may have died before the prctl: then no signal will ever come
            if os.getppid() != parent.pid:
                os._exit(1)
            return "prctl"
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)  # no clean-up: the parent that would want the results is gone

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    return "watchdog"


# Solver processes run at a lower CPU priority than the API process: on a small machine a
# flood of what-ifs must not starve the requests the API answers meanwhile (a flood of 30
# raised GET /plans/active's p99 from 0.1 s to 0.7 s). 10 is `nice`'s default increment.
SOLVER_NICENESS = 10


def _init_worker(log_level: str, log_json: bool) -> None:
    """Runs once in every worker process: die with the API process, a lower CPU priority,
    logging, imports paid up front, and no KeyboardInterrupt tracebacks when Ctrl-C reaches
    the whole process group."""
    _die_with_parent()
    with contextlib.suppress(OSError):  # not permitted somewhere: solve at normal priority
        os.nice(SOLVER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from service.logs import configure_logging

    configure_logging(log_level, json_lines=log_json)
    import optimizer.planner  # noqa: F401  (Pyomo and HiGHS load in about a second)
    import service.execution  # noqa: F401


def _warm() -> None:
    """A no-op task: submitted at start so the first run does not wait for a worker."""


def _execute(run_id: int, database_url: str, monitor_interval_s: float) -> str:
    from service.execution import execute_run

    return execute_run(run_id, database_url, monitor_interval_s=monitor_interval_s)


class LocalPoolRunner:
    """Runs in a local process pool, most urgent (then oldest) first."""

    def __init__(self, settings: Settings, db: Database, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.db = db
        # the service instance this pool belongs to: recorded on every run it starts
        self.instance_id = instance_id
        self.max_workers = settings.max_concurrent_solves
        self._lock = threading.Lock()
        self._heap: list[tuple[int, int, int]] = []  # (-priority, arrival, run id)
        self._waiting: set[int] = set()
        self._inflight: dict[Future[str], int] = {}
        self._arrival = itertools.count()
        self._closed = False
        self._crashes: dict[int, int] = {}
        self._pool = self._new_pool()
        # the one thread that submits to the pool, and so forks its workers (see the module
        # docstring); it lives until shutdown() is done with the workers
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._warm_pending = False
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="solver-dispatch", daemon=True
        )
        self._dispatcher.start()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.settings.log_level, self.settings.log_json),
        )

    # ---------------------------------------------------------------------- protocol
    def submit(self, run_id: int, priority: int = 0) -> None:
        with self._lock:
            if self._closed or run_id in self._waiting or run_id in self._inflight.values():
                return
            heapq.heappush(self._heap, (-priority, next(self._arrival), run_id))
            self._waiting.add(run_id)
        self._wake.set()

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._heap)

    def running(self) -> int:
        with self._lock:
            return len(self._inflight)

    def shutdown(self) -> None:
        """Stop at once: runs not started stay queued (picked up at the next start), the
        worker processes are terminated and their runs marked `interrupted`."""
        with self._lock:
            self._closed = True
            self._heap.clear()
            self._waiting.clear()
            inflight = dict(self._inflight)
        try:
            self._stop_pool(inflight)
        finally:
            # only now: its end sends the parent-death signal to the workers it forked
            self._stopped.set()
            self._wake.set()
            self._dispatcher.join(timeout=30)

    def _stop_pool(self, inflight: dict[Future[str], int]) -> None:
        if not inflight:
            # idle workers exit cleanly when asked; no need to kill anything
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14;
        # take the worker list before shutdown() drops it
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for fut in inflight:
            with contextlib.suppress(Exception):
                fut.exception(timeout=10)
        # record it here rather than leave it to the done-callbacks, which may still be
        # running when the process exits (conditional updates: whoever is first wins)
        try:
            with self.db.write() as s:
                for run_id in inflight.values():
                    runs_repo.finish(
                        s,
                        run_id,
                        state="interrupted",
                        now=utcnow(),
                        error="interrupted: the service shut down",
                    )
        except Exception:  # the next start marks them interrupted anyway
            log.exception("could not record the runs interrupted by the shutdown")

    # ---------------------------------------------------------------------- start-up
    def start(self) -> tuple[list[int], list[int]]:
        """Recover after a restart (see `service.runs.recover`) and warm the workers."""
        from service.instances import live_instance_ids

        with self.db.write() as s:
            live = live_instance_ids(s, self.settings)
            interrupted, resubmitted = runs.recover(s, self, live_instances=live)
        with self._lock:
            self._warm_pending = True
        self._wake.set()
        return interrupted, resubmitted

    # ---------------------------------------------------------------------- internals
    def _dispatch_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self._dispatch()
            except Exception:  # this thread must outlive any one bad hand-over
                log.exception("could not hand runs to the solver pool")

    def _dispatch(self) -> None:
        """Feed the pool from the queue (on the dispatch thread only, so nothing else adds
        to `_inflight` between taking a run and starting it)."""
        with self._lock:
            if self._warm_pending and not self._closed:
                self._warm_pending = False
                with contextlib.suppress(BrokenProcessPool, RuntimeError):
                    for _ in range(self.max_workers):
                        self._pool.submit(_warm)
        while True:
            with self._lock:
                if self._closed or not self._heap or len(self._inflight) >= self.max_workers:
                    return
                _, _, run_id = heapq.heappop(self._heap)
                self._waiting.discard(run_id)
            # outside the lock: a database write must not hold up submit() callers
            self._record_owner(run_id)
            with self._lock:
                if self._closed:  # stays queued in the database: the next start takes it
                    return
                try:
                    try:
                        fut = self._submit_to_pool(run_id)
                    except BrokenProcessPool:
                        # a worker died and took the pool down; start a fresh one
                        self._pool.shutdown(wait=False, cancel_futures=True)
                        self._pool = self._new_pool()
                        fut = self._submit_to_pool(run_id)
                except RuntimeError:  # the interpreter is shutting down
                    log.warning("run %s not started: the runner is shutting down", run_id)
                    self._closed = True
                    return
                self._inflight[fut] = run_id
            # outside the lock: a future already done calls back at once, and _done takes it
            fut.add_done_callback(self._done)

    def _record_owner(self, run_id: int) -> None:
        if self.instance_id is None:
            return
        try:
            with self.db.write() as s:
                runs_repo.assign_instance(s, run_id, self.instance_id)
        except Exception:  # the run still runs; only a restart's recovery knows less
            log.exception("run %s: could not record its instance", run_id)

    def _submit_to_pool(self, run_id: int) -> Future[str]:
        return self._pool.submit(_execute, run_id, self.db.url, self.settings.progress_interval_s)

    def _done(self, fut: Future[str]) -> None:
        with self._lock:
            run_id = self._inflight.pop(fut, None)
            closed = self._closed
        if run_id is None:
            return
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            self._after_crash(run_id, exc, closed)
        if not closed:
            self._wake.set()

    def _after_crash(self, run_id: int, exc: BaseException, closed: bool) -> None:
        """The worker died (or `execute_run` could not even record a failure)."""
        broken = isinstance(exc, BrokenProcessPool)
        reason = (
            "interrupted: the service shut down"
            if closed
            else "interrupted: the solver process died"
            if broken
            else f"the runner failed: {type(exc).__name__}: {exc}"
        )
        log.error("run %s: %s", run_id, reason)
        state, priority = None, 0
        try:
            with self.db.write() as s:
                run = runs_repo.get(s, run_id)
                if run is None:
                    return
                state, priority = run.state, run.priority
                if state == "running":
                    runs_repo.finish(
                        s,
                        run_id,
                        state="interrupted" if broken or closed else "failed",
                        now=utcnow(),
                        error=reason,
                    )
        except Exception:
            log.exception("run %s: could not record the crash", run_id)
            return
        if state == "queued" and not closed:
            with self._lock:
                self._crashes[run_id] = crashes = self._crashes.get(run_id, 0) + 1
            if crashes < MAX_CRASHES_BEFORE_CLAIM:
                # it died before claiming the run: nothing happened to the run, try again
                self.submit(run_id, priority)
                return
            with self.db.write() as s:
                runs_repo.finish(
                    s,
                    run_id,
                    state="failed",
                    now=utcnow(),
                    from_states=("queued",),
                    error=f"the solver process died {crashes} times before starting it",
                )


def make_runner(settings: Settings, db: Database, *, instance_id: str | None = None) -> SolveRunner:
    """The runner the settings ask for; `instance_id`: the service instance it runs in
    (recorded on the runs a local pool starts)."""
    if settings.runner == "local":
        return LocalPoolRunner(settings, db, instance_id=instance_id)
    if settings.runner == "celery":
        # imported here: the embedded mode needs neither Celery nor Redis
        from service.celery_runner import CeleryRunner

        return CeleryRunner(settings, db)
    raise ValueError(f"unknown runner {settings.runner!r}")
