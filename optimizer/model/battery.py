"""Optional on-site batteries: state of charge, power limits, round-trip efficiency."""

from __future__ import annotations

import math

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Battery charge, discharge and state of charge at sites that have one.

    .. math::

        \sigma_{s,h} = \sigma_{s,h-1} + \sqrt{\eta_s}\, c_{s,h} - d_{s,h} / \sqrt{\eta_s},
            \quad \sigma_{s,-1} = \sigma^0_s                          && \text{(soc\_balance)}

        \sigma_{s,H-1} \ge \sigma^0_s                                  && \text{(end\_soc)}

        0 \le c_{s,h}, d_{s,h} \le \bar P_s, \quad 0 \le \sigma_{s,h} \le \bar S_s

        c_{s,h} \le \bar P_s b_{s,h}, \quad d_{s,h} \le \bar P_s (1 - b_{s,h}), \quad b_{s,h} \in \{0, 1\}   && \text{(charge\_or\_discharge)}

        \text{balance}_{s,h} \mathrel{+}= d_{s,h} - c_{s,h}           && \text{(registered: power\_balance)}

    The round-trip efficiency is split evenly between charging and discharging. The battery
    never charges and discharges in the same hour: with losses that would burn energy,
    which a green-share minimum could reward.

    ====================  ======================  =====  =========================================
    symbol                name                    unit   meaning
    ====================  ======================  =====  =========================================
    :math:`c_{s,h}`       ``v_charge_mw``         MW     battery charging
    :math:`d_{s,h}`       ``v_discharge_mw``      MW     battery discharging
    :math:`\sigma_{s,h}`  ``v_soc_mwh``           MWh    state of charge at the end of hour h
    :math:`b_{s,h}`       ``v_charging``          \-     1 in an hour the battery may charge
    :math:`\eta_s`        battery_efficiency      \-     round-trip efficiency
    :math:`\bar P_s`      battery_mw              MW     power limit
    :math:`\bar S_s`      battery_mwh             MWh    energy capacity
    :math:`\sigma^0_s`    battery_initial_soc     MWh    state of charge at the start
    ====================  ======================  =====  =========================================
    """
    sc = d.sc
    H = d.H
    sites = [i for i, s in enumerate(sc.sites) if s.battery is not None]
    nb = len(sites)
    bs = np.repeat(np.asarray(sites, dtype=np.int64), H)
    bh = np.tile(np.arange(H), nb)
    index = {"site": bs, "hour": bh}
    power = np.array([sc.sites[i].battery.power_mw for i in sites for _ in range(H)])  # type: ignore[union-attr]
    energy = np.array([sc.sites[i].battery.energy_mwh for i in sites for _ in range(H)])  # type: ignore[union-attr]
    ch = m.add_variables("v_charge_mw", nb * H, ub=power, index=index, doc="battery charging")
    dis = m.add_variables(
        "v_discharge_mw", nb * H, ub=power, index=index, doc="battery discharging"
    )
    soc = m.add_variables(
        "v_soc_mwh", nb * H, ub=energy, index=index, doc="battery state of charge at hour end"
    )
    eta = np.array([math.sqrt(sc.sites[i].battery.round_trip_efficiency) for i in sites])  # type: ignore[union-attr]
    soc0 = np.array([sc.sites[i].battery.initial_mwh for i in sites])  # type: ignore[union-attr]
    k = np.arange(nb * H)
    prev = k[bh > 0]
    rows = np.concatenate([k, prev, k, k])
    cols = np.concatenate([soc.cols(), soc.cols(prev - 1), ch.cols(), dis.cols()])
    vals = np.concatenate(
        [np.ones(k.size), -np.ones(prev.size), -np.repeat(eta, H), 1.0 / np.repeat(eta, H)]
    )
    rhs = np.where(bh == 0, np.repeat(soc0, H), 0.0)
    m.add_constraints(
        "soc_balance",
        nb * H,
        rows,
        cols,
        vals,
        lo=rhs,
        hi=rhs,
        index=index,
        doc="battery energy balance",
    )
    last = np.arange(nb) * H + H - 1
    m.add_constraints(
        "end_soc",
        nb,
        np.arange(nb),
        soc.cols(last),
        np.ones(nb),
        lo=soc0,
        index={"site": np.asarray(sites, dtype=np.int64)},
        doc="the battery ends at least as full as it started",
    )
    # never both in one hour: with losses, charging and discharging at once burns energy,
    # which a green-share minimum could otherwise reward (issue 11)
    mode = m.add_variables(
        "v_charging", nb * H, ub=1.0, integer=True, index=index, doc="1: the battery may charge"
    )
    n = nb * H
    m.add_constraints(
        "charge_or_discharge",
        2 * n,
        rows=np.concatenate([k, k, n + k, n + k]),
        cols=np.concatenate([ch.cols(), mode.cols(), dis.cols(), mode.cols()]),
        vals=np.concatenate([np.ones(n), -power, np.ones(n), power]),
        hi=np.concatenate([np.zeros(n), power]),
        index={"site": np.tile(bs, 2), "hour": np.tile(bh, 2)},
        doc="charge only in charging hours, discharge only in the others",
    )
    m.register("power_balance", bs * H + bh, dis.cols(), 1.0)
    m.register("power_balance", bs * H + bh, ch.cols(), -1.0)
