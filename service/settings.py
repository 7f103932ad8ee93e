"""The service's settings: one pydantic-settings object, read from `GREENOPT_*` environment
variables, built once per process and injected where needed (tests pass their own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from optimizer import SolverSettings
from optimizer.feeds.parse import PERIOD_FIELDS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository root of an editable install: where `data/` lives."""

DEFAULT_SCENARIO_DIR = PROJECT_ROOT / "data" / "scenarios" / "cn-edwc-48h"
DEMO_SCENARIO_DIR = PROJECT_ROOT / "data" / "demo"
MIB = 1024 * 1024


DATABASE_FILE = "greenopt.db"
"""The embedded SQLite database's file name, inside the data directory."""


def default_home() -> Path:
    """Where the service keeps its data when GREENOPT_HOME is not set: the per-user data
    directory of the XDG base-directory convention, `$XDG_DATA_HOME/greenopt`, else
    `~/.local/share/greenopt`. Always absolute, so every command run from any folder finds
    the same database."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "greenopt"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def default_scenario_dir() -> Path:
    """The full default scenario when it has been built, else the small demo."""
    if (DEFAULT_SCENARIO_DIR / "scenario.toml").is_file():
        return DEFAULT_SCENARIO_DIR
    return DEMO_SCENARIO_DIR


class Settings(BaseSettings):
    """Everything configurable about the service. Environment: `GREENOPT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GREENOPT_", extra="ignore", frozen=True)

    home: Path = Field(
        default_factory=default_home,
        description="the data directory: the embedded SQLite database lives here (created "
        "owner-only, 0700; the database file 0600). Default $XDG_DATA_HOME/greenopt, else "
        "~/.local/share/greenopt",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; e.g. postgresql+psycopg://user@host:5432/greenopt "
        f"(default: sqlite in the data directory, <home>/{DATABASE_FILE}; a relative SQLite "
        "path is taken inside the data directory, never the current folder)",
    )
    default_scenario: Path = Field(
        default_factory=default_scenario_dir,
        description="scenario directory loaded into version 1 when the database has none",
    )
    runner: Literal["local", "celery"] = Field(
        default="local",
        description="where solves run: local = a process pool in the API process; celery = "
        "`greenopt worker` processes fed through the broker (docs/scale-out.md)",
    )
    max_concurrent_solves: int = Field(default=2, ge=1, le=64, description="solves running at once")
    queue_limit: int = Field(
        default=16,
        ge=1,
        description="runs queued or running at once; beyond it POST /runs answers 429",
    )
    retry_after_s: int = Field(default=10, ge=1, description="Retry-After sent with a 429")
    max_request_bytes: int = Field(
        default=16 * MIB, ge=1024, description="request bodies larger than this answer 413"
    )

    # defaults of a run's solver settings (a request may override time limit and gap)
    solve_time_limit_s: float = Field(
        default=60.0, gt=0, description="default solver time limit, s"
    )
    solve_max_time_limit_s: float = Field(
        default=3600.0, gt=0, description="largest time limit allowed"
    )
    solve_mip_rel_gap: float = Field(
        default=SolverSettings.mip_rel_gap,
        ge=0,
        le=1,
        description="default relative MIP gap (the library's; a warm what-if settles for the "
        "least gap its earlier plans proved plus this)",
    )
    solve_threads: int = Field(default=1, ge=1, le=64, description="HiGHS threads per solve")
    solve_seed: int = Field(default=0, ge=0, description="HiGHS random seed")

    # what-ifs and sweeps (service/whatif.py); the size limits apply after the overrides and
    # are generous for the default scenario (300 jobs, 30 services, 10 sites, 48 h, about
    # 190 000 workload-site-type-hour cells)
    whatif_wait_s: float = Field(
        default=120.0, ge=0, description="how long POST /what-if waits for its plan by default, s"
    )
    whatif_max_wait_s: float = Field(
        default=240.0,
        ge=0,
        description="the longest wait_s a what-if may ask for, s (keep it below the read "
        "timeout of any proxy in front: 300 s in docker-compose's nginx)",
    )
    whatif_max_jobs: int = Field(default=5000, ge=1, description="jobs a what-if may have")
    whatif_max_services: int = Field(
        default=1000, ge=1, description="inference services a what-if may have"
    )
    whatif_max_sites: int = Field(default=200, ge=1, description="sites a what-if may have")
    whatif_max_hours: int = Field(default=168, ge=1, description="hours a what-if may span")
    whatif_max_model_cells: int = Field(
        default=2_000_000,
        ge=1,
        description="estimated model size a what-if may have: (workload, site, accelerator, "
        "hour) cells its jobs and services could use",
    )
    whatif_max_sweep_points: int = Field(
        default=50, ge=1, description="values one sweep may have (also bounded by queue_limit)"
    )
    sweep_priority: int = Field(
        default=-10,
        ge=-100,
        le=100,
        description="priority of sweep points: below planner runs (0) and the nightly run",
    )

    progress_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="how often a running solve writes its progress and looks for a cancel request",
    )
    initial_plan: bool = Field(
        default=True, description="`greenopt serve` solves and activates a plan when none is active"
    )
    scheduler_in_process: bool = Field(
        default=False,
        description="run the nightly scheduler inside the API process (one worker only)",
    )
    # the nightly schedule's first values: they seed the `schedule` row when a scheduler
    # first starts (or PUT /schedule first writes it); from then on the row is what counts
    schedule_cron: str = Field(
        default="30 1 * * *",
        description="when the nightly re-optimisation fires: crontab (minute hour day month "
        "weekday), optionally with a leading seconds field",
    )
    schedule_timezone: str | None = Field(
        default=None,
        description="IANA zone of the cron (default: the current scenario's timezone)",
    )
    schedule_time_limit_s: float = Field(
        default=600.0, gt=0, description="solver time limit of a nightly run, s"
    )
    schedule_stability_weight: float | None = Field(
        default=1.0,
        ge=0,
        description="plan-stability weight of nightly runs (a policy override; 1 = a running "
        "job moves only when the saving pays for the move; null = the scenario's own policy)",
    )
    scheduler_poll_s: float = Field(
        default=15.0,
        gt=0,
        description="how often a scheduler re-reads the schedule and records finished nights",
    )
    scheduler_misfire_grace_s: float = Field(
        default=3 * 3600.0,
        gt=0,
        description="a night missed while no scheduler ran still fires if it is at most "
        "this late, s",
    )
    nightly_queue_wait_s: float = Field(
        default=900.0,
        ge=0,
        description="a night that finds the run queue full retries for this long before it "
        "fails, s",
    )
    # the rolling forward (service/rolling.py): 0 = a night plans the current version as is
    nightly_horizon_h: int = Field(
        default=0,
        ge=0,
        le=24 * 14,
        description="hours a night plans from the next planning boundary, with the workload "
        "queue; 0: plan the current scenario version as stored",
    )
    nightly_boundary_hour: int = Field(
        default=0,
        ge=0,
        le=23,
        description="local hour (scenario time zone) at which a night's window starts",
    )
    # forecast feeds (service/feeds.py): where a rolled night's hourly series come from
    feed_region: str = Field(
        default="cn-edwc",
        description="region pack (name or directory) whose typical-year profiles are the "
        "offline feed of green, price and carbon; empty: none",
    )
    feed_forecast_error: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="relative standard deviation of the typical-year feed's seeded "
        "forecast error (0: the typical year itself)",
    )
    feed_seed: int = Field(default=0, ge=0, description="seed of the typical-year feed's error")
    feed_max_age_h: float = Field(
        default=24.0,
        gt=0,
        description="a feed series issued longer than this before the night is stale and "
        "falls back to the next provider, h",
    )
    feed_dir: Path | None = Field(
        default=None,
        description="watched folder: each night reads the new *.json and *.csv feed "
        "documents dropped there (each file once)",
    )
    progress_dir: Path | None = Field(
        default=None,
        description="watched folder of job progress files (CSV: job_id, done_device_hours, "
        "current_site): each night applies each *.csv before planning and renames it "
        "<name>.applied; a refused file stays and is named in the night's scenario note",
    )
    feed_http_urls: dict[str, str] = Field(
        default_factory=dict,
        description="series (grid_carbon, grid_price) -> URL template of a period-forecast "
        "JSON API, with {site_id}, {zone}, {from}, {to} filled in per site; pulled each night",
    )
    feed_http_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="time limit of one HTTP feed request, s"
    )
    # the Celery runner and its workers (docs/scale-out.md)
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker (Redis) of the celery runner and of `greenopt worker`",
    )
    worker_concurrency: int = Field(
        default=1, ge=1, le=64, description="solves one `greenopt worker` runs at once"
    )
    heartbeat_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a running run whose heartbeat is older than this lost its worker: it is "
        "queued again (or failed after max_attempts)",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="times a run may be started before a lost worker fails it",
    )
    redispatch_after_s: float = Field(
        default=900.0,
        gt=0,
        description="a queued run handed to the broker this long ago and still not started is "
        "handed over again (a safety net; a broker that lost its data is noticed at once)",
    )
    reconcile_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="how often the celery runner looks for lost workers and undelivered runs",
    )
    task_soft_time_limit_s: float = Field(
        default=3600.0,
        gt=0,
        description="a worker solves with at most this solver time limit: HiGHS stops with its "
        "best plan and gap",
    )
    task_time_limit_s: float = Field(
        default=4200.0,
        gt=0,
        description="hard limit of one solve task in a worker: the solver process is killed and "
        "the run failed",
    )
    instance_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        description="how often a `greenopt serve` / `greenopt scheduler` process writes its "
        "heartbeat to the `instances` table",
    )
    instance_stale_after_s: float = Field(
        default=30.0,
        gt=0,
        description="an instance whose heartbeat is older than this is dead: its running runs "
        "become interrupted",
    )
    host: str = Field(default="127.0.0.1", description="address `greenopt serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="port `greenopt serve` listens on")
    log_level: str = Field(default="INFO", description="root log level")
    log_json: bool = Field(default=True, description="one JSON object per log line")

    @field_validator("feed_http_urls")
    @classmethod
    def _pullable_series(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(PERIOD_FIELDS))
        if unknown:
            raise ValueError(f"series {unknown} cannot be pulled; one of {sorted(PERIOD_FIELDS)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _absolute_database(cls, data: Any) -> Any:
        """One database whatever folder a command runs in: `home` made absolute, the SQLite
        default put in it, a relative SQLite path resolved inside it."""
        if not isinstance(data, dict):
            return data
        home = Path(data.get("home") or default_home()).expanduser().absolute()
        url = str(data.get("database_url") or "")
        prefix = "sqlite:///"
        if not url:
            url = sqlite_url(home / DATABASE_FILE)
        elif url.startswith(prefix) and url != prefix + ":memory:":
            path = Path(url[len(prefix) :]).expanduser()
            if not path.is_absolute():
                url = sqlite_url(home / path)
        return {**data, "home": home, "database_url": url}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, when the database is one."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and not self.database_url.endswith(":memory:"):
            return Path(self.database_url[len(prefix) :].split("?", 1)[0])
        return None


def get_settings() -> Settings:
    """Settings from the environment (the CLI's entry point; the app gets them injected)."""
    return Settings()
