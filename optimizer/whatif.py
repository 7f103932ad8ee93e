"""What-if scenarios: a base scenario plus overrides gives a new, re-validated scenario.

Overrides are plain pydantic models so the HTTP service takes them as request bodies
unchanged. Applying them edits the base's tables and loads them again through the same
checks as any input, so a what-if can never produce a scenario a file could not.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from optimizer.scenario import schema
from optimizer.scenario.load import scenario_from_tables, scenario_to_tables
from optimizer.scenario.types import InputValidationError, Problem, Scenario


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime | None = Field(
        None, description="first hour affected (ISO 8601); default: horizon start"
    )
    end: datetime | None = Field(
        None, description="first hour no longer affected; default: horizon end"
    )

    def hours(self, sc: Scenario, where: str) -> np.ndarray:
        """Boolean mask over the horizon's hours inside [start, end)."""
        stamps = sc.timestamps
        mask = np.ones(sc.hours, dtype=bool)
        if self.start is not None:
            mask &= np.asarray(stamps >= _aware(self.start, sc))
        if self.end is not None:
            mask &= np.asarray(stamps < _aware(self.end, sc))
        if not mask.any():
            raise InputValidationError(
                [
                    Problem(
                        "overrides", "the time window covers no hour of the horizon", column=where
                    )
                ]
            )
        return mask


def _aware(ts: datetime, sc: Scenario) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize(sc.timezone) if ts.tzinfo is None else ts


class PriceChange(_Window):
    """Multiply grid prices at some sites or zones (all if none named) within a window."""

    multiplier: float = Field(..., gt=0, description="factor on the grid price, e.g. 1.5 for +50%")
    sites: list[str] | None = Field(None, description="site ids; default all")
    zones: list[str] | None = Field(None, description="grid zones (sites.csv `zone`)")


class CapacityChange(_Window):
    """An outage (available_fraction 0) or a capacity change at a site for a window."""

    site: str
    accelerator: str | None = Field(None, description="one type; default every type at the site")
    available_fraction: float = Field(
        0.0, ge=0, le=1, description="share of installed devices available"
    )


class GreenScale(BaseModel):
    """Scale the green supply available at sites (e.g. 1.3 = 30% more wind and solar)."""

    model_config = ConfigDict(extra="forbid")
    multiplier: float = Field(..., ge=0)
    sites: list[str] | None = Field(None, description="site ids; default all")


class AcceleratorMix(BaseModel):
    """Replace a share of one accelerator type by another (e.g. 30% H100 -> Ascend-910B)."""

    model_config = ConfigDict(extra="forbid")
    from_accelerator: str
    to_accelerator: str
    share: float = Field(..., gt=0, le=1)
    devices_per_device: float = Field(1.0, gt=0, description="new devices per replaced device")
    sites: list[str] | None = None


class Overrides(BaseModel):
    """Changes to a base scenario. Every field is optional."""

    model_config = ConfigDict(extra="forbid")
    price_changes: list[PriceChange] = Field(default_factory=list)
    capacity_changes: list[CapacityChange] = Field(default_factory=list)
    green_scaling: list[GreenScale] = Field(default_factory=list)
    accelerator_mix: list[AcceleratorMix] = Field(default_factory=list)
    carbon_price_cny_per_t: float | None = Field(None, ge=0)
    min_green_share: float | None = Field(None, ge=0, le=1)
    carbon_budget_t: float | None = Field(None, ge=0)
    plan_stability_weight: float | None = Field(None, ge=0)
    add_jobs: list[dict[str, Any]] = Field(
        default_factory=list, description="rows in jobs.csv's columns"
    )
    remove_jobs: list[str] = Field(default_factory=list, description="job ids to drop")

    @model_validator(mode="after")
    def _finite(self) -> Overrides:
        for name in (
            "carbon_price_cny_per_t",
            "min_green_share",
            "carbon_budget_t",
            "plan_stability_weight",
        ):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{name} must be finite")
        return self

    def is_empty(self) -> bool:
        return self == Overrides()


POLICY_FIELDS = (
    "carbon_price_cny_per_t",
    "min_green_share",
    "carbon_budget_t",
    "plan_stability_weight",
)


def with_policy(sc: Scenario, **policy: float) -> Scenario:
    """`sc` with some policy values replaced."""
    return apply_overrides(sc, Overrides(**policy))


def apply_overrides(sc: Scenario, ov: Overrides) -> Scenario:
    """A new validated scenario: `sc` changed by `ov`. Raises InputValidationError naming the override at fault."""
    manifest, t = scenario_to_tables(sc)
    problems: list[Problem] = []
    site_set = set(sc.site_ids)
    zones = {s.zone for s in sc.sites}

    def unknown_sites(names: list[str] | None, where: str) -> None:
        for n in names or []:
            if n not in site_set:
                problems.append(Problem("overrides", f"unknown site {n!r}", column=where))

    series = t["site_series"].copy()
    h_idx = np.tile(
        np.arange(sc.hours), len(sc.sites)
    )  # scenario_to_tables writes site-major, hour order
    for i, pc in enumerate(ov.price_changes):
        where = f"price_changes[{i}]"
        unknown_sites(pc.sites, where + ".sites")
        for z in pc.zones or []:
            if z not in zones:
                problems.append(
                    Problem("overrides", f"unknown zone {z!r}", column=where + ".zones")
                )
        chosen = set(pc.sites or []) | {s.site_id for s in sc.sites if s.zone in (pc.zones or [])}
        if not pc.sites and not pc.zones:
            chosen = site_set
        try:
            hours = pc.hours(sc, where)
        except InputValidationError as e:
            problems += e.problems
            continue
        mask = series["site_id"].isin(chosen).to_numpy() & hours[h_idx]
        series.loc[mask, "grid_price_cny_per_mwh"] *= pc.multiplier
    for i, gs in enumerate(ov.green_scaling):
        unknown_sites(gs.sites, f"green_scaling[{i}].sites")
        mask = series["site_id"].isin(gs.sites or site_set).to_numpy()
        series.loc[mask, "green_available_mw"] *= gs.multiplier
    t["site_series"] = series

    fleets = t["fleets"].copy()
    accs = set(sc.accelerator_names)
    for i, mx in enumerate(ov.accelerator_mix):
        where = f"accelerator_mix[{i}]"
        unknown_sites(mx.sites, where + ".sites")
        for a, col in (
            (mx.from_accelerator, "from_accelerator"),
            (mx.to_accelerator, "to_accelerator"),
        ):
            if a not in accs:
                problems.append(
                    Problem("overrides", f"unknown accelerator {a!r}", column=f"{where}.{col}")
                )
        if problems:
            continue
        for s in mx.sites or sorted(site_set):
            sel = (fleets["site_id"] == s) & (fleets["accelerator"] == mx.from_accelerator)
            if not sel.any():
                continue
            n = int(fleets.loc[sel, "devices"].iloc[0])
            moved = int(round(n * mx.share))
            fleets.loc[sel, "devices"] = n - moved
            added = int(round(moved * mx.devices_per_device))
            tsel = (fleets["site_id"] == s) & (fleets["accelerator"] == mx.to_accelerator)
            if tsel.any():
                fleets.loc[tsel, "devices"] = int(fleets.loc[tsel, "devices"].iloc[0]) + added
            else:
                fleets = pd.concat(
                    [
                        fleets,
                        pd.DataFrame(
                            [{"site_id": s, "accelerator": mx.to_accelerator, "devices": added}]
                        ),
                    ],
                    ignore_index=True,
                )
    t["fleets"] = fleets

    if ov.capacity_changes:
        frac = sc.available_fraction.copy()
        for i, cc in enumerate(ov.capacity_changes):
            where = f"capacity_changes[{i}]"
            if cc.site not in site_set:
                problems.append(
                    Problem("overrides", f"unknown site {cc.site!r}", column=where + ".site")
                )
                continue
            if cc.accelerator is not None and cc.accelerator not in accs:
                problems.append(
                    Problem(
                        "overrides",
                        f"unknown accelerator {cc.accelerator!r}",
                        column=where + ".accelerator",
                    )
                )
                continue
            try:
                hours = cc.hours(sc, where)
            except InputValidationError as e:
                problems += e.problems
                continue
            si = sc.site_index[cc.site]
            a_sel = (
                [sc.accelerator_index[cc.accelerator]]
                if cc.accelerator
                else list(range(len(sc.accelerators)))
            )
            for ai in a_sel:
                frac[si, ai, hours] = cc.available_fraction
        iso = [ts.isoformat() for ts in sc.timestamps]
        rows = [
            pd.DataFrame(
                {
                    "site_id": sid,
                    "accelerator": a,
                    "timestamp": iso,
                    "available_fraction": frac[si, ai],
                }
            )
            for si, sid in enumerate(sc.site_ids)
            for ai, a in enumerate(sc.accelerator_names)
            if (sid, a) in sc.fleet and np.any(frac[si, ai] < 1.0)
        ]
        t["availability"] = (
            pd.concat(rows, ignore_index=True)
            if rows
            else pd.DataFrame(columns=schema.AVAILABILITY.column_names)
        )

    jobs = t["jobs"]
    known = set(jobs["job_id"])
    for i, jid in enumerate(ov.remove_jobs):
        if jid not in known:
            problems.append(
                Problem("overrides", f"unknown job {jid!r}", column=f"remove_jobs[{i}]")
            )
    jobs = jobs[~jobs["job_id"].isin(ov.remove_jobs)]
    if ov.add_jobs:
        extra = pd.DataFrame(ov.add_jobs)
        bad_cols = sorted(set(extra.columns) - set(schema.JOBS.column_names))
        for c in bad_cols:
            problems.append(Problem("overrides", f"unknown job column {c!r}", column="add_jobs"))
        jobs = pd.concat([jobs, extra], ignore_index=True)
    t["jobs"] = jobs

    pol = dict(manifest["policy"])
    for name in POLICY_FIELDS:
        v = getattr(ov, name)
        if v is not None:
            pol[name] = v
    manifest["policy"] = pol
    if problems:
        raise InputValidationError(problems)
    return scenario_from_tables(manifest, t)
