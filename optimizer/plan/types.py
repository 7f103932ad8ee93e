"""The optimizer's output as plain data: a planner's decisions (`Schedule`) and the plan
made of them (`Plan`: its summary and bundle tables; `Kpis` in `contract.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.contract import BUNDLE_TABLES, DEFAULT_CURRENCY, PRICING_DUALS, Kpis
from optimizer.scenario.types import Scenario

TOL = 1e-6
"""Slack below which an amount (MW, tokens/s, shortfall) counts as zero in a plan."""


def lane_name(k: int) -> str:
    """The id of flexible lane `k` (optimizer.flexible): its job id in the lane scenario
    and the `lane_id` of its jobs in workloads.csv."""
    return f"lane:{k}"


@dataclass
class Schedule:
    """Decisions of a planner, dense over the (small) site x type x hour grid.

    `job_site`/`job_acc` are -1 for unplaced jobs; `job_hours[j]` are the hours job j runs.
    Battery arrays are zero for planners that do not use batteries.
    """

    job_site: np.ndarray
    job_acc: np.ndarray
    job_hours: list[np.ndarray]
    job_reason: list[str]
    svc_devices: np.ndarray  # [service, site, accelerator, hour] devices
    flows: np.ndarray  # [service, region, site, hour] tokens/s
    green_mw: np.ndarray | None = None  # [site, hour]; None: use green first (baselines)
    charge_mw: np.ndarray | None = None
    discharge_mw: np.ndarray | None = None
    soc_mwh: np.ndarray | None = None
    # [job] the flexible lane a short job runs in (optimizer.flexible), -1: none; the jobs
    # of a lane share its devices, which count once per hour
    job_lane: np.ndarray | None = None

    @classmethod
    def empty(cls, sc: Scenario) -> Schedule:
        J, K, S, A, R, H = (
            len(sc.jobs),
            len(sc.services),
            len(sc.sites),
            len(sc.accelerators),
            len(sc.demand_regions),
            sc.hours,
        )
        return cls(
            job_site=np.full(J, -1, dtype=np.int64),
            job_acc=np.full(J, -1, dtype=np.int64),
            job_hours=[np.zeros(0, np.int64) for _ in range(J)],
            job_reason=[""] * J,
            svc_devices=np.zeros((K, S, A, H), dtype=np.int64),
            flows=np.zeros((K, R, S, H)),
        )


@dataclass(frozen=True, eq=False)
class Plan:
    summary: dict[str, Any]
    workloads: pd.DataFrame
    assignments: pd.DataFrame
    site_hours: pd.DataFrame
    site_hour_devices: pd.DataFrame
    service_hours: pd.DataFrame
    service_flows: pd.DataFrame
    binding: pd.DataFrame
    moves: pd.DataFrame
    # what to do to follow the plan (optimizer/actions.py); empty in bundles written before it
    actions: pd.DataFrame = field(default_factory=pd.DataFrame)
    # which replica starts and pauses pay (optimizer/plan/explain.py); empty in older bundles
    churn: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the pricing LP's row duals a warm re-solve bounds with (optimizer/model/dual_bound.py)
    pricing_duals: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=PRICING_DUALS.names)
    )
    schedule: Schedule | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return str(self.summary["status"])

    @property
    def kpis(self) -> Kpis:
        return Kpis.from_mapping(self.summary)

    @property
    def currency(self) -> str:
        return str(self.summary.get("currency", DEFAULT_CURRENCY))

    def table(self, name: str) -> pd.DataFrame:
        if name not in BUNDLE_TABLES:
            raise KeyError(name)
        return getattr(self, name)

    def write_bundle(self, path: str | Path) -> Path:
        """Write the bundle atomically: a reader sees all of it or none of it."""
        from optimizer.plan.bundle import write_bundle  # bundle.py builds Plans: no cycle

        return write_bundle(self, path)

    @classmethod
    def read_bundle(cls, path: str | Path) -> Plan:
        from optimizer.plan.bundle import read_bundle

        return read_bundle(path)


@dataclass(frozen=True)
class Energy:
    """Per [site, hour]: power drawn and where it comes from, its cost and emissions."""

    busy: np.ndarray  # [site, accelerator, hour] devices
    it: np.ndarray
    fac: np.ndarray
    charge: np.ndarray
    discharge: np.ndarray
    soc: np.ndarray
    green: np.ndarray
    grid: np.ndarray
    curtailed: np.ndarray
    grid_cost: np.ndarray
    green_cost: np.ndarray
    emis_kg: np.ndarray
    emis_loc_kg: np.ndarray
