"""Policy limits: minimum green share (fleet and per site) and a carbon budget.

They are soft: a shortfall is priced high and reported as a violation, so a policy that
cannot be met never leaves the planner without a plan. A green share counts only energy
whose origin is green: green used, and at a battery site only the green that reaches the
load directly (what goes into the battery, and comes out again less its losses, counts as
not green). That is the hourly-matched green (as in 24/7 CFE). When the policy offers
unbundled certificates (``certificate_price_cny_per_mwh``), a minimum counts annually:
hourly-matched green plus certificates bought for it (each scope buys its own). Certificates
do not change either emissions accounting here; they are reported apart.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel, VarBlock
from optimizer.model.sets import ModelData
from optimizer.units import KG_PER_T


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Green-share minimums and the carbon budget.

    .. math::

        \sum_{s,h} \ell_{s,h} + q^{fleet} + \delta^{fleet} \ge \gamma \sum_{s,h} P^{fac}_{s,h}     && \text{(fleet\_green\_share)}

        \sum_{h} \ell_{s,h} + q_s + \delta_s \ge \gamma_s \sum_{h} P^{fac}_{s,h} \quad \forall s: \gamma_s > 0   && \text{(site\_green\_share)}

        \ell_{s,h} \le e_{s,h}, \quad \ell_{s,h} \le P^{fac}_{s,h}  \quad \text{(battery sites; elsewhere } \ell = e)  && \text{(green\_to\_load)}

        \sum_{s,h} \frac{\varepsilon_{s,h}}{1000} g_{s,h} - \chi \le B           && \text{(carbon\_budget)}

        \text{cost} \mathrel{+}= \kappa^{green} \left(\delta^{fleet} + \sum_s \delta_s\right) + p^{cert} \left(q^{fleet} + \sum_s q_s\right) + \kappa^{CO_2} \chi

    ======================  =================================  =========  ======================================
    symbol                  name                               unit       meaning
    ======================  =================================  =========  ======================================
    :math:`\gamma, \gamma_s`  min_green_share                  fraction   required green / facility energy
    :math:`\ell_{s,h}`      ``v_green_to_load_mw``             MW         green counted: what reaches the load
    :math:`q`               ``v_certificates_mwh``             MWh        unbundled certificates bought (绿证/GEC)
    :math:`p^{cert}`        certificate_price_cny_per_mwh      CNY/MWh    their price; absent: none on offer, q = 0
    :math:`\delta`          ``v_green_shortfall_mwh``          MWh        green energy missing to the minimum
    :math:`B`               carbon_budget_t                    t          cap on contract-based emissions
    :math:`\chi`            ``v_carbon_excess_t``              t          emissions above the budget
    :math:`\kappa`          \*_penalty                         CNY/unit   price of a violation
    ======================  =================================  =========  ======================================
    """
    sc = d.sc
    S, H = d.S, d.H
    pol = sc.policy
    grid, green, fac = m.vars["v_grid_mw"], m.vars["v_green_mw"], m.vars["v_facility_mw"]
    # one group per requirement: the fleet (all site-hours) and each site with a minimum
    groups: list[tuple[str, np.ndarray, float, int]] = []
    if pol.min_green_share > 0:
        groups.append(("fleet", np.arange(S * H), pol.min_green_share, -1))
    for s, site in enumerate(sc.sites):
        if site.min_green_share > 0:
            groups.append((site.site_id, np.arange(s * H, (s + 1) * H), site.min_green_share, s))
    counted = _green_counted(m, d, green, fac) if groups else green.cols()
    n = len(groups)
    short = m.add_variables(
        "v_green_shortfall_mwh",
        n,
        index={"site": np.array([g[3] for g in groups], dtype=np.int64)},
        doc="green energy missing to a green-share minimum (-1 = fleet)",
    )
    rows: list[np.ndarray] = [np.zeros(0, np.int64)]
    cols: list[np.ndarray] = [np.zeros(0, np.int64)]
    vals: list[np.ndarray] = [np.zeros(0)]
    if pol.certificate_price_cny_per_mwh is not None and n:
        # unbundled certificates: each MWh bought fills one MWh of a minimum's gap
        cert = m.add_variables(
            "v_certificates_mwh",
            n,
            index={"site": short.index["site"]},
            doc="green certificates bought for a green-share minimum (-1 = fleet)",
        )
        rows.append(np.arange(n))
        cols.append(cert.cols())
        vals.append(np.ones(n))
        m.add_cost("certificates", cert.cols(), pol.certificate_price_cny_per_mwh)
    for i, (_, sh, share, _) in enumerate(groups):
        rows += [np.full(sh.size, i), np.full(sh.size, i), np.array([i])]
        cols += [counted[sh], fac.cols(sh), short.cols(np.array([i]))]
        vals += [np.ones(sh.size), np.full(sh.size, -share), np.array([1.0])]
    m.add_constraints(
        "green_share",
        n,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        lo=0.0,
        index={"site": short.index["site"]},
        doc="green energy at least the required share of facility energy",
    )
    m.add_cost("policy_violation", short.cols(), pol.green_shortfall_penalty_cny_per_mwh)
    _carbon_budget(m, d, grid)


def _green_counted(m: LinearModel, d: ModelData, green: VarBlock, fac: VarBlock) -> np.ndarray:
    """Column per site-hour of the green energy a share counts: the green used, or at a
    battery site the green that reaches the load, l <= e and l <= P^fac (a battery's
    charge and discharge count as grid: their origin is not tracked)."""
    sc = d.sc
    H = d.H
    counted = green.cols().copy()
    sites = [i for i, s in enumerate(sc.sites) if s.battery is not None]
    if not sites:
        return counted
    cells = (np.asarray(sites, dtype=np.int64)[:, None] * H + np.arange(H)).reshape(-1)
    n = cells.size
    to_load = m.add_variables(
        "v_green_to_load_mw",
        n,
        index={"site": cells // H, "hour": cells % H},
        doc="green energy reaching the load at a battery site",
    )
    m.add_constraints(
        "green_to_load",
        2 * n,
        rows=np.concatenate([np.arange(n), np.arange(n), n + np.arange(n), n + np.arange(n)]),
        cols=np.concatenate([to_load.cols(), green.cols(cells), to_load.cols(), fac.cols(cells)]),
        vals=np.concatenate([np.ones(n), -np.ones(n), np.ones(n), -np.ones(n)]),
        hi=0.0,
        index={"site": np.tile(cells // H, 2), "hour": np.tile(cells % H, 2)},
        doc="green counted at a battery site: at most the green used and the facility load",
    )
    counted[cells] = to_load.cols()
    return counted


def _carbon_budget(m: LinearModel, d: ModelData, grid: VarBlock) -> None:
    sc = d.sc
    S, H = d.S, d.H
    pol = sc.policy

    if pol.carbon_budget_t is not None:
        excess = m.add_variables("v_carbon_excess_t", 1, doc="emissions above the carbon budget")
        m.add_constraints(
            "carbon_budget",
            1,
            np.zeros(S * H + 1, dtype=np.int64),
            np.concatenate([grid.cols(), excess.cols()]),
            np.concatenate([sc.contract_carbon_kg_per_mwh.reshape(-1) / KG_PER_T, [-1.0]]),
            hi=pol.carbon_budget_t,
            doc="contract-based emissions within the budget",
        )
        m.add_cost("policy_violation", excess.cols(), pol.carbon_excess_penalty_cny_per_t)
