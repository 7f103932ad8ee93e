"""Site power: IT load of busy and idle devices, times PUE."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.units import KW_PER_MW


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Facility power of each site and hour.

    .. math::

        P^{fac}_{s,h} = \mathrm{PUE}_s \cdot \frac{1}{1000} \sum_{a} \left(
            k^{busy}_a\, b_{s,a,h} + k^{idle}_a \left(c_{s,a,h} - b_{s,a,h}\right) \right)
            && \text{(facility\_power)}

        \text{balance}_{s,h} \mathrel{-}= P^{fac}_{s,h}     && \text{(registered: power\_balance)}

    Devices under maintenance (not in :math:`c`) draw nothing.

    =====================  ==================  ========  ===============================================
    symbol                 name                unit      meaning
    =====================  ==================  ========  ===============================================
    :math:`P^{fac}_{s,h}`  ``v_facility_mw``   MW        facility power (IT x PUE)
    :math:`b_{s,a,h}`      ``v_busy``          devices   busy devices
    :math:`c_{s,a,h}`      capacity            devices   available devices
    :math:`k^{busy}_a`     busy_kw             kW        power per busy device, server share included
    :math:`k^{idle}_a`     idle_kw             kW        power per idle available device
    :math:`\mathrm{PUE}_s` pue                 \-        facility / IT power
    =====================  ==================  ========  ===============================================
    """
    sc = d.sc
    S, H = d.S, d.H
    busy = m.vars["v_busy"]
    bs, ba, bh = busy.index["site"], busy.index["accelerator"], busy.index["hour"]
    fac = m.add_variables(
        "v_facility_mw",
        S * H,
        index={"site": np.repeat(np.arange(S), H), "hour": np.tile(np.arange(H), S)},
        doc="facility power per site and hour",
    )
    pue = sc.pue
    idle_mw = np.einsum("sah,a->sh", sc.capacity.astype(float), sc.idle_kw) / KW_PER_MW
    m.add_constraints(
        "facility_power",
        S * H,
        rows=np.concatenate([np.arange(S * H), bs * H + bh]),
        cols=np.concatenate([fac.cols(), busy.cols()]),
        vals=np.concatenate(
            [np.ones(S * H), -pue[bs] * (sc.busy_kw[ba] - sc.idle_kw[ba]) / KW_PER_MW]
        ),
        lo=(pue[:, None] * idle_mw).reshape(-1),
        hi=(pue[:, None] * idle_mw).reshape(-1),
        index=fac.index,
        doc="facility power = PUE x (busy + idle device power)",
    )
    m.register("power_balance", np.arange(S * H), fac.cols(), -1.0)
