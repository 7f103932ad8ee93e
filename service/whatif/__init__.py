"""What-ifs and sweeps: a base (the active plan, a stored plan, or a scenario version) plus
`optimizer.whatif.Overrides`, solved as runs of kind `whatif` or `sweep_point` through the
same queue as POST /runs, and never activated.

A what-if is checked completely before anything is stored (`checks`): every fault of the
overrides (malformed, or naming a site, zone, accelerator or job that does not exist, rows
of added jobs that fail the scenario's checks) is listed with its field path, and the
scenario after the overrides must stay within the size limits of the settings. The base
plan (`base`) is what the answer is compared with and what the solver starts from. One
module per concern: `requests` (bodies), `checks`, `base`, `submit` (the run and the
wait), `results` (the answer, typed), `sweeps`.
"""

from service.whatif.base import Base, resolve_base
from service.whatif.checks import (
    ProblemSize,
    check_overrides,
    check_size,
    problem_size,
    wait_seconds,
)
from service.whatif.requests import SWEEP_PARAMETERS, SweepRequest, WhatIfRequest
from service.whatif.results import (
    Highlights,
    PlanKpis,
    WhatIfResult,
    highlights,
    plan_kpis,
    whatif_result,
)
from service.whatif.submit import (
    CheckedWhatIf,
    check_whatif,
    get_whatif_run,
    submit_whatif,
    wait_for_run,
)
from service.whatif.sweeps import (
    SweepPoint,
    SweepSummary,
    create_sweep,
    list_sweeps,
    pareto_front,
    sweep_state,
    sweep_view,
)

__all__ = [
    "SWEEP_PARAMETERS",
    "Base",
    "CheckedWhatIf",
    "Highlights",
    "PlanKpis",
    "ProblemSize",
    "SweepPoint",
    "SweepRequest",
    "SweepSummary",
    "WhatIfRequest",
    "WhatIfResult",
    "check_overrides",
    "check_size",
    "check_whatif",
    "create_sweep",
    "get_whatif_run",
    "highlights",
    "list_sweeps",
    "pareto_front",
    "plan_kpis",
    "problem_size",
    "resolve_base",
    "submit_whatif",
    "sweep_state",
    "sweep_view",
    "wait_for_run",
    "wait_seconds",
    "whatif_result",
]
