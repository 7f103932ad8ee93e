"""The plan bundle's contract, declared once: every table with its columns (type, unit,
meaning), every KPI (unit, meaning, accounting), the summary keys and the status values.

The planner's assembly, the validator's name lists, the diff, the service's stored columns,
the API's KPI model and `docs/bundle.md` (via `docs/generate.py`) all read these names from
here. Money is in the scenario's currency (summary key `currency`), so no name says which.
Adding a KPI: one field on `Kpis` here, its computation in `optimizer/plan/kpis.py` and its
recomputation in the validator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

DType = Literal["str", "float", "int", "bool", "timestamp", "list", "object"]
Status = Literal["contract", "extra"]
"""`contract`: always there with this meaning; `extra`: written on top, may grow."""
Accounting = Literal["contract", "location", "n.a."]
"""Which carbon accounting a KPI follows: contract-based (contracted green counts zero),
location-based (all energy drawn at the grid's intensity), or not an emissions figure."""

DEFAULT_CURRENCY = "CNY"
"""The currency of a scenario whose manifest does not name one."""

PLAN_STATUSES = ("optimal", "feasible", "fallback", "baseline")
JOB_KINDS = ("training", "finetune", "batch")
WORKLOAD_KINDS = (*JOB_KINDS, "inference")
JOB_STATUSES = ("placed", "on_track", "unplaced")
"""`placed`: runs all its work by its deadline in this horizon; `on_track`: due after the
horizon, runs its in-horizon share (`work_in_horizon_device_hours`) and goes on in the next
plan; `unplaced`: does not run (see `reason`)."""
SERVICE_STATUSES = ("placed", "unplaced")
BINDING_LIMITS = ("devices", "grid", "green")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    unit: str
    meaning: str
    status: Status = "contract"
    numeric: bool = False  # the validator requires finite numbers in it


@dataclass(frozen=True)
class BundleTable:
    name: str
    rows: str  # what one row is
    columns: tuple[Column, ...]
    status: Status = "contract"
    note: str = ""

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def names(self) -> list[str]:
        """Column names in the order the bundle writes them."""
        return [c.name for c in self.columns]

    @property
    def contract_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.status == "contract")

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.numeric)


def _c(name: str, dtype: DType, unit: str, meaning: str, *, extra: bool = False) -> Column:
    numeric = dtype in ("float", "int") and not extra
    return Column(name, dtype, unit, meaning, "extra" if extra else "contract", numeric)


def _x(name: str, dtype: DType, unit: str, meaning: str) -> Column:
    return _c(name, dtype, unit, meaning, extra=True)


_HOUR = _x("hour", "int", "", "the hour's index from the horizon start (0 .. hours-1)")
_TS = _c("timestamp", "timestamp", "ISO 8601", "start of the hour")

WORKLOADS = BundleTable(
    "workloads",
    "one row per job and per inference service",
    (
        _c("workload_id", "str", "", "job id or service id"),
        _c("kind", "str", "", "`training`, `finetune`, `batch` (jobs) or `inference` (services)"),
        _c(
            "accelerator",
            "list",
            "",
            "placed job: the one type it runs on; unplaced job: its acceptable types; "
            "service: the types it uses",
        ),
        _c("devices", "int", "devices", "job: its gang; service: its peak devices in an hour"),
        _c(
            "work_device_hours",
            "float",
            "device-h",
            "job: its total work in reference device-hours; service: device-hours used",
        ),
        _x(
            "work_in_horizon_device_hours",
            "float",
            "device-h",
            "the work due in this horizon (the rolling-horizon share when the deadline lies "
            "beyond it)",
        ),
        _x("run_hours", "int", "h", "hours the job runs (service: hours it has devices)"),
        _c(
            "release",
            "timestamp",
            "ISO 8601",
            "job window start (release rounded up to the hour)",
        ),
        _c(
            "deadline",
            "timestamp",
            "ISO 8601",
            "job window end (rounded down to the hour); may lie beyond the horizon",
        ),
        _c("preemptible", "bool", "", "`True`: may pause between hours; `False`: one block"),
        _c("current_site", "str", "", "where a running job runs now (empty: not running)"),
        _c(
            "allowed_sites",
            "list",
            "",
            "job: sites its residency regions allow that have at least its gang of one of its "
            "types installed; service: sites within its latency limit of a region with demand",
        ),
        _c(
            "status",
            "str",
            "",
            "job: `placed`, `on_track` (due after the horizon, runs its in-horizon share) or "
            "`unplaced`; service: `placed` or `unplaced`",
        ),
        _c(
            "site_id", "list", "", "placed job: its site; service: the sites it uses, busiest first"
        ),
        _x("moved", "bool", "", "a running job placed away from its current site"),
        _x(
            "migration_cost",
            "float",
            "currency",
            "weight x (data_gb x transfer price + lost_hours_on_move x gang x lost-hour price), "
            "if moved",
        ),
        _x(
            "data_transfer_cost",
            "float",
            "currency",
            "data_gb x transfer price, for a job not running yet placed away from its "
            "data-origin site",
        ),
        _c("reason", "str", "", "unplaced job, or service with unmet demand: why"),
        # churn (issue 12)
        _x(
            "replica_starts",
            "int",
            "devices",
            "service: devices started from one hour to the next, summed over sites and types "
            "(the first hour is the state carried in); job: 0",
        ),
        _x("replica_stops", "int", "devices", "service: devices stopped likewise; job: 0"),
        _x("pauses", "int", "pauses", "job: its blocks of consecutive run hours less one"),
        _x(
            "churn_cost",
            "float",
            "currency",
            "service: replica_starts x start cost; job: pauses x pause cost (policy "
            "replica_warmup_min, replica_start_cost_cny, checkpoint_min, restore_min)",
        ),
        # flexible load (issue 17, optimizer/flexible.py)
        _x(
            "lane_id",
            "str",
            "",
            "short job planned as flexible load: the lane it runs in (gang devices of one "
            "type at one site for one hour, shared by the lane's jobs run back to back: "
            "their run times sum to at most an hour, its devices count once); empty for "
            "jobs planned one by one and for services",
        ),
    ),
)

ASSIGNMENTS = BundleTable(
    "assignments",
    "one row per job-hour and per service site-type-hour",
    (
        _c("workload_id", "str", "", "job or service"),
        _c("site_id", "str", "", "where"),
        _c("accelerator", "str", "", "on what type"),
        _TS,
        _HOUR,
        _c("devices", "int", "devices", "job: its whole gang; service: devices serving it"),
        # empty for jobs, so not required to be a number in every row
        Column(
            "tokens_per_s",
            "float",
            "tokens/s",
            "services only (empty for jobs): tokens/s served by these devices (a site's flows "
            "split over its types in proportion to their throughput)",
        ),
    ),
)

SITE_HOURS = BundleTable(
    "site_hours",
    "one row per site and hour",
    (
        _c("site_id", "str", "", "the site"),
        _TS,
        _HOUR,
        _c("pue", "float", "-", "facility power / IT power"),
        _c(
            "it_mw",
            "float",
            "MW",
            "busy devices x busy_kw + available idle devices x idle_kw, / 1000 (devices under "
            "maintenance draw nothing)",
        ),
        _c("facility_mw", "float", "MW", "PUE x IT"),
        _c("grid_limit_mw", "float", "MW", "grid connection limit"),
        _c("green_available_mw", "float", "MW", "contracted green supply available"),
        _c("green_used_mw", "float", "MW", "green supply used"),
        _c("curtailed_mw", "float", "MW", "available - used"),
        _c("grid_mw", "float", "MW", "grid import"),
        _c("battery_charge_mw", "float", "MW", "battery charging power (zero without a battery)"),
        _c(
            "battery_discharge_mw",
            "float",
            "MW",
            "battery discharging power (zero without a battery)",
        ),
        _c(
            "battery_soc_mwh",
            "float",
            "MWh",
            "state of charge at the end of the hour (zero at sites without a battery; an idle "
            "battery keeps its initial charge)",
        ),
        _c("grid_price_per_mwh", "float", "currency/MWh", "the scenario's grid price"),
        _c("green_price_per_mwh", "float", "currency/MWh", "the scenario's green price"),
        _c("carbon_kg_per_mwh", "float", "kgCO2/MWh", "grid carbon intensity"),
        _c(
            "energy_cost",
            "float",
            "currency",
            "grid_mw x grid price + green_used_mw x green price",
        ),
        _c(
            "emissions_kg",
            "float",
            "kgCO2",
            "contract-based: grid_mw x the scenario's residual-mix factor where given, else "
            "x carbon_kg_per_mwh (summary `accounting.residual_mix` says which)",
        ),
        _x(
            "emissions_location_kg",
            "float",
            "kgCO2",
            "location-based: (grid_mw + green_used_mw) x intensity",
        ),
    ),
    note="Balance: `grid_mw + green_used_mw + battery_discharge_mw - battery_charge_mw = "
    "facility_mw`.",
)

SITE_HOUR_DEVICES = BundleTable(
    "site_hour_devices",
    "one row per installed (site, type) and hour",
    (
        _c("site_id", "str", "", "the site"),
        _TS,
        _HOUR,
        _c("accelerator", "str", "", "the type"),
        _c("capacity", "int", "devices", "available: floor(installed x available_fraction)"),
        _c("busy", "int", "devices", "job gangs running + inference devices"),
        _c(
            "busy_power_kw",
            "float",
            "kW",
            "power of all busy devices: busy x the type's per-device busy_kw",
        ),
        _c(
            "idle_power_kw",
            "float",
            "kW",
            "power of all idle available devices: (capacity - busy) x the type's per-device "
            "idle_kw",
        ),
    ),
)

SERVICE_HOURS = BundleTable(
    "service_hours",
    "one row per service and hour",
    (
        _c("service_id", "str", "", "the service"),
        _TS,
        _HOUR,
        _c("demand_tokens_per_s", "float", "tokens/s", "demand summed over regions"),
        _c("served_tokens_per_s", "float", "tokens/s", "served, summed over regions"),
        _c("unmet_tokens_per_s", "float", "tokens/s", "demand - served"),
    ),
)

SERVICE_FLOWS = BundleTable(
    "service_flows",
    "who serves which region from where (rows > 0 only)",
    (
        _c("service_id", "str", "", "the service"),
        _c("demand_region", "str", "", "the region whose demand is served"),
        _c("site_id", "str", "", "the site serving it"),
        _TS,
        _HOUR,
        _c("tokens_per_s", "float", "tokens/s", "region's demand served from the site that hour"),
        _x("latency_ms", "float", "ms", "latency from the site to the region (latency.csv)"),
    ),
    # not in the list, but the only place a flow's demand region is written: the
    # latency limit and the per-region demand balance cannot be audited without it
    note="Extra in the issue's list, but the only table that says which demand region a site "
    "serves, so the validator requires it to check latency limits and per-region demand.",
)

BINDING = BundleTable(
    "binding",
    "site-hours in which a limit was used up (explanation)",
    (
        _x("site_id", "str", "", "the site"),
        _x("timestamp", "timestamp", "ISO 8601", "start of the hour"),
        _HOUR,
        _x("limit", "str", "", "`devices`, `grid` or `green`"),
        _x("detail", "str", "", "the type, or what was used up"),
        _x("value", "float", "", "what the plan uses"),
        _x("limit_value", "float", "", "the limit"),
    ),
    status="extra",
)

MOVES = BundleTable(
    "moves",
    "running jobs the plan moves (explanation)",
    (
        _x("workload_id", "str", "", "the job"),
        _x("from_site", "str", "", "where it runs now"),
        _x("to_site", "str", "", "where the plan runs it"),
        _x("migration_cost", "float", "currency", "its migration cost (as in workloads)"),
        _x(
            "energy_cost_here",
            "float",
            "currency",
            "marginal energy and carbon cost of its hours on the new site",
        ),
        _x(
            "energy_cost_if_stayed",
            "float",
            "currency",
            "cheapest feasible hours at home (empty if it could not stay)",
        ),
        _x("net_saving", "float", "currency", "if stayed - here - migration"),
        _x("why", "str", "", "why it moves"),
    ),
    status="extra",
)

CHURN = BundleTable(
    "churn",
    "the replica starts and pauses the plan makes or avoids, and whether they pay (explanation)",
    (
        _x("workload_id", "str", "", "the service or job"),
        _x("kind", "str", "", "the workload's kind (as in workloads)"),
        _x(
            "decision",
            "str",
            "",
            "`stop`: a service stops devices through dips and starts them again; `hold`: it "
            "keeps devices beyond what its served tokens need; `pause`: a job pauses",
        ),
        _x(
            "count",
            "int",
            "starts or pauses",
            "stop: starts after a dip; hold: starts holding avoids (starts of the devices its "
            "served tokens need, less the plan's; 0 if none); pause: the job's pauses",
        ),
        _x(
            "churn_cost",
            "float",
            "currency",
            "what those starts or pauses cost at the policy's rates (as churn_cost in workloads)",
        ),
        _x(
            "energy_cost",
            "float",
            "currency",
            "stop: energy holding the stopped devices through their dips would cost; hold: "
            "energy the held devices cost; pause: energy the job's hours save against its "
            "cheapest single block on the same site (empty if none fits its window); busy over "
            "idle power at the site's marginal cost, as in moves",
        ),
        _x(
            "device_hours",
            "float",
            "device-h",
            "stop: device-h stopped in dips; hold: device-h held idle; pause: gang x run hours",
        ),
        _x(
            "net_saving",
            "float",
            "currency",
            "stop, pause: energy_cost - churn_cost; hold: churn_cost - energy_cost; >= 0: the "
            "decision pays on this estimate",
        ),
        _x("why", "str", "", "the decision and its figures in words"),
    ),
    status="extra",
    note="An estimate at the plan's marginal costs (`optimizer/plan/explain.py`); the solver "
    "also saw capacity, power and green limits and the minimum up-time.",
)

ACTIONS = BundleTable(
    "actions",
    "one row per action that takes the fleet from its current state to the plan, in the "
    "order to carry them out (`optimizer/actions.py`)",
    (
        _x("seq", "int", "", "position in the order (within an hour, what frees devices first)"),
        _x("timestamp", "timestamp", "ISO 8601", "start of the hour the action happens"),
        _HOUR,
        _x(
            "action",
            "str",
            "",
            "`start`, `stop` (a running job not placed), `finish` (work done, ends by itself), "
            "`pause`, `resume`, `move` or `scale`",
        ),
        _x("workload_id", "str", "", "the job or service"),
        _x("kind", "str", "", "the workload's kind (as in workloads)"),
        _x("site_id", "str", "", "where it happens (a move: where the job goes)"),
        _x("from_site", "str", "", "a move: where the job runs now"),
        _x("accelerator", "str", "", "the type"),
        _x("devices", "int", "devices", "a job: its gang; a scale: devices serving after it"),
        _x("previous_devices", "int", "devices", "a scale: devices serving before it"),
        _x("run_hours", "int", "h", "start, resume, move: hours the run it begins lasts"),
        _x("detail", "str", "", "why (a stop: the plan's reason; a pause: when it goes on)"),
    ),
    status="extra",
    note="Derived from workloads and assignments; services' current devices are not in the "
    "scenario, so the bundle's actions scale every service up from none at the first hour.",
)

PRICING_DUALS = BundleTable(
    "pricing_duals",
    "one row per row of the pricing LP whose dual is not 0 (the LP that gave the plan's "
    "bound, or the previous plan's duals where they gave a better one)",
    (
        _x("constraint", "str", "", "the row's block (docs/model.md names them)"),
        _x(
            "index",
            "str",
            "",
            "the row's index, `name=value` joined by `;`, names sorted: sites and jobs by id, "
            "types by name, hours by UTC timestamp, an option as job/site/type",
        ),
        _x(
            "dual",
            "float",
            "currency per row unit",
            "HiGHS' row dual (reduced cost = cost - A^T dual): what the row's bound is worth",
        ),
    ),
    status="extra",
    note="What a warm re-solve bounds its plan with before it solves an LP of its own "
    "(`optimizer/model/dual_bound.py`, docs/solving.md); any duals give a valid bound.",
)

TABLES: tuple[BundleTable, ...] = (
    WORKLOADS,
    ASSIGNMENTS,
    SITE_HOURS,
    SITE_HOUR_DEVICES,
    SERVICE_HOURS,
    SERVICE_FLOWS,
    BINDING,
    MOVES,
    CHURN,
    ACTIONS,
    PRICING_DUALS,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}
BUNDLE_TABLES = tuple(t.name for t in TABLES)
REQUIRED_TABLES = tuple(t.name for t in TABLES if t.status == "contract")


# ------------------------------------------------------------------------------------ KPIs
def _kpi(
    unit: str,
    meaning: str,
    *,
    status: Status = "contract",
    accounting: Accounting = "n.a.",
    diff: bool = False,
) -> Any:
    """A KPI field: its unit, meaning, accounting and whether plan diffs compare it."""
    meta = {"unit": unit, "meaning": meaning, "status": status, "accounting": accounting}
    return field(metadata={**meta, "diff": diff})


@dataclass(frozen=True)
class Kpis:
    """A plan's KPIs, each recomputed from its tables by the validator. The field order is
    the order of summary.json."""

    total_cost: float = _kpi(
        "currency",
        "energy + carbon + migration + data transfer + `contract_payment` - "
        "`green_resale_value` + `certificate_cost` + replica starts + pauses",
        status="extra",
        diff=True,
    )
    energy_cost: float = _kpi("currency", "`grid_cost + green_cost`", diff=True)
    grid_cost: float = _kpi("currency", "sum of grid_mw x grid price", status="extra")
    green_cost: float = _kpi("currency", "sum of green_used_mw x green price", status="extra")
    carbon_cost: float = _kpi("currency", "carbon price x `emissions_t`", diff=True)
    migration_cost: float = _kpi(
        "currency",
        "plan-stability weighted cost of moving running jobs (see workloads)",
        diff=True,
    )
    data_transfer_cost: float = _kpi(
        "currency", "cost of running not-yet-running jobs away from their data", status="extra"
    )
    penalty: float = _kpi("currency", "`penalties` summed", status="extra")
    objective: float = _kpi(
        "currency",
        "`total_cost + penalty`, recomputed from the plan's tables (not the solver's number, "
        "which is under `solver`)",
        diff=True,
    )
    grid_mwh: float = _kpi("MWh", "sum of `grid_mw` over site-hours", diff=True)
    green_mwh: float = _kpi("MWh", "sum of `green_used_mw` over site-hours", diff=True)
    curtailed_mwh: float = _kpi("MWh", "sum of `curtailed_mw` over site-hours", diff=True)
    facility_mwh: float = _kpi("MWh", "sum of `facility_mw`", status="extra")
    it_mwh: float = _kpi("MWh", "sum of `it_mw`", status="extra")
    emissions_t: float = _kpi("tCO2", "contract-based emissions", accounting="contract", diff=True)
    emissions_location_t: float = _kpi(
        "tCO2", "location-based emissions", accounting="location", diff=True
    )
    green_share: float = _kpi(
        "fraction",
        "green that reaches the load / `facility_mwh`: sum of min(`green_used_mw`, "
        "`facility_mw`) (green stored in a battery does not count)",
        diff=True,
    )
    placed: int = _kpi("jobs", "jobs placed or on track", status="extra")
    unplaced: int = _kpi("jobs", "jobs left unplaced", diff=True)
    unplaced_device_hours: float = _kpi("device-h", "in-horizon work left undone", status="extra")
    moved_jobs: int = _kpi("jobs", "running jobs moved", status="extra")
    unmet_mtokens: float = _kpi("Mtoken", "inference demand left unserved", status="extra")
    served_share: float = _kpi(
        "fraction", "share of inference demand served", status="extra", diff=True
    )
    # --- green supply contracts (issue 11) ---
    contract_payment: float = _kpi(
        "currency",
        "green contract payments: price x available (ppa) or contracted (trade) MWh, owed "
        "whatever the plan does (a fixed cost, never optimised)",
        status="extra",
        diff=True,
    )
    green_resale_value: float = _kpi(
        "currency",
        "curtailed contracted green x its resale (or deviation) price: income, subtracted "
        "from `total_cost`",
        status="extra",
    )
    cfe_score: float = _kpi(
        "fraction",
        "hourly carbon-free-energy score (24/7 CFE): sum over site-hours of min(facility, "
        "contracted green used) / facility energy; clean supply is contracted green only (the "
        "grid's own clean share is not counted); per site under `cfe_by_site`",
        status="extra",
        diff=True,
    )
    certificate_mwh: float = _kpi(
        "MWh",
        "unbundled green certificates (绿证/GEC) bought to fill green-share gaps; reported "
        "apart from hourly-matched green, no effect on either emissions accounting",
        status="extra",
        diff=True,
    )
    certificate_cost: float = _kpi(
        "currency", "certificate price x `certificate_mwh` (in `total_cost`)", status="extra"
    )
    # churn (issue 12): sums of the workloads' columns
    replica_starts: int = _kpi(
        "devices", "inference devices started hour to hour (workloads)", status="extra", diff=True
    )
    replica_stops: int = _kpi("devices", "inference devices stopped hour to hour", status="extra")
    pauses: int = _kpi(
        "pauses", "pauses of jobs (blocks of run hours less one)", status="extra", diff=True
    )
    replica_start_cost: float = _kpi(
        "currency", "replica_starts x the policy's start cost", status="extra"
    )
    pause_cost: float = _kpi("currency", "sum over jobs of pauses x pause cost", status="extra")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Kpis:
        """The KPIs of a summary (or of a baseline's KPI block)."""
        return cls(**{k: values[k] for k in KPI_KEYS})


KPIS = fields(Kpis)
KPI_KEYS = tuple(f.name for f in KPIS)
COUNT_KPIS = tuple(f.name for f in KPIS if f.type in (int, "int"))
DIFF_KPIS = tuple(f.name for f in KPIS if f.metadata["diff"])
ACCOUNTING = {
    "emissions_t": "contract-based: grid import x the residual-mix factor where the scenario "
    "gives one, else the average grid intensity (see `residual_mix`); contracted green "
    "supply counts zero",
    "emissions_location_t": "location-based: all energy drawn (grid + green) x grid intensity",
    "green_share": "green reaching the load (min of green used and facility power, per "
    "site-hour) / facility energy",
}
"""The summary's `accounting` block: the two carbon accountings and the green share, in words."""


# ------------------------------------------------------------------- green forecast cases
GREEN_CASES = ("low", "central", "high")
"""The green supply cases every plan reports (summary `green_cases`): green at the forecast's
low quantile, its P50, and its high quantile (scenario schema `GREEN_QUANTILES`)."""


@dataclass(frozen=True)
class CaseKpis:
    """A plan's KPIs when green comes in at one case's quantile: the plan's placements and
    battery as planned, re-dispatched (not re-solved): green used where it comes in (never
    more than the load takes; in the high case, what the plan used plus the extra), the grid
    for the rest within its limit, and what neither can supply is short. Recomputed by the
    validator."""

    green_mwh: float = _kpi("MWh", "green used in the case")
    grid_mwh: float = _kpi("MWh", "grid import in the case")
    total_cost: float = _kpi(
        "currency",
        "the plan's `total_cost` with energy, carbon and green resale re-priced for the "
        "case's dispatch (power short is not priced: see `short_mwh`)",
    )
    emissions_t: float = _kpi("tCO2", "contract-based emissions", accounting="contract")
    emissions_location_t: float = _kpi("tCO2", "location-based emissions", accounting="location")
    unmet_mtokens: float = _kpi(
        "Mtoken",
        "inference demand the plan leaves unserved (placements are the plan's; power a case "
        "cannot supply is counted in `short_mwh`, not shared out to workloads)",
    )
    short_mwh: float = _kpi(
        "MWh", "load neither green nor the grid connection can supply in the case"
    )
    short_site_hours: int = _kpi("site-hours", "site-hours with power short in the case")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CASE_KPI_KEYS = tuple(f.name for f in fields(CaseKpis))


# ---------------------------------------------------------------------------- summary.json
@dataclass(frozen=True)
class Key:
    name: str
    unit: str
    meaning: str
    status: Status = "contract"


_SUMMARY_HEAD = (
    Key("planner", "", "`milp`, `greedy`, `carbon_agnostic` or `cost_only`", "extra"),
    Key(
        "status",
        "",
        "`optimal` (proved within the gap setting), `feasible` (time limit: best plan found, see "
        "`gap`), `fallback` (HiGHS found none; this is the greedy plan), `baseline` (a baseline "
        "plan)",
    ),
    Key(
        "origin",
        "",
        "which candidate came back (`optimizer.choose`): `improved` (the solver's plan), `start` "
        "(the plan handed to the solver as its first incumbent), `baseline:<name>` (a baseline's "
        "plan, no better one found; also in a baseline's own bundle), `guard` (the dominance guard's "
        "plan: the chosen plan's jobs, inference re-weighed until it dominates every baseline, "
        "`optimizer.guard`)",
        "extra",
    ),
    Key("scenario", "", "scenario name", "extra"),
    Key("scenario_fingerprint", "", "content hash of the scenario the plan was made for"),
    Key("start", "ISO 8601", "first hour", "extra"),
    Key("hours", "h", "horizon length", "extra"),
    Key(
        "currency",
        "",
        "the currency of every money figure in the bundle (the scenario's, default CNY)",
    ),
    Key(
        "bound",
        "currency",
        "the solver's lower bound on the objective (null for baselines and fallbacks)",
    ),
    Key(
        "gap",
        "fraction",
        "the solver's relative gap; measured on the part of the objective decisions can change "
        "(`solver.fixed_cost`, penalties of work no plan can place, is excluded)",
    ),
)
_SUMMARY_TAIL = (
    Key(
        "penalties",
        "currency",
        "`unplaced` (per unplaced job: its `unplaced_penalty_cny` if given, else policy rate x "
        "in-horizon work x priority), `unmet_demand` (price per Mtoken x unmet tokens/s x 3600 "
        "/ 10^6, per service), `policy_violation` (green shortfall MWh and carbon excess t at "
        "their policy prices)",
        "extra",
    ),
    Key(
        "policy",
        "",
        "the policy in force (carbon price, minimum green share, carbon budget, stability "
        "weight, robust green quantile)",
        "extra",
    ),
    Key(
        "policy_violations",
        "",
        "`green_share`: one entry per minimum in force (`scope` = `fleet` or a site id, "
        "`required`, `achieved` (hourly-matched, plus certificates when the policy offers "
        "them), `hourly_matched`, `certificates_mwh`, `shortfall_mwh`); `carbon_excess_t` "
        "above the budget. Policies are soft: a miss is priced and reported here",
        "extra",
    ),
    Key(
        "cfe_by_site",
        "fraction",
        "hourly CFE score per site: sum over its hours of min(facility, green used) / its "
        "facility energy",
        "extra",
    ),
    Key("accounting", "", "the two carbon accountings and the green share, in words", "extra"),
    Key(
        "green_cases",
        "",
        "the plan's KPIs (`CaseKpis`) when green comes in `low`, `central` and `high` (the "
        "quantile of each under `quantiles`); `band_given` false when the scenario carries no "
        "forecast quantiles (then the three cases are equal); `robust_quantile`: the quantile "
        "the plan was made robust for (policy `robust_green_quantile`), null when none; a "
        "robust plan is short of power in no site-hour at that quantile",
        "extra",
    ),
    Key(
        "solver",
        "",
        "HiGHS `termination`, its own `objective`/`bound`/`gap`, `nodes`, "
        "`mip_start_accepted`, `settings`, `fixed_cost`, `fallback_reason`",
        "extra",
    ),
    Key(
        "timings_s",
        "s",
        "phase timings: `validate` (loading and checking the input), `baselines`, "
        "`start` (HiGHS' first incumbent: the best of three greedy plans, or a warm "
        "re-solve's previous plan repaired), `build_arrays`, `build_pyomo` (Pyomo backend "
        "only), `build`, `handover`, `solve`, `extract`, `total`; `check` (this validator) "
        "when the CLI ran it",
    ),
    Key(
        "model_size",
        "",
        "`variables`, `binaries`, `integers`, `constraints`, `nonzeros` of the MILP",
    ),
    Key(
        "baselines",
        "",
        "`{name: {KPI: value}}` of the greedy and carbon-agnostic plans, with the same KPI keys "
        "as this plan (empty in a baseline's own bundle)",
    ),
)
_SUMMARY_CLI = (
    Key(
        "validation",
        "",
        "`{ok, violations}` when the CLI ran the validator before writing",
        "extra",
    ),
    Key(
        "policy_overrides",
        "",
        "the policy values `greenopt plan` overrode (`--carbon-price`, `--min-green-share`, "
        "`--carbon-budget`, `--stability-weight`, `--robust`); `greenopt validate` applies them to the "
        "scenario before checking",
        "extra",
    ),
)
SUMMARY: tuple[Key, ...] = (
    *_SUMMARY_HEAD,
    *(Key(f.name, f.metadata["unit"], f.metadata["meaning"], f.metadata["status"]) for f in KPIS),
    *_SUMMARY_TAIL,
    *_SUMMARY_CLI,
)
"""summary.json's keys: the assembly writes all but the last two, which `greenopt plan` adds
(the service adds its own: `warm_start`, `plan_id` ...)."""
SUMMARY_KEYS = tuple(k.name for k in SUMMARY if k.status == "contract")
"""summary.json keys of the contract."""
