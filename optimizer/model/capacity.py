"""Device capacity per site, accelerator type and hour."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel, Terms
from optimizer.model.sets import ModelData


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Busy devices per site, type and hour, within the devices available then.

    .. math::

        b_{s,a,h} = \sum \text{use}_{s,a,h}  \quad \forall (s,a) \in F, h   && \text{(device\_use)}

        0 \le b_{s,a,h} \le \lfloor n_{s,a}\, \alpha_{s,a,h} \rfloor         && \text{(bound: device\_capacity)}

        b_{s,a,h} - \rho_{s,a,h} \le \lfloor n_{s,a}\, \alpha_{s,a,h} \rfloor - R_{s,a,h},
            \; 0 \le \rho \le R, \; \text{cost} \mathrel{+}= \pi_{s,a,h}\, \rho_{s,a,h}   && \text{(rounding\_room, large instances)}

    The rounding room (stage 1 of the round strategy, docs/solving.md): :math:`R` devices held
    back to round inference up to whole devices later, usable after all (:math:`\rho`,
    ``v_reserve_used``) at :math:`\pi`, the price of the demand one device would serve.

    ====================  ===========================  ========  ================================================
    symbol                name                         unit      meaning
    ====================  ===========================  ========  ================================================
    :math:`b_{s,a,h}`     ``v_busy``                   devices   devices of type a busy at site s in hour h
    use                   registered ``device_use``    devices   gangs of jobs running and inference devices
    :math:`n_{s,a}`       fleet                        devices   installed devices
    :math:`\alpha_{s,a,h}` availability                fraction  share available (maintenance, outages)
    :math:`F`             FLEET                        \-        (site, type) pairs with devices installed
    ====================  ===========================  ========  ================================================
    """
    sc = d.sc
    A, H = d.A, d.H
    fs, fa = np.nonzero(sc.installed_devices > 0)
    pair_of = np.full(d.S * A, -1, dtype=np.int64)
    pair_of[fs * A + fa] = np.arange(fs.size)
    s = np.repeat(fs, H)
    a = np.repeat(fa, H)
    h = np.tile(np.arange(H), fs.size)
    hard = d.reserve_devices is not None and d.reserve_device_cny is None
    busy = m.add_variables(
        "v_busy",
        s.size,
        ub=(sc.capacity[s, a, h] - (d.reserve_devices[s, a, h] if hard else 0)).astype(float),  # type: ignore[index]
        index={"site": s, "accelerator": a, "hour": h},
        doc="busy devices per site, type and hour",
    )
    if d.reserve_devices is not None and d.reserve_device_cny is not None:
        _soft_reserve(m, d, busy.cols(), s, a, h)
    terms = [
        Terms(pair_of[t.keys // H] * H + t.keys % H, t.cols, -t.coefs)
        for t in m.registered("device_use")
    ]
    terms.append(Terms(np.arange(s.size), busy.cols(), np.ones(s.size)))
    # with the job plan fixed, the jobs' devices are a constant on the right-hand side
    fixed = 0.0 if d.fixed_job_use is None else d.fixed_job_use[s, a, h].astype(float)
    m.add_keyed_constraints(
        "device_use",
        s.size,
        terms,
        lo=fixed,
        hi=fixed,
        index={"site": s, "accelerator": a, "hour": h},
        doc="busy devices are the jobs' gangs plus the inference devices",
    )


def _soft_reserve(
    m: LinearModel, d: ModelData, busy_cols: np.ndarray, s: np.ndarray, a: np.ndarray, h: np.ndarray
) -> None:
    """Devices held back (room to round inference up later) that the solve may still use,
    at the price of the demand it would leave unserved: b - r <= c - R, 0 <= r <= R."""
    assert d.reserve_devices is not None and d.reserve_device_cny is not None
    R = d.reserve_devices[s, a, h].astype(float)
    cells = np.flatnonzero(R > 0)
    used = m.add_variables(
        "v_reserve_used",
        cells.size,
        ub=R[cells],
        index={"site": s[cells], "accelerator": a[cells], "hour": h[cells]},
        doc="held-back devices used after all",
    )
    n = cells.size
    m.add_constraints(
        "rounding_room",
        n,
        rows=np.concatenate([np.arange(n), np.arange(n)]),
        cols=np.concatenate([busy_cols[cells], used.cols()]),
        vals=np.concatenate([np.ones(n), -np.ones(n)]),
        hi=(d.sc.capacity[s, a, h] - R)[cells].astype(float),
        index=used.index,
        doc="busy devices leave the held-back ones free, or pay for using them",
    )
    m.add_cost("unmet_demand", used.cols(), d.reserve_device_cny[s[cells], a[cells], h[cells]])
