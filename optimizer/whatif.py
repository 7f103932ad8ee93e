"""What-if overrides: the one typed `Overrides` (changes to a base scenario), the one parser
that reads them from JSON (`Overrides.read`, listing every problem at its field path), and
`apply_overrides`, which the CLI, the service's requests and its solve workers all share.

Policy-only overrides apply with `dataclasses.replace` (the fingerprint is computed from the
content, so the copy gets its own). Changes to tables edit the base's tables and load them
again through the same checks as any input, so a what-if can never produce a scenario a
file could not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)

from optimizer.scenario import schema
from optimizer.scenario.load import robust_level_problem, scenario_from_tables, scenario_to_tables
from optimizer.scenario.types import InputValidationError, Problem, Scenario

FILE = "overrides"  # the `file` of every Problem found in the overrides themselves

# Plausible ranges: a value outside is a typo or an attack, never a question worth a solve
# (1e308 devices overflowed int(); a carbon price of 1e308 burned a solve).
MAX_MULTIPLIER = 100.0  # on a grid price or a green supply, -
MAX_DEVICES_PER_DEVICE = 100.0  # new devices per replaced device, -
# the policy levers' ranges are the scenario schema's, as for a manifest
MAX_CARBON_PRICE_CNY_PER_T = schema.MAX_CARBON_PRICE_CNY_PER_T

POLICY_LEVERS: tuple[str, ...] = tuple(c.name for c in schema.POLICY_LEVERS)
"""The policy values an override may set, in the schema's order."""

# Numbers in overrides: finite, and never a bool or a string passing for one.
Multiplier = Annotated[StrictFloat, Field(allow_inf_nan=False, le=MAX_MULTIPLIER)]
Share = Annotated[StrictFloat, Field(allow_inf_nan=False, ge=0, le=1)]
SiteIds = list[str] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Window(_Strict):
    start: datetime | None = Field(
        None, description="first hour affected (ISO 8601); default: horizon start"
    )
    end: datetime | None = Field(
        None, description="first hour no longer affected; default: horizon end"
    )

    def hours(self, sc: Scenario) -> np.ndarray:
        """Boolean mask over the horizon's hours inside [start, end)."""
        stamps = sc.timestamps
        mask = np.ones(sc.hours, dtype=bool)
        if self.start is not None:
            mask &= np.asarray(stamps >= _aware(self.start, sc))
        if self.end is not None:
            mask &= np.asarray(stamps < _aware(self.end, sc))
        return mask


def _aware(ts: datetime, sc: Scenario) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize(sc.timezone) if t.tzinfo is None else t


class PriceChange(_Window):
    """Multiply grid prices at some sites or zones (all if none named) within a window."""

    multiplier: Multiplier = Field(
        ...,
        gt=0,
        description=f"factor on the grid price, e.g. 1.5 for +50% (at most {MAX_MULTIPLIER:g})",
    )
    sites: SiteIds = Field(None, description="site ids; default all")
    zones: list[str] | None = Field(None, description="grid zones (sites.csv `zone`)")


class CapacityChange(_Window):
    """An outage (available_fraction 0) or a capacity change at a site for a window."""

    site: str
    accelerator: str | None = Field(None, description="one type; default every type at the site")
    available_fraction: Share = Field(0.0, description="share of installed devices available")


class GreenScale(_Strict):
    """Scale the green supply available at sites (e.g. 1.3 = 30% more wind and solar)."""

    multiplier: Multiplier = Field(..., ge=0, description=f"at most {MAX_MULTIPLIER:g}")
    sites: SiteIds = Field(None, description="site ids; default all")


class AcceleratorMix(_Strict):
    """Replace a share of one accelerator type by another (e.g. 30% H100 -> Ascend-910B)."""

    from_accelerator: str
    to_accelerator: str
    share: Share = Field(..., gt=0)
    devices_per_device: Annotated[
        StrictFloat, Field(allow_inf_nan=False, gt=0, le=MAX_DEVICES_PER_DEVICE)
    ] = Field(
        1.0, description=f"new devices per replaced device (at most {MAX_DEVICES_PER_DEVICE:g})"
    )
    sites: SiteIds = None


def _lever_field(c: schema.Column) -> tuple[Any, Any]:
    return (
        Annotated[StrictFloat | None, Field(allow_inf_nan=False, ge=c.min, le=c.max)],
        Field(None, description=f"{c.meaning}, {c.unit} (policy of the scenario manifest)"),
    )


# The policy fields come from the scenario schema: a new lever there is a new override here.
if TYPE_CHECKING:  # the type checker sees no fields: they are read through Overrides.policy()
    _PolicyLevers = _Strict
else:
    _PolicyLevers = create_model(
        "_PolicyLevers",
        __base__=_Strict,
        **{c.name: _lever_field(c) for c in schema.POLICY_LEVERS},
    )


class Overrides(_PolicyLevers):
    """Changes to a base scenario. Every field is optional.

    `Overrides.read` parses a client's JSON leniently: the parts that are malformed are left
    out and kept as `problems` (at their field paths), so that `apply_overrides` can list
    them together with what the well-formed rest gets wrong against the scenario."""

    price_changes: list[PriceChange] = Field(default_factory=list)
    capacity_changes: list[CapacityChange] = Field(default_factory=list)
    green_scaling: list[GreenScale] = Field(default_factory=list)
    accelerator_mix: list[AcceleratorMix] = Field(default_factory=list)
    add_jobs: list[dict[str, Any]] = Field(
        default_factory=list, description="rows in jobs.csv's columns"
    )
    remove_jobs: list[str] = Field(default_factory=list, description="job ids to drop")

    _problems: tuple[Problem, ...] = PrivateAttr(default=())
    # per list left shorter by `read`: the client's position of every item kept
    _positions: dict[str, list[int]] = PrivateAttr(default_factory=dict)

    # --- reading -------------------------------------------------------------------
    @classmethod
    def read(cls, data: Any) -> Overrides:
        """Overrides made of the well-formed parts of `data`, with a problem for each part
        left out. Never raises: `problems` says what was wrong."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            out = cls()
            out._problems = (Problem(FILE, "must be an object", column=""),)
            return out
        return _read(cls, dict(data))

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Faults of the parts `read` left out (empty for overrides validated whole)."""
        return self._problems

    def position(self, field: str, i: int) -> int:
        """Where item `i` of list `field` stood in the client's overrides."""
        kept = self._positions.get(field)
        return kept[i] if kept is not None and i < len(kept) else i

    # --- what they change ----------------------------------------------------------
    def policy(self) -> dict[str, float]:
        """The policy values set, by name."""
        return {k: v for k in POLICY_LEVERS if (v := getattr(self, k)) is not None}

    def changes_tables(self) -> bool:
        """Whether anything beyond the policy changes (a load through the checks needed)."""
        return bool(
            self.price_changes
            or self.capacity_changes
            or self.green_scaling
            or self.accelerator_mix
            or self.add_jobs
            or self.remove_jobs
        )

    def is_empty(self) -> bool:
        return not self.changes_tables() and not self.policy() and not self._problems

    def to_json(self) -> dict[str, Any]:
        """As stored and shown: plain JSON, only what differs from the defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)


def _path(loc: Sequence[Any], kept: dict[str, list[int]]) -> str:
    """`capacity_changes[0].site` from a pydantic location, list positions as the client
    sent them (items found faulty in an earlier round were dropped from the list)."""
    out = ""
    for k, part in enumerate(loc):
        if isinstance(part, int):
            field = str(loc[k - 1]) if k else ""
            index = kept[field][part] if k == 1 and field in kept else part
            out += f"[{index}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _read(cls: type[Overrides], data: dict[str, Any]) -> Overrides:
    """Validate `data`, dropping each faulty field or list item and trying again."""
    kept = {k: list(range(len(v))) for k, v in data.items() if isinstance(v, list)}
    problems: list[Problem] = []
    # every round drops at least one part, so this ends
    for _ in range(1 + len(data) + sum(len(v) for v in kept.values())):
        try:
            out = cls.model_validate(data)
        except ValidationError as exc:
            bad_items: dict[str, set[int]] = {}
            bad_fields: set[str] = set()
            for e in exc.errors():
                loc = tuple(e.get("loc", ())) or ("",)
                problems.append(
                    Problem(FILE, str(e.get("msg", "invalid")), column=_path(loc, kept))
                )
                field = str(loc[0])
                if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get(field), list):
                    bad_items.setdefault(field, set()).add(loc[1])
                else:
                    bad_fields.add(field)
            for field in bad_fields:
                data.pop(field, None)
                kept.pop(field, None)
            for field, bad in bad_items.items():
                if field not in bad_fields:
                    data[field] = [x for i, x in enumerate(data[field]) if i not in bad]
                    kept[field] = [p for i, p in enumerate(kept[field]) if i not in bad]
            continue
        out._problems = tuple(problems)
        out._positions = kept
        return out
    raise AssertionError("unreachable: every round drops a part")  # pragma: no cover


def _read_leniently(value: Any, handler: ValidatorFunctionWrapHandler) -> Overrides:
    # the handler is not called: `read` is the one parse, and keeps the faults it finds
    return value if isinstance(value, Overrides) else Overrides.read(value)


OverridesIn = Annotated[Overrides, WrapValidator(_read_leniently)]
"""A request model's field of overrides: described as `Overrides` in JSON schema, read with
`Overrides.read`, so the body's validation never refuses it and `apply_overrides` lists
every problem of it at once, malformed parts and unknown names alike."""


def parse_overrides(data: Any) -> Overrides:
    """Overrides from JSON; InputValidationError listing every malformed part."""
    ov = Overrides.read(data)
    if ov.problems:
        raise InputValidationError(list(ov.problems))
    return ov


# ----------------------------------------------------------------------------- applying
def with_policy(sc: Scenario, **policy: float) -> Scenario:
    """`sc` with some policy values replaced (the CLI's `--carbon-price` and friends)."""
    return apply_overrides(sc, parse_overrides(policy))


def apply_overrides(sc: Scenario, ov: Overrides) -> Scenario:
    """A new validated scenario: `sc` changed by `ov`. Raises InputValidationError listing
    every problem: the parts `Overrides.read` left out, names that do not exist in `sc`,
    and every row of `add_jobs` the scenario's checks refuse."""
    problems = [*ov.problems, *_reference_problems(sc, ov)]
    level = ov.policy().get("robust_green_quantile")
    if level is not None and (msg := robust_level_problem(float(level))) is not None:
        problems.append(Problem(schema.MANIFEST_FILE, msg, column="policy.robust_green_quantile"))
    if not ov.changes_tables():
        if problems:
            raise InputValidationError(problems)
        pol = {k: float(v) for k, v in ov.policy().items()}
        return dataclasses.replace(sc, policy=dataclasses.replace(sc.policy, **pol)) if pol else sc
    manifest, t = scenario_to_tables(sc)
    jobs = _edit_jobs(t["jobs"], ov)
    if problems:
        # the tables are not edited past a bad name; still list what the added rows get wrong
        if ov.add_jobs:
            problems += _job_row_problems(sc, ov, manifest, {**t, "jobs": jobs})
        raise InputValidationError(problems)
    t["site_series"] = _edit_series(sc, t["site_series"], ov)
    t["fleets"] = _edit_fleets(sc, t["fleets"], ov)
    if ov.capacity_changes:
        t["availability"] = _availability(sc, ov)
    t["jobs"] = jobs
    manifest["policy"] = {**manifest["policy"], **ov.policy()}
    try:
        return scenario_from_tables(manifest, t)
    except InputValidationError as err:
        raise InputValidationError(_locate_rows(sc, ov, err.problems)) from None


def _reference_problems(sc: Scenario, ov: Overrides) -> list[Problem]:
    """Every site, zone, accelerator, job and job column named that `sc` does not have, and
    every window that covers no hour."""
    problems: list[Problem] = []
    sites, zones, accs = set(sc.site_ids), {s.zone for s in sc.sites}, set(sc.accelerator_names)

    def unknown(what: str, names: Sequence[str] | None, known: set[str], where: str) -> None:
        for n in names or ():
            if n not in known:
                problems.append(Problem(FILE, f"unknown {what} {n!r}", column=where))

    def window(w: _Window, where: str) -> None:
        if not w.hours(sc).any():
            problems.append(
                Problem(FILE, "the time window covers no hour of the horizon", column=where)
            )

    for i, pc in enumerate(ov.price_changes):
        where = f"price_changes[{ov.position('price_changes', i)}]"
        unknown("site", pc.sites, sites, where + ".sites")
        unknown("zone", pc.zones, zones, where + ".zones")
        window(pc, where)
    for i, gs in enumerate(ov.green_scaling):
        unknown("site", gs.sites, sites, f"green_scaling[{ov.position('green_scaling', i)}].sites")
    for i, mx in enumerate(ov.accelerator_mix):
        where = f"accelerator_mix[{ov.position('accelerator_mix', i)}]"
        unknown("site", mx.sites, sites, where + ".sites")
        unknown("accelerator", [mx.from_accelerator], accs, where + ".from_accelerator")
        unknown("accelerator", [mx.to_accelerator], accs, where + ".to_accelerator")
    for i, cc in enumerate(ov.capacity_changes):
        where = f"capacity_changes[{ov.position('capacity_changes', i)}]"
        if cc.site not in sites:
            unknown("site", [cc.site], sites, where + ".site")
        elif cc.accelerator is not None and cc.accelerator not in accs:
            unknown("accelerator", [cc.accelerator], accs, where + ".accelerator")
        else:
            window(cc, where)
    known_jobs = {j.job_id for j in sc.jobs}
    for i, jid in enumerate(ov.remove_jobs):
        unknown("job", [jid], known_jobs, f"remove_jobs[{ov.position('remove_jobs', i)}]")
    columns = set(schema.JOBS.column_names)
    for i, row in enumerate(ov.add_jobs):
        where = f"add_jobs[{ov.position('add_jobs', i)}]"
        for c in row:
            if c not in columns:
                problems.append(Problem(FILE, f"unknown job column {c!r}", column=f"{where}.{c}"))
    return problems


def _edit_series(sc: Scenario, series: pd.DataFrame, ov: Overrides) -> pd.DataFrame:
    series = series.copy()
    # scenario_to_tables writes site-major, hour order
    h_idx = np.tile(np.arange(sc.hours), len(sc.sites))
    for pc in ov.price_changes:
        chosen = set(pc.sites or []) | {s.site_id for s in sc.sites if s.zone in (pc.zones or [])}
        if not pc.sites and not pc.zones:
            chosen = set(sc.site_ids)
        mask = series["site_id"].isin(chosen).to_numpy() & pc.hours(sc)[h_idx]
        series.loc[mask, "grid_price_cny_per_mwh"] *= pc.multiplier
    for gs in ov.green_scaling:
        mask = series["site_id"].isin(gs.sites or sc.site_ids).to_numpy()
        # the forecast's band scales with it (a quantile is a share of the same supply)
        for col in ("green_available_mw", *schema.GREEN_QUANTILE_COLUMNS):
            series.loc[mask, col] *= gs.multiplier
    return series


def _edit_fleets(sc: Scenario, fleets: pd.DataFrame, ov: Overrides) -> pd.DataFrame:
    fleets = fleets.copy()
    for mx in ov.accelerator_mix:
        for s in mx.sites or sorted(sc.site_ids):
            sel = (fleets["site_id"] == s) & (fleets["accelerator"] == mx.from_accelerator)
            if not sel.any():
                continue
            n = int(fleets.loc[sel, "devices"].iloc[0])
            moved = int(round(n * mx.share))
            fleets.loc[sel, "devices"] = n - moved
            added = int(round(moved * mx.devices_per_device))
            tsel = (fleets["site_id"] == s) & (fleets["accelerator"] == mx.to_accelerator)
            if tsel.any():
                fleets.loc[tsel, "devices"] = int(fleets.loc[tsel, "devices"].iloc[0]) + added
            else:
                row = {"site_id": s, "accelerator": mx.to_accelerator, "devices": added}
                fleets = pd.concat([fleets, pd.DataFrame([row])], ignore_index=True)
    return fleets


def _availability(sc: Scenario, ov: Overrides) -> pd.DataFrame:
    """The availability table with every capacity change written in."""
    frac = sc.available_fraction.copy()
    for cc in ov.capacity_changes:
        hours = cc.hours(sc)
        si = sc.site_index[cc.site]
        chosen = (
            [sc.accelerator_index[cc.accelerator]]
            if cc.accelerator
            else range(len(sc.accelerators))
        )
        for ai in chosen:
            frac[si, ai, hours] = cc.available_fraction
    iso = [ts.isoformat() for ts in sc.timestamps]
    rows = [
        pd.DataFrame(
            {"site_id": sid, "accelerator": a, "timestamp": iso, "available_fraction": frac[si, ai]}
        )
        for si, sid in enumerate(sc.site_ids)
        for ai, a in enumerate(sc.accelerator_names)
        if (sid, a) in sc.fleet and np.any(frac[si, ai] < 1.0)
    ]
    if not rows:
        return pd.DataFrame(columns=schema.AVAILABILITY.column_names)
    return pd.concat(rows, ignore_index=True)


def _edit_jobs(jobs: pd.DataFrame, ov: Overrides) -> pd.DataFrame:
    """The jobs table less `remove_jobs`, plus `add_jobs` (unknown columns left out: they
    are problems of their own)."""
    jobs = jobs[~jobs["job_id"].isin(ov.remove_jobs)]
    if not ov.add_jobs:
        return jobs
    columns = set(schema.JOBS.column_names)
    extra = pd.DataFrame([{k: v for k, v in r.items() if k in columns} for r in ov.add_jobs])
    return pd.concat([jobs, extra], ignore_index=True)


def _job_row_problems(
    sc: Scenario,
    ov: Overrides,
    manifest: dict[str, Any],
    tables: dict[str, pd.DataFrame],
) -> list[Problem]:
    """What the scenario's checks say of the base tables with only the jobs edited: the
    faults of the added rows, at their place in `add_jobs`."""
    try:
        scenario_from_tables(manifest, tables)
    except InputValidationError as err:
        return _locate_rows(sc, ov, err.problems)
    return []


def _locate_rows(sc: Scenario, ov: Overrides, problems: Sequence[Problem]) -> list[Problem]:
    """Problems of the jobs table's rows that came from `add_jobs`, at their place there."""
    removed = set(ov.remove_jobs)
    base = sum(1 for j in sc.jobs if j.job_id not in removed)
    out = []
    for p in problems:
        row = int(p.row) if p.row is not None else None
        if p.file == schema.JOBS.file and row is not None and base < row <= base + len(ov.add_jobs):
            where = f"add_jobs[{ov.position('add_jobs', row - base - 1)}]"
            p = Problem(FILE, p.message, column=f"{where}.{p.column}" if p.column else where)
        out.append(p)
    return out
