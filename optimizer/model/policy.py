"""Policy limits: minimum green share (fleet and per site) and a carbon budget.

They are soft: a shortfall is priced high and reported as a violation, so a policy that
cannot be met never leaves the planner without a plan.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.units import KG_PER_T


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Green-share minimums and the carbon budget.

    .. math::

        \sum_{s,h} e_{s,h} + \delta^{fleet} \ge \gamma \sum_{s,h} P^{fac}_{s,h}     && \text{(fleet\_green\_share)}

        \sum_{h} e_{s,h} + \delta_s \ge \gamma_s \sum_{h} P^{fac}_{s,h} \quad \forall s: \gamma_s > 0   && \text{(site\_green\_share)}

        \sum_{s,h} \frac{\varepsilon_{s,h}}{1000} g_{s,h} - \chi \le B           && \text{(carbon\_budget)}

        \text{cost} \mathrel{+}= \kappa^{green} \left(\delta^{fleet} + \sum_s \delta_s\right) + \kappa^{CO_2} \chi

    ======================  =================================  =========  ======================================
    symbol                  name                               unit       meaning
    ======================  =================================  =========  ======================================
    :math:`\gamma, \gamma_s`  min_green_share                  fraction   required green / facility energy
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
    for i, (_, sh, share, _) in enumerate(groups):
        rows += [np.full(sh.size, i), np.full(sh.size, i), np.array([i])]
        cols += [green.cols(sh), fac.cols(sh), short.cols(np.array([i]))]
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

    if pol.carbon_budget_t is not None:
        excess = m.add_variables("v_carbon_excess_t", 1, doc="emissions above the carbon budget")
        m.add_constraints(
            "carbon_budget",
            1,
            np.zeros(S * H + 1, dtype=np.int64),
            np.concatenate([grid.cols(), excess.cols()]),
            np.concatenate([sc.grid_carbon_kg_per_mwh.reshape(-1) / KG_PER_T, [-1.0]]),
            hi=pol.carbon_budget_t,
            doc="contract-based emissions within the budget",
        )
        m.add_cost("policy_violation", excess.cols(), pol.carbon_excess_penalty_cny_per_t)
