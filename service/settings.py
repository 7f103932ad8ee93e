"""The service's settings: one pydantic-settings object, read from `GREENOPT_*` environment
variables, built once per process and injected where needed (tests pass their own)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository root of an editable install: where `data/` lives."""

DEFAULT_SCENARIO_DIR = PROJECT_ROOT / "data" / "scenarios" / "cn-edwc-48h"
DEMO_SCENARIO_DIR = PROJECT_ROOT / "data" / "demo"
MIB = 1024 * 1024


def default_scenario_dir() -> Path:
    """The full default scenario when it has been built, else the small demo."""
    if (DEFAULT_SCENARIO_DIR / "scenario.toml").is_file():
        return DEFAULT_SCENARIO_DIR
    return DEMO_SCENARIO_DIR


class Settings(BaseSettings):
    """Everything configurable about the service. Environment: `GREENOPT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GREENOPT_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///var/greenopt.db",
        description="SQLAlchemy URL; e.g. postgresql+psycopg://user@host:5432/greenopt",
    )
    default_scenario: Path = Field(
        default_factory=default_scenario_dir,
        description="scenario directory loaded into version 1 when the database has none",
    )
    runner: Literal["local"] = Field(
        default="local", description="where solves run: local = a process pool in the API process"
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
        default=1e-3, ge=0, le=1, description="default relative MIP gap"
    )
    solve_threads: int = Field(default=1, ge=1, le=64, description="HiGHS threads per solve")
    solve_seed: int = Field(default=0, ge=0, description="HiGHS random seed")

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
    host: str = Field(default="127.0.0.1", description="address `greenopt serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="port `greenopt serve` listens on")
    log_level: str = Field(default="INFO", description="root log level")
    log_json: bool = Field(default=True, description="one JSON object per log line")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Settings from the environment (the CLI's entry point; the app gets them injected)."""
    return Settings()
