"""A what-if's run: checked completely in a read session, queued through the same
`service.runs.queue_runs` as every solve (kind `whatif`, never activated, warm-started from
the base plan), then waited for without blocking the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import scenarios
from service.db import Database
from service.errors import NotFound
from service.models import Run
from service.repo import runs as runs_repo
from service.runs import FINAL_STATES, QueuedRun, Submitter, queue_runs, refuse_if_full
from service.settings import Settings
from service.whatif.base import Base, resolve_base
from service.whatif.checks import check_overrides, settings_problems
from service.whatif.requests import WhatIfRequest

log = logging.getLogger("greenopt.whatif")

# polling a run while a what-if request waits: fast at first (a demo solve takes well under
# a second), then four times a second per waiting request
WAIT_POLL_FIRST_S = 0.05
WAIT_POLL_MAX_S = 0.25


@dataclass(frozen=True)
class CheckedWhatIf:
    """A what-if that passed every check: its base and the solver settings of its run."""

    base: Base
    solve: dict[str, Any]


def check_whatif(
    session: Session,
    request: WhatIfRequest,
    *,
    settings: Settings,
    idempotency_key: str | None = None,
) -> CheckedWhatIf:
    """Resolve a what-if's base and check it completely: QueueFull first if the run queue
    has no room (before any expensive check), then InvalidInput listing every problem of
    the overrides and solver settings, ProblemTooLarge, NotFound for a base that does not
    exist. Reads only, so it can run before the submitting transaction (on SQLite a write
    transaction holds the database's one write lock)."""
    refuse_if_full(session, settings=settings, idempotency_key=idempotency_key)
    base = resolve_base(
        session, scenario_version_id=request.scenario_version_id, base_plan_id=request.base_plan_id
    )
    solve, problems = settings_problems(settings, request.settings)
    check_overrides(
        scenarios.scenario_of(session, base.version), request.overrides, settings, problems
    )
    assert solve is not None  # check_overrides raised for any problem found
    return CheckedWhatIf(base, solve)


def submit_whatif(
    session: Session,
    request: WhatIfRequest,
    checked: CheckedWhatIf,
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
    idempotency_key: str | None = None,
) -> tuple[Run, bool]:
    """Queue the run of a what-if checked by `check_whatif`; (run, True), or (the earlier
    run, False) for a repeated Idempotency-Key. Its idempotency digest is the what-if
    request's, so a retry matches even when the active plan (and so the resolved base)
    changed meanwhile. No commit."""
    queued = QueuedRun(
        kind="whatif",
        scenario_version_id=checked.base.version.id,
        overrides=request.overrides,
        settings=checked.solve,
        note=request.note,
        warm_start_plan_id=checked.base.plan_id,
    )
    runs, created = queue_runs(
        session,
        [queued],
        settings=settings,
        runner=runner,
        actor=actor,
        idempotency_key=idempotency_key,
        digest=request.digest(),
    )
    return runs[0], created


async def wait_for_run(
    db: Database,
    run_id: int,
    timeout_s: float,
    *,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> Run:
    """The run once it has finished, or as it stands after `timeout_s` (or when `gone()`
    says the client left). Polls the database, so it sees runs finished by any worker
    process or host, and never blocks the event loop: the reads run in the thread pool."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = WAIT_POLL_FIRST_S
    while True:
        run = await run_in_threadpool(_read_run, db, run_id)
        remaining = deadline - loop.time()
        if run.state in FINAL_STATES or remaining <= 0:
            return run
        if gone is not None and await gone():
            log.info("what-if run %s: the client left before it finished", run_id)
            return run
        await asyncio.sleep(min(delay, remaining))
        delay = min(2 * delay, WAIT_POLL_MAX_S)


def _read_run(db: Database, run_id: int) -> Run:
    with db.read() as s:
        run = runs_repo.get(s, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def get_whatif_run(session: Session, run_id: int) -> Run:
    run = runs_repo.get(session, run_id)
    if run is None or run.kind != "whatif":
        raise NotFound(f"no what-if run {run_id}")
    return run
