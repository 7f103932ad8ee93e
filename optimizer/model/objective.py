"""The objective: the sum of every cost term the other modules registered."""

from __future__ import annotations

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData

COST_TERMS = (
    "grid_energy",
    "green_energy",
    "green_resale",
    "carbon",
    "carbon_tiebreak",
    "migration",
    "data_transfer",
    "replica_starts",  # churn.py
    "pauses",  # churn.py
    "unplaced",
    "unmet_demand",
    "policy_violation",
    "certificates",
)


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Minimise total cost.

    .. math::

        \min\; \underbrace{\sum p^{grid} g + \sum p^{green} e - \sum r k}_{\text{energy, resale of curtailed green}}
            + \underbrace{(p^{CO_2} + \tau) \sum \varepsilon g / 1000}_{\text{carbon, ties go green}}
            + \text{migration} + \text{data transfer}
            + \underbrace{c^{start} \sum \sigma + \sum c^{pause} \text{pauses}}_{\text{churn}}
            + \underbrace{\sum \pi_j u_j + \sum \rho_k q}_{\text{unplaced work, unmet demand}}
            + \text{policy violations}

    Each term is registered by the module that owns its variables (``m.add_cost``); this
    module only checks that no unknown category slipped in, so the plan's cost breakdown
    always adds up to the objective. Contract payments (price x available green) are fixed
    costs: reported in the plan's KPIs, never in the objective, so never optimised away.
    """
    unknown = set(m.costs) - set(COST_TERMS)
    if unknown:
        raise ValueError(f"cost terms without a category in the objective: {sorted(unknown)}")
