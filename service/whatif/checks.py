"""Checks of a what-if before anything is stored: the overrides against the scenario (applied
once), the problem-size limits, the solver settings, how long to wait."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from optimizer.scenario import InputValidationError, Scenario
from optimizer.whatif import Overrides, apply_overrides
from service.errors import InvalidInput, ProblemTooLarge, override_problems, request_problem
from service.runs import SolveSettingsIn, solver_settings
from service.settings import Settings


@dataclass(frozen=True)
class ProblemSize:
    """The size of a scenario as the limits count it."""

    jobs: int
    services: int
    sites: int
    hours: int
    model_cells: int


# each size and the setting that limits it
SIZE_LIMITS = {
    "jobs": "whatif_max_jobs",
    "services": "whatif_max_services",
    "sites": "whatif_max_sites",
    "hours": "whatif_max_hours",
    "model_cells": "whatif_max_model_cells",
}


def problem_size(sc: Scenario) -> ProblemSize:
    """`model_cells` estimates the model: every (workload, site, accelerator, hour) a job
    could run in (allowed region, a fleet of one of its types, between release and
    deadline) or a service could be served from (a fleet of a type it runs on), before the
    model prunes any."""
    fleets: dict[str, list[str]] = {}  # accelerator -> residency region of each site having it
    for s in sc.sites:
        for a in sc.accelerator_names:
            if sc.fleet.get((s.site_id, a), 0) > 0:
                fleets.setdefault(a, []).append(s.residency_region)
    cells = 0
    for j in sc.jobs:
        window = max(0, min(j.deadline, sc.hours) - max(j.release, 0))
        regions = set(j.allowed_regions)
        pairs = sum(
            sum(1 for r in fleets.get(a, ()) if not regions or r in regions) for a in j.accelerators
        )
        cells += pairs * window
    for k in sc.services:
        cells += sum(len(fleets.get(a, ())) for a in k.throughput_tokens_per_s) * sc.hours
    return ProblemSize(len(sc.jobs), len(sc.services), len(sc.sites), sc.hours, cells)


def size_problems(size: ProblemSize, settings: Settings) -> list[dict[str, Any]]:
    """A problem for every limit `size` exceeds, naming the setting."""
    problems = []
    for what, n in asdict(size).items():
        setting = SIZE_LIMITS[what]
        limit = int(getattr(settings, setting))
        if n > limit:
            problems.append(
                request_problem(
                    "overrides",
                    f"{n} {what.replace('_', ' ')} after the overrides: more than the "
                    f"limit of {limit} ({setting}, GREENOPT_{setting.upper()})",
                )
            )
    return problems


def check_size(sc: Scenario, settings: Settings) -> ProblemSize:
    """The scenario's size; ProblemTooLarge naming every limit it exceeds."""
    size = problem_size(sc)
    problems = size_problems(size, settings)
    if problems:
        raise ProblemTooLarge(
            f"the what-if is larger than this server solves: {len(problems)} limit(s) exceeded",
            problems=problems,
        )
    return size


def check_overrides(
    sc: Scenario, ov: Overrides, settings: Settings, extra: Sequence[dict[str, Any]] = ()
) -> Scenario:
    """`sc` with `ov` applied (the one application on the request path) and within the size
    limits. Raises InvalidInput listing every problem (`extra` ones found by the caller
    first), or ProblemTooLarge."""
    problems = list(extra)
    new: Scenario | None = None
    try:
        new = apply_overrides(sc, ov)
    except InputValidationError as err:
        problems += override_problems(err)
    if problems or new is None:
        raise InvalidInput(f"{len(problems)} problem(s) in the request", problems=problems)
    check_size(new, settings)
    return new


def settings_problems(
    settings: Settings, requested: SolveSettingsIn
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The solver settings a run gets, or the problems of the requested ones."""
    try:
        return solver_settings(settings, requested), []
    except InvalidInput as err:
        return None, list(err.problems)


def wait_seconds(settings: Settings, *, query: float | None, body: float | None) -> float:
    """How long a what-if request waits: the query's, else the body's, else the default;
    422 above whatif_max_wait_s."""
    wait = query if query is not None else body if body is not None else settings.whatif_wait_s
    if wait > settings.whatif_max_wait_s:
        raise InvalidInput(
            f"wait_s {wait:g} exceeds the limit of {settings.whatif_max_wait_s:g} s",
            problems=[request_problem("wait_s", f"must be at most {settings.whatif_max_wait_s:g}")],
        )
    return float(wait)
