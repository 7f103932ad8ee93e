"""The dominance guard (issue 11): rows that keep a plan's emissions, both ways, and its
curtailed contracted green at or below given bounds (the best baseline's).

.. math::

    \\sum_{s,h} \\varepsilon_{s,h}\\, g_{s,h} / 1000 \\le \\bar C^{contract}          && \\text{(guard\\_emissions\\_contract)}

    \\sum_{s,h} c_{s,h}\\, (g_{s,h} + e_{s,h}) / 1000 \\le \\bar C^{location}   && \\text{(guard\\_emissions\\_location)}

    \\sum_{s,h} e_{s,h} \\ge \\sum_{s,h} \\bar E_{s,h} - \\bar K                       && \\text{(guard\\_curtailment)}

with :math:`g` grid import, :math:`e` green used, :math:`\\varepsilon` the contract factor
(residual mix, else the average), :math:`c` the average grid intensity, :math:`\\bar E` green
available and :math:`\\bar K` the curtailment bound: the plan's KPIs `emissions_t`,
`emissions_location_t` and `curtailed_mwh` as `optimizer.plan.kpis` computes them (the power
balance makes :math:`g + e` the facility power plus battery charge less discharge).

Always feasible for a job plan and devices the bounding plan itself could use; used around
a fixed job plan (the completion LPs), where three dense rows cost nothing to speak of.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.units import KG_PER_T

SLACK = 1e-6
"""Relative room taken off each bound, so the plan assembled from the LP's solution (whose
rows hold to the LP's tolerance) stays at or below it."""


@dataclass(frozen=True)
class Bounds:
    """Upper bounds on a plan's contract- and location-based emissions (t) and its
    contracted green curtailed (MWh)."""

    emissions_t: float
    emissions_location_t: float
    curtailed_mwh: float
    unmet_penalty: float  # CNY: demand left unserved, at its penalty

    @classmethod
    def lowest(cls, kpis: list[dict[str, Any]]) -> Bounds:
        """Each bound the lowest of the given plans' (summaries)."""
        return cls(
            emissions_t=min(float(k["emissions_t"]) for k in kpis),
            emissions_location_t=min(float(k["emissions_location_t"]) for k in kpis),
            curtailed_mwh=min(float(k["curtailed_mwh"]) for k in kpis),
            unmet_penalty=min(float(k["penalties"]["unmet_demand"]) for k in kpis),
        )

    def tightened(self, by: dict[str, float]) -> Bounds:
        """These bounds lowered by `by` (per field name; only positive amounts count)."""
        return dataclasses.replace(
            self, **{k: getattr(self, k) - max(v, 0.0) for k, v in by.items()}
        )


def add_guard(m: LinearModel, d: ModelData, b: Bounds) -> None:
    """Add the guard rows to a model built by `build_from_sets` from `d` (energy included).

    Demand left unserved is bounded too, at its penalty (the reachable part; demand no site
    can reach is unserved in every plan): a plan must not buy its carbon by serving less.
    """
    sc = d.sc
    grid, green = m.vars["v_grid_mw"], m.vars["v_green_mw"]
    gs, gh = grid.index["site"], grid.index["hour"]
    es, eh = green.index["site"], green.index["hour"]
    contract = sc.contract_carbon_kg_per_mwh[gs, gh] / KG_PER_T
    location = sc.grid_carbon_kg_per_mwh
    m.add_constraints(
        "guard_emissions",
        2,
        rows=np.concatenate([np.zeros(gs.size), np.ones(gs.size), np.ones(es.size)]),
        cols=np.concatenate([grid.cols(), grid.cols(), green.cols()]),
        vals=np.concatenate([contract, location[gs, gh] / KG_PER_T, location[es, eh] / KG_PER_T]),
        hi=np.array([b.emissions_t, b.emissions_location_t]) * (1 - SLACK),
        doc="contract- and location-based emissions at most the bounding plan's",
    )
    available = float(sc.green_available_mw.sum())
    m.add_constraints(
        "guard_curtailment",
        1,
        rows=np.zeros(es.size),
        cols=green.cols(),
        vals=np.ones(es.size),
        lo=available - b.curtailed_mwh * (1 - SLACK),
        doc="green used at least the bounding plan's (so no more curtailed)",
    )
    if "v_unmet" in m.vars:
        q = m.vars["v_unmet"]
        per_q = d.unit_unmet_cny[q.index["unit"]]
        free = q.lb < q.ub
        fixed = float((per_q * q.ub)[~free].sum())
        m.add_constraints(
            "guard_unmet",
            1,
            rows=np.zeros(int(free.sum())),
            cols=q.cols(np.flatnonzero(free)),
            vals=per_q[free],
            hi=max(0.0, b.unmet_penalty - fixed) * (1 - SLACK),
            doc="demand left unserved at most the bounding plan's (at its penalty)",
        )
