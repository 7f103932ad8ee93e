"""The small changes the re-optimisation benchmark applies to an instance: a price update,
a site outage, new jobs. Each is an `optimizer.whatif.Overrides`, the same object the
service's what-if endpoint takes, so the benchmark re-solves what users would."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from bench.sizes import REGION, Size, scenario_of
from optimizer.generator import select_sites
from optimizer.plan import Schedule
from optimizer.regions import load_region
from optimizer.scenario.load import scenario_to_tables
from optimizer.scenario.types import Scenario
from optimizer.whatif import CapacityChange, Overrides, PriceChange

EVENING_PRICE_MULTIPLIER = 1.2  # +20 % grid price
EVENING_HOURS = (18, 22)  # local [start, end): the evening peak of the tariffs
OUTAGE_HOURS = 6
OUTAGE_START_HOUR = 18  # local: an outage at the evening peak hurts most
NEW_JOB_SHARE = 0.05  # 5 % more jobs
NEW_JOBS_SEED_OFFSET = 1000  # the extra jobs come from another seed of the generator
NEW_JOB_PREFIX = "new-"

CHANGES = ("price", "outage", "new_jobs")


def east_sites(sc: Scenario) -> list[str]:
    """The scenario's sites of the pack's `east` class (near users, dearer power)."""
    chosen = select_sites(load_region(REGION), len(sc.sites))
    east = set(chosen.loc[chosen["site_class"] == "east", "site_id"])
    return [s for s in sc.site_ids if s in east]


def _windows(sc: Scenario, first_hour: int, length: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) windows starting at local `first_hour` each day of the horizon, clipped to
    it; a horizon too short for any gives its last `length` hours instead, so tiny instances
    still change."""
    stamps = sc.timestamps
    end_of_horizon = stamps[-1] + pd.Timedelta(hours=1)
    out = []
    for t in stamps:
        if t.hour == first_hour:
            out.append((t, min(t + pd.Timedelta(hours=length), end_of_horizon)))
    if not out:
        start = stamps[max(0, len(stamps) - length)]
        out.append((start, end_of_horizon))
    return out


def price_change(sc: Scenario) -> Overrides:
    """+20 % grid price in the evening (18-22 h local, every day) at the east sites."""
    lo, hi = EVENING_HOURS
    sites = east_sites(sc)
    return Overrides.model_validate(
        {
            "price_changes": [
                PriceChange.model_validate(
                    {"start": a, "end": b, "multiplier": EVENING_PRICE_MULTIPLIER, "sites": sites}
                )
                for a, b in _windows(sc, lo, hi - lo)
            ]
        }
    )


def outage(sc: Scenario) -> Overrides:
    """The largest east site (by installed devices) out for 6 hours from 18 h on day one."""
    east = east_sites(sc) or list(sc.site_ids)
    devices = {s: float(sc.installed_devices[sc.site_index[s]].sum()) for s in east}
    site = max(east, key=lambda s: devices[s])
    a, b = _windows(sc, OUTAGE_START_HOUR, OUTAGE_HOURS)[0]
    change = CapacityChange.model_validate({"site": site, "start": a, "end": b})
    return Overrides.model_validate({"capacity_changes": [change]})


def new_jobs(sc: Scenario, size: Size) -> Overrides:
    """5 % more jobs (at least one), drawn by the generator with another seed and renamed.

    Jobs the generator marks as already running elsewhere are added as queued: a job that
    arrives after the plan cannot already run somewhere.
    """
    n = max(1, math.ceil(NEW_JOB_SHARE * len(sc.jobs)))
    extra_sc = scenario_of(size, seed=size.seed + NEW_JOBS_SEED_OFFSET, n_jobs=n)
    jobs = scenario_to_tables(extra_sc)[1]["jobs"].copy()
    jobs["job_id"] = NEW_JOB_PREFIX + jobs["job_id"].astype(str)
    if "current_site" in jobs:
        jobs["current_site"] = None
    rows = [
        {str(k): v for k, v in row.items()}
        for row in jobs.astype(object).where(jobs.notna(), None).to_dict("records")
    ]
    return Overrides.model_validate({"add_jobs": rows})


def overrides_for(change: str, sc: Scenario, size: Size) -> Overrides:
    makers: dict[str, Callable[[], Overrides]] = {
        "price": lambda: price_change(sc),
        "outage": lambda: outage(sc),
        "new_jobs": lambda: new_jobs(sc, size),
    }
    if change not in makers:
        raise ValueError(f"unknown change {change!r}; known: {', '.join(CHANGES)}")
    return makers[change]()


def carry_schedule(prev_sc: Scenario, prev: Schedule, sc: Scenario) -> Schedule:
    """`prev` re-indexed onto `sc`'s jobs by job id (new jobs unplaced), for a warm start.

    `optimize(..., warm_start=plan)` indexes the previous schedule by job position, so a
    changed scenario with more or reordered jobs needs this mapping first.
    """
    if list(prev_sc.site_ids) != list(sc.site_ids) or len(prev_sc.services) != len(sc.services):
        raise ValueError("carry_schedule maps jobs only: sites and services must not change")
    out = Schedule.empty(sc)
    old = {j.job_id: i for i, j in enumerate(prev_sc.jobs)}
    for i, job in enumerate(sc.jobs):
        o = old.get(job.job_id)
        if o is None:
            continue
        out.job_site[i] = prev.job_site[o]
        out.job_acc[i] = prev.job_acc[o]
        out.job_hours[i] = np.asarray(prev.job_hours[o]).copy()
        out.job_reason[i] = prev.job_reason[o]
    out.svc_devices = prev.svc_devices.copy()
    out.flows = prev.flows.copy()
    for name in ("green_mw", "charge_mw", "discharge_mw", "soc_mwh"):
        value = getattr(prev, name)
        setattr(out, name, None if value is None else value.copy())
    return out
