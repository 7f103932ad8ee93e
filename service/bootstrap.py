"""Start-up work shared by the API's lifespan and `greenopt serve`: migrate the schema and
load the default scenario into an empty database (serialised across replicas); queue the
first plan of a fresh database and say how far it got (/readyz)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service import scenarios
from service.db import Database
from service.settings import Settings

log = logging.getLogger("greenopt.bootstrap")


@dataclass(frozen=True)
class Prepared:
    revision: str | None
    loaded_version: int | None  # the version made from the default scenario, if one was


def prepare_database(db: Database, settings: Settings) -> Prepared:
    """Migrate to the newest schema; load `settings.default_scenario` when the database
    has no scenario version yet. Safe to call at every start."""
    with db.startup_lock():
        db.upgrade()
        with db.write() as s:
            v = scenarios.bootstrap(s, settings.default_scenario)
            loaded = v.id if v is not None else None
    if loaded is not None:
        log.info("loaded scenario %s into version %s", settings.default_scenario, loaded)
    return Prepared(db.current_revision(), loaded)


# ----------------------------------------------------------------------------- first plan
FIRST_PLAN_NOTE = "first plan, solved by greenopt serve"


class _Collect:
    """A runner stand-in: the run is handed to the real runner when the app starts
    (start-up recovery hands every queued run to it)."""

    def submit(self, run_id: int, priority: int = 0) -> None:
        pass


def queue_first_plan(db: Database, settings: Settings) -> int | None:
    """Queue a run that solves and activates a plan when none is active (`greenopt serve`
    on a fresh database); a run already queued or running to activate a plan (a first plan
    a crash interrupted the start of) is reused. None when a plan is active."""
    from service import plans, runs
    from service.repo import runs as runs_repo

    with db.write() as s:
        if plans.active_plan_id(s) is not None:
            return None
        pending = runs_repo.pending_activation(s)
        if pending is not None:
            return pending
        run, _ = runs.submit_run(
            s,
            runs.RunRequest(activate=True, note=FIRST_PLAN_NOTE),
            settings=settings,
            runner=_Collect(),
            actor="greenopt serve",
        )
        return run.id


def first_plan_status(session: Session, run_id: int) -> tuple[bool, str, dict[str, Any]]:
    """(finished, what it is doing, its progress) of the first-plan run, for /readyz and
    the console. A first plan that failed still lets the service serve: POST /runs tries
    again."""
    from service.repo import runs as runs_repo

    run = runs_repo.get(session, run_id)
    if run is None:
        return True, f"first plan run {run_id} is gone", {}
    p = dict(run.progress or {})
    progress = {"run_id": run_id, "state": run.state, **p}
    if run.state == "succeeded":
        return True, f"first plan {run.plan_id} solved (run {run_id})", progress
    if run.state in ("failed", "interrupted", "cancelled"):
        return True, f"first plan run {run_id} {run.state}: {run.error}", progress
    if run.state == "queued":
        return False, f"first plan (run {run_id}): waiting for a solver process", progress
    obj, gap = p.get("objective"), p.get("gap")
    detail = (
        f"solving the first plan (run {run_id}): {p.get('phase', 'starting')}, "
        f"{p.get('run_elapsed_s') or p.get('elapsed_s') or 0.0:.1f} s"
        + (f", best {obj:,.0f}" if isinstance(obj, int | float) else "")
        + (f", gap {gap:.2%}" if isinstance(gap, int | float) else "")
    )
    return False, detail, progress
