"""Robust mode: every site-hour stays powerable when green supply comes in at a low
quantile of its forecast (policy `robust_green_quantile`; issue 12)."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.units import KW_PER_MW


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Grid headroom for the green the plan leans on, at the low quantile of its forecast.

    .. math::

        g_{s,h} + e_{s,h} \le \bar G_s - R_{s,h} + \underline{E}_{s,h}
            \quad \forall s \in \text{own}, h: \underline{E}_{s,h} < \bar E_{s,h}
            && \text{(robust\_supply)}

    With the power balance (:math:`g + e = P^{fac} + c - d`) this is
    :math:`P^{fac}_{s,h} + c_{s,h} - d_{s,h} \le \bar G_s - R_{s,h} + \underline{E}_{s,h}`:
    the site's load, battery as planned, fits under the grid connection plus green at its
    low quantile, so if green comes in anywhere down to that quantile the grid makes up
    the rest within its limit. Only green beside the connection (``own``) needs the row: a
    PPA or trade delivered over the connection already shares its limit
    (grid_connection), so a shortfall there is grid import inside the same limit.

    **Why a robust constraint, not scenarios.** The uncertainty sits in the right-hand side
    only, per site-hour, and the recourse (more grid import) is continuous and always
    available up to the limit: the robust counterpart over the box
    :math:`[\underline{E}, \bar E]` is this one linear row per own site-hour, exact, with
    no new variables. A two-stage model with green scenarios would copy the energy
    variables per scenario for the same first-stage feasibility; what it adds, the
    expected cost of the recourse, is reported instead by re-dispatching the plan in the
    low, central and high cases (`green_cases`), at no solve time. A chance constraint
    with a per-hour quantile is this row at that quantile.

    Where even the idle load does not fit under the robust limit no placement can make
    the hour robust; the row is relaxed to the idle load there (never infeasible), and the
    validator reports the hour as short.

    ==============================  ==================  ====  ======================================
    symbol                          name                unit  meaning
    ==============================  ==================  ====  ======================================
    :math:`g_{s,h}`                 ``v_grid_mw``       MW    grid import
    :math:`e_{s,h}`                 ``v_green_mw``      MW    green supply used (its P50 bound)
    :math:`\bar G_s`                grid_limit_mw       MW    grid connection limit
    :math:`R_{s,h}`                 reserve_mw          MW    grid power held back for rounding
    :math:`\underline{E}_{s,h}`     green_available_pNN MW    green at the robust quantile
    :math:`\bar E_{s,h}`            green_available_mw  MW    green forecast (P50)
    ==============================  ==================  ====  ======================================
    """
    sc = d.sc
    q = sc.robust_green_quantile
    if q is None:
        return
    S, H = d.S, d.H
    low = sc.green_quantile_mw(q)
    own = ~sc.green_shares_grid[:, None] & (low < sc.green_available_mw - 1e-12)
    cells = np.flatnonzero(own.reshape(-1))
    if not cells.size:
        return
    # as the grid's own bound (energy): unpriced reserve is held back, priced reserve is
    # usable at a price through its own row
    priced = d.reserve_mw is not None and d.reserve_mw_cny is not None
    held_back = 0.0 if d.reserve_mw is None or priced else d.reserve_mw.reshape(-1)
    idle_fac = (
        sc.pue[:, None] * np.einsum("sah,a->sh", sc.capacity.astype(float), sc.idle_kw) / KW_PER_MW
    ).reshape(-1)
    limit = np.repeat(sc.grid_limit_mw, H) - held_back + low.reshape(-1)
    limit = np.maximum(limit, idle_fac)[cells]
    grid, green = m.vars["v_grid_mw"], m.vars["v_green_mw"]
    n = cells.size
    m.add_constraints(
        "robust_supply",
        n,
        rows=np.concatenate([np.arange(n), np.arange(n)]),
        cols=np.concatenate([grid.cols(cells), green.cols(cells)]),
        vals=np.ones(2 * n),
        hi=limit,
        index={"site": np.repeat(np.arange(S), H)[cells], "hour": np.tile(np.arange(H), S)[cells]},
        doc="site load fits under the grid limit plus green at its low quantile",
    )
