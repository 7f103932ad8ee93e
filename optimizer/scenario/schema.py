"""The scenario directory format: one manifest and a CSV table per entity, declared once.

`data/README.md` documents these tables; `tests/test_schema_docs.py` checks that the
documentation and this declaration agree, so the code is the single source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

REQUIRED: Any = object()
"""Marker default: the column must be present and non-empty in every row."""

DType = Literal["str", "float", "int", "bool", "timestamp", "list"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    unit: str
    default: Any
    meaning: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Table:
    name: str
    file: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    meaning: str
    optional: bool = False
    # False for a table added after fingerprints were stored: absent or empty, it leaves a
    # scenario's fingerprint as it was (load.fingerprint)
    fingerprint_when_empty: bool = True

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(
    name: str,
    dtype: DType,
    unit: str,
    default: Any,
    meaning: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
) -> Column:
    return Column(name, dtype, unit, default, meaning, min, max, min_exclusive)


MANIFEST_FILE = "scenario.toml"

# Plausible ranges of the numbers in a scenario. A value outside is a typo or an attack,
# never a scenario worth a solve (a grid price of 1e308 CNY/MWh was once accepted and
# "solved" to an objective of 4.85e307). Each bound is generous, by an order of magnitude or
# more, over the largest real value known; money in CNY (other currencies are converted).
MAX_SITE_MW = 10_000.0  # MW: the largest campuses announced are ~5 GW
MAX_BATTERY_MWH = 100_000.0  # MWh: the largest grid batteries hold ~3 GWh
MAX_DEVICE_KW = 1000.0  # kW per device: a device may stand for a whole rack (NVL72: ~130 kW)
MAX_RELATIVE_THROUGHPUT = 1000.0  # x the reference device
MAX_DEVICES = 10_000_000  # devices: ~10x the largest clusters announced
MIN_PRICE_CNY_PER_MWH = -100_000.0  # CNY/MWh: ~-500 EUR/MWh, the EU day-ahead floor, x25
MAX_PRICE_CNY_PER_MWH = 1_000_000.0  # CNY/MWh: ~10x ERCOT's 5,000 USD/MWh price cap
MAX_CARBON_KG_PER_MWH = 2000.0  # kgCO2/MWh: lignite plants emit ~1,200
MAX_LATENCY_MS = 60_000.0  # ms: a minute; round trips on Earth stay under 1 s
MAX_WORK_DEVICE_HOURS = 1e10  # device-h: a million devices busy for over a year
MAX_DATA_GB = 1e9  # GB: an exabyte
MAX_LOST_HOURS = 10_000.0  # h: over a year
MAX_PRIORITY = 1e6  # -
MAX_JOB_PENALTY_CNY = 1e13  # CNY: ~the yearly revenue of the largest companies
MAX_PENALTY_CNY_PER_DEVICE_HOUR = 1e6  # CNY/device-h: a device-hour rents for ~10-50 CNY
MAX_PENALTY_CNY_PER_MTOKEN = 1e6  # CNY/Mtoken: a million tokens sell for ~1-100 CNY
MAX_DEVICE_TOKENS_PER_S = 1e7  # tokens/s per device: ~1,000x today's fastest
MAX_DEMAND_TOKENS_PER_S = 1e12  # tokens/s: ~1,000x today's largest public services
MAX_CARBON_PRICE_CNY_PER_T = 100_000.0  # CNY/tCO2: ~100x the highest traded carbon price
MAX_CARBON_BUDGET_T = 1e9  # tCO2: above the yearly emissions of any datacenter fleet
MAX_PLAN_STABILITY_WEIGHT = 1000.0  # -
MAX_TRANSFER_PRICE_CNY_PER_GB = 10_000.0  # CNY/GB: cloud egress costs ~0.5 CNY/GB
MAX_VIOLATION_PENALTY = 1e9  # CNY per MWh or per tCO2 missed: must dwarf every real price
MAX_HORIZON_HOURS = 366 * 24  # h: a leap year (8,784 h); the loader's check derives from it

SITES = Table(
    "sites",
    "sites.csv",
    ("site_id",),
    (
        _c("site_id", "str", "", REQUIRED, "unique site (datacenter) id"),
        _c("name", "str", "", "", "display name"),
        _c("hub", "str", "", "", "hub or market area the site belongs to (grouping only)"),
        _c(
            "zone",
            "str",
            "",
            "",
            "grid price and emission zone; what-if price changes can target it",
        ),
        _c(
            "residency_region",
            "str",
            "",
            "",
            "data-residency region; jobs' `allowed_regions` name these",
        ),
        _c("lat", "float", "deg", None, "latitude", min=-90, max=90),
        _c("lon", "float", "deg", None, "longitude", min=-180, max=180),
        _c(
            "pue",
            "float",
            "-",
            REQUIRED,
            "power usage effectiveness: facility power / IT power",
            min=1.0,
            max=3.0,
        ),
        _c(
            "grid_limit_mw",
            "float",
            "MW",
            REQUIRED,
            "grid connection limit on import",
            min=0,
            max=MAX_SITE_MW,
        ),
        _c(
            "battery_mwh",
            "float",
            "MWh",
            0.0,
            "battery energy capacity (0 = no battery)",
            min=0,
            max=MAX_BATTERY_MWH,
        ),
        _c(
            "battery_mw",
            "float",
            "MW",
            0.0,
            "battery charge and discharge power limit",
            min=0,
            max=MAX_SITE_MW,
        ),
        _c(
            "battery_efficiency",
            "float",
            "-",
            0.9,
            "battery round-trip efficiency",
            min=0,
            max=1,
            min_exclusive=True,
        ),
        _c(
            "battery_initial_soc",
            "float",
            "fraction",
            0.5,
            "state of charge at the start, as a share of battery_mwh; the end must be at least this",
            min=0,
            max=1,
        ),
        _c(
            "min_green_share",
            "float",
            "fraction",
            0.0,
            "minimum green energy / facility energy at this site over the horizon",
            min=0,
            max=1,
        ),
        # --- the site's green supply contract (issue 11); absent: an own asset priced by
        # the series' green_price_cny_per_mwh, which is how scenarios before contracts read
        _c(
            "green_contract",
            "str",
            "",
            "own",
            "how the site's green supply (site_series `green_available_mw`) is contracted: "
            "`own` (own asset or direct line 绿电直连, beside the grid connection), `ppa` "
            "(take-or-pay PPA delivered over the grid connection, sharing its limit), `trade` "
            "(fixed-volume green trade 绿电交易 over the grid connection: `green_available_mw` "
            "is the contracted volume, a shortfall is grid import, a surplus is sold)",
        ),
        _c(
            "green_payment_cny_per_mwh",
            "float",
            "CNY/MWh",
            0.0,
            "contract price paid on every available (ppa) or contracted (trade) MWh, used or "
            "not: a fixed cost, reported, never optimised",
            min=0,
            max=MAX_PRICE_CNY_PER_MWH,
        ),
        _c(
            "green_resale_cny_per_mwh",
            "float",
            "CNY/MWh",
            0.0,
            "value of a contracted green MWh not used (resale, or the deviation price a trade "
            "surplus is sold at); the marginal cost of using it",
            min=0,
            max=MAX_PRICE_CNY_PER_MWH,
        ),
    ),
    "One row per datacenter site.",
)

ACCELERATORS = Table(
    "accelerators",
    "accelerators.csv",
    ("accelerator",),
    (
        _c("accelerator", "str", "", REQUIRED, "accelerator type name, e.g. H100, Ascend-910B"),
        _c(
            "busy_kw",
            "float",
            "kW",
            REQUIRED,
            "power per device at load, its share of the server included",
            min=0,
            max=MAX_DEVICE_KW,
        ),
        _c(
            "idle_kw",
            "float",
            "kW",
            REQUIRED,
            "power per available idle device, server share included",
            min=0,
            max=MAX_DEVICE_KW,
        ),
        _c(
            "relative_throughput",
            "float",
            "-",
            1.0,
            "training throughput per device relative to the work unit of jobs (reference device = 1)",
            min=0,
            max=MAX_RELATIVE_THROUGHPUT,
            min_exclusive=True,
        ),
    ),
    "One row per accelerator type.",
)

FLEETS = Table(
    "fleets",
    "fleets.csv",
    ("site_id", "accelerator"),
    (
        _c("site_id", "str", "", REQUIRED, "site"),
        _c("accelerator", "str", "", REQUIRED, "accelerator type"),
        _c(
            "devices",
            "int",
            "devices",
            REQUIRED,
            "installed devices of this type at this site",
            min=0,
            max=MAX_DEVICES,
        ),
    ),
    "Installed devices per site and accelerator type.",
)

GREEN_QUANTILES: tuple[tuple[str, float], ...] = (("p10", 0.1), ("p90", 0.9))
"""Forecast quantiles of green supply carried beside its P50 (site_series
`green_available_mw`), low first: (name, level). The low one is what robust mode plans for
(policy `robust_green_quantile`), both bound the plan's `green_cases` (issue 12)."""
GREEN_LOW, GREEN_HIGH = GREEN_QUANTILES[0][0], GREEN_QUANTILES[-1][0]
ROBUST_LEVELS = {level: q for q, level in GREEN_QUANTILES if level < 0.5}
"""Levels robust mode may plan for (policy `robust_green_quantile`) and their quantile."""


def green_quantile_column(q: str) -> str:
    """site_series column of green quantile `q` (e.g. `p10`)."""
    return f"green_available_{q}_mw"


SITE_SERIES = Table(
    "site_series",
    "site_series.csv",
    ("site_id", "timestamp"),
    (
        _c("site_id", "str", "", REQUIRED, "site"),
        _c(
            "timestamp",
            "timestamp",
            "ISO 8601",
            REQUIRED,
            "hour start, with UTC offset (or local time in the scenario's zone)",
        ),
        _c(
            "grid_price_cny_per_mwh",
            "float",
            "CNY/MWh",
            REQUIRED,
            "grid energy price (time-of-use); negative in surplus hours of spot markets",
            min=MIN_PRICE_CNY_PER_MWH,
            max=MAX_PRICE_CNY_PER_MWH,
        ),
        _c(
            "grid_carbon_kg_per_mwh",
            "float",
            "kgCO2/MWh",
            REQUIRED,
            "grid carbon intensity",
            min=0,
            max=MAX_CARBON_KG_PER_MWH,
        ),
        _c(
            "green_available_mw",
            "float",
            "MW",
            REQUIRED,
            "contracted green (wind, solar, hydro) supply available",
            min=0,
            max=MAX_SITE_MW,
        ),
        _c(
            "green_price_cny_per_mwh",
            "float",
            "CNY/MWh",
            0.0,
            "cost of a contracted green MWh used (O&M; the contract's price is its fixed "
            "payment, sites.csv `green_payment_cny_per_mwh`)",
            min=MIN_PRICE_CNY_PER_MWH,
            max=MAX_PRICE_CNY_PER_MWH,
        ),
        _c(
            "grid_residual_kg_per_mwh",
            "float",
            "kgCO2/MWh",
            None,
            "residual-mix factor of grid import for contract-based emissions (the average "
            "without the green attributes sold to others); empty: the average "
            "`grid_carbon_kg_per_mwh` stands in, and the plan says so",
            min=0,
            max=MAX_CARBON_KG_PER_MWH,
        ),
        *(
            _c(
                green_quantile_column(q),
                "float",
                "MW",
                None,
                f"P{round(level * 100)} of the green supply forecast (`green_available_mw` is "
                "its P50); a scenario without the column, or an empty cell, has no band there: "
                "the quantile is the P50 (robust mode then keeps no headroom, and the plan's "
                "`green_cases` says so)",
                min=0,
                max=MAX_SITE_MW,
            )
            for q, level in GREEN_QUANTILES
        ),
    ),
    "Hourly series per site; every site covers every hour of the horizon exactly once. "
    "Green quantiles satisfy P10 <= P50 (`green_available_mw`) <= P90.",
)

AVAILABILITY = Table(
    "availability",
    "availability.csv",
    ("site_id", "accelerator", "timestamp"),
    (
        _c("site_id", "str", "", REQUIRED, "site"),
        _c("accelerator", "str", "", REQUIRED, "accelerator type"),
        _c("timestamp", "timestamp", "ISO 8601", REQUIRED, "hour start"),
        _c(
            "available_fraction",
            "float",
            "fraction",
            REQUIRED,
            "share of the installed devices available (maintenance, outages)",
            min=0,
            max=1,
        ),
    ),
    "Optional. Device availability per site, type and hour; a (site, type) pair listed must cover every hour; pairs not listed are fully available. Capacity = floor(devices x available_fraction).",
    optional=True,
)

LATENCY = Table(
    "latency",
    "latency.csv",
    ("site_id", "demand_region"),
    (
        _c("site_id", "str", "", REQUIRED, "site"),
        _c("demand_region", "str", "", REQUIRED, "region where inference users are"),
        _c(
            "latency_ms",
            "float",
            "ms",
            REQUIRED,
            "network round-trip latency from the site to the region",
            min=0,
            max=MAX_LATENCY_MS,
        ),
    ),
    "Latency from sites to demand regions; a missing pair means the site cannot serve that region.",
)

DEMAND_REGIONS = Table(
    "demand_regions",
    "demand_regions.csv",
    ("demand_region",),
    (
        _c("demand_region", "str", "", REQUIRED, "a region named in latency.csv"),
        _c("name", "str", "", "", "display name"),
        _c(
            "lat", "float", "deg", REQUIRED, "latitude of its representative point", min=-90, max=90
        ),
        _c(
            "lon",
            "float",
            "deg",
            REQUIRED,
            "longitude of its representative point",
            min=-180,
            max=180,
        ),
    ),
    "Optional. Where each demand region's users are (one representative point, e.g. its largest city), for maps; the planner does not read it.",
    optional=True,
    fingerprint_when_empty=False,
)

JOBS = Table(
    "jobs",
    "jobs.csv",
    ("job_id",),
    (
        _c("job_id", "str", "", REQUIRED, "unique job id"),
        _c("kind", "str", "", "batch", "training | finetune | batch"),
        _c(
            "accelerators",
            "list",
            "",
            REQUIRED,
            "acceptable accelerator types, `;`-separated; the whole gang uses one type",
        ),
        _c(
            "gang",
            "int",
            "devices",
            REQUIRED,
            "devices the job needs at once, all on one site",
            min=1,
            max=MAX_DEVICES,
        ),
        _c(
            "work_device_hours",
            "float",
            "device-h",
            REQUIRED,
            "work in reference device-hours (divided by relative_throughput on other types)",
            min=0,
            max=MAX_WORK_DEVICE_HOURS,
            min_exclusive=True,
        ),
        _c(
            "release",
            "timestamp",
            "ISO 8601",
            None,
            "earliest start (rounded up to the hour); empty = horizon start",
        ),
        _c(
            "deadline",
            "timestamp",
            "ISO 8601",
            REQUIRED,
            "work must be done by then (rounded down to the hour); may lie beyond the horizon",
        ),
        _c(
            "preemptible", "bool", "", True, "may pause between hours; false = one contiguous block"
        ),
        _c(
            "allowed_regions",
            "list",
            "",
            "",
            "`;`-separated residency regions the job may run in; empty = anywhere",
        ),
        _c(
            "data_origin_site",
            "str",
            "",
            "",
            "site where the job's data lives (transfer cost when run elsewhere)",
        ),
        _c(
            "data_gb",
            "float",
            "GB",
            0.0,
            "data to move when the job runs away from its data or is migrated",
            min=0,
            max=MAX_DATA_GB,
        ),
        _c("current_site", "str", "", "", "site where the job runs now (empty = not running)"),
        _c(
            "lost_hours_on_move",
            "float",
            "h",
            1.0,
            "run hours lost (checkpoint restore) when a running job moves",
            min=0,
            max=MAX_LOST_HOURS,
        ),
        _c(
            "priority",
            "float",
            "-",
            1.0,
            "multiplies the unplaced penalty",
            min=0,
            max=MAX_PRIORITY,
            min_exclusive=True,
        ),
        _c(
            "unplaced_penalty_cny",
            "float",
            "CNY",
            None,
            "cost of leaving the job unplaced; empty = policy rate x work x priority",
            min=0,
            max=MAX_JOB_PENALTY_CNY,
        ),
    ),
    "Training, fine-tuning and batch jobs.",
)

SERVICES = Table(
    "services",
    "services.csv",
    ("service_id",),
    (
        _c("service_id", "str", "", REQUIRED, "unique inference service id"),
        _c(
            "latency_limit_ms",
            "float",
            "ms",
            REQUIRED,
            "served only from sites within this latency of the user region",
            min=0,
            max=MAX_LATENCY_MS,
        ),
        _c(
            "unmet_penalty_cny_per_mtoken",
            "float",
            "CNY/Mtoken",
            None,
            "cost of demand left unserved; empty = policy default",
            min=0,
            max=MAX_PENALTY_CNY_PER_MTOKEN,
        ),
    ),
    "Inference services.",
)

SERVICE_THROUGHPUT = Table(
    "service_throughput",
    "service_throughput.csv",
    ("service_id", "accelerator"),
    (
        _c("service_id", "str", "", REQUIRED, "service"),
        _c("accelerator", "str", "", REQUIRED, "accelerator type able to serve it"),
        _c(
            "tokens_per_s_per_device",
            "float",
            "tokens/s",
            REQUIRED,
            "throughput of one device of this type for this service",
            min=0,
            max=MAX_DEVICE_TOKENS_PER_S,
            min_exclusive=True,
        ),
    ),
    "Per-device throughput of each service on each accelerator type; types not listed cannot serve it.",
)

SERVICE_DEMAND = Table(
    "service_demand",
    "service_demand.csv",
    ("service_id", "demand_region", "timestamp"),
    (
        _c("service_id", "str", "", REQUIRED, "service"),
        _c("demand_region", "str", "", REQUIRED, "region the requests come from"),
        _c("timestamp", "timestamp", "ISO 8601", REQUIRED, "hour start"),
        _c(
            "tokens_per_s",
            "float",
            "tokens/s",
            REQUIRED,
            "mean demand in that hour",
            min=0,
            max=MAX_DEMAND_TOKENS_PER_S,
        ),
    ),
    "Hourly demand per service and region; a (service, region) pair listed must cover every hour.",
)

GREEN_QUANTILE_COLUMNS = tuple(green_quantile_column(q) for q, _ in GREEN_QUANTILES)
"""site_series' green quantile columns, each a `Scenario` array of the same name."""

TABLES: tuple[Table, ...] = (
    SITES,
    ACCELERATORS,
    FLEETS,
    SITE_SERIES,
    AVAILABILITY,
    LATENCY,
    DEMAND_REGIONS,
    JOBS,
    SERVICES,
    SERVICE_THROUGHPUT,
    SERVICE_DEMAND,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}

# The manifest: top-level keys and [policy] keys. (key, type, unit, default, meaning)
MANIFEST_KEYS: tuple[Column, ...] = (
    _c("name", "str", "", REQUIRED, "scenario name"),
    _c("timezone", "str", "IANA", REQUIRED, "zone of the sites' local time, e.g. Asia/Shanghai"),
    _c("start", "timestamp", "ISO 8601", REQUIRED, "first hour of the horizon"),
    _c("hours", "int", "h", REQUIRED, "horizon length", min=1, max=MAX_HORIZON_HOURS),
    _c("description", "str", "", "", "free text"),
    _c(
        "currency",
        "str",
        "ISO 4217",
        "CNY",
        "currency of every money column (the `_cny` in their names predates other currencies) "
        "and of the plan's money figures",
    ),
)


def manifest_key(name: str) -> Column:
    """The manifest key `name`'s declaration (its type, unit and range)."""
    return next(k for k in MANIFEST_KEYS if k.name == name)


# Robustness to green forecast error (issue 12): plan for the low quantile of green supply.
POLICY_ROBUST: tuple[Column, ...] = (
    _c(
        "robust_green_quantile",
        "float",
        "quantile",
        None,
        "absent: plan on the green forecast's P50 only; a low level of `GREEN_QUANTILES` "
        "(0.1 = P10): keep every site-hour powerable when green comes in at that quantile "
        "(grid headroom where the plan leans on green beside the grid connection). The "
        "nightly plan sets 0.1 unless the scenario sets it",
        min=0,
        max=0.5,
    ),
)

# The policy a planner changes to ask "what if" (a what-if's overrides, a sweep's parameter
# and the CLI's policy options are derived from it), then the rates the model prices with.
POLICY_LEVERS: tuple[Column, ...] = (
    _c(
        "carbon_price_cny_per_t",
        "float",
        "CNY/tCO2",
        0.0,
        "price on contract-based emissions (grid import x intensity)",
        min=0,
        max=MAX_CARBON_PRICE_CNY_PER_T,
    ),
    _c(
        "min_green_share",
        "float",
        "fraction",
        0.0,
        "fleet-wide minimum green energy / facility energy",
        min=0,
        max=1,
    ),
    _c(
        "carbon_budget_t",
        "float",
        "tCO2",
        None,
        "cap on contract-based emissions over the horizon; absent = none",
        min=0,
        max=MAX_CARBON_BUDGET_T,
    ),
    _c(
        "plan_stability_weight",
        "float",
        "-",
        1.0,
        "multiplies the migration cost of running jobs; higher = fewer moves",
        min=0,
        max=MAX_PLAN_STABILITY_WEIGHT,
    ),
    *POLICY_ROBUST,
)

POLICY_RATES: tuple[Column, ...] = (
    _c(
        "transfer_price_cny_per_gb",
        "float",
        "CNY/GB",
        0.05,
        "price of moving a job's data between sites",
        min=0,
        max=MAX_TRANSFER_PRICE_CNY_PER_GB,
    ),
    _c(
        "lost_hour_cost_cny_per_device_hour",
        "float",
        "CNY/device-h",
        15.0,
        "value of a device-hour lost when a running job moves",
        min=0,
        max=MAX_PENALTY_CNY_PER_DEVICE_HOUR,
    ),
    _c(
        "unplaced_penalty_cny_per_device_hour",
        "float",
        "CNY/device-h",
        200.0,
        "default cost of leaving a job's work undone",
        min=0,
        max=MAX_PENALTY_CNY_PER_DEVICE_HOUR,
    ),
    _c(
        "unmet_penalty_cny_per_mtoken",
        "float",
        "CNY/Mtoken",
        100.0,
        "default cost of inference demand left unserved",
        min=0,
        max=MAX_PENALTY_CNY_PER_MTOKEN,
    ),
    _c(
        "green_shortfall_penalty_cny_per_mwh",
        "float",
        "CNY/MWh",
        20000.0,
        "cost per MWh by which a green-share minimum is missed (keeps the model feasible, reported as a violation)",
        min=0,
        max=MAX_VIOLATION_PENALTY,
    ),
    _c(
        "carbon_excess_penalty_cny_per_t",
        "float",
        "CNY/tCO2",
        20000.0,
        "cost per tonne above the carbon budget (reported as a violation)",
        min=0,
        max=MAX_VIOLATION_PENALTY,
    ),
    _c(
        "certificate_price_cny_per_mwh",
        "float",
        "CNY/MWh",
        None,
        "price of an unbundled green certificate (绿证/GEC, 1 MWh); absent = none on offer. "
        "Given, a green-share minimum counts annually: hourly-matched green plus "
        "certificates bought; absent, it counts hourly-matched green only",
        min=0,
        max=MAX_PRICE_CNY_PER_MWH,
    ),
)

# Churn: what starting an inference replica and pausing a job cost, and their limits
# (issue 12). Defaults are assumptions, with their grounds in data/sources/churn.csv.
POLICY_CHURN: tuple[Column, ...] = (
    _c(
        "replica_warmup_min",
        "float",
        "min",
        5.0,
        "minutes a newly started inference replica serves nothing while it loads its model; "
        "priced at lost_hour_cost_cny_per_device_hour per device started (assumed, "
        "data/sources/churn.csv)",
        min=0,
        max=600,
    ),
    _c(
        "replica_start_cost_cny",
        "float",
        "CNY/device",
        0.0,
        "further cost of each inference device started (e.g. image pull, cache fill)",
        min=0,
        max=MAX_PENALTY_CNY_PER_DEVICE_HOUR,
    ),
    _c(
        "replica_min_up_hours",
        "float",
        "h",
        1.0,
        "a device started for a service serves it at least this many hours (while it has "
        "demand it can serve from there); 1 = no minimum beyond the hour",
        min=1,
        max=168,
    ),
    _c(
        "checkpoint_min",
        "float",
        "min",
        5.0,
        "minutes a pausing job's whole gang spends writing its checkpoint (assumed, "
        "data/sources/churn.csv)",
        min=0,
        max=600,
    ),
    _c(
        "restore_min",
        "float",
        "min",
        10.0,
        "minutes a resuming job's whole gang spends restoring its checkpoint (assumed, "
        "data/sources/churn.csv); a pause costs (checkpoint + restore) / 60 x gang x "
        "lost_hour_cost_cny_per_device_hour",
        min=0,
        max=600,
    ),
    _c(
        "max_pauses_per_job",
        "float",
        "pauses",
        None,
        "cap on the pauses of one preemptible job within the horizon; absent = none",
        min=0,
        max=MAX_LOST_HOURS,  # at most one pause per hour
    ),
)

POLICY_KEYS: tuple[Column, ...] = POLICY_LEVERS + POLICY_RATES + POLICY_CHURN


@dataclass(frozen=True)
class Policy:
    """The scenario's policy, typed: one field per key of `POLICY_KEYS` above, same name, same
    default (tests/test_scenario_tables.py checks it). It lives beside its declaration so that
    a new policy parameter is one change here, its use in the planner (`optimizer/rules.py`
    or a model module) and its recomputation in the validator."""

    carbon_price_cny_per_t: float = 0.0
    min_green_share: float = 0.0
    carbon_budget_t: float | None = None
    plan_stability_weight: float = 1.0
    robust_green_quantile: float | None = None  # issue 12; POLICY_ROBUST
    transfer_price_cny_per_gb: float = 0.05
    lost_hour_cost_cny_per_device_hour: float = 15.0
    unplaced_penalty_cny_per_device_hour: float = 200.0
    unmet_penalty_cny_per_mtoken: float = 100.0
    green_shortfall_penalty_cny_per_mwh: float = 20000.0
    carbon_excess_penalty_cny_per_t: float = 20000.0
    certificate_price_cny_per_mwh: float | None = None
    # churn (issue 12; POLICY_CHURN)
    replica_warmup_min: float = 5.0
    replica_start_cost_cny: float = 0.0
    replica_min_up_hours: float = 1.0
    checkpoint_min: float = 5.0
    restore_min: float = 10.0
    max_pauses_per_job: float | None = None


JOB_KINDS = ("training", "finetune", "batch")
GREEN_CONTRACTS = ("own", "ppa", "trade")
"""Green supply contract forms (sites.csv `green_contract`)."""
GRID_DELIVERED_CONTRACTS = ("ppa", "trade")
"""Contract forms delivered over the grid connection, sharing its limit."""
