"""Energy supply of each site and hour: grid import, contracted green supply (own asset,
take-or-pay PPA, fixed-volume trade) and its curtailment."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel, VarBlock
from optimizer.model.sets import ModelData
from optimizer.rules import carbon_cost_per_mwh
from optimizer.units import KG_PER_T

TIEBREAK_CNY_PER_T = 0.01
"""Ties go green: every contract-based tonne costs this much more in the objective (on top
of the carbon price), so that of two plans with equal cost the lower-carbon one is
optimal. It can move the plan's cost above the cost optimum by at most this times the
plan's contract-based emissions (0.01 CNY/t x ~150 t = 1.5 CNY on a ~200,000 CNY plan,
far below the MIP gap); it is not part of any reported cost."""


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Grid and green supply, the site power balance, the green contracts and their costs.

    .. math::

        0 \le g_{s,h} \le \bar G_s, \qquad 0 \le e_{s,h} \le \bar E_{s,h}

        e_{s,h} + k_{s,h} = \bar E_{s,h}  \quad (\bar E_{s,h} > 0)          && \text{(green\_contracted)}

        g_{s,h} + e_{s,h} \le \bar G_s \quad \forall s \in \text{ppa, trade}  && \text{(grid\_connection)}

        \sum \text{balance}_{s,h} = g_{s,h} + e_{s,h} + \ldots - P^{fac}_{s,h} = 0   && \text{(power\_balance)}

        \text{cost} \mathrel{+}= \sum_{s,h} \left( p^{grid}_{s,h} g_{s,h} + p^{green}_{s,h} e_{s,h}
            - r_s k_{s,h}
            + \frac{p^{CO_2} + \tau}{1000}\, \varepsilon_{s,h}\, g_{s,h} \right)

    Green supply contracts (sites.csv `green_contract`), as they are signed:

    - ``own`` (own asset, or a direct line 绿电直连): beside the grid connection, so the
      site may draw :math:`\bar G_s + \bar E_{s,h}`; a MWh used costs its O&M
      :math:`p^{green}` (site_series ``green_price_cny_per_mwh``, default 0).
    - ``ppa`` (take-or-pay): delivered over the grid connection, sharing its limit
      (grid_connection). The payment, price x available MWh, is owed whatever the plan
      does: a fixed cost, reported (KPI ``contract_payment``), not in the objective. A MWh
      not used is curtailed, :math:`k`, and earns its resale value :math:`r_s`, so using
      one costs :math:`r_s` (default 0: curtailed green is wasted, 弃风弃光).
    - ``trade`` (fixed-volume green trade 绿电交易): :math:`\bar E` is the contracted
      hourly volume, paid like a PPA; the shortfall is ordinary grid import at the grid
      price, the surplus :math:`k` is sold at the deviation price :math:`r_s`.

    A scenario without the contract columns reads as ``own`` with no resale value: green
    priced per MWh used, as before contracts were modelled. Hours are one hour long, so MW
    in an hour are MWh. Emissions priced here are contract-based: grid import times the
    residual-mix factor (site_series ``grid_residual_kg_per_mwh``; where none is given the
    average ``grid_carbon_kg_per_mwh`` stands in); contracted green counts zero. Ties go green: :math:`\tau` (``TIEBREAK_CNY_PER_T``,
    0.01 CNY/t) makes the lower-carbon of two equal-cost plans strictly cheaper; it moves the
    cost by at most :math:`\tau` x the plan's emissions and is reported nowhere.

    =======================  ==========================  ============  =====================================
    symbol                   name                        unit          meaning
    =======================  ==========================  ============  =====================================
    :math:`g_{s,h}`          ``v_grid_mw``               MW            grid import
    :math:`e_{s,h}`          ``v_green_mw``              MW            green supply used
    :math:`k_{s,h}`          ``v_curtailed_mw``          MW            contracted green not used
    :math:`\bar G_s`         grid_limit_mw               MW            grid connection limit
    :math:`\bar E_{s,h}`     green_available_mw          MW            green supply available (contracted)
    :math:`p^{grid}_{s,h}`   grid_price_cny_per_mwh      CNY/MWh       time-of-use grid price
    :math:`p^{green}_{s,h}`  green_price_cny_per_mwh     CNY/MWh       O&M cost of a green MWh used
    :math:`r_s`              green_resale_cny_per_mwh    CNY/MWh       value of a curtailed green MWh
    :math:`\varepsilon_{s,h}` contract factor            kgCO2/MWh     residual mix, else the average
    :math:`p^{CO_2}`         carbon_price_cny_per_t      CNY/t         carbon price
    :math:`\tau`             TIEBREAK_CNY_PER_T          CNY/t         ties go green
    =======================  ==========================  ============  =====================================
    """
    sc = d.sc
    S, H = d.S, d.H
    index = {"site": np.repeat(np.arange(S), H), "hour": np.tile(np.arange(H), S)}
    priced_reserve = d.reserve_mw is not None and d.reserve_mw_cny is not None
    held_back = 0.0 if d.reserve_mw is None or priced_reserve else d.reserve_mw.reshape(-1)
    grid = m.add_variables(
        "v_grid_mw",
        S * H,
        ub=np.repeat(sc.grid_limit_mw, H) - held_back,
        index=index,
        doc="grid import per site and hour",
    )
    green = m.add_variables(
        "v_green_mw",
        S * H,
        ub=sc.green_available_mw.reshape(-1),
        index=index,
        doc="green supply used per site and hour",
    )
    m.register("power_balance", np.arange(S * H), grid.cols(), 1.0)
    m.register("power_balance", np.arange(S * H), green.cols(), 1.0)
    m.add_keyed_constraints(
        "power_balance",
        S * H,
        m.registered("power_balance"),
        lo=0.0,
        hi=0.0,
        index=index,
        doc="supply = facility power (+ battery charge - discharge)",
    )
    _contracts(m, d, grid, green, index, held_back)
    # owed whatever the plan does: kept out of the objective, put back beside it like the
    # other costs no decision can change
    m.fixed_cost += float(sc.contract_payment_cny.sum())
    if d.reserve_mw is not None and d.reserve_mw_cny is not None:
        # power held back for rounding inference up later, usable at the price of the demand
        # it would leave unserved: g (+ e if green shares the connection) - r <= G - R
        R = d.reserve_mw.reshape(-1)
        cells = np.flatnonzero(R > 0)
        used = m.add_variables(
            "v_reserve_mw_used",
            cells.size,
            ub=R[cells],
            index={"site": index["site"][cells], "hour": index["hour"][cells]},
            doc="held-back grid power used after all",
        )
        n = cells.size
        shared = cells[sc.green_shares_grid[index["site"][cells]]]
        m.add_constraints(
            "rounding_power_room",
            n,
            rows=np.concatenate([np.arange(n), np.arange(n), np.searchsorted(cells, shared)]),
            cols=np.concatenate([grid.cols(cells), used.cols(), green.cols(shared)]),
            vals=np.concatenate([np.ones(n), -np.ones(n), np.ones(shared.size)]),
            hi=(np.repeat(sc.grid_limit_mw, H) - R)[cells],
            index=used.index,
            doc="grid import leaves the held-back power free, or pays for using it",
        )
        m.add_cost("unmet_demand", used.cols(), d.reserve_mw_cny.reshape(-1)[cells])
    m.add_cost("grid_energy", grid.cols(), sc.grid_price_cny_per_mwh.reshape(-1))
    m.add_cost("green_energy", green.cols(), sc.green_price_cny_per_mwh.reshape(-1))
    m.add_cost(
        "carbon",
        grid.cols(),
        carbon_cost_per_mwh(sc).reshape(-1),
    )
    m.add_cost(
        "carbon_tiebreak",
        grid.cols(),
        TIEBREAK_CNY_PER_T * sc.contract_carbon_kg_per_mwh.reshape(-1) / KG_PER_T,
    )


def _contracts(
    m: LinearModel,
    d: ModelData,
    grid: VarBlock,
    green: VarBlock,
    index: dict[str, np.ndarray],
    held_back: float | np.ndarray,
) -> None:
    """Curtailment of contracted green (valued at its resale price) and the grid connection
    shared by green delivered over it (ppa, trade)."""
    sc = d.sc
    S, H = d.S, d.H
    avail = sc.green_available_mw.reshape(-1)
    cells = np.flatnonzero(avail > 0)
    n = cells.size
    curt = m.add_variables(
        "v_curtailed_mw",
        n,
        ub=avail[cells],
        index={"site": index["site"][cells], "hour": index["hour"][cells]},
        doc="contracted green supply not used",
    )
    m.add_constraints(
        "green_contracted",
        n,
        rows=np.concatenate([np.arange(n), np.arange(n)]),
        cols=np.concatenate([green.cols(cells), curt.cols()]),
        vals=np.ones(2 * n),
        lo=avail[cells],
        hi=avail[cells],
        index=curt.index,
        doc="contracted green is used or curtailed",
    )
    m.add_cost("green_resale", curt.cols(), -sc.green_resale_cny_per_mwh[index["site"][cells]])
    shared = np.flatnonzero(np.repeat(sc.green_shares_grid, H) & (avail > 0))
    k = shared.size
    limit = np.repeat(sc.grid_limit_mw, H) - held_back
    m.add_constraints(
        "grid_connection",
        k,
        rows=np.concatenate([np.arange(k), np.arange(k)]),
        cols=np.concatenate([grid.cols(shared), green.cols(shared)]),
        vals=np.ones(2 * k),
        hi=np.broadcast_to(limit, (S * H,))[shared],
        index={"site": index["site"][shared], "hour": index["hour"][shared]},
        doc="grid import and green delivered over the connection within its limit",
    )
