"""Start-up work shared by the API's lifespan and `greenopt serve`: migrate the schema and
load the default scenario into an empty database (serialised across replicas)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
