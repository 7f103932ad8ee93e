"""The service's tables (SQLAlchemy 2 ORM), as docs/service.md lays them out.

Scenario data are content-addressed blobs shared between versions; plans are immutable and
written in one transaction with their rows; run states survive restarts. Timestamps are
stored in UTC and always come back timezone-aware, SQLite included.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_KINDS = ("run", "whatif", "sweep_point", "nightly")
RUN_STATES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
ACTIVE_RUN_STATES = ("queued", "running")
ROLES = ("viewer", "planner", "admin")
NIGHT_STATES = ("running", "succeeded", "failed")
NIGHT_TRIGGERS = ("schedule", "manual")

# Deterministic constraint names, so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), Any: JSON()}


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# ----------------------------------------------------------------------------- keys
class ApiKey(Base):
    """An API key: only its sha256 is kept; `prefix` finds the row without a scan."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN {_in(ROLES)}", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # who made it: the admin key's label, or cli:<user> (empty for keys made before 0003)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(100), default=None)


# ----------------------------------------------------------------------------- scenarios
class ScenarioBlob(Base):
    """One table of a scenario as gzip CSV (cells as text), addressed by the sha256 of the
    uncompressed CSV so versions share the tables they did not change."""

    __tablename__ = "scenario_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    rows: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScenarioVersion(Base):
    """An accepted scenario: manifest + {table: blob sha256}. The newest is current.
    `parent_id` is unique so history is a line: two concurrent edits of the same version
    cannot both win."""

    __tablename__ = "scenario_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("scenario_versions.id"), unique=True, default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    tables: Mapped[dict[str, Any]] = mapped_column(JSON)
    sizes: Mapped[dict[str, Any]] = mapped_column(JSON)
    # a night's window built from forecast feeds: which provider gave each series, and
    # the fall backs (optimizer.feeds.Resolution.report); NULL for any other version
    feeds: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


# ----------------------------------------------------------------------------- runs
class Sweep(Base):
    """A what-if sweep: one `sweep_point` run per value of one parameter."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    base_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    parameter: Mapped[str] = mapped_column(String(100))
    values: Mapped[list[Any]] = mapped_column(JSON)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")


class Run(Base):
    """One request to solve, and everything that happened to it."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"kind IN {_in(RUN_KINDS)}", name="kind"),
        CheckConstraint(f"state IN {_in(RUN_STATES)}", name="state"),
        Index("ix_runs_state_priority", "state", "priority", "id"),
        Index("ix_runs_kind_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="run")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    warm_start_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    activate_on_success: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    request_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"), index=True, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # the service instance whose local solver pool runs it (NULL: not handed to one yet, or
    # a Celery worker's); start-up recovery leaves the runs of live instances alone
    instance_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)


# ----------------------------------------------------------------------------- plans
class Plan(Base):
    """An immutable plan. Written with its rows, artifacts and its run's final state in one
    transaction; `run_id` is unique so the same run can never store two plans."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", use_alter=True), unique=True, default=None
    )
    kind: Mapped[str] = mapped_column(String(16))
    planner: Mapped[str] = mapped_column(String(32), default="milp")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    scenario_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    objective: Mapped[float | None] = mapped_column("objective_cny", Float)
    bound: Mapped[float | None] = mapped_column("bound_cny", Float)
    gap: Mapped[float | None] = mapped_column(Float)
    total_cost: Mapped[float | None] = mapped_column("total_cost_cny", Float)
    emissions_t: Mapped[float | None] = mapped_column(Float)
    emissions_location_t: Mapped[float | None] = mapped_column(Float)
    green_share: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    # sha256 of every bundle file exactly as `optimizer.plan.Plan.write_bundle` wrote it;
    # the bundle endpoint checks what it rebuilds against these
    bundle_sha256: Mapped[dict[str, Any]] = mapped_column(JSON)


class PlanAssignment(Base):
    """A row of the plan's `assignments` table; `seq` keeps the bundle's row order."""

    __tablename__ = "plan_assignments"
    __table_args__ = (
        Index("ix_plan_assignments_site", "plan_id", "site_id", "seq"),
        Index("ix_plan_assignments_workload", "plan_id", "workload_id", "seq"),
    )

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    workload_id: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[str] = mapped_column(String(200))
    accelerator: Mapped[str] = mapped_column(String(100))
    timestamp: Mapped[str] = mapped_column(String(40))
    hour: Mapped[int] = mapped_column(Integer)
    devices: Mapped[int] = mapped_column(Integer)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)


class PlanSiteHour(Base):
    """A row of the plan's `site_hours` table (energy per site and hour).

    Attributes carry the bundle contract's column names (tests/test_contract.py checks
    them); three stored columns keep the names they had before money names became
    currency-neutral, so no migration was needed."""

    __tablename__ = "plan_site_hours"
    __table_args__ = (Index("ix_plan_site_hours_site", "plan_id", "site_id", "seq"),)

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    site_id: Mapped[str] = mapped_column(String(200))
    timestamp: Mapped[str] = mapped_column(String(40))
    hour: Mapped[int] = mapped_column(Integer)
    pue: Mapped[float | None] = mapped_column(Float)
    it_mw: Mapped[float | None] = mapped_column(Float)
    facility_mw: Mapped[float | None] = mapped_column(Float)
    grid_limit_mw: Mapped[float | None] = mapped_column(Float)
    green_available_mw: Mapped[float | None] = mapped_column(Float)
    green_used_mw: Mapped[float | None] = mapped_column(Float)
    curtailed_mw: Mapped[float | None] = mapped_column(Float)
    grid_mw: Mapped[float | None] = mapped_column(Float)
    battery_charge_mw: Mapped[float | None] = mapped_column(Float)
    battery_discharge_mw: Mapped[float | None] = mapped_column(Float)
    battery_soc_mwh: Mapped[float | None] = mapped_column(Float)
    grid_price_per_mwh: Mapped[float | None] = mapped_column("grid_price_cny_per_mwh", Float)
    green_price_per_mwh: Mapped[float | None] = mapped_column("green_price_cny_per_mwh", Float)
    carbon_kg_per_mwh: Mapped[float | None] = mapped_column(Float)
    energy_cost: Mapped[float | None] = mapped_column("energy_cost_cny", Float)
    emissions_kg: Mapped[float | None] = mapped_column(Float)
    emissions_location_kg: Mapped[float | None] = mapped_column(Float)


class PlanArtifact(Base):
    """A bundle file kept as the exact bytes `write_bundle` wrote (gzip-compressed)."""

    __tablename__ = "plan_artifacts"

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)


class ActivePlan(Base):
    """The one active plan (a single row, id = 1)."""

    __tablename__ = "active_plan"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    activated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_by: Mapped[str] = mapped_column(String(100))


class PlanActivation(Base):
    """History of activations: which plan became active, when, by whom, why."""

    __tablename__ = "plan_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    previous_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), default=None)
    activated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


# ----------------------------------------------------------------------------- schedule
# APScheduler's SQLAlchemyJobStore creates and owns this table (service/scheduler.py);
# migrations leave it alone
SCHEDULER_JOBS_TABLE = "apscheduler_jobs"


class Schedule(Base):
    """The nightly re-optimisation (a single row, id = 1)."""

    __tablename__ = "schedule"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cron: Mapped[str] = mapped_column(String(100), default="30 1 * * *")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    time_limit_s: Mapped[float] = mapped_column(Float, default=600.0)
    stability_weight: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100), default="")
    # written by every scheduler process at each poll: GET /schedule shows whether one runs
    scheduler_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    scheduler_id: Mapped[str | None] = mapped_column(String(200), default=None)


INSTANCE_KINDS = ("api", "scheduler")


class Instance(Base):
    """A running `greenopt serve` (kind api) or `greenopt scheduler` process, while it
    runs: registered at start, its heartbeat written every `instance_heartbeat_s`, removed
    at a clean stop. A row whose heartbeat is older than `instance_stale_after_s` is an
    instance that died without saying so."""

    __tablename__ = "instances"
    __table_args__ = (CheckConstraint(f"kind IN {_in(INSTANCE_KINDS)}", name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    holds_scheduler: Mapped[bool] = mapped_column(Boolean, default=False)


class NightlyRun(Base):
    """One row per night (trigger `schedule`) and one per run-now (`manual`, no night).

    The unique night keeps two schedulers (or a cron that fires twice in a DST fall-back
    hour) from running the same night twice: the insert decides who runs. NULL nights do
    not collide, so a run-now never blocks the night."""

    __tablename__ = "nightly_runs"
    __table_args__ = (
        CheckConstraint(f"state IN {_in(NIGHT_STATES)}", name="state"),
        CheckConstraint(f"trigger IN {_in(NIGHT_TRIGGERS)}", name="trigger"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night: Mapped[dt.date | None] = mapped_column(Date, unique=True, default=None)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), default=None)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    # the cron fire time this night stands for (a run-now: when it was asked for)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(default=None)
    # the active plan when the night started: what a failed night keeps
    previous_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    # the plan the night's run stored (activated or, a greedy fallback, not)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# ----------------------------------------------------------------------------- queue
QUEUE_KINDS = ("job", "service")
QUEUE_STATES = ("active", "cancelled")


class QueueItem(Base):
    """A job or a service in the workload queue (issue 13): its spec as the row of the
    scenario's jobs (services) table it becomes, and for a job the progress reported.
    Keyed by (kind, id): submitting the same id again replaces the spec, so a retry is
    harmless. A cancelled item stays, so its id keeps meaning that job."""

    __tablename__ = "queue_items"
    __table_args__ = (
        CheckConstraint(f"kind IN {_in(QUEUE_KINDS)}", name="kind"),
        CheckConstraint(f"state IN {_in(QUEUE_STATES)}", name="state"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    workload_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="active")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    done_device_hours: Mapped[float] = mapped_column(Float, default=0.0)
    current_site: Mapped[str | None] = mapped_column(String(200), default=None)
    progress_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


# ----------------------------------------------------------------------------- feeds
FEED_CHANNELS = ("upload", "folder", "http")


class FeedSeries(Base):
    """An hourly series a forecast feed delivered (service/feeds.py), with its provenance.
    `entity` is the series' key (a site id; `service_id/demand_region` for demand);
    `source_sha256` is the file's digest, so a watched-folder file is read once."""

    __tablename__ = "feed_series"
    __table_args__ = (
        Index("ix_feed_series_lookup", "series", "entity", "provider", "issued_at"),
        CheckConstraint(f"channel IN {_in(FEED_CHANNELS)}", name="channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(400))
    provider: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(500))
    source_sha256: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    issued_at: Mapped[dt.datetime] = mapped_column()
    start_at: Mapped[dt.datetime] = mapped_column()
    hours: Mapped[int] = mapped_column(Integer)
    horizon_h: Mapped[int] = mapped_column(Integer)
    values: Mapped[list[Any]] = mapped_column(JSON)
    quantiles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    received_by: Mapped[str] = mapped_column(String(200), default="")
