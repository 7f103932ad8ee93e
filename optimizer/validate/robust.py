"""Check family `robust`: the plan's green cases (summary `green_cases`) recomputed from its
site hours and the scenario's forecast quantiles, and its robustness claim: a plan made
robust for a quantile is short of power in no site-hour when green comes in at that
quantile (issue 12).

Short of power, recomputed here on its own: the load (facility power recomputed from the
busy devices, battery as planned) above the grid connection plus the green at the quantile
where it comes beside the connection (`own`); where it comes over the connection (ppa,
trade) the connection's limit alone bounds the load.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optimizer.contract import CASE_KPI_KEYS, GREEN_CASES
from optimizer.scenario.schema import GREEN_QUANTILES, GRID_DELIVERED_CONTRACTS
from optimizer.units import KG_PER_T
from optimizer.validate.power import contract_factor
from optimizer.validate.state import Checker

CHECK = "robust"
SHORT_TOL_MW = 1e-6


def check(c: Checker) -> None:
    cases = c.summary().get("green_cases")
    if cases is None or not c.power.ok or not c.power.busy_known:
        return
    if not isinstance(cases, dict):
        c.add(CHECK, "green_cases", "summary green_cases is not an object", table="summary")
        return
    need = _need(c)
    quantiles = cases.get("quantiles") or {}
    for case in GREEN_CASES:
        q = quantiles.get(case)
        said = cases.get(case)
        if q is None or not isinstance(said, dict):
            c.add(CHECK, "green_cases", f"case {case!r} or its quantile missing", table="summary")
            continue
        want = _case(c, need, str(q))
        for key in CASE_KPI_KEYS:
            if np.isnan(want[key]):
                continue  # a KPI the totals check could not recompute (reported there)
            c.count(CHECK, 1)
            ok = (
                said.get(key) == want[key]
                if key == "short_site_hours"
                else _close(c, said.get(key), want[key])
            )
            if not ok:
                c.add(
                    CHECK,
                    f"green_cases.{case}.{key}",
                    f"green_cases.{case}.{key} is {said.get(key)!r}, recomputed {want[key]:.10g}",
                    table="summary",
                    expected=want[key],
                    actual=said.get(key),
                )
    claim(c, need, cases.get("robust_quantile"))


def claim(c: Checker, need: np.ndarray, q: Any) -> None:
    """A plan claiming robustness at quantile `q` is short nowhere at `q`; a scenario whose
    policy asks for robustness gets a plan that claims it."""
    asked = c.sc.policy.robust_green_quantile
    if q is None:
        if asked is not None:
            c.add(
                CHECK,
                "robust_claim",
                f"the scenario's policy asks for robustness at {asked:g}; the plan claims none",
                table="summary",
            )
        return
    short = need - _supply(c, str(q))
    c.count(CHECK, int(short.size))
    for s, h in zip(*np.nonzero(short > SHORT_TOL_MW), strict=True):
        c.add(
            CHECK,
            "short_at_quantile",
            f"claimed robust at {q}, but {short[s, h]:.6g} MW short with green at {q}",
            site_id=c.site_ids[s],
            hour=int(h),
            expected=0.0,
            actual=float(short[s, h]),
        )


def _rec(c: Checker, key: str) -> float:
    """A KPI as the totals check recomputed it (NaN where it could not)."""
    v = c.recomputed.get(key)
    return np.nan if v is None else float(v)


def _close(c: Checker, said: Any, want: float) -> bool:
    if isinstance(said, bool) or not isinstance(said, int | float):
        return False
    return bool(c.close(said, want))


def _need(c: Checker) -> np.ndarray:
    """[site, hour] load the supply must carry: facility (recomputed) + charge - discharge."""
    df = c.table("site_hours")
    assert df is not None  # c.power.ok
    S, H = len(c.site_ids), c.H
    ch, dis = np.zeros((S, H)), np.zeros((S, H))
    s_ = [c.site_pos.get(x) for x in c.text(df, "site_id")]
    h_ = c.row_hours("site_hours", df)
    charge, discharge = c.num(df, "battery_charge_mw"), c.num(df, "battery_discharge_mw")
    for i, (s, h) in enumerate(zip(s_, h_, strict=True)):
        if s is not None and h >= 0:
            ch[s, h], dis[s, h] = charge[i], discharge[i]
    return c.power.facility_mw + np.nan_to_num(ch) - np.nan_to_num(dis)


def _green_at(c: Checker, q: str) -> np.ndarray:
    sc = c.sc
    if q == "p50":
        return np.asarray(sc.green_available_mw, dtype=float)
    if q not in dict(GREEN_QUANTILES):
        c.add(CHECK, "quantile", f"unknown green quantile {q!r}", table="summary")
        return np.asarray(sc.green_available_mw, dtype=float)
    return np.asarray(getattr(sc, f"green_available_{q}_mw"), dtype=float)


def _over_grid(c: Checker) -> np.ndarray:
    return np.array([s.green_contract in GRID_DELIVERED_CONTRACTS for s in c.sc.sites])


def _supply(c: Checker, q: str) -> np.ndarray:
    """[site, hour] most power a site can draw with green at quantile `q`."""
    limit = np.array([s.grid_limit_mw for s in c.sc.sites], dtype=float)[:, None]
    return limit + np.where(_over_grid(c)[:, None], 0.0, _green_at(c, q))


def _case(c: Checker, need: np.ndarray, q: str) -> dict[str, float]:
    """The case's KPIs: green as planned, less what does not come in, plus the extra the
    load can take above the forecast; the grid for the rest within its limit."""
    sc = c.sc
    p50 = np.asarray(sc.green_available_mw, dtype=float)
    avail = _green_at(c, q)
    used = c.power.green_mw
    green = np.minimum(np.minimum(used + np.maximum(avail - p50, 0.0), avail), np.maximum(need, 0))
    green = np.maximum(green, 0.0)
    limit = np.array([s.grid_limit_mw for s in sc.sites], dtype=float)[:, None] - np.where(
        _over_grid(c)[:, None], green, 0.0
    )
    grid = np.clip(need - green, 0.0, np.maximum(limit, 0.0))
    short = np.maximum(need - green - grid, 0.0)
    price = np.asarray(sc.grid_price_cny_per_mwh, dtype=float)
    gprice = np.asarray(sc.green_price_cny_per_mwh, dtype=float)
    factor = contract_factor(sc)
    resale = np.array([s.green_resale_cny_per_mwh for s in sc.sites], dtype=float)[:, None]
    carbon_price = sc.policy.carbon_price_cny_per_t
    base = _rec(c, "total_cost") - _rec(c, "energy_cost") - _rec(c, "carbon_cost")
    base += _rec(c, "green_resale_value")
    emissions_t = float((grid * factor).sum() / KG_PER_T)
    return {
        "green_mwh": float(green.sum()),
        "grid_mwh": float(grid.sum()),
        "total_cost": float(
            base
            + (grid * price + green * gprice).sum()
            + carbon_price * emissions_t
            - (np.maximum(avail - green, 0.0) * resale).sum()
        ),
        "emissions_t": emissions_t,
        "emissions_location_t": float(
            ((grid + green) * np.asarray(sc.grid_carbon_kg_per_mwh)).sum() / KG_PER_T
        ),
        "unmet_mtokens": _rec(c, "unmet_mtokens"),
        "short_mwh": float(short.sum()),
        "short_site_hours": int((short > SHORT_TOL_MW).sum()),
    }
