"""Response models of the HTTP API, each with an example: the OpenAPI document built from
them is the contract clients are generated from."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, create_model

from optimizer import contract as plan_contract
from optimizer.scenario import schema as scenario_schema
from service.models import ApiKey, Plan, Run, ScenarioVersion
from service.scenarios import Change, Outcome
from service.security import EXPIRES_IN_PATTERN, key_state

T = TypeVar("T")

if TYPE_CHECKING:
    from service.nightly import NightView

TS = "2025-07-15T01:02:03.456000Z"


def _example(ex: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [ex]})


def _page_example(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A page's example: one item, the item model's own example."""
    args = cls.__pydantic_generic_metadata__["args"]
    extra = args[0].model_config.get("json_schema_extra") if args else None
    if isinstance(extra, dict) and extra.get("examples"):
        item = extra["examples"][0]  # type: ignore[index]
        schema["examples"] = [{"items": [item], "total": 1, "offset": 0, "limit": 50}]


class Page(BaseModel, Generic[T]):
    """One page of a list endpoint: `items` from `offset`, `total` in all."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_page_example)
    items: list[T]
    total: int
    offset: int
    limit: int


# ----------------------------------------------------------------------------- errors
class ProblemOut(BaseModel):
    model_config = _example(
        {
            "table": "jobs",
            "file": "jobs.csv",
            "row": 3,
            "column": "gang",
            "hour": None,
            "message": "value out of range -4: must be at least 1",
            "key": {"job_id": "finetune-1"},
        }
    )
    table: str | None = Field(default=None, description="table (or request part) at fault")
    file: str = Field(description="file the table is read from, or `request`/`overrides`")
    row: int | None = Field(default=None, description="1-based data row (header not counted)")
    column: str | None = None
    hour: str | None = Field(default=None, description="ISO timestamp of the hour at fault")
    message: str
    key: dict[str, str] | None = Field(default=None, description="key of the row at fault")
    rows_before: int | None = Field(
        default=None, description="confirmation_required: rows of the table now"
    )
    rows_after: int | None = Field(
        default=None, description="confirmation_required: rows it would have after the change"
    )
    removed: int | None = Field(
        default=None, description="confirmation_required: rows the change would remove"
    )


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    model_config = _example(
        {
            "error": "invalid_input",
            "message": "1 problem(s) in the input",
            "problems": [ProblemOut.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
            "request_id": "9f1c2a7e4b7d4c3e8e0f6a1b2c3d4e5f",
        }
    )
    error: str = Field(
        description="machine-readable code, e.g. not_found, invalid_input, queue_full"
    )
    message: str
    problems: list[ProblemOut] | None = Field(
        default=None, description="every problem found, for 422"
    )
    request_id: str | None = None


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes a route can answer."""
    text = {
        400: "malformed body: not UTF-8, not JSON, a number out of range or nested too deep",
        401: "no or invalid API key",
        403: "the key's role is too low",
        404: "not found",
        409: "conflict with the current state",
        413: "request body too large",
        415: "unsupported content type",
        422: "invalid input; every problem listed",
        429: "too many runs queued; retry after Retry-After seconds",
        500: "internal error",
        503: "not ready",
    }
    return {c: {"model": ErrorOut, "description": text.get(c, "error")} for c in codes}


# ----------------------------------------------------------------------------- keys
class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"role": "planner", "name": "ops-team", "expires_in": "30d"}]
        },
    )
    role: Literal["viewer", "planner", "admin"]
    name: str = Field(default="", max_length=100, description="who or what uses the key")
    expires_in: str | None = Field(
        default=None,
        pattern=EXPIRES_IN_PATTERN,
        description="lifetime from now: a number and a unit, m(inutes), h(ours), d(ays) "
        "or w(eeks), e.g. 30d; at most 10 years. Default: no expiry",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="expiry instant (with its UTC offset); instead of expires_in"
    )


_KEY_EXAMPLE: dict[str, Any] = {
    "id": 2,
    "name": "ops-team",
    "role": "planner",
    "prefix": "3fa85f64",
    "created_at": TS,
    "created_by": "key:ops-admin#1",
    "expires_at": "2025-08-14T01:02:03.456000Z",
    "revoked_at": None,
    "revoked_by": None,
    "state": "active",
}


class KeyOut(BaseModel):
    model_config = _example(_KEY_EXAMPLE)
    id: int
    name: str
    role: str
    prefix: str = Field(description="the key's public part: gok_<prefix>_...")
    created_at: dt.datetime
    created_by: str = Field(description="who made it: an admin key, or cli:<user>")
    expires_at: dt.datetime | None = Field(description="null: never expires")
    revoked_at: dt.datetime | None
    revoked_by: str | None
    state: Literal["active", "expired", "revoked"]

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            id=k.id,
            name=k.name,
            role=k.role,
            prefix=k.prefix,
            created_at=k.created_at,
            created_by=k.created_by,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
            revoked_by=k.revoked_by,
            state=key_state(k),
        )


class KeyCreatedOut(KeyOut):
    model_config = _example(
        {
            **_KEY_EXAMPLE,
            "key": "gok_3fa85f64_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl",
        }
    )
    key: str = Field(description="the key itself; shown this once, never again")


class KeyList(BaseModel):
    model_config = _example({"items": [_KEY_EXAMPLE]})
    items: list[KeyOut]


# ----------------------------------------------------------------------------- data
_VERSION_EXAMPLE = {
    "id": 3,
    "parent_id": 2,
    "created_at": TS,
    "created_by": "key:ops-admin#1",
    "note": "jobs: 0 row(s) updated, 2 added",
    "fingerprint": "45bf28fdbc61ca51",
    "sizes": {
        "sites": 3,
        "accelerators": 3,
        "hours": 24,
        "jobs": 14,
        "services": 3,
        "demand_regions": 2,
        "rows": {"sites": 3, "jobs": 14, "site_series": 72},
    },
    "tables": {"sites": "5d41402abc4b2a76b9719d911017c592..."},
}


class VersionOut(BaseModel):
    model_config = _example(_VERSION_EXAMPLE)
    id: int
    parent_id: int | None
    created_at: dt.datetime
    created_by: str
    note: str
    fingerprint: str = Field(description="content hash of the validated scenario")
    sizes: dict[str, Any]
    tables: dict[str, str] = Field(description="table -> sha256 of its stored CSV")

    @classmethod
    def of(cls, v: ScenarioVersion) -> VersionOut:
        return cls(
            id=v.id,
            parent_id=v.parent_id,
            created_at=v.created_at,
            created_by=v.created_by,
            note=v.note,
            fingerprint=v.fingerprint,
            sizes=v.sizes,
            tables=v.tables,
        )


class DataOut(VersionOut):
    """The current scenario version and its manifest."""

    model_config = _example(
        {
            **_VERSION_EXAMPLE,
            "manifest": {
                "name": "demo",
                "timezone": "Asia/Shanghai",
                "start": "2025-07-15T00:00:00+08:00",
                "hours": 24,
                "policy": {"carbon_price_cny_per_t": 0.0},
            },
        }
    )
    manifest: dict[str, Any]

    @classmethod
    def of(cls, v: ScenarioVersion) -> DataOut:  # type: ignore[override]
        return cls(**VersionOut.of(v).model_dump(), manifest=v.manifest)


class TableDiffOut(BaseModel):
    model_config = _example(
        {
            "table": "jobs",
            "rows_before": 12,
            "rows_after": 14,
            "added": 2,
            "removed": 0,
            "changed": 1,
        }
    )
    table: str
    rows_before: int
    rows_after: int
    added: int = Field(description="rows whose key is new")
    removed: int = Field(description="rows whose key is gone")
    changed: int = Field(description="rows whose key stays but whose cells differ")


class ChangeOut(VersionOut):
    """A data change. `id` and the other version fields describe the version now current:
    the new one when `outcome` is `created`; the unchanged current one for `unchanged` (the
    content was identical) and `dry_run` (nothing written)."""

    model_config = _example(
        {
            **_VERSION_EXAMPLE,
            "outcome": "created",
            "message": "version 3 made: jobs: 1 row(s) updated, 2 added",
            "diff": [
                {
                    "table": "jobs",
                    "rows_before": 12,
                    "rows_after": 14,
                    "added": 2,
                    "removed": 0,
                    "changed": 1,
                }
            ],
            "manifest_changed": False,
        }
    )
    outcome: Outcome
    message: str
    diff: list[TableDiffOut] = Field(
        description="per table that differs: rows added/removed/changed"
    )
    manifest_changed: bool = Field(description="the manifest (e.g. the policy) differs")

    @classmethod
    def of_change(cls, c: Change) -> ChangeOut:
        return cls(
            **VersionOut.of(c.version).model_dump(),
            outcome=c.outcome,
            message=c.message,
            diff=[TableDiffOut(**vars(d)) for d in c.diff],
            manifest_changed=c.manifest_changed,
        )


VersionPage = Page[VersionOut]


class TableOut(BaseModel):
    model_config = _example(
        {
            "version_id": 3,
            "table": "fleets",
            "columns": ["site_id", "accelerator", "devices"],
            "rows": [{"site_id": "sh-east", "accelerator": "H100", "devices": 64}],
            "total": 6,
            "offset": 0,
            "limit": 10000,
        }
    )
    version_id: int
    table: str
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="cells typed by the schema; empty -> null")
    total: int
    offset: int
    limit: int


def _policy_in() -> type[BaseModel]:
    fields: dict[str, Any] = {
        k.name: (
            # strict: true is not 1.0; the range is checked where the manifest's is
            StrictFloat | None,
            Field(
                default=None,
                description=f"{k.meaning} [{k.unit}]; left out or null = default ({k.default})",
            ),
        )
        for k in scenario_schema.POLICY_KEYS
    }
    return create_model(  # type: ignore[call-overload,no-any-return]
        "PolicyIn",
        __config__=ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"carbon_price_cny_per_t": 100.0, "min_green_share": 0.3}]
            },
        ),
        __doc__="The manifest's [policy]: keys left out take their defaults.",
        **fields,
    )


PolicyIn = _policy_in()


class PolicyOut(BaseModel):
    model_config = _example(
        {
            "version_id": 3,
            "values": {
                "carbon_price_cny_per_t": 100.0,
                "min_green_share": 0.0,
                "carbon_budget_t": None,
            },
            "explicit": ["carbon_price_cny_per_t"],
        }
    )
    version_id: int
    values: dict[str, float | None] = Field(description="effective policy (defaults filled in)")
    explicit: list[str] = Field(description="keys the manifest sets")


class PolicyChangeOut(PolicyOut):
    """The policy of the version now current after a PUT (see `ChangeOut.outcome`)."""

    model_config = _example(
        {
            "version_id": 4,
            "values": {
                "carbon_price_cny_per_t": 120.0,
                "min_green_share": 0.0,
                "carbon_budget_t": None,
            },
            "explicit": ["carbon_price_cny_per_t"],
            "outcome": "created",
            "message": "version 4 made: policy replaced",
        }
    )
    outcome: Outcome
    message: str


# ----------------------------------------------------------------------------- runs
_RUN_EXAMPLE = {
    "id": 7,
    "kind": "run",
    "state": "running",
    "priority": 0,
    "scenario_version_id": 3,
    "settings": {"time_limit_s": 60.0, "mip_rel_gap": 0.001, "threads": 1, "seed": 0},
    "overrides": {"carbon_price_cny_per_t": 100.0},
    "activate": True,
    "warm_start_plan_id": None,
    "progress": {
        "phase": "solve",
        "elapsed_s": 4.2,
        "objective": 152340.5,
        "bound": 151200.0,
        "gap": 0.0075,
        "nodes": 120,
    },
    "gap": 0.0075,
    "error": None,
    "error_detail": None,
    "plan_id": None,
    "idempotency_key": "nightly-2025-07-15",
    "cancel_requested": False,
    "attempts": 1,
    "worker": "host:4242",
    "created_by": "key:ops-team#2",
    "note": "",
    "created_at": TS,
    "started_at": TS,
    "finished_at": None,
    "timings": {"queued_s": 0.01, "running_s": 4.3},
}


class RunOut(BaseModel):
    model_config = _example(_RUN_EXAMPLE)
    id: int
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]
    priority: int
    scenario_version_id: int
    settings: dict[str, Any]
    overrides: dict[str, Any]
    activate: bool = Field(description="the plan becomes active when the run succeeds")
    warm_start_plan_id: int | None = Field(
        default=None, description="the stored plan the solver starts from (nightly: the active one)"
    )
    progress: dict[str, Any] = Field(description="phase, elapsed, incumbent, bound, gap, nodes")
    gap: float | None = Field(description="relative MIP gap: latest while solving, final after")
    error: str | None
    error_detail: dict[str, Any] | None
    plan_id: int | None
    idempotency_key: str | None
    cancel_requested: bool
    attempts: int
    worker: str | None
    created_by: str
    note: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    timings: dict[str, Any] = Field(
        description="queued_s, running_s; the solver's phases once done"
    )

    @classmethod
    def of(cls, r: Run, plan_timings: dict[str, Any] | None = None) -> RunOut:
        timings: dict[str, Any] = {}
        if r.started_at is not None:
            timings["queued_s"] = (r.started_at - r.created_at).total_seconds()
            if r.finished_at is not None:
                timings["running_s"] = (r.finished_at - r.started_at).total_seconds()
        if plan_timings:
            timings["solver"] = plan_timings
        gap = r.progress.get("gap") if isinstance(r.progress, dict) else None
        return cls(
            id=r.id,
            kind=r.kind,
            state=r.state,  # type: ignore[arg-type]
            priority=r.priority,
            scenario_version_id=r.scenario_version_id,
            settings=r.settings,
            overrides=r.overrides,
            activate=r.activate_on_success,
            warm_start_plan_id=r.warm_start_plan_id,
            progress=r.progress,
            gap=gap if isinstance(gap, int | float) else None,
            error=r.error,
            error_detail=r.error_detail,
            plan_id=r.plan_id,
            idempotency_key=r.idempotency_key,
            cancel_requested=r.cancel_requested,
            attempts=r.attempts,
            worker=r.worker,
            created_by=r.created_by,
            note=r.note,
            created_at=r.created_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            timings=timings,
        )


RunPage = Page[RunOut]


# ----------------------------------------------------------------------------- plans
_PLAN_ITEM = {
    "id": 4,
    "run_id": 7,
    "kind": "run",
    "planner": "milp",
    "created_at": TS,
    "scenario_version_id": 3,
    "scenario_fingerprint": "45bf28fdbc61ca51",
    "status": "optimal",
    "objective": 152340.5,
    "bound": 152300.0,
    "gap": 0.00027,
    "total_cost": 150100.2,
    "emissions_t": 61.3,
    "emissions_location_t": 88.0,
    "green_share": 0.41,
    "active": True,
}


class PlanItem(BaseModel):
    model_config = _example(_PLAN_ITEM)
    id: int
    run_id: int | None
    kind: str
    planner: str
    created_at: dt.datetime
    scenario_version_id: int
    scenario_fingerprint: str
    status: str = Field(description="optimal | feasible | fallback (greedy plan, flagged)")
    objective: float | None
    bound: float | None
    gap: float | None
    total_cost: float | None
    emissions_t: float | None
    emissions_location_t: float | None
    green_share: float | None
    active: bool

    @classmethod
    def fields_of(cls, p: Plan, active_id: int | None) -> dict[str, Any]:
        return {
            "id": p.id,
            "run_id": p.run_id,
            "kind": p.kind,
            "planner": p.planner,
            "created_at": p.created_at,
            "scenario_version_id": p.scenario_version_id,
            "scenario_fingerprint": p.scenario_fingerprint,
            "status": p.status,
            "objective": p.objective,
            "bound": p.bound,
            "gap": p.gap,
            "total_cost": p.total_cost,
            "emissions_t": p.emissions_t,
            "emissions_location_t": p.emissions_location_t,
            "green_share": p.green_share,
            "active": p.id == active_id,
        }

    @classmethod
    def of(cls, p: Plan, active_id: int | None) -> PlanItem:
        return cls(**cls.fields_of(p, active_id))


def _kpis_out() -> type[BaseModel]:
    """A plan's KPIs, one field per KPI of the bundle contract (null: a plan stored before
    the KPI existed)."""
    types = {"float": float, "int": int}
    fields: dict[str, Any] = {
        f.name: (
            types[str(f.type)] | None,
            Field(
                default=None,
                description=f"{f.metadata['meaning']} [{f.metadata['unit']}]"
                + (
                    f"; {f.metadata['accounting']}-based accounting"
                    if f.metadata["accounting"] != "n.a."
                    else ""
                ),
            ),
        )
        for f in plan_contract.KPIS
    }
    return create_model(  # type: ignore[call-overload,no-any-return]
        "KpisOut",
        __doc__="A plan's KPIs; money in the plan's `currency`.",
        **fields,
    )


KpisOut = _kpis_out()


def kpis_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The KPIs a summary holds (a plan stored before a KPI existed lacks it)."""
    return {k: summary[k] for k in plan_contract.KPI_KEYS if k in summary}


class PlanOut(PlanItem):
    model_config = _example(
        {
            **_PLAN_ITEM,
            "timings": {
                "baselines": 0.02,
                "build": 0.15,
                "solve": 0.3,
                "check": 0.05,
                "total": 0.6,
            },
            "currency": "CNY",
            "kpis": {"total_cost": 150100.2, "emissions_t": 61.3, "green_share": 0.41},
            "baselines": {"greedy": {"total_cost": 171000.0, "emissions_t": 80.2}},
            "bundle_sha256": {"summary.json": "9b74c9897bac770ffc029102a200c5de..."},
            "summary": {"status": "optimal", "gap": 0.00027, "baselines": {}},
        }
    )
    timings: dict[str, Any]
    currency: str = Field(description="the currency of every money figure of the plan")
    kpis: KpisOut = Field(description="the plan's KPIs")  # type: ignore[valid-type]
    baselines: dict[str, KpisOut] = Field(  # type: ignore[valid-type]
        description="KPIs of the greedy and carbon-agnostic plans"
    )
    bundle_sha256: dict[str, str] = Field(description="sha256 of each bundle file as solved")
    summary: dict[str, Any] = Field(description="the bundle's summary.json")

    @classmethod
    def of(cls, p: Plan, active_id: int | None) -> PlanOut:  # type: ignore[override]
        return cls(
            **PlanItem.fields_of(p, active_id),
            timings=p.timings,
            currency=p.summary.get("currency", plan_contract.DEFAULT_CURRENCY),
            kpis=kpis_of(p.summary),
            baselines={k: kpis_of(v) for k, v in p.summary.get("baselines", {}).items()},
            bundle_sha256=p.bundle_sha256,
            summary=p.summary,
        )


PlanPage = Page[PlanItem]


class AssignmentRow(BaseModel):
    workload_id: str
    site_id: str
    accelerator: str
    timestamp: str
    hour: int
    devices: int
    tokens_per_s: float | None = Field(description="inference only; null for jobs")


class AssignmentPage(BaseModel):
    model_config = _example(
        {
            "plan_id": 4,
            "total": 310,
            "offset": 0,
            "limit": 1,
            "items": [
                {
                    "workload_id": "train-llm-a",
                    "site_id": "nx-west",
                    "accelerator": "H100",
                    "timestamp": "2025-07-15T00:00:00+08:00",
                    "hour": 0,
                    "devices": 32,
                    "tokens_per_s": None,
                }
            ],
        }
    )
    plan_id: int
    total: int
    offset: int
    limit: int
    items: list[AssignmentRow]


class SiteHourRow(BaseModel):
    site_id: str
    timestamp: str
    hour: int
    pue: float | None
    it_mw: float | None
    facility_mw: float | None
    grid_limit_mw: float | None
    green_available_mw: float | None
    green_used_mw: float | None
    curtailed_mw: float | None
    grid_mw: float | None
    battery_charge_mw: float | None
    battery_discharge_mw: float | None
    battery_soc_mwh: float | None
    grid_price_per_mwh: float | None
    green_price_per_mwh: float | None
    carbon_kg_per_mwh: float | None
    energy_cost: float | None
    emissions_kg: float | None
    emissions_location_kg: float | None


class SiteHourPage(BaseModel):
    model_config = _example(
        {
            "plan_id": 4,
            "total": 72,
            "offset": 0,
            "limit": 1,
            "items": [
                {
                    "site_id": "nx-west",
                    "timestamp": "2025-07-15T00:00:00+08:00",
                    "hour": 0,
                    "pue": 1.15,
                    "it_mw": 0.21,
                    "facility_mw": 0.24,
                    "grid_limit_mw": 0.6,
                    "green_available_mw": 0.3,
                    "green_used_mw": 0.24,
                    "curtailed_mw": 0.06,
                    "grid_mw": 0.0,
                    "battery_charge_mw": 0.0,
                    "battery_discharge_mw": 0.0,
                    "battery_soc_mwh": 0.1,
                    "grid_price_per_mwh": 250.0,
                    "green_price_per_mwh": 200.0,
                    "carbon_kg_per_mwh": 800.0,
                    "energy_cost": 48.0,
                    "emissions_kg": 0.0,
                    "emissions_location_kg": 192.0,
                }
            ],
        }
    )
    plan_id: int
    total: int
    offset: int
    limit: int
    items: list[SiteHourRow]


class WorkloadsOut(BaseModel):
    model_config = _example(
        {
            "plan_id": 4,
            "items": [
                {
                    "workload_id": "train-llm-a",
                    "kind": "training",
                    "status": "placed",
                    "site_id": "nx-west",
                    "accelerator": "H100",
                    "reason": None,
                }
            ],
        }
    )
    plan_id: int
    items: list[dict[str, Any]] = Field(description="rows of the bundle's workloads.csv")


class RegionLinkOut(BaseModel):
    site_id: str
    demand_region: str
    mtokens: float = Field(
        description="inference tokens served over the link in the horizon (Mtoken)"
    )
    hours: int = Field(description="hours with any flow over the link")
    services: int = Field(description="services served over the link")
    latency_ms: float = Field(description="round-trip latency of the link (latency.csv, ms)")


class RegionLinksOut(BaseModel):
    model_config = _example(
        {
            "plan_id": 4,
            "items": [
                {
                    "site_id": "sh-east",
                    "demand_region": "east-users",
                    "mtokens": 812.4,
                    "hours": 24,
                    "services": 2,
                    "latency_ms": 5.0,
                }
            ],
        }
    )
    plan_id: int
    items: list[RegionLinkOut] = Field(
        description="one per (site, demand region) the plan serves over; unused links left out"
    )


class UnplacedOut(BaseModel):
    workload_id: str
    kind: str
    status: str
    reason: str | None


class ExplainOut(BaseModel):
    model_config = _example(
        {
            "plan_id": 4,
            "binding_hours": {
                "sh-east": {
                    "capacity": ["2025-07-15T09:00:00+08:00"],
                    "power": [],
                    "green_supply": [],
                }
            },
            "unplaced": [
                {
                    "workload_id": "urgent-eval",
                    "kind": "batch",
                    "status": "unplaced",
                    "reason": "deadline cannot be met: ...",
                }
            ],
            "moves": [
                {
                    "workload_id": "running-1",
                    "from_site": "sh-east",
                    "to_site": "nx-west",
                    "net_saving": 1234.5,
                }
            ],
            "churn": [
                {
                    "workload_id": "chat-large",
                    "kind": "inference",
                    "decision": "stop",
                    "count": 12,
                    "churn_cost": 15.0,
                    "energy_cost": 84.2,
                    "device_hours": 96.0,
                    "net_saving": 69.2,
                    "why": "stops devices through dips and starts 12 again: ...; pays",
                }
            ],
            "policy_violations": {"green_share": [], "carbon_excess_t": 0.0},
        }
    )
    plan_id: int
    binding_hours: dict[str, dict[str, list[str]]] = Field(
        description="per site: hours where devices (capacity), the grid (power) or green supply were used up"
    )
    unplaced: list[UnplacedOut]
    moves: list[dict[str, Any]] = Field(
        description="running jobs moved, with the saving that pays for it"
    )
    churn: list[dict[str, Any]] = Field(
        default_factory=list,
        description="replica starts after dips, devices held through them and job pauses, "
        "each with its cost against the energy it saves (churn.csv; empty for plans made "
        "before it)",
    )
    policy_violations: dict[str, Any]


class DeltaOut(BaseModel):
    a: Any
    b: Any
    delta: float | None


class JobChangesOut(BaseModel):
    moved: list[dict[str, Any]]
    retimed: list[dict[str, Any]]
    newly_placed: list[dict[str, Any]]
    newly_unplaced: list[dict[str, Any]]
    only_in_a: list[str]
    only_in_b: list[str]


class DiffOut(BaseModel):
    model_config = _example(
        {
            "plan_a": 3,
            "plan_b": 4,
            "same_scenario": False,
            "totals": {"total_cost": {"a": 160000.0, "b": 150100.2, "delta": -9899.8}},
            "sites": {"nx-west": {"grid_mwh": {"a": 1.2, "b": 0.8, "delta": -0.4}}},
            "jobs": {
                "moved": [
                    {
                        "workload_id": "train-llm-a",
                        "site_a": "sh-east",
                        "site_b": "nx-west",
                        "accelerator_a": "H100",
                        "accelerator_b": "H100",
                    }
                ],
                "retimed": [],
                "newly_placed": [],
                "newly_unplaced": [],
                "only_in_a": [],
                "only_in_b": [],
            },
        }
    )
    plan_a: int | None
    plan_b: int | None
    same_scenario: bool
    totals: dict[str, DeltaOut]
    sites: dict[str, dict[str, DeltaOut]]
    jobs: JobChangesOut


class ActivationOut(BaseModel):
    model_config = _example(
        {"plan_id": 4, "previous_plan_id": 3, "activated_by": "key:ops-team#2", "activated_at": TS}
    )
    plan_id: int
    previous_plan_id: int | None
    activated_by: str
    activated_at: dt.datetime


# ----------------------------------------------------------------------------- schedule
_INSTANCE_EXAMPLE: dict[str, Any] = {
    "id": "3f2c9a7e51d04b6f8a0c2e4d6b8f1a3c",
    "kind": "api",
    "host": "ops-1",
    "pid": 4242,
    "started_at": TS,
    "heartbeat_at": TS,
    "alive": True,
    "holds_scheduler": True,
}


class InstanceOut(BaseModel):
    model_config = _example(_INSTANCE_EXAMPLE)
    id: str
    kind: Literal["api", "scheduler"] = Field(
        description="api: `greenopt serve`; scheduler: `greenopt scheduler`"
    )
    host: str
    pid: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime = Field(description="when it last said it was alive")
    alive: bool = Field(
        description="its heartbeat is recent (instance_stale_after_s); a dead instance's "
        "running runs are marked interrupted"
    )
    holds_scheduler: bool = Field(description="it runs a nightly scheduler")


class ScheduleOut(BaseModel):
    model_config = _example(
        {
            "cron": "30 1 * * *",
            "timezone": "Asia/Shanghai",
            "enabled": True,
            "time_limit_s": 600.0,
            "stability_weight": 1.0,
            "next_run_at": "2025-07-16T01:30:00+08:00",
            "updated_at": TS,
            "updated_by": "key:ops-admin#1",
            "scheduler_seen_at": TS,
            "scheduler_id": "scheduler@host:4242",
            "instances": [_INSTANCE_EXAMPLE],
        }
    )
    cron: str = Field(description="crontab `minute hour day month weekday` (0 or 7 = Sunday)")
    timezone: str = Field(description="IANA zone the cron is read in (the sites' zone)")
    enabled: bool
    time_limit_s: float = Field(description="solver time limit of a nightly run, s")
    stability_weight: float | None = Field(
        description="plan-stability weight passed as a policy override; null: the scenario's"
    )
    next_run_at: dt.datetime | None = Field(
        description="the next fire time, in the schedule's zone (null when disabled)"
    )
    updated_at: dt.datetime | None = Field(description="null: the defaults, never changed")
    updated_by: str
    scheduler_seen_at: dt.datetime | None = Field(
        description="when a scheduler process last polled the schedule (null: never); "
        "nights fire only while one runs"
    )
    scheduler_id: str | None
    instances: list[InstanceOut] = Field(
        description="the `greenopt serve` and `greenopt scheduler` processes on this "
        "database, alive or gone quiet, and which of them run a nightly scheduler"
    )


_NIGHT_EXAMPLE: dict[str, Any] = {
    "id": 12,
    "night": "2025-07-16",
    "trigger": "schedule",
    "state": "succeeded",
    "reason": "plan 31 (optimal, gap 0.041%) activated, replacing plan 27",
    "run_id": 58,
    "run_state": "succeeded",
    "plan_id": 31,
    "plan_status": "optimal",
    "activated": True,
    "previous_plan_id": 27,
    "scenario_version_id": 9,
    "scheduled_for": "2025-07-16T01:30:00+08:00",
    "created_by": "scheduler@host:4242",
    "created_at": TS,
    "started_at": TS,
    "finished_at": TS,
    "duration_s": 48.2,
}


class NightOut(BaseModel):
    model_config = _example(_NIGHT_EXAMPLE)
    id: int
    night: dt.date | None = Field(
        description="the night (local date of its fire time); null for a run-now"
    )
    trigger: Literal["schedule", "manual"]
    state: Literal["running", "succeeded", "failed"]
    reason: str = Field(
        description="what happened: the plan activated, or why the previous plan was kept"
    )
    run_id: int | None
    run_state: str | None
    plan_id: int | None = Field(description="the plan the run stored (activated or not)")
    plan_status: str | None = Field(description="optimal, feasible or fallback")
    activated: bool
    previous_plan_id: int | None = Field(description="the active plan when the night began")
    scenario_version_id: int | None
    scheduled_for: dt.datetime | None = Field(description="the fire time it stands for")
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None = Field(description="when its solve started")
    finished_at: dt.datetime | None
    duration_s: float | None = Field(description="from the claim to the outcome, s")

    @classmethod
    def of(cls, n: NightView) -> NightOut:
        return cls(
            id=n.id,
            night=n.night,
            trigger=n.trigger,
            state=n.state,
            reason=n.reason,
            run_id=n.run_id,
            run_state=n.run_state,
            plan_id=n.plan_id,
            plan_status=n.plan_status,
            activated=n.activated,
            previous_plan_id=n.previous_plan_id,
            scenario_version_id=n.scenario_version_id,
            scheduled_for=n.scheduled_for,
            created_by=n.created_by,
            created_at=n.created_at,
            started_at=n.started_at,
            finished_at=n.finished_at,
            duration_s=n.duration_s,
        )


NightPage = Page[NightOut]


# ----------------------------------------------------------------------------- ops
class HealthOut(BaseModel):
    model_config = _example({"status": "ok", "version": "0.1.0"})
    status: Literal["ok"]
    version: str


class ReadyOut(BaseModel):
    model_config = _example(
        {
            "status": "ready",
            "checks": {
                "database": {"ok": True, "detail": "sqlite, schema at 0001"},
                "solver": {"ok": True, "detail": "HiGHS solved a 1-variable LP"},
            },
        }
    )
    status: Literal["ready", "not_ready"]
    checks: dict[str, dict[str, Any]] = Field(
        description="database, solver and (a fresh `greenopt serve`) first_plan: each ok and "
        "a detail saying what it found or is doing"
    )
    progress: dict[str, Any] | None = Field(
        default=None,
        description="while the first plan solves: its run_id, state, phase (loading, build, "
        "solve...), run_elapsed_s, objective_cny and gap as the solver reports them",
    )


# ----------------------------------------------------------------------------- actions
class ActionRow(BaseModel):
    """One row of the bundle's actions.csv (columns in `optimizer/contract.py`)."""

    model_config = _example(
        {
            "seq": 0,
            "timestamp": "2025-07-15T02:00:00+08:00",
            "hour": 2,
            "action": "start",
            "workload_id": "train-llm-a",
            "kind": "training",
            "site_id": "nx-west",
            "from_site": "",
            "accelerator": "H100",
            "devices": 32,
            "previous_devices": None,
            "run_hours": 6,
            "detail": "",
        }
    )
    seq: int
    timestamp: str
    hour: int
    action: Literal["start", "stop", "finish", "pause", "resume", "move", "scale"]
    workload_id: str
    kind: str
    site_id: str
    from_site: str = ""
    accelerator: str
    devices: int
    previous_devices: int | None = None
    run_hours: int | None = None
    detail: str = ""


class ActionsOut(BaseModel):
    model_config = _example(
        {"plan_id": 4, "items": [ActionRow.model_config["json_schema_extra"]["examples"][0]]}  # type: ignore[index]
    )
    plan_id: int
    items: list[ActionRow]


class K8sPatchOut(BaseModel):
    model_config = _example(
        {
            "at": "2025-07-15T09:00:00+08:00",
            "cluster": "sh-east",
            "action": "scale",
            "workload_id": "chat-zh",
            "verb": "patch",
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "chat-zh-h100", "namespace": "greenopt"},
                "spec": {"replicas": 12},
            },
        }
    )
    at: str = Field(description="when to apply it (ISO 8601)")
    cluster: str = Field(description="the site: a kubeconfig context")
    action: str
    workload_id: str
    verb: Literal["patch", "delete"]
    object: dict[str, Any] = Field(description="a strategic-merge patch of a Deployment or Job")


class K8sPatchesOut(BaseModel):
    model_config = _example(
        {"plan_id": 4, "items": [K8sPatchOut.model_config["json_schema_extra"]["examples"][0]]}  # type: ignore[index]
    )
    plan_id: int
    items: list[K8sPatchOut]


# ----------------------------------------------------------------------------- queue
_QUEUE_TYPES: dict[str, Any] = {
    "str": str,
    "list": list[str],
    "int": int,
    "float": float,
    "bool": bool,
    "timestamp": AwareDatetime,
}


def _spec_in(table: str, skip: tuple[str, ...], example: dict[str, Any]) -> Any:
    """A submission body: the columns of the scenario table the item becomes (less those
    the queue sets), typed and described by the scenario schema."""
    fields: dict[str, Any] = {}
    for c in scenario_schema.TABLES_BY_NAME[table].columns:
        if c.name in skip:
            continue
        typ = _QUEUE_TYPES[c.dtype]
        desc = f"{c.meaning} [{c.unit}]" if c.unit else c.meaning
        fields[c.name] = (
            (typ, Field(description=desc))
            if c.required
            else (typ | None, Field(default=None, description=desc))
        )
    return fields, ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


_JOB_FIELDS, _JOB_CONFIG = _spec_in(
    "jobs",
    ("job_id", "current_site"),
    {
        "kind": "training",
        "accelerators": ["H100"],
        "gang": 32,
        "work_device_hours": 320,
        "release": "2025-07-15T00:00:00+08:00",
        "deadline": "2025-07-16T00:00:00+08:00",
        "preemptible": True,
    },
)
JobIn: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "JobIn", __config__=_JOB_CONFIG, __doc__="A job: its row of jobs.csv.", **_JOB_FIELDS
)
_SVC_FIELDS, _SVC_CONFIG = _spec_in(
    "services",
    ("service_id",),
    {"latency_limit_ms": 25, "throughput": {"H100": 2400.0, "A100": 1200.0}},
)
ServiceIn: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "ServiceIn",
    __config__=_SVC_CONFIG,
    __doc__="A service: its row of services.csv and its throughput per accelerator type.",
    throughput=(
        dict[str, float],
        Field(description="accelerator type -> tokens/s one device serves (service_throughput)"),
    ),
    **_SVC_FIELDS,
)


class ProgressIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"done_device_hours": 160.0, "current_site": "nx-west"}]},
    )
    done_device_hours: float = Field(
        ge=0, allow_inf_nan=False, description="reference device-hours done so far (a total)"
    )
    current_site: str | None = Field(
        default=None, max_length=200, description="the site it runs on now; null: not running"
    )


class QueueItemOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "job",
                    "workload_id": "train-llm-a",
                    "state": "active",
                    "revision": 2,
                    "spec": {"kind": "training", "accelerators": ["H100"], "gang": 32},
                    "done_device_hours": 160.0,
                    "current_site": "nx-west",
                    "progress_at": TS,
                    "submitted_at": TS,
                    "updated_at": TS,
                    "updated_by": "key:ops-team",
                    "outcome": "replaced",
                }
            ]
        },
    )
    kind: Literal["job", "service"]
    workload_id: str
    state: Literal["active", "cancelled"]
    revision: int = Field(description="counts up on every change")
    spec: dict[str, Any]
    done_device_hours: float
    current_site: str | None
    progress_at: dt.datetime | None
    submitted_at: dt.datetime
    updated_at: dt.datetime
    updated_by: str
    outcome: Literal["created", "replaced", "unchanged"] | None = Field(
        default=None, description="a submission: what it did"
    )


class QueueOut(BaseModel):
    model_config = _example(
        {"items": [QueueItemOut.model_config["json_schema_extra"]["examples"][0]]}  # type: ignore[index]
    )
    items: list[QueueItemOut]
