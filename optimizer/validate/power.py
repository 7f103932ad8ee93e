"""Check family `power`: IT and facility power recomputed from the busy devices; grid <=
its connection, and grid + green <= the connection where a ppa or trade contract delivers
the green over it; 0 <= green <= available; curtailed = available - used; the power balance
(grid + green + discharge - charge = facility); each row's cost and emissions; batteries
within their power and energy, with a consistent state of charge, never charging and
discharging in one hour; site_hours.csv
restating the scenario's series.

Leaves `Checker.power` (`PowerFindings`) for the policy and totals checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.scenario.schema import GRID_DELIVERED_CONTRACTS
from optimizer.scenario.types import Scenario, Site
from optimizer.units import KW_PER_MW
from optimizer.validate.names import TABLE_COLUMNS
from optimizer.validate.state import Checker, PowerFindings, fmt

CHECK = "power"


@dataclass
class SiteHours:
    """site_hours.csv as [site, hour] arrays, and the scenario's series it restates."""

    v: dict[str, np.ndarray]  # column -> [site, hour] as planned (NaN where no row)
    present: np.ndarray  # [site, hour] has a row
    inputs: dict[str, np.ndarray]  # column -> [site, hour] as the scenario says


def check(c: Checker) -> None:
    sc = c.sc
    S, H = len(sc.sites), c.H
    busy, cap = c.busy, c.capacity
    it_kw = np.einsum("sah,a->sh", busy, c.busy_kw) + np.einsum("sah,a->sh", cap - busy, c.idle_kw)
    it = it_kw / KW_PER_MW
    fac = it * pue(c)[:, None]
    c.power = res = PowerFindings(
        it, fac, np.zeros((S, H)), np.zeros((S, H)), False, c.usable("assignments")
    )
    df = c.table("site_hours")
    if df is None:
        return
    res.ok = True
    c.count(CHECK, len(df))
    t = site_hours(c, df)
    res.grid_mw = np.where(t.present, t.v["grid_mw"], 0.0)
    res.green_mw = np.where(t.present, t.v["green_used_mw"], 0.0)
    restated_inputs(c, t)
    recomputed_power(c, t)
    limits(c, t)
    curtailed(c, t)
    balance(c, t)
    cost_and_emissions(c, t)
    for s, site in enumerate(sc.sites):
        battery(c, t, s, site)


def contract_factor(sc: Scenario) -> np.ndarray:
    """[site, hour] contract-based factor of grid import: the scenario's residual mix where
    given, else its average intensity (recomputed here, not taken from the planner)."""
    res = np.asarray(sc.grid_residual_kg_per_mwh, dtype=float)
    return np.where(np.isnan(res), np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float), res)


def pue(c: Checker) -> np.ndarray:
    return np.array([s.pue for s in c.sc.sites], dtype=float)


def site_hours(c: Checker, df: pd.DataFrame) -> SiteHours:
    """site_hours.csv by (site, hour): each site-hour once, of a known site."""
    sc = c.sc
    S, H = len(sc.sites), c.H
    names = TABLE_COLUMNS["site_hours"][2:] + (
        ("emissions_location_kg",) if "emissions_location_kg" in df.columns else ()
    )
    v = {k: np.full((S, H), np.nan) for k in names}
    cols = {k: c.num(df, k) for k in names}
    got = np.zeros((S, H), dtype=np.int64)
    s_ = c.text(df, "site_id")
    h_ = c.row_hours("site_hours", df)
    for i in range(len(df)):
        s, h = c.site_pos.get(s_[i]), int(h_[i])
        if s is None:
            c.add(CHECK, "unknown", f"row for unknown site {s_[i]!r}", table="site_hours")
            continue
        if h < 0:
            continue
        got[s, h] += 1
        for k in names:
            v[k][s, h] = cols[k][i]
    for s, h in zip(*np.nonzero(got != 1), strict=True):
        what = "missing from" if got[s, h] == 0 else f"listed {got[s, h]} times in"
        c.add(
            CHECK,
            "site_hour_rows",
            f"site hour {what} site_hours.csv",
            site_id=c.site_ids[s],
            hour=h,
        )
    limit = np.array([s.grid_limit_mw for s in sc.sites], dtype=float)[:, None] * np.ones((1, H))
    inputs = {
        "pue": pue(c)[:, None] * np.ones((1, H)),
        "grid_limit_mw": limit,
        "green_available_mw": np.asarray(sc.green_available_mw, dtype=float),
        "grid_price_per_mwh": np.asarray(sc.grid_price_cny_per_mwh, dtype=float),
        "green_price_per_mwh": np.asarray(sc.green_price_cny_per_mwh, dtype=float),
        "carbon_kg_per_mwh": np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float),
    }
    return SiteHours(v, got >= 1, inputs)


def report(
    c: Checker,
    t: SiteHours,
    rule: str,
    bad: np.ndarray,
    msg: Callable[[int, int], str],
    expected: np.ndarray | None = None,
    actual: np.ndarray | None = None,
) -> None:
    """A violation for each site-hour with a row where `bad` holds."""
    for s, h in zip(*np.nonzero(bad & t.present), strict=True):
        c.add(
            CHECK,
            rule,
            msg(s, h),
            site_id=c.site_ids[s],
            hour=h,
            expected=None if expected is None else float(expected[s, h]),
            actual=None if actual is None else float(actual[s, h]),
        )


def restated_inputs(c: Checker, t: SiteHours) -> None:
    """The scenario's series, restated."""
    for k, want in t.inputs.items():
        given = t.v[k]
        report(c, t, f"{k}_column", ~c.close(given, want), _restated(k, given, want), want, given)


def _restated(k: str, given: np.ndarray, want: np.ndarray) -> Callable[[int, int], str]:
    return lambda s, h: f"{k} {fmt(given[s, h])}, the scenario says {want[s, h]:g}"


def recomputed_power(c: Checker, t: SiteHours) -> None:
    """IT power: busy devices at busy power, available idle ones at idle power; facility
    power: PUE x IT. When the busy devices are unknown (reported), the rest is audited
    against the reported power."""
    v, res = t.v, c.power
    if not res.busy_known:
        res.it_mw = np.where(t.present, v["it_mw"], 0.0)
        res.facility_mw = np.where(t.present, v["facility_mw"], 0.0)
        return
    it, fac = res.it_mw, res.facility_mw
    report(
        c,
        t,
        "it_mw",
        ~c.close(v["it_mw"], it),
        lambda s, h: f"it_mw {fmt(v['it_mw'][s, h])}, busy and idle devices draw {it[s, h]:.6g} MW",
        it,
        v["it_mw"],
    )
    report(
        c,
        t,
        "facility_mw",
        ~c.close(v["facility_mw"], fac),
        lambda s, h: f"facility_mw {fmt(v['facility_mw'][s, h])}, PUE x IT = {fac[s, h]:.6g} MW",
        fac,
        v["facility_mw"],
    )


def limits(c: Checker, t: SiteHours) -> None:
    """0 <= grid <= the connection; 0 <= green <= available."""
    grid, green = t.v["grid_mw"], t.v["green_used_mw"]
    limit, avail = t.inputs["grid_limit_mw"], t.inputs["green_available_mw"]
    report(
        c,
        t,
        "grid_negative",
        grid < -c.abs_tol,
        lambda s, h: f"negative grid import {grid[s, h]:g} MW",
        None,
        grid,
    )
    report(
        c,
        t,
        "grid_limit",
        ~c.le(grid, limit),
        lambda s, h: f"grid import {grid[s, h]:.6g} MW exceeds the {limit[s, h]:g} MW connection",
        limit,
        grid,
    )
    report(
        c,
        t,
        "green_negative",
        green < -c.abs_tol,
        lambda s, h: f"negative green use {green[s, h]:g} MW",
        None,
        green,
    )
    report(
        c,
        t,
        "green_available",
        ~c.le(green, avail),
        lambda s, h: f"green use {green[s, h]:.6g} MW exceeds the {avail[s, h]:g} MW available",
        avail,
        green,
    )
    # green delivered over the connection (ppa, trade contracts) shares its limit
    shared = np.array([s.green_contract in GRID_DELIVERED_CONTRACTS for s in c.sc.sites])
    drawn = grid + np.where(shared[:, None], green, 0.0)
    report(
        c,
        t,
        "grid_connection",
        shared[:, None] & ~c.le(drawn, limit),
        lambda s, h: (
            f"grid import + contracted green over the connection {drawn[s, h]:.6g} MW exceeds "
            f"its {limit[s, h]:g} MW limit ({c.sc.sites[s].green_contract} contract)"
        ),
        limit,
        drawn,
    )


def curtailed(c: Checker, t: SiteHours) -> None:
    """Curtailed = available - used."""
    v = t.v
    curt = t.inputs["green_available_mw"] - v["green_used_mw"]
    report(
        c,
        t,
        "curtailed",
        ~c.close(v["curtailed_mw"], curt),
        lambda s, h: (
            f"curtailed {fmt(v['curtailed_mw'][s, h])} MW, available - used = {curt[s, h]:.6g}"
        ),
        curt,
        v["curtailed_mw"],
    )


def balance(c: Checker, t: SiteHours) -> None:
    """grid + green + discharge - charge = facility power."""
    v, fac = t.v, c.power.facility_mw
    grid, green = v["grid_mw"], v["green_used_mw"]
    ch, dis = v["battery_charge_mw"], v["battery_discharge_mw"]
    supply = grid + green + dis - ch
    report(
        c,
        t,
        "balance",
        ~c.close(supply, fac),
        lambda s, h: (
            f"grid {grid[s, h]:.6g} + green {green[s, h]:.6g} + discharge {dis[s, h]:.6g} - charge {ch[s, h]:.6g} = {supply[s, h]:.6g} MW, facility needs {fac[s, h]:.6g}"
        ),
        fac,
        supply,
    )


def cost_and_emissions(c: Checker, t: SiteHours) -> None:
    """Each row's energy cost and emissions (contract-based, and location-based where the
    extra column is present)."""
    v, inputs = t.v, t.inputs
    grid, green = v["grid_mw"], v["green_used_mw"]
    cost = grid * inputs["grid_price_per_mwh"] + green * inputs["green_price_per_mwh"]
    report(
        c,
        t,
        "energy_cost_column",
        ~c.close(v["energy_cost"], cost),
        lambda s, h: (
            f"energy_cost {fmt(v['energy_cost'][s, h])}, grid x price + green x green price = {cost[s, h]:.6g}"
        ),
        cost,
        v["energy_cost"],
    )
    ekg = grid * contract_factor(c.sc)
    report(
        c,
        t,
        "emissions_column",
        ~c.close(v["emissions_kg"], ekg),
        lambda s, h: (
            f"emissions_kg {fmt(v['emissions_kg'][s, h])}, grid x contract factor = {ekg[s, h]:.6g}"
        ),
        ekg,
        v["emissions_kg"],
    )
    if "emissions_location_kg" in v:
        lkg = (grid + green) * inputs["carbon_kg_per_mwh"]
        report(
            c,
            t,
            "emissions_column",
            ~c.close(v["emissions_location_kg"], lkg),
            lambda s, h: (
                f"emissions_location_kg {fmt(v['emissions_location_kg'][s, h])}, (grid + green) x intensity = {lkg[s, h]:.6g}"
            ),
            lkg,
            v["emissions_location_kg"],
        )


# ------------------------------------------------------------------------------ batteries
def battery(c: Checker, t: SiteHours, s: int, site: Site) -> None:
    """A site without a battery has zero battery columns; one with a battery stays within
    its power and energy, its state of charge follows
    soc_h = soc_{h-1} + sqrt(eta) x charge - discharge / sqrt(eta) from the initial charge,
    and ends at least at the initial charge."""
    row = t.present[s]
    ch, dis, soc = (
        t.v["battery_charge_mw"][s],
        t.v["battery_discharge_mw"][s],
        t.v["battery_soc_mwh"][s],
    )
    b = site.battery
    if b is None or (b.energy_mwh <= 0 and b.power_mw <= 0):
        nz = row & (
            (np.abs(ch) > c.abs_tol) | (np.abs(dis) > c.abs_tol) | (np.abs(soc) > c.abs_tol)
        )
        for h in np.flatnonzero(nz).tolist():
            c.add(
                CHECK,
                "no_battery",
                "site has no battery but its battery columns are not zero",
                site_id=site.site_id,
                hour=h,
            )
        return
    c.count(CHECK, c.H)
    for name, arr, hi in (
        ("charge", ch, b.power_mw),
        ("discharge", dis, b.power_mw),
        ("soc", soc, b.energy_mwh),
    ):
        for h in np.flatnonzero(row & ((arr < -c.abs_tol) | ~c.le(arr, hi))).tolist():
            c.add(
                CHECK,
                f"battery_{name}",
                f"battery {name} {arr[h]:.6g} outside [0, {hi:g}]",
                site_id=site.site_id,
                hour=h,
                expected=hi,
                actual=arr[h],
            )
    if row.all():
        state_of_charge(c, site, ch, dis, soc)
    for hour in np.flatnonzero((ch > c.abs_tol) & (dis > c.abs_tol)).tolist():
        c.add(
            CHECK,
            "battery_both",
            f"battery charges {ch[hour]:.6g} MW and discharges {dis[hour]:.6g} MW in one hour",
            site_id=site.site_id,
            hour=hour,
        )


def state_of_charge(
    c: Checker, site: Site, ch: np.ndarray, dis: np.ndarray, soc: np.ndarray
) -> None:
    """The state of charge, hour by hour, and at the end (a site with every hour's row)."""
    b = site.battery
    assert b is not None
    sq = math.sqrt(b.round_trip_efficiency)
    soc0 = b.energy_mwh * b.initial_soc
    prev = np.concatenate([[soc0], soc[:-1]])
    want = prev + sq * ch - dis / sq
    for h in np.flatnonzero(~c.close(soc, want)).tolist():
        c.add(
            CHECK,
            "battery_soc",
            f"state of charge {soc[h]:.6g} MWh; previous {prev[h]:.6g} + sqrt(eta) x charge {ch[h]:.6g} - discharge {dis[h]:.6g} / sqrt(eta) = {want[h]:.6g}",
            site_id=site.site_id,
            hour=h,
            expected=want[h],
            actual=soc[h],
        )
    H = c.H
    if H and not c.le(soc0, soc[-1]):
        c.add(
            CHECK,
            "battery_end_soc",
            f"battery ends at {soc[-1]:.6g} MWh, below its initial {soc0:g} MWh",
            site_id=site.site_id,
            hour=H - 1,
            expected=soc0,
            actual=soc[-1],
        )
