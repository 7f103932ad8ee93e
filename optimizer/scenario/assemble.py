"""Build a `Scenario` from the typed tables, one builder per table, called in a fixed order
(like `optimizer/model/build.py`'s module list); each checks what it reads against what the
builders before it made (ids, fleets, the horizon) and reports every problem to the parser.

Adding an input table is one new builder and one line in `BUILDERS`. Order matters only
for references: sites and accelerators come first (everything names them), fleets before
availability and jobs, latency before demand, throughput before services.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optimizer.scenario import schema
from optimizer.scenario.types import (
    Accelerator,
    Battery,
    InputValidationError,
    Job,
    Policy,
    Problem,
    RegionPoint,
    Scenario,
    Service,
    Site,
)

if TYPE_CHECKING:
    from optimizer.scenario.load import _Parser

_MAX_LISTED = 8  # hours listed in one "missing hours" message before summarising

SERIES_COLUMNS = tuple(
    c.name for c in schema.SITE_SERIES.columns if c.name not in schema.SITE_SERIES.key
)
"""The hourly site series: site_series.csv's value columns, each a `Scenario` array."""


@dataclass
class Assembly:
    """What the builders share: the parser collecting problems, the horizon, the typed
    tables, and what each builder has made so far (for the ones after it)."""

    p: _Parser
    tz: str
    start: pd.Timestamp
    H: int
    t: Mapping[str, pd.DataFrame | None]
    sites: list[Site] = field(default_factory=list)
    site_ids: dict[str, int] = field(default_factory=dict)  # position of each site
    accs: list[Accelerator] = field(default_factory=list)
    acc_ids: dict[str, int] = field(default_factory=dict)
    fleet: dict[tuple[str, str], int] = field(default_factory=dict)
    installed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    series: dict[str, np.ndarray] = field(default_factory=dict)  # SERIES_COLUMNS, [site, hour]
    avail: np.ndarray = field(default_factory=lambda: np.ones((0, 0, 0)))
    latency: dict[tuple[str, str], float] = field(default_factory=dict)
    region_points: dict[str, RegionPoint] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    svc_ids: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, dict[str, float]] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    demand_regions: list[str] = field(default_factory=list)
    demand: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    warnings: list[Problem] = field(default_factory=list)  # loads, but some work cannot be done

    def check_ref(
        self,
        file: str,
        df: pd.DataFrame,
        column: str,
        known: Mapping[str, int],
        what: str,
        allow_empty: bool = False,
    ) -> np.ndarray:
        """Rows whose `column` names a known id; the others are reported."""
        vals = df[column].to_numpy(dtype=object)
        ok = np.array([(v in known) or (allow_empty and v == "") for v in vals], dtype=bool)
        for r in np.flatnonzero(~ok):
            if vals[r] == "":
                continue  # already reported as empty
            self.p.add(file, f"unknown {what} {vals[r]!r}", row=int(r) + 1, column=column)
        return ok


def _rows(df: pd.DataFrame) -> Iterator[Any]:
    """A typed table's rows as named tuples (typed Any: columns are checked by the parser)."""
    return df.itertuples(index=False)


# ------------------------------------------------------------------------------ builders
def sites(a: Assembly) -> None:
    df = a.t["sites"]
    if df is None:
        return
    for row in _rows(df):
        batt = None
        if row.battery_mwh > 0 or row.battery_mw > 0:
            batt = Battery(
                float(row.battery_mwh),
                float(row.battery_mw),
                float(row.battery_efficiency),
                float(row.battery_initial_soc),
            )
        a.sites.append(
            Site(
                site_id=row.site_id,
                name=row.name or row.site_id,
                hub=row.hub,
                zone=row.zone,
                residency_region=row.residency_region,
                lat=None if pd.isna(row.lat) else float(row.lat),
                lon=None if pd.isna(row.lon) else float(row.lon),
                pue=float(row.pue),
                grid_limit_mw=float(row.grid_limit_mw),
                battery=batt,
                min_green_share=float(row.min_green_share),
                green_contract=row.green_contract or "own",
                green_payment_cny_per_mwh=float(row.green_payment_cny_per_mwh),
                green_resale_cny_per_mwh=float(row.green_resale_cny_per_mwh),
            )
        )
        if row.green_contract and row.green_contract not in schema.GREEN_CONTRACTS:
            a.p.add(
                "sites.csv",
                f"unknown green_contract {row.green_contract!r}; use one of "
                f"{', '.join(schema.GREEN_CONTRACTS)}",
                row=len(a.sites),
                column="green_contract",
            )
    if not a.sites:
        a.p.add("sites.csv", "no sites")
    a.site_ids = {s.site_id: i for i, s in enumerate(a.sites)}


def accelerators(a: Assembly) -> None:
    df = a.t["accelerators"]
    if df is not None:
        for row in _rows(df):
            a.accs.append(
                Accelerator(
                    row.accelerator,
                    float(row.busy_kw),
                    float(row.idle_kw),
                    float(row.relative_throughput),
                )
            )
            if row.idle_kw > row.busy_kw:
                a.p.add(
                    "accelerators.csv",
                    f"idle_kw {row.idle_kw:g} exceeds busy_kw {row.busy_kw:g}",
                    row=len(a.accs),
                    column="idle_kw",
                )
        if not a.accs:
            a.p.add("accelerators.csv", "no accelerator types")
    a.acc_ids = {x.accelerator: i for i, x in enumerate(a.accs)}


def fleets(a: Assembly) -> None:
    fl = a.t["fleets"]
    if fl is not None:
        ok = a.check_ref("fleets.csv", fl, "site_id", a.site_ids, "site") & a.check_ref(
            "fleets.csv", fl, "accelerator", a.acc_ids, "accelerator"
        )
        for r, row in enumerate(_rows(fl)):
            # a count that is not a finite number was reported by the parser
            if ok[r] and np.isfinite(row.devices) and row.devices >= 0:
                a.fleet[(row.site_id, row.accelerator)] = int(row.devices)
    a.installed = np.zeros((len(a.sites), len(a.accs)), dtype=np.int64)
    for (s, x), n in a.fleet.items():
        a.installed[a.site_ids[s], a.acc_ids[x]] = n


def site_series(a: Assembly) -> None:
    S, H = len(a.sites), a.H
    a.series = {c: np.full((S, H), np.nan) for c in SERIES_COLUMNS}
    ss = a.t["site_series"]
    if ss is not None:
        ok = a.check_ref("site_series.csv", ss, "site_id", a.site_ids, "site")
        sidx = np.array([a.site_ids.get(v, -1) for v in ss["site_id"]], dtype=int)
        hrs = _grid_hours(a.p, "site_series.csv", ss, H)
        good = ok & (hrs >= 0)
        for c, arr in a.series.items():
            arr[sidx[good], hrs[good]] = ss[c].to_numpy(dtype=float)[good]
        present = np.zeros((S, H), dtype=bool)
        present[sidx[good], hrs[good]] = True
        for si, site in enumerate(a.sites):
            _report_missing_hours(a, "site_series.csv", f"site {site.site_id}", present[si])
    # an empty residual-mix cell means "no residual mix given": it stays NaN (the average
    # stands in, see Scenario.contract_carbon_kg_per_mwh)
    residual = a.series.pop("grid_residual_kg_per_mwh")
    quantiles = {c: a.series.pop(c) for c in schema.GREEN_QUANTILE_COLUMNS}
    # bad cells were reported while parsing; fill so later arithmetic stays finite
    for arr in a.series.values():
        np.nan_to_num(arr, copy=False, nan=0.0)
    a.series["grid_residual_kg_per_mwh"] = residual
    green_quantiles(a, quantiles)


def green_quantiles(a: Assembly, quantiles: dict[str, np.ndarray]) -> None:
    """The green forecast's quantiles around its P50 (`green_available_mw`): a missing
    column or an empty cell has no band there (the quantile is the P50); a low quantile
    above the P50, or a high one below it, is reported per site and hour."""
    p50 = a.series["green_available_mw"]
    for (q, level), col in zip(schema.GREEN_QUANTILES, schema.GREEN_QUANTILE_COLUMNS, strict=True):
        arr = quantiles[col]
        given = ~np.isnan(arr)
        wrong = given & ((arr > p50 + 1e-9) if level < 0.5 else (arr < p50 - 1e-9))
        side = "above" if level < 0.5 else "below"
        for n, (si, h) in enumerate(zip(*np.nonzero(wrong), strict=True)):
            if n == _MAX_LISTED:
                a.p.add("site_series.csv", f"... {int(wrong.sum())} such cells in all", column=col)
                break
            a.p.add(
                "site_series.csv",
                f"site {a.sites[si].site_id}: {q.upper()} {arr[si, h]:g} MW is {side} the P50 "
                f"green_available_mw {p50[si, h]:g} MW",
                column=col,
                hour=(a.start + pd.Timedelta(hours=int(h))).isoformat(),
            )
        a.series[col] = np.where(given, arr, p50)


def availability(a: Assembly) -> None:
    S, A, H = len(a.sites), len(a.accs), a.H
    a.avail = np.ones((S, A, H))
    av = a.t["availability"]
    if av is None or not len(av):
        return
    ok = a.check_ref("availability.csv", av, "site_id", a.site_ids, "site") & a.check_ref(
        "availability.csv", av, "accelerator", a.acc_ids, "accelerator"
    )
    sidx = np.array([a.site_ids.get(v, -1) for v in av["site_id"]], dtype=int)
    aidx = np.array([a.acc_ids.get(v, -1) for v in av["accelerator"]], dtype=int)
    hrs = _grid_hours(a.p, "availability.csv", av, H)
    good = ok & (hrs >= 0)
    vals = av["available_fraction"].to_numpy(dtype=float)
    a.avail[sidx[good], aidx[good], hrs[good]] = np.nan_to_num(vals[good], nan=1.0)
    present = np.zeros((S, A, H), dtype=bool)
    present[sidx[good], aidx[good], hrs[good]] = True
    for si, ai in {(int(x), int(y)) for x, y in zip(sidx[good], aidx[good], strict=True)}:
        site_id, acc = a.sites[si].site_id, a.accs[ai].accelerator
        _report_missing_hours(
            a, "availability.csv", f"site {site_id}, accelerator {acc}", present[si, ai]
        )
        if (site_id, acc) not in a.fleet:
            a.p.add("availability.csv", f"site {site_id} has no {acc} in fleets.csv")


def latency(a: Assembly) -> None:
    lat = a.t["latency"]
    if lat is None:
        return
    ok = a.check_ref("latency.csv", lat, "site_id", a.site_ids, "site")
    for r, row in enumerate(_rows(lat)):
        if ok[r] and np.isfinite(row.latency_ms):
            a.latency[(row.site_id, row.demand_region)] = float(row.latency_ms)


def demand_regions(a: Assembly) -> None:
    """Optional map points of the demand regions; each must be a region of latency.csv."""
    dr = a.t["demand_regions"]
    if dr is None:
        return
    known = {r: 0 for _, r in a.latency}
    ok = a.check_ref(
        "demand_regions.csv", dr, "demand_region", known, "demand region (not in latency.csv)"
    )
    for r, row in enumerate(_rows(dr)):
        if ok[r] and np.isfinite([row.lat, row.lon]).all():
            a.region_points[row.demand_region] = RegionPoint(
                str(row.name), float(row.lat), float(row.lon)
            )


def jobs(a: Assembly) -> None:
    jb = a.t["jobs"]
    if jb is None:
        return
    rel_h = a.p.hour_index(jb["release"])
    dl_h = a.p.hour_index(jb["deadline"])
    regions_of_sites = {s.residency_region for s in a.sites}
    biggest = {  # the largest fleet of each type
        x.accelerator: int(a.installed[:, i].max()) if a.sites else 0 for i, x in enumerate(a.accs)
    }
    for r, row in enumerate(_rows(jb)):
        _job_references(a, row, r + 1, regions_of_sites, biggest)
        window = _job_window(a, row, r + 1, rel_h[r], dl_h[r])
        if window is None or not np.isfinite([row.gang, row.work_device_hours]).all():
            continue  # a number that is missing or not finite was reported by the parser
        release, deadline = window
        a.jobs.append(
            Job(
                job_id=row.job_id,
                kind=row.kind,
                accelerators=tuple(row.accelerators),
                gang=int(row.gang),
                work_device_hours=float(row.work_device_hours),
                release=max(0, math.ceil(release - 1e-9)),
                deadline=math.floor(deadline + 1e-9),
                preemptible=bool(row.preemptible),
                allowed_regions=tuple(row.allowed_regions),
                data_origin_site=row.data_origin_site or None,
                data_gb=float(row.data_gb),
                current_site=row.current_site or None,
                lost_hours_on_move=float(row.lost_hours_on_move),
                priority=float(row.priority),
                unplaced_penalty_cny=None
                if pd.isna(row.unplaced_penalty_cny)
                else float(row.unplaced_penalty_cny),
            )
        )
        if a.jobs[-1].deadline <= a.jobs[-1].release:
            a.p.add(
                "jobs.csv",
                "release and deadline round to the same hour: no whole hour to run in",
                row=r + 1,
                column="deadline",
            )


def _job_references(
    a: Assembly, row: Any, rn: int, regions_of_sites: set[str], biggest: dict[str, int]
) -> None:
    """A job's kind, accelerator types, sites and regions exist. A gang no site's fleet of
    an accepted type holds is a warning, not a problem: real traces have gangs of thousands
    of devices, and the rest of the scenario still plans (the job is reported unplaced)."""
    f, p = "jobs.csv", a.p
    if row.kind not in schema.JOB_KINDS:
        p.add(
            f,
            f"unknown kind {row.kind!r}; use one of {', '.join(schema.JOB_KINDS)}",
            row=rn,
            column="kind",
        )
    for x in row.accelerators:
        if x not in a.acc_ids:
            p.add(f, f"unknown accelerator {x!r}", row=rn, column="accelerators")
    if not row.accelerators:
        p.add(f, "no accelerator type given", row=rn, column="accelerators")
    for col in ("data_origin_site", "current_site"):
        v = getattr(row, col)
        if v and v not in a.site_ids:
            p.add(f, f"unknown site {v!r}", row=rn, column=col)
    for reg in row.allowed_regions:
        if reg not in regions_of_sites:
            p.add(
                f,
                f"allowed region {reg!r} matches no site's residency_region",
                row=rn,
                column="allowed_regions",
            )
    gang = row.gang
    known_accs = [x for x in row.accelerators if x in a.acc_ids]
    if known_accs and np.isfinite(gang) and gang > max(biggest[x] for x in known_accs):
        best = max(known_accs, key=lambda x: biggest[x])
        a.warnings.append(
            Problem(
                f,
                f"gang of {int(gang)} devices is larger than any site's fleet of {', '.join(known_accs)} (largest: {biggest[best]} {best}): the job will be unplaced",
                row=rn,
                column="gang",
            )
        )


def _job_window(
    a: Assembly, row: Any, rn: int, rel_h: float, dl_h: float
) -> tuple[float, float] | None:
    """(release, deadline) in hours since the horizon start, if the job has a window that
    overlaps the horizon; else None (reported, unless the parser reported the deadline)."""
    f, p = "jobs.csv", a.p
    release = 0.0 if np.isnan(rel_h) else float(rel_h)
    deadline = dl_h
    if np.isnan(deadline):
        return None  # reported by the parser
    if deadline <= release:
        p.add(
            f,
            f"deadline {p.iso(row.deadline)} is not after release {p.iso(row.release) or p.iso(a.start)}",
            row=rn,
            column="deadline",
        )
        return None
    if deadline <= 0:
        p.add(
            f,
            f"deadline {p.iso(row.deadline)} is before the horizon start {a.start.isoformat()}",
            row=rn,
            column="deadline",
        )
        return None
    if release >= a.H:
        p.add(
            f,
            f"release {p.iso(row.release)} is at or after the horizon end",
            row=rn,
            column="release",
        )
        return None
    return release, float(deadline)


def service_throughput(a: Assembly) -> None:
    sv, tp = a.t["services"], a.t["service_throughput"]
    if sv is not None:
        a.svc_ids = {v: i for i, v in enumerate(sv["service_id"])}
    if tp is None:
        return
    ok = a.check_ref(
        "service_throughput.csv", tp, "service_id", a.svc_ids, "service"
    ) & a.check_ref("service_throughput.csv", tp, "accelerator", a.acc_ids, "accelerator")
    for r, row in enumerate(_rows(tp)):
        if ok[r] and np.isfinite(row.tokens_per_s_per_device):
            a.throughput.setdefault(row.service_id, {})[row.accelerator] = float(
                row.tokens_per_s_per_device
            )


def services(a: Assembly) -> None:
    sv = a.t["services"]
    if sv is None:
        return
    for r, row in enumerate(_rows(sv)):
        if row.service_id not in a.throughput and a.t["service_throughput"] is not None:
            a.p.add(
                "services.csv",
                f"service {row.service_id!r} has no rows in service_throughput.csv",
                row=r + 1,
                column="service_id",
            )
        a.services.append(
            Service(
                service_id=row.service_id,
                latency_limit_ms=float(row.latency_limit_ms),
                throughput_tokens_per_s=MappingProxyType(
                    dict(a.throughput.get(row.service_id, {}))
                ),
                unmet_penalty_cny_per_mtoken=None
                if pd.isna(row.unmet_penalty_cny_per_mtoken)
                else float(row.unmet_penalty_cny_per_mtoken),
            )
        )


def service_demand(a: Assembly) -> None:
    H = a.H
    a.demand = np.zeros((len(a.services), 0, H))
    dm = a.t["service_demand"]
    if dm is None:
        return
    latency_regions = {r for (_, r) in a.latency}
    ok = a.check_ref("service_demand.csv", dm, "service_id", a.svc_ids, "service")
    regs = dm["demand_region"].to_numpy(dtype=object)
    for ri in np.flatnonzero(ok):
        if regs[ri] and regs[ri] not in latency_regions:
            a.p.add(
                "service_demand.csv",
                f"demand region {regs[ri]!r} has no entry in latency.csv",
                row=int(ri) + 1,
                column="demand_region",
            )
    a.demand_regions = sorted({v for v in regs if v})
    reg_ids = {v: i for i, v in enumerate(a.demand_regions)}
    a.demand = np.zeros((len(a.services), len(a.demand_regions), H))
    kidx = np.array([a.svc_ids.get(v, -1) for v in dm["service_id"]], dtype=int)
    ridx = np.array([reg_ids.get(v, -1) for v in regs], dtype=int)
    hrs = _grid_hours(a.p, "service_demand.csv", dm, H)
    good = ok & (hrs >= 0) & (ridx >= 0)
    a.demand[kidx[good], ridx[good], hrs[good]] = np.nan_to_num(
        dm["tokens_per_s"].to_numpy(dtype=float)[good], nan=0.0
    )
    present = np.zeros(a.demand.shape, dtype=bool)
    present[kidx[good], ridx[good], hrs[good]] = True
    for ki, rj in sorted({(int(x), int(y)) for x, y in zip(kidx[good], ridx[good], strict=True)}):
        _report_missing_hours(
            a,
            "service_demand.csv",
            f"service {a.services[ki].service_id}, region {a.demand_regions[rj]}",
            present[ki, rj],
        )


def idle_load_fits(a: Assembly) -> None:
    """The idle load of available devices is fixed; if the grid and green supply cannot
    carry it, no plan exists at all, so say where (only on otherwise sound input)."""
    if not (a.sites and a.accs) or a.p.problems:
        return
    cap = np.floor(a.installed[:, :, None] * a.avail + 1e-9)
    idle_mw = np.einsum("sah,a->sh", cap, np.array([x.idle_kw for x in a.accs])) / 1000.0
    facility_idle = idle_mw * np.array([s.pue for s in a.sites])[:, None]
    beside = np.array([s.green_contract not in schema.GRID_DELIVERED_CONTRACTS for s in a.sites])
    supply = np.array([s.grid_limit_mw for s in a.sites])[:, None] + np.where(
        beside[:, None], a.series["green_available_mw"], 0.0
    )
    for si, h in zip(*np.nonzero(facility_idle > supply + 1e-9), strict=True):
        a.p.add(
            "sites.csv",
            f"site {a.sites[si].site_id}: the idle load of its available devices ({facility_idle[si, h]:.3f} MW facility) exceeds grid limit + green supply ({supply[si, h]:.3f} MW)",
            column="grid_limit_mw",
            hour=(a.start + pd.Timedelta(hours=int(h))).isoformat(),
        )


BUILDERS: tuple[Callable[[Assembly], None], ...] = (
    sites,
    accelerators,
    fleets,  # names sites and accelerators
    site_series,
    availability,  # of installed fleets
    latency,
    demand_regions,  # regions of latency.csv
    jobs,  # gangs against the fleets
    service_throughput,
    services,  # each with throughput
    service_demand,  # regions with latency
    idle_load_fits,  # the whole fleet against the grid and green supply
)


def assemble(
    p: _Parser, meta: Mapping[str, Any], policy: Policy, t: Mapping[str, pd.DataFrame | None]
) -> Scenario:
    """The Scenario of the typed tables `t`; raises `InputValidationError` with every
    problem the parser and the builders found."""
    a = Assembly(p, tz=meta["timezone"], start=meta["start"], H=meta["hours"], t=t)
    for build in BUILDERS:
        build(a)
    if p.problems:
        raise InputValidationError(p.problems)
    return Scenario(
        name=str(meta["name"]),
        timezone=a.tz,
        start=a.start,
        hours=a.H,
        policy=policy,
        sites=tuple(a.sites),
        accelerators=tuple(a.accs),
        fleet=MappingProxyType(a.fleet),
        grid_price_cny_per_mwh=a.series["grid_price_cny_per_mwh"],
        grid_carbon_kg_per_mwh=a.series["grid_carbon_kg_per_mwh"],
        green_available_mw=a.series["green_available_mw"],
        **{c: a.series[c] for c in schema.GREEN_QUANTILE_COLUMNS},
        green_price_cny_per_mwh=a.series["green_price_cny_per_mwh"],
        grid_residual_kg_per_mwh=a.series["grid_residual_kg_per_mwh"],
        available_fraction=a.avail,
        latency_ms=MappingProxyType(a.latency),
        region_points=MappingProxyType(a.region_points),
        demand_regions=tuple(a.demand_regions),
        jobs=tuple(a.jobs),
        services=tuple(a.services),
        demand_tokens_per_s=a.demand,
        description=str(meta.get("description") or ""),
        currency=str(meta.get("currency") or "CNY"),
        warnings=tuple(a.warnings),
    )


# ------------------------------------------------------------------------------ hours
def _grid_hours(p: _Parser, file: str, df: pd.DataFrame, H: int) -> np.ndarray:
    """Hour index of each row's timestamp; -1 (and a problem) if off the grid or outside the horizon."""
    h = p.hour_index(df["timestamp"])
    out = np.full(len(df), -1, dtype=int)
    ok = np.isfinite(h)
    off_grid = ok & (np.abs(h - np.round(h)) > 1e-9)
    for r in np.flatnonzero(off_grid):
        p.add(
            file,
            "timestamp is not on the hour",
            row=int(r) + 1,
            column="timestamp",
            hour=p.iso(df["timestamp"].iloc[r]),
        )
    hr = np.round(np.where(ok, h, -1)).astype(int)
    outside = ok & ~off_grid & ((hr < 0) | (hr >= H))
    for r in np.flatnonzero(outside):
        p.add(
            file,
            f"hour outside the horizon ({H} h from {p.iso(p.start)})",
            row=int(r) + 1,
            column="timestamp",
            hour=p.iso(df["timestamp"].iloc[r]),
        )
    good = ok & ~off_grid & ~outside
    out[good] = hr[good]
    return out


def _report_missing_hours(a: Assembly, file: str, what: str, present: np.ndarray) -> None:
    missing = np.flatnonzero(~present)
    if missing.size == 0:
        return
    stamps = [
        (a.start + pd.Timedelta(hours=int(h))).tz_convert(a.tz).isoformat()
        for h in missing[:_MAX_LISTED]
    ]
    more = f" and {missing.size - _MAX_LISTED} more" if missing.size > _MAX_LISTED else ""
    if missing.size == 1:
        a.p.add(file, f"{what}: missing hour", hour=stamps[0])
    else:
        a.p.add(
            file, f"{what}: {missing.size} missing hours: {', '.join(stamps)}{more}", hour=stamps[0]
        )
