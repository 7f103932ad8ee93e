"""Energy supply of each site and hour: grid import and contracted green supply."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.rules import carbon_cost_per_mwh


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Grid and green supply, the site power balance, and their costs.

    .. math::

        0 \le g_{s,h} \le \bar G_s, \qquad 0 \le e_{s,h} \le \bar E_{s,h}

        \sum \text{balance}_{s,h} = g_{s,h} + e_{s,h} + \ldots - P^{fac}_{s,h} = 0   && \text{(power\_balance)}

        \text{cost} \mathrel{+}= \sum_{s,h} \left( p^{grid}_{s,h} g_{s,h} + p^{green}_{s,h} e_{s,h}
            + \frac{p^{CO_2}}{1000}\, \varepsilon_{s,h}\, g_{s,h} \right)

    Green supply not used is curtailed (reported, not a variable). Hours are one hour
    long, so MW in an hour are MWh. Emissions priced here are contract-based: grid import
    times grid intensity; green supply counts zero.

    =======================  ==========================  ============  =====================================
    symbol                   name                        unit          meaning
    =======================  ==========================  ============  =====================================
    :math:`g_{s,h}`          ``v_grid_mw``               MW            grid import
    :math:`e_{s,h}`          ``v_green_mw``              MW            green supply used
    :math:`\bar G_s`         grid_limit_mw               MW            grid connection limit
    :math:`\bar E_{s,h}`     green_available_mw          MW            green supply available
    :math:`p^{grid}_{s,h}`   grid_price_cny_per_mwh      CNY/MWh       time-of-use grid price
    :math:`p^{green}_{s,h}`  green_price_cny_per_mwh     CNY/MWh       green energy price
    :math:`\varepsilon_{s,h}` grid_carbon_kg_per_mwh     kgCO2/MWh     grid carbon intensity
    :math:`p^{CO_2}`         carbon_price_cny_per_t      CNY/t         carbon price
    =======================  ==========================  ============  =====================================
    """
    sc = d.sc
    S, H = d.S, d.H
    index = {"site": np.repeat(np.arange(S), H), "hour": np.tile(np.arange(H), S)}
    grid = m.add_variables(
        "v_grid_mw",
        S * H,
        ub=np.repeat(sc.grid_limit_mw, H)
        - (
            0.0
            if d.reserve_mw is None or d.reserve_mw_cny is not None
            else d.reserve_mw.reshape(-1)
        ),
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
    if d.reserve_mw is not None and d.reserve_mw_cny is not None:
        # power held back for rounding inference up later, usable at the price of the demand
        # it would leave unserved: g - r <= G - R, 0 <= r <= R
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
        m.add_constraints(
            "rounding_power_room",
            n,
            rows=np.concatenate([np.arange(n), np.arange(n)]),
            cols=np.concatenate([grid.cols(cells), used.cols()]),
            vals=np.concatenate([np.ones(n), -np.ones(n)]),
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
