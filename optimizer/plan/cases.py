"""A plan's KPIs when green comes in at the low, central and high quantile of its forecast
(issue 12): the plan's placements re-dispatched, not re-solved, so an operator sees the
band, not one number."""

from __future__ import annotations

from typing import Any

import numpy as np

from optimizer.contract import GREEN_CASES, CaseKpis, Kpis
from optimizer.plan.types import TOL, Energy
from optimizer.rules import carbon_cost_per_mwh
from optimizer.scenario.schema import GREEN_HIGH, GREEN_LOW
from optimizer.scenario.types import Scenario
from optimizer.units import KG_PER_T

CASE_QUANTILES = dict(zip(GREEN_CASES, (GREEN_LOW, "p50", GREEN_HIGH), strict=True))
"""The forecast quantile of each case."""


def redispatch(
    sc: Scenario, need: np.ndarray, green_used: np.ndarray, avail_q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(green, grid, short) MW [site, hour] when green comes in at `avail_q` [site, hour]
    (a quantile of the forecast, or what actually came), for a load `need` (facility +
    battery charge - discharge) the plan powered with `green_used`.

    Green: what the plan used, less what does not come in, plus (above the forecast) the
    extra the load can take; the grid takes the rest within its limit (sharing it with
    green delivered over the connection); what is left is short."""
    extra = np.maximum(avail_q - sc.green_available_mw, 0.0)
    green = np.clip(np.minimum(green_used + extra, avail_q), 0.0, np.maximum(need, 0.0))
    limit = sc.grid_limit_mw[:, None] - np.where(sc.green_shares_grid[:, None], green, 0.0)
    grid = np.clip(need - green, 0.0, np.maximum(limit, 0.0))
    short = np.maximum(need - green - grid, 0.0)
    return green, grid, short


def case_kpis(sc: Scenario, e: Energy, kpis: Kpis, avail: np.ndarray) -> CaseKpis:
    """The plan's KPIs (`e`, `kpis`) when green comes in at `avail` [site, hour] instead of
    the forecast: energy, carbon and resale re-priced. `avail` is a quantile of the forecast
    for the plan's cases, or the green that actually came for a backtest."""
    need = e.fac + e.charge - e.discharge
    green, grid, short = redispatch(sc, need, e.green, avail)
    curtailed = np.maximum(avail - green, 0.0)
    energy = (grid * sc.grid_price_cny_per_mwh + green * sc.green_price_cny_per_mwh).sum()
    carbon = (grid * carbon_cost_per_mwh(sc)).sum()
    resale = (curtailed * sc.green_resale_cny_per_mwh[:, None]).sum()
    total = kpis.total_cost - kpis.energy_cost - kpis.carbon_cost + kpis.green_resale_value
    return CaseKpis(
        green_mwh=float(green.sum()),
        grid_mwh=float(grid.sum()),
        total_cost=float(total + energy + carbon - resale),
        emissions_t=float((grid * sc.contract_carbon_kg_per_mwh).sum() / KG_PER_T),
        emissions_location_t=float(((grid + green) * sc.grid_carbon_kg_per_mwh).sum() / KG_PER_T),
        unmet_mtokens=kpis.unmet_mtokens,
        short_mwh=float(short.sum()),
        short_site_hours=int((short > TOL).sum()),
    )


def green_cases(sc: Scenario, e: Energy, kpis: Kpis) -> dict[str, Any]:
    """summary.json's `green_cases`: each case's KPIs, its quantile, whether the scenario
    has a band at all, and the quantile the plan was made robust for."""
    out: dict[str, Any] = {
        "quantiles": dict(CASE_QUANTILES),
        "band_given": sc.green_band_given,
        "robust_quantile": sc.robust_green_quantile,
    }
    for case, q in CASE_QUANTILES.items():
        out[case] = case_kpis(sc, e, kpis, sc.green_quantile_mw(q)).as_dict()
    return out
