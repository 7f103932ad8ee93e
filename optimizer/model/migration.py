"""Moving work between sites: migration of running jobs and transfer of a job's data."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Cost of moving a running job off its current site, and of running a job away from its data.

    .. math::

        \text{cost} \mathrel{+}= \sum_{(j,e):\, s_e \ne c_j} w \left(G_j p^{gb} + L_j N_j p^{lost}\right) y_{j,e}
            \;+\; \sum_{(j,e):\, c_j = \varnothing,\, s_e \ne o_j} G_j p^{gb} y_{j,e}

    The lost hours also lengthen the run on the new site (:math:`D_{j,e}` includes
    :math:`\lceil L_j \rceil`), so the move pays their energy too. A higher plan-stability
    weight :math:`w` makes the optimizer move running jobs only for a larger saving.

    =================  ===================================  ============  =================================
    symbol             name                                 unit          meaning
    =================  ===================================  ============  =================================
    :math:`y_{j,e}`    ``v_assign``                         binary        job j runs on option e
    :math:`c_j, o_j`   current_site, data_origin_site       \-            where it runs now / its data lives
    :math:`G_j`        data_gb                              GB            data moved with the job
    :math:`L_j`        lost_hours_on_move                   h             run hours lost by a move
    :math:`N_j`        gang                                 devices       devices of the job
    :math:`p^{gb}`     transfer_price_cny_per_gb            CNY/GB        data transfer price
    :math:`p^{lost}`   lost_hour_cost_cny_per_device_hour   CNY/dev-h     value of a lost device-hour
    :math:`w`          plan_stability_weight                \-            weight on moving running jobs
    =================  ===================================  ============  =================================
    """
    if d.fixed_job_use is not None:
        return
    y = m.vars["v_assign"]
    moved = np.flatnonzero(d.opts.moved)
    m.add_cost("migration", y.cols(moved), d.opts.migration_cny[moved])
    away = np.flatnonzero(d.opts.transfer_cny > 0)
    m.add_cost("data_transfer", y.cols(away), d.opts.transfer_cny[away])
