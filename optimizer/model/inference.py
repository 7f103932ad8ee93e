"""Inference services: integer devices per site and hour, serving each demand region only
from sites within the service's latency limit; a service may split across sites.

The rows are written over serving units (`optimizer.model.sets`): one service each when
devices are whole, classes of interchangeable services when they are relaxed.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData


# Long on purpose: a model module adds its family through one `add_to_model` (the builder's
# convention, optimizer/model/build.py), and its blocks follow the docstring's constraints one
# by one, so the math and the code read side by side.
def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Devices and flows of inference services (over serving units k).

    .. math::

        \sum_{r:\,(k,r,s) \in R} f_{k,r,s,h} \le \sum_{a} \tau_{k,a}\, n_{k,s,a,h}
            \quad \forall k, s, h                                          && \text{(serve\_capacity)}

        \sum_{s:\,(k,r,s) \in R} f_{k,r,s,h} + q_{k,r,h} = \Delta_{k,r,h}
            \quad \forall k, r, h: \Delta_{k,r,h} > 0                       && \text{(demand\_balance)}

        \text{use}_{s,a,h} \mathrel{+}= n_{k,s,a,h}                        && \text{(registered: device\_use)}

        \text{cost} \mathrel{+}= \sum \rho_k\, q_{k,r,h}

    :math:`R` holds only routes with latency(s, r) within the service's limit, so latency
    is respected by construction. A unit is one service measured in ktokens/s, or a class
    of services measured in device-equivalents of their fastest type.

    ======================  ===================  ============  ==========================================
    symbol                  name                 unit          meaning
    ======================  ===================  ============  ==========================================
    :math:`n_{k,s,a,h}`     ``v_devices``        devices       devices of type a serving k at site s
    :math:`f_{k,r,s,h}`     ``v_flow``           demand unit   demand of region r served from site s
    :math:`q_{k,r,h}`       ``v_unmet``          demand unit   demand left unserved
    :math:`\tau_{k,a}`      throughput           unit/device   throughput of one device of type a
    :math:`\Delta_{k,r,h}`  demand               demand unit   demand of region r
    :math:`\rho_k`          unmet penalty        CNY/unit-h    cost of unserved demand (from CNY/Mtoken)
    ======================  ===================  ============  ==========================================
    """
    sc = d.sc
    S, H = d.S, d.H
    R = len(sc.demand_regions)
    demand = d.unit_demand

    # flows: routes x hours with demand
    n_routes = d.route_unit.size
    rt = np.repeat(np.arange(n_routes), H)
    hh = np.tile(np.arange(H), n_routes)
    has = demand[d.route_unit[rt], d.route_region[rt], hh] > 0
    rt, hh = rt[has], hh[has]
    f_k, f_r, f_s = d.route_unit[rt], d.route_region[rt], d.route_site[rt]
    f = m.add_variables(
        "v_flow",
        rt.size,
        index={"unit": f_k, "region": f_r, "site": f_s, "hour": hh},
        doc="demand of a region served from a site",
    )
    # serve rows: one per (unit, site, hour) that has flows
    ksh = (f_k * S + f_s) * H + hh
    serve_keys, f_row = np.unique(ksh, return_inverse=True)
    # devices: unit options x hours where the (unit, site, hour) has a serve row
    n_o = d.uopt_unit.size
    ot = np.repeat(np.arange(n_o), H)
    oh = np.tile(np.arange(H), n_o)
    okey = (d.uopt_unit[ot] * S + d.uopt_site[ot]) * H + oh
    pos = np.minimum(np.searchsorted(serve_keys, okey), max(serve_keys.size - 1, 0))
    keep = serve_keys[pos] == okey if serve_keys.size else np.zeros(okey.size, bool)
    ot, oh, n_row = ot[keep], oh[keep], pos[keep]
    n_s, n_a = d.uopt_site[ot], d.uopt_acc[ot]
    n = m.add_variables(
        "v_devices",
        ot.size,
        ub=sc.capacity[n_s, n_a, oh].astype(float),
        integer=True,
        index={"unit": d.uopt_unit[ot], "site": n_s, "accelerator": n_a, "hour": oh},
        doc="devices serving an inference service",
    )
    m.add_constraints(
        "serve_capacity",
        serve_keys.size,
        rows=np.concatenate([f_row, n_row]),
        cols=np.concatenate([f.cols(), n.cols()]),
        vals=np.concatenate([np.ones(rt.size), -d.uopt_throughput[ot]]),
        hi=0.0,
        index={
            "unit": serve_keys // (S * H),
            "site": (serve_keys // H) % S,
            "hour": serve_keys % H,
        },
        doc="flows from a site within the throughput of its devices",
    )
    m.register("device_use", d.sah_key(n_s, n_a, oh), n.cols(), 1.0)

    # demand balance with unmet demand
    kk, rr, h2 = np.nonzero(demand > 0)
    q = m.add_variables(
        "v_unmet",
        kk.size,
        ub=demand[kk, rr, h2],
        index={"unit": kk, "region": rr, "hour": h2},
        doc="demand left unserved",
    )
    krh = (kk * R + rr) * H + h2  # sorted, as np.nonzero is row-major
    f_krh = (f_k * R + f_r) * H + hh
    m.add_constraints(
        "demand_balance",
        kk.size,
        rows=np.concatenate([np.searchsorted(krh, f_krh), np.arange(kk.size)]),
        cols=np.concatenate([f.cols(), q.cols()]),
        vals=np.ones(rt.size + kk.size),
        lo=demand[kk, rr, h2],
        hi=demand[kk, rr, h2],
        index={"unit": kk, "region": rr, "hour": h2},
        doc="each region's demand is served or unmet",
    )
    per_q = d.unit_unmet_cny[kk]
    # demand no site can reach is unmet whatever the plan: a constant (see jobs.py)
    reachable = np.zeros(kk.size, dtype=bool)
    reachable[np.searchsorted(krh, f_krh)] = True
    q.lb[~reachable] = q.ub[~reachable]
    m.fixed_cost += float((per_q * q.ub)[~reachable].sum())
    m.add_cost("unmet_demand", q.cols(np.flatnonzero(reachable)), per_q[reachable])
