"""The validated, immutable input of the optimizer: sites, fleets, workloads and hourly series.

Entities are frozen dataclasses; hourly data are read-only NumPy arrays indexed by the
order of `Scenario.sites`, `Scenario.accelerators`, `Scenario.services`,
`Scenario.demand_regions` and the hour (0 .. hours-1). Build one with
`optimizer.scenario.load_scenario` or `scenario_from_tables`, never by hand: those run
every check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from optimizer.scenario.schema import (
    GREEN_QUANTILE_COLUMNS,
    GRID_DELIVERED_CONTRACTS,
    ROBUST_LEVELS,
    Policy,
    green_quantile_column,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, and where."""

    file: str
    message: str
    row: int | None = None  # 1-based data row (the header is not counted)
    column: str | None = None
    hour: str | None = None  # ISO timestamp of the hour concerned

    def location(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column}")
        if self.hour:
            parts.append(f"hour {self.hour}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "hour": self.hour,
            "message": self.message,
        }


class InputValidationError(ValueError):
    """The input has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the input:\n{lines}")


@dataclass(frozen=True)
class Battery:
    energy_mwh: float
    power_mw: float
    round_trip_efficiency: float
    initial_soc: float  # fraction of energy_mwh

    @property
    def initial_mwh(self) -> float:
        return self.energy_mwh * self.initial_soc


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    hub: str
    zone: str
    residency_region: str
    lat: float | None
    lon: float | None
    pue: float
    grid_limit_mw: float
    battery: Battery | None
    min_green_share: float
    green_contract: str = "own"  # schema.GREEN_CONTRACTS
    green_payment_cny_per_mwh: float = 0.0
    green_resale_cny_per_mwh: float = 0.0


@dataclass(frozen=True)
class Accelerator:
    accelerator: str
    busy_kw: float
    idle_kw: float
    relative_throughput: float


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    accelerators: tuple[str, ...]
    gang: int
    work_device_hours: float
    release: int  # hour index, >= 0 (earlier releases are clamped to the horizon start)
    deadline: int  # hour index, exclusive; may exceed the horizon
    preemptible: bool
    allowed_regions: tuple[str, ...]
    data_origin_site: str | None
    data_gb: float
    current_site: str | None
    lost_hours_on_move: float
    priority: float
    unplaced_penalty_cny: float | None  # None: policy rate x work x priority


@dataclass(frozen=True)
class RegionPoint:
    """Where a demand region's users are, for maps (demand_regions.csv)."""

    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Service:
    service_id: str
    latency_limit_ms: float
    throughput_tokens_per_s: Mapping[str, float]  # accelerator -> tokens/s per device
    unmet_penalty_cny_per_mtoken: float | None


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Scenario:
    """A complete planning problem. Arrays: [site, hour], [site, accelerator, hour],
    [service, demand region, hour]."""

    name: str
    timezone: str
    start: pd.Timestamp
    hours: int
    policy: Policy
    sites: tuple[Site, ...]
    accelerators: tuple[Accelerator, ...]
    fleet: Mapping[tuple[str, str], int]
    grid_price_cny_per_mwh: np.ndarray
    grid_carbon_kg_per_mwh: np.ndarray
    green_available_mw: np.ndarray
    green_price_cny_per_mwh: np.ndarray
    available_fraction: np.ndarray
    latency_ms: Mapping[tuple[str, str], float]
    demand_regions: tuple[str, ...]
    jobs: tuple[Job, ...]
    services: tuple[Service, ...]
    demand_tokens_per_s: np.ndarray
    description: str = ""
    # money of every *_cny_* input and of the plan; the input names predate other currencies
    currency: str = "CNY"
    # what loads but cannot all be done (a gang larger than every fleet): planned as unplaced
    warnings: tuple[Problem, ...] = ()
    # [site, hour] residual-mix factor; NaN (or None: all NaN) where none is given
    grid_residual_kg_per_mwh: np.ndarray | None = None
    # [site, hour] quantiles of the green forecast (schema.GREEN_QUANTILES); None: no band,
    # the quantile is `green_available_mw` (its P50)
    green_available_p10_mw: np.ndarray | None = None
    green_available_p90_mw: np.ndarray | None = None
    # demand region -> its representative point (optional, display only; demand_regions.csv)
    region_points: Mapping[str, RegionPoint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.grid_residual_kg_per_mwh is None:
            nan = np.full(np.shape(self.grid_carbon_kg_per_mwh), np.nan)
            object.__setattr__(self, "grid_residual_kg_per_mwh", nan)
        for name in GREEN_QUANTILE_COLUMNS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.array(self.green_available_mw, dtype=float))
        for name in (
            *GREEN_QUANTILE_COLUMNS,
            "grid_price_cny_per_mwh",
            "grid_carbon_kg_per_mwh",
            "green_available_mw",
            "green_price_cny_per_mwh",
            "grid_residual_kg_per_mwh",
            "available_fraction",
            "demand_tokens_per_s",
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name)))

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the scenario's canonical tables: same inputs, same fingerprint.
        Computed from the content on first use, so a copy made with `dataclasses.replace`
        (a policy change) gets its own and can never carry its original's."""
        from optimizer.scenario.load import fingerprint  # load builds Scenarios: import late

        return fingerprint(self)

    # --- indices -------------------------------------------------------------------
    @cached_property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(s.site_id for s in self.sites)

    @cached_property
    def accelerator_names(self) -> tuple[str, ...]:
        return tuple(a.accelerator for a in self.accelerators)

    @cached_property
    def site_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.site_ids)}

    @cached_property
    def accelerator_index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.accelerator_names)}

    @cached_property
    def region_index(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.demand_regions)}

    @cached_property
    def timestamps(self) -> pd.DatetimeIndex:
        """Hour starts of the horizon, timezone-aware in the scenario's zone."""
        return pd.date_range(self.start, periods=self.hours, freq="h", tz=self.timezone)

    def timestamp(self, hour: int) -> pd.Timestamp:
        """Start of `hour` (may lie beyond the horizon, e.g. a deadline), remembered: a
        plan's tables ask for every job's release and deadline, 15,000 times for a default
        warm what-if's five plans (0.2 s of conversions under cProfile)."""
        known = self._timestamp_of
        ts = known.get(hour)
        if ts is None:
            ts = known[hour] = (self.start + pd.Timedelta(hours=hour)).tz_convert(self.timezone)
        return ts

    @cached_property
    def _timestamp_of(self) -> dict[int, pd.Timestamp]:
        return {}

    # --- derived quantities ----------------------------------------------------------
    @cached_property
    def installed_devices(self) -> np.ndarray:
        """[site, accelerator] installed devices."""
        out = np.zeros((len(self.sites), len(self.accelerators)), dtype=np.int64)
        for (s, a), n in self.fleet.items():
            out[self.site_index[s], self.accelerator_index[a]] = n
        out.flags.writeable = False
        return out

    @cached_property
    def capacity(self) -> np.ndarray:
        """[site, accelerator, hour] devices available: floor(installed x available_fraction)."""
        cap = np.floor(self.installed_devices[:, :, None] * self.available_fraction + 1e-9)
        out = cap.astype(np.int64)
        out.flags.writeable = False
        return out

    @cached_property
    def busy_kw(self) -> np.ndarray:
        return np.array([a.busy_kw for a in self.accelerators], dtype=float)

    @cached_property
    def idle_kw(self) -> np.ndarray:
        return np.array([a.idle_kw for a in self.accelerators], dtype=float)

    @cached_property
    def pue(self) -> np.ndarray:
        return np.array([s.pue for s in self.sites], dtype=float)

    @cached_property
    def grid_limit_mw(self) -> np.ndarray:
        return np.array([s.grid_limit_mw for s in self.sites], dtype=float)

    @cached_property
    def residual_mix_given(self) -> np.ndarray:
        """[site, hour] bool: a residual-mix factor is given (else the average stands in)."""
        return ~np.isnan(np.asarray(self.grid_residual_kg_per_mwh, dtype=float))

    @cached_property
    def contract_carbon_kg_per_mwh(self) -> np.ndarray:
        """[site, hour] the factor of a grid MWh in contract-based accounting: the residual
        mix where given, else the average `grid_carbon_kg_per_mwh`."""
        res = np.asarray(self.grid_residual_kg_per_mwh, dtype=float)
        out = np.where(self.residual_mix_given, res, self.grid_carbon_kg_per_mwh)
        out.flags.writeable = False
        return out

    @cached_property
    def green_shares_grid(self) -> np.ndarray:
        """[site] bool: its contracted green comes over the grid connection (ppa, trade),
        so grid import + green used share the connection's limit."""
        return np.array([s.green_contract in GRID_DELIVERED_CONTRACTS for s in self.sites])

    @cached_property
    def supply_limit_mw(self) -> np.ndarray:
        """[site, hour] most power the site can draw: the grid limit, plus the green supply
        of an own asset or direct line beside it."""
        own = np.where(self.green_shares_grid[:, None], 0.0, self.green_available_mw)
        return self.grid_limit_mw[:, None] + own

    def green_quantile_mw(self, q: str) -> np.ndarray:
        """[site, hour] green supply at forecast quantile `q` (`p10`, `p50`, `p90`)."""
        if q == "p50":
            return self.green_available_mw
        return getattr(self, green_quantile_column(q))  # type: ignore[no-any-return]

    @cached_property
    def green_band_given(self) -> bool:
        """The scenario carries a green forecast band (some quantile differs from the P50)."""
        return any(
            not np.array_equal(getattr(self, c), self.green_available_mw)
            for c in GREEN_QUANTILE_COLUMNS
        )

    @property
    def robust_green_quantile(self) -> str | None:
        """The green quantile robust mode plans for (policy `robust_green_quantile`), or None."""
        level = self.policy.robust_green_quantile
        if level is None:
            return None
        return min(ROBUST_LEVELS.items(), key=lambda kv: abs(kv[0] - level))[1]

    def supply_limit_at(self, q: str) -> np.ndarray:
        """[site, hour] most power the site can draw when green comes in at quantile `q`."""
        own = np.where(self.green_shares_grid[:, None], 0.0, self.green_quantile_mw(q))
        return self.grid_limit_mw[:, None] + own

    @cached_property
    def firm_supply_limit_mw(self) -> np.ndarray:
        """[site, hour] the power a plan may count on: `supply_limit_mw`, or in robust mode
        the supply with green at the robust quantile (what every planner fills up to)."""
        q = self.robust_green_quantile
        out = self.supply_limit_mw if q is None else self.supply_limit_at(q)
        out = np.array(out)
        out.flags.writeable = False
        return out

    @cached_property
    def green_resale_cny_per_mwh(self) -> np.ndarray:
        """[site] value of a contracted green MWh left unused."""
        return np.array([s.green_resale_cny_per_mwh for s in self.sites], dtype=float)

    @cached_property
    def green_marginal_cny_per_mwh(self) -> np.ndarray:
        """[site, hour] what using one more contracted green MWh costs: its price per MWh
        used (O&M) plus the resale value it forgoes. The contract payment is fixed."""
        return self.green_price_cny_per_mwh + self.green_resale_cny_per_mwh[:, None]

    @cached_property
    def contract_payment_cny(self) -> np.ndarray:
        """[site, hour] the contract payment: price x available (or contracted) MWh."""
        pay = np.array([s.green_payment_cny_per_mwh for s in self.sites], dtype=float)
        return pay[:, None] * self.green_available_mw

    def job_penalty_cny(self, job: Job, work_device_hours: float | None = None) -> float:
        """Cost of leaving `job` unplaced (its work over this horizon undone)."""
        if job.unplaced_penalty_cny is not None:
            return job.unplaced_penalty_cny
        work = job.work_device_hours if work_device_hours is None else work_device_hours
        return self.policy.unplaced_penalty_cny_per_device_hour * work * job.priority

    def service_penalty_cny_per_mtoken(self, service: Service) -> float:
        if service.unmet_penalty_cny_per_mtoken is not None:
            return service.unmet_penalty_cny_per_mtoken
        return self.policy.unmet_penalty_cny_per_mtoken

    def size(self) -> dict[str, int]:
        return {
            "sites": len(self.sites),
            "hours": self.hours,
            "jobs": len(self.jobs),
            "services": len(self.services),
        }


def run_hours_needed(work_device_hours: float, gang: int, relative_throughput: float) -> int:
    """Whole hours a gang of `gang` devices of a type with `relative_throughput` needs."""
    return max(1, math.ceil(work_device_hours / (gang * relative_throughput) - 1e-9))
