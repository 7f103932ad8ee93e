"""Inference services: integer devices per site and hour, serving each demand region only
from sites within the service's latency limit; a service may split across sites."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData

SECONDS_PER_HOUR = 3600.0
TOKENS_PER_MTOKEN = 1e6
KTOKENS = 1e-3  # the model counts thousands of tokens/s: keeps coefficients near 1 for HiGHS


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Devices and flows of inference services.

    .. math::

        \sum_{r:\,(k,r,s) \in R} f_{k,r,s,h} \le \sum_{a} \tau_{k,a}\, n_{k,s,a,h}
            \quad \forall k, s, h                                          && \text{(serve\_capacity)}

        \sum_{s:\,(k,r,s) \in R} f_{k,r,s,h} + q_{k,r,h} = \Delta_{k,r,h}
            \quad \forall k, r, h: \Delta_{k,r,h} > 0                       && \text{(demand\_balance)}

        \text{use}_{s,a,h} \mathrel{+}= n_{k,s,a,h}                        && \text{(registered: device\_use)}

        \text{cost} \mathrel{+}= \sum 3600 \cdot 10^{-3}\, \rho_k\, q_{k,r,h}

    :math:`R` holds only routes with latency(s, r) within the service's limit, so latency
    is respected by construction.

    ======================  ===================  ============  ==========================================
    symbol                  name                 unit          meaning
    ======================  ===================  ============  ==========================================
    :math:`n_{k,s,a,h}`     ``v_devices``        devices       devices of type a serving k at site s
    :math:`f_{k,r,s,h}`     ``v_flow``           ktokens/s     demand of region r served from site s
    :math:`q_{k,r,h}`       ``v_unmet``          ktokens/s     demand left unserved
    :math:`\tau_{k,a}`      throughput           tokens/s      per-device throughput of k on type a
    :math:`\Delta_{k,r,h}`  demand               tokens/s      demand of region r
    :math:`\rho_k`          unmet penalty        CNY/Mtoken    cost of unserved demand
    ======================  ===================  ============  ==========================================
    """
    sc = d.sc
    S, H = d.S, d.H
    R = len(sc.demand_regions)
    demand = sc.demand_tokens_per_s * KTOKENS

    # flows: routes x hours with demand
    n_routes = d.route_service.size
    rt = np.repeat(np.arange(n_routes), H)
    hh = np.tile(np.arange(H), n_routes)
    has = demand[d.route_service[rt], d.route_region[rt], hh] > 0
    rt, hh = rt[has], hh[has]
    f_k, f_r, f_s = d.route_service[rt], d.route_region[rt], d.route_site[rt]
    f = m.add_variables(
        "v_flow",
        rt.size,
        index={"service": f_k, "region": f_r, "site": f_s, "hour": hh},
        doc="tokens/s of a region's demand served from a site",
    )
    # serve rows: one per (service, site, hour) that has flows
    ksh = (f_k * S + f_s) * H + hh
    serve_keys, f_row = np.unique(ksh, return_inverse=True)
    # devices: service options x hours where the (service, site, hour) has a serve row
    n_o = d.svc_opt_service.size
    ot = np.repeat(np.arange(n_o), H)
    oh = np.tile(np.arange(H), n_o)
    okey = (d.svc_opt_service[ot] * S + d.svc_opt_site[ot]) * H + oh
    pos = np.searchsorted(serve_keys, okey)
    pos_c = np.minimum(pos, max(serve_keys.size - 1, 0))
    keep = (
        (serve_keys.size > 0) & (serve_keys[pos_c] == okey)
        if serve_keys.size
        else np.zeros(okey.size, bool)
    )
    ot, oh, n_row = ot[keep], oh[keep], pos_c[keep]
    n_s, n_a = d.svc_opt_site[ot], d.svc_opt_acc[ot]
    n = m.add_variables(
        "v_devices",
        ot.size,
        ub=sc.capacity[n_s, n_a, oh].astype(float),
        integer=True,
        index={"service": d.svc_opt_service[ot], "site": n_s, "accelerator": n_a, "hour": oh},
        doc="devices serving an inference service",
    )
    m.add_constraints(
        "serve_capacity",
        serve_keys.size,
        rows=np.concatenate([f_row, n_row]),
        cols=np.concatenate([f.cols(), n.cols()]),
        vals=np.concatenate([np.ones(rt.size), -d.svc_opt_tokens_per_s[ot] * KTOKENS]),
        hi=0.0,
        index={
            "service": serve_keys // (S * H),
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
        index={"service": kk, "region": rr, "hour": h2},
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
        index={"service": kk, "region": rr, "hour": h2},
        doc="each region's demand is served or unmet",
    )
    rho = np.array([sc.service_penalty_cny_per_mtoken(k) for k in sc.services])
    per_q = SECONDS_PER_HOUR / TOKENS_PER_MTOKEN / KTOKENS * rho[kk] if kk.size else np.zeros(0)
    # demand no site can reach is unmet whatever the plan: a constant (see jobs.py)
    reachable = np.zeros(kk.size, dtype=bool)
    reachable[np.searchsorted(krh, f_krh)] = True
    q.lb[~reachable] = q.ub[~reachable]
    m.fixed_cost += float((per_q * q.ub)[~reachable].sum())
    m.add_cost("unmet_demand", q.cols(np.flatnonzero(reachable)), per_q[reachable])
