"""Generate a validated planning scenario from a region pack: its sites' hourly series for
any window, and a seeded synthetic workload of training/batch jobs and inference services.

`build_scenario` is deterministic: the same arguments give the same scenario (and the same
fingerprint). The workload's shape follows public GPU-cluster traces (heavy-tailed gang
sizes and durations, most jobs small, a few of hundreds of devices); its amount is set so
the fleet is busy (`TARGET_UTILISATION`) with inference about 73 % and training/batch about
27 % of device-hours. Latency-bound services stay near their users, so capacity near users
is contended in the evening peak while green supply and cheap power sit elsewhere or at
other hours: there is something for an optimizer to win. Nothing here is specific to a
region; every site, tariff and fleet comes from the pack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.forecast import TECHNOLOGIES, error_sigma_mw, green_quantiles
from optimizer.regions import RegionPack, load_region
from optimizer.scenario import Scenario, scenario_from_tables
from optimizer.scenario.schema import GREEN_QUANTILES, green_quantile_column
from optimizer.workloads import WORKLOADS, default_job_count, service_shape, trace_jobs

# --- workload mix ------------------------------------------------------------------------
# Inference is ~73 % and training/fine-tuning/batch ~27 % of AI accelerator demand (DESIGN.md,
# "The default world"), measured here in reference device-hours.
INFERENCE_SHARE = 0.73
# Fluid utilisation of the fleet the workload asks for over the horizon: the share of all
# device-hours (each workload on its own throughput scale) needed if work were spread evenly.
# With the evening inference peak at ~1.35x its mean, near-user capacity is scarce at peak.
TARGET_UTILISATION = 0.65

# --- jobs (shapes after public GPU-cluster traces: Philly, Jeon et al. ATC'19; Helios,
# Hu et al. SC'21; Alibaba PAI, Weng et al. NSDI'22: most jobs use 1-8 GPUs, a few hundreds;
# durations are heavy-tailed from minutes to weeks; the hour is our time step) ------------
KIND_SHARES = {"training": 0.20, "finetune": 0.35, "batch": 0.45}  # share of job count
# P(gang = 2**k) for k = 0, 1, 2, ...
GANG_LOG2_PROBS = {
    "training": (0, 0, 0, 0.30, 0.22, 0.16, 0.12, 0.09, 0.06, 0.03, 0.02),  # 8 .. 1024 devices
    "finetune": (0.15, 0.15, 0.20, 0.30, 0.10, 0.06, 0.04),  # 1 .. 64
    "batch": (0.45, 0.25, 0.20, 0.10),  # 1 .. 8
}
# run time on the fastest accepted type before scaling to the target utilisation: lognormal
DURATION_MEDIAN_H = {"training": 30.0, "finetune": 6.0, "batch": 2.0}
DURATION_SIGMA = {"training": 1.0, "finetune": 0.9, "batch": 1.0}
DURATION_MIN_H = {"training": 4.0, "finetune": 1.0, "batch": 1.0}
DURATION_MAX_H = {"training": 21 * 24.0, "finetune": 4 * 24.0, "batch": 2 * 24.0}
# deadline = release + duration x slack, slack = minimum + exponential(scale)
SLACK_MIN = {"training": 1.15, "finetune": 1.2, "batch": 1.3}
SLACK_SCALE = {"training": 0.8, "finetune": 1.0, "batch": 2.0}
NON_PREEMPTIBLE_SHARE = {"training": 0.25, "finetune": 0.30, "batch": 0.15}
DATA_GB_MEDIAN = {"training": 2000.0, "finetune": 200.0, "batch": 50.0}
DATA_GB_SIGMA = 1.0
# accelerator sets a job accepts, by kind: (rule, probability); rules in `_accelerator_set`
ACCELERATOR_SET_PROBS = {
    "training": (
        ("reference", 0.45),
        ("reference+best", 0.25),
        ("fast", 0.20),
        ("single_other", 0.10),
    ),
    "finetune": (("reference+best", 0.20), ("fast", 0.30), ("any", 0.40), ("single_other", 0.10)),
    "batch": (("fast", 0.20), ("any", 0.70), ("single_other", 0.10)),
}
FAST_MIN_RELATIVE_THROUGHPUT = 0.3  # "fast" = types at least this fast relative to the reference
RUNNING_SHARE = 0.12  # jobs already running at the horizon start
RUNNING_MAX_POOL_SHARE = 0.5  # running jobs hold at most this share of a site's pool of a type
RUNNING_SINCE_MAX_H = 72  # a running job started up to this long before the horizon
QUEUED_AT_START_SHARE = 0.25  # jobs already waiting at the start (release = start)
RELEASE_SPAN = 0.8  # other jobs arrive within this share of the horizon
# submissions by local hour: office hours dominate (trace papers show a daytime peak)
SUBMIT_WEIGHT_BY_HOUR = (
    0.3,
    0.2,
    0.2,
    0.2,
    0.2,
    0.3,
    0.5,
    0.8,
    1.2,
    1.6,
    1.8,
    1.7,
    1.3,
    1.5,
    1.8,
    1.8,
    1.7,
    1.5,
    1.2,
    1.0,
    0.9,
    0.8,
    0.6,
    0.4,
)
RESIDENCY_SHARE = 0.15  # jobs whose data may not leave their region
RESIDENCY_SECOND_REGION_SHARE = 0.3  # of those, allowed one more region
PRIORITIES = ((1.0, 0.80), (2.0, 0.15), (4.0, 0.05))  # (priority, probability)
LOST_HOURS_SMALL, LOST_HOURS_LARGE, LARGE_GANG = 1.0, 2.0, 64  # checkpoint restore after a move
SCALE_ITERATIONS = 4  # passes to reach the target work after clipping durations
# bounds on that scaling: beyond them the drawn run times would lose their trace-like shape,
# so a workload too small (or too large) for the fleet stays so, and utilisation differs
RUN_TIME_SCALE_BOUNDS = (1.0 / 8.0, 3.0)


# --- inference services ------------------------------------------------------------------
@dataclass(frozen=True)
class Tier:
    name: str
    id_prefix: str
    count_share: float  # share of the services
    demand_share: float  # share of inference device-hours
    latency_limit_ms: float
    unmet_penalty_cny_per_mtoken: float
    flat: float  # 0 = full diurnal swing, 1 = flat demand


# Latency limits (round trips as in the packs' latency.csv: access and equipment included):
# real-time (voice, code completion) needs the users' own or a neighbouring region (20 ms:
# ~650 km with the cn-edwc calibration); interactive chat tolerates one national backbone
# hop (30 ms: Beijing-Shanghai is 28.6 ms published); batch inference goes anywhere.
TIERS = (
    Tier("realtime", "rt", 0.30, 0.25, 20.0, 150.0, 0.0),
    Tier("interactive", "ia", 0.40, 0.40, 30.0, 100.0, 0.0),
    Tier("batch", "bi", 0.30, 0.35, 250.0, 40.0, 0.7),
)
# per-device decode throughput on the reference type (H100-class) by model class, tokens/s:
# assumption, order of magnitude of public vLLM / TensorRT-LLM serving benchmarks
MODEL_TOKENS_PER_S = {"small": 3000.0, "medium": 1000.0, "large": 400.0}
MODEL_CLASS_PROBS = {
    "realtime": (("small", 0.6), ("medium", 0.4)),
    "interactive": (("small", 0.3), ("medium", 0.5), ("large", 0.2)),
    "batch": (("medium", 0.5), ("large", 0.5)),
}
THROUGHPUT_JITTER = (0.8, 1.25)  # uniform factor per service (model and serving stack)
SERVICE_POPULARITY_SIGMA = 1.0  # lognormal weights of services within a tier
REGION_WEIGHT_SIGMA = 0.3  # lognormal spread of a service's regional mix
REGIONAL_SERVICE_SHARE = 0.2  # services used in one region only
STACK_LOCKED_SHARE = 0.35  # services that run only on the reference type's software stack
HOURLY_NOISE_SIGMA = 0.05  # lognormal hour-to-hour noise of demand
WEEKEND_FACTOR = 0.85  # weekend demand of user-facing services
# user demand by local hour, relative (evening peak at 21 h; night trough at 4 h): shaped
# like published diurnal traffic curves of consumer internet services (assumption)
DIURNAL_BY_HOUR = (
    0.75,
    0.55,
    0.42,
    0.35,
    0.32,
    0.33,
    0.40,
    0.55,
    0.75,
    0.92,
    1.00,
    1.00,
    0.92,
    0.95,
    1.00,
    1.00,
    0.98,
    0.95,
    0.95,
    1.00,
    1.08,
    1.12,
    1.05,
    0.92,
)
# latency-bound demand may take at most this share of a site's inference capacity at the
# peak hour: the rest stays for jobs and batch inference, so demand stays servable
LATENCY_BOUND_MAX_SITE_SHARE = 0.75

# --- site series and maintenance ---------------------------------------------------------
CARBON_MODES = ("hourly", "annual_avg")
MAINTENANCE_POOL_SHARE = 0.05  # share of (site, type) pools with a maintenance window
MAINTENANCE_OFFLINE_FRACTION = 0.125  # one node of eight out at a time
MAINTENANCE_HOURS = (4, 8)  # window length range, h
MAINTENANCE_START_HOURS = (1, 2, 3, 4)  # local start hours: the night trough
MIN_HOURS_FOR_MAINTENANCE = 24


# ============================================================================= entry point
def build_scenario(
    region: str | Path,
    start: str | pd.Timestamp,
    hours: int,
    n_jobs: int | None,
    n_services: int,
    seed: int,
    *,
    name: str | None = None,
    n_sites: int | None = None,
    carbon_mode: str = "hourly",
    workload: str = "default",
) -> Scenario:
    """A validated scenario: `hours` from `start` on the sites of `region` (a pack name or
    directory), with `n_jobs` jobs and `n_services` inference services drawn with `seed`.

    `n_sites` defaults to every site of the pack; fewer takes sites round-robin across the
    pack's site classes, more adds campuses (``<site>-c2``, ...) that copy a site.
    `carbon_mode` "hourly" uses the pack's hourly carbon profile, "annual_avg" the published
    annual factor in every hour. `workload` "trace-calibrated" draws the jobs and the
    inference shapes to published trace statistics (`optimizer.workloads`).
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    if n_jobs is None and workload == "default":
        raise ValueError("the default workload needs a number of jobs")
    if hours < 1 or (n_jobs or 0) < 0 or n_services < 0:
        raise ValueError("hours must be >= 1 and n_jobs, n_services >= 0")
    if carbon_mode not in CARBON_MODES:
        raise ValueError(f"carbon_mode must be one of {CARBON_MODES}")
    pack = load_region(region)
    start_ts = _start(start, pack.timezone)
    stamps = pd.date_range(start_ts, periods=hours, freq="h")
    iso = np.array([t.isoformat() for t in stamps], dtype=object)
    rng_jobs, rng_services, rng_maint = np.random.default_rng(seed).spawn(3)

    sites = select_sites(pack, n_sites)
    w = _World.make(pack, sites, stamps)
    tables: dict[str, pd.DataFrame] = {
        "sites": _sites_table(w),
        "accelerators": pack.accelerators[
            ["accelerator", "busy_kw", "idle_kw", "relative_throughput"]
        ].copy(),
        "fleets": w.fleets,
        "site_series": _site_series(w, iso, carbon_mode),
        "latency": w.latency[["site_id", "demand_region", "latency_ms"]],
        "demand_regions": pack.demand_regions[["demand_region", "name", "lat", "lon"]].copy(),
    }
    trace = workload == "trace-calibrated"
    if n_jobs is None:  # the trace's arrival rate on this fleet and horizon
        n_jobs = default_job_count(w, INFERENCE_SHARE)
    jobs, job_work = trace_jobs(w, rng_jobs, n_jobs) if trace else _jobs(w, rng_jobs, n_jobs)
    tables["jobs"] = jobs
    services, throughput, demand = _services(w, rng_services, n_services, job_work, iso, trace)
    tables["services"], tables["service_throughput"], tables["service_demand"] = (
        services,
        throughput,
        demand,
    )
    avail = _maintenance(w, rng_maint, iso)
    if len(avail):
        tables["availability"] = avail
    label = name or f"{pack.name}-{hours}h-{n_jobs}j-{n_services}s-seed{seed}"
    manifest = {
        "name": label,
        "timezone": pack.timezone,
        "start": start_ts.isoformat(),
        "hours": int(hours),
        "description": (
            f"Generated by optimizer.generator.build_scenario(region={pack.name!r}, "
            f"start={start_ts.isoformat()!r}, hours={hours}, n_jobs={n_jobs}, "
            f"n_services={n_services}, seed={seed}, n_sites={len(sites)}, carbon_mode={carbon_mode!r}"
            + (f", workload={workload!r}" if trace else "")
            + "). "
            f"{pack.title}."
        ),
        # the region's carbon price (e.g. its emissions-trading price), if the pack names one
        "policy": _policy(pack),
    }
    return scenario_from_tables(manifest, tables)


def _policy(pack: RegionPack) -> dict[str, float]:
    """The region's carbon price (e.g. its emissions-trading price) and, if the pack prices
    unbundled green certificates, their price: a site's green-share minimum (sites.csv
    `min_green_share`) then counts annually, certificates included."""
    fx = pack.fx_cny_per_unit
    policy = {"carbon_price_cny_per_t": float(pack.meta.get("carbon_price_local_per_t", 0.0)) * fx}
    if "certificate_price_local_per_mwh" in pack.meta:
        policy["certificate_price_cny_per_mwh"] = (
            float(pack.meta["certificate_price_local_per_mwh"]) * fx
        )
    return policy


def _start(start: str | pd.Timestamp, tz: str) -> pd.Timestamp:
    ts = pd.Timestamp(start)
    ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
    if ts != ts.floor("h"):
        raise ValueError(f"start {start} is not on the hour")
    return ts


# ============================================================================= sites
def select_sites(pack: RegionPack, n_sites: int | None) -> pd.DataFrame:
    """Pack sites, round-robin over site classes; beyond the pack, extra campuses of each site.

    Returns the sites' rows with `base_site_id` (the pack site whose data a campus copies).
    """
    base = pack.sites.copy()
    base["base_site_id"] = base["site_id"]
    n = len(base) if n_sites is None else int(n_sites)
    if n < 1:
        raise ValueError("n_sites must be >= 1")
    # round-robin order across classes, so a subset keeps the pack's east/west (core/edge) mix
    by_class = [list(g.index) for _, g in base.groupby("site_class", sort=False)]
    order: list[int] = []
    for i in range(max(len(g) for g in by_class)):
        order.extend(g[i] for g in by_class if i < len(g))
    rows: list[pd.Series] = []
    campus = 1
    while len(rows) < n:
        for idx in order:
            if len(rows) == n:
                break
            row = base.iloc[idx].copy()
            if campus > 1:
                row["site_id"] = f"{row['site_id']}-c{campus}"
                row["name"] = f"{row['name']} campus {campus}"
            rows.append(row)
        campus += 1
    out = pd.DataFrame(rows).reset_index(drop=True)
    if n <= len(base):
        # keep the pack's own order for readability
        out = out.sort_values(
            "site_id", key=lambda c: c.map({s: i for i, s in enumerate(base["site_id"])})
        ).reset_index(drop=True)
    return out


@dataclass(frozen=True, eq=False)
class _World:
    """The chosen sites with their fleets, latency and hourly window: the generator's input."""

    pack: RegionPack
    sites: pd.DataFrame
    stamps: pd.DatetimeIndex
    hoy: np.ndarray  # typical-year row of each hour
    base_pos: np.ndarray  # position of each site's base site in the pack
    fleets: pd.DataFrame
    devices: np.ndarray  # [site, accelerator]
    latency: pd.DataFrame
    latency_ms: np.ndarray  # [site, demand region]
    accels: tuple[str, ...]
    rel_train: np.ndarray
    rel_infer: np.ndarray
    stack: np.ndarray
    regions: tuple[str, ...]
    region_weight: np.ndarray

    @staticmethod
    def make(pack: RegionPack, sites: pd.DataFrame, stamps: pd.DatetimeIndex) -> _World:
        pos = {s: i for i, s in enumerate(pack.site_ids)}
        base_pos = sites["base_site_id"].map(pos).to_numpy()
        acc = pack.accelerators
        accels = tuple(acc["accelerator"])
        a_pos = {a: i for i, a in enumerate(accels)}
        base_dev = np.zeros((len(pack.site_ids), len(accels)), dtype=np.int64)
        fl = pack.fleets
        base_dev[fl["site_id"].map(pos).to_numpy(), fl["accelerator"].map(a_pos).to_numpy()] = fl[
            "devices"
        ].to_numpy()
        devices = base_dev[base_pos]
        si, ai = np.nonzero(devices)
        fleets = pd.DataFrame(
            {
                "site_id": sites["site_id"].to_numpy()[si],
                "accelerator": np.array(accels, dtype=object)[ai],
                "devices": devices[si, ai],
            }
        )
        regions = tuple(pack.demand_regions["demand_region"])
        r_pos = {r: i for i, r in enumerate(regions)}
        base_lat = np.full((len(pack.site_ids), len(regions)), np.inf)
        lt = pack.latency
        base_lat[lt["site_id"].map(pos).to_numpy(), lt["demand_region"].map(r_pos).to_numpy()] = lt[
            "latency_ms"
        ].to_numpy(dtype=float)
        lat_ms = base_lat[base_pos]
        s_idx, r_idx = np.nonzero(np.isfinite(lat_ms))
        latency = pd.DataFrame(
            {
                "site_id": sites["site_id"].to_numpy()[s_idx],
                "demand_region": np.array(regions, dtype=object)[r_idx],
                "latency_ms": lat_ms[s_idx, r_idx],
            }
        )
        weight = pack.demand_regions["weight"].to_numpy(dtype=float)
        return _World(
            pack=pack,
            sites=sites,
            stamps=stamps,
            hoy=pack.hour_of_year(stamps),
            base_pos=base_pos,
            fleets=fleets,
            devices=devices,
            latency=latency,
            latency_ms=lat_ms,
            accels=accels,
            rel_train=acc["relative_throughput"].to_numpy(dtype=float),
            rel_infer=acc["relative_inference_throughput"].to_numpy(dtype=float),
            stack=acc["software_stack"].astype(str).to_numpy(),
            regions=regions,
            region_weight=weight / weight.sum(),
        )

    @property
    def hours(self) -> int:
        return len(self.stamps)

    @property
    def local_hour(self) -> np.ndarray:
        return self.stamps.tz_convert(self.pack.timezone).hour.to_numpy()

    @property
    def ref(self) -> int:
        return self.accels.index(self.pack.reference_accelerator)


def _sites_table(w: _World) -> pd.DataFrame:
    """The sites with their green supply contract: the payment is the zone's green price
    plus the site's premium on every available MWh (own asset or direct line: its agreed
    price; ppa and trade: the contract price), fixed whatever the plan does."""
    s = w.sites
    zones = w.pack.grid_zones.set_index("zone_id")
    green_price = zones.loc[s["zone"], "green_price_cny_per_mwh"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "site_id": s["site_id"],
            "name": s["name"],
            "hub": s["hub"],
            "zone": s["zone"],
            "residency_region": s["residency_region"],
            "lat": s["lat"],
            "lon": s["lon"],
            "pue": s["pue"],
            "grid_limit_mw": s["grid_limit_mw"],
            "min_green_share": s["min_green_share"],
            "green_contract": s["green_contract"],
            "green_payment_cny_per_mwh": np.round(
                green_price + s["green_premium_cny_per_mwh"].to_numpy(dtype=float), 3
            ),
            "green_resale_cny_per_mwh": np.round(s["green_resale_cny_per_mwh"], 3),
        }
    )


def _site_series(w: _World, iso: np.ndarray, carbon_mode: str) -> pd.DataFrame:
    """Grid price (flat x TOU), carbon and contracted green supply per site-hour. A green
    MWh used costs nothing more (O&M ~0, `assumed`): its contract price is the site's fixed
    payment (sites table), not a price per MWh used."""
    pack, s = w.pack, w.sites
    zones = pack.grid_zones.set_index("zone_id")
    local = w.stamps.tz_convert(pack.timezone)
    month0, hour = local.month.to_numpy() - 1, local.hour.to_numpy()
    S, H = len(s), w.hours
    price = np.empty((S, H))
    carbon = np.empty((S, H))
    for i, zone_id in enumerate(s["zone"]):
        z = zones.loc[zone_id]
        price[i] = (
            z["flat_price_cny_per_mwh"]
            * pack.tou_multipliers(str(z["tou_scheme_id"]))[month0, hour]
        )
        if carbon_mode == "annual_avg":
            carbon[i] = z["ef_kg_per_mwh"]
    if carbon_mode == "hourly":
        carbon = pack.profile("carbon_kg_per_mwh")[w.base_pos][:, w.hoy]
    pv = pack.profile("pv_pu")[w.base_pos][:, w.hoy]
    wind = pack.profile("wind_pu")[w.base_pos][:, w.hoy]
    cap = {t: s[f"{t}_contract_mw"].to_numpy(dtype=float) for t in TECHNOLOGIES}
    green = cap["pv"][:, None] * pv + cap["wind"][:, None] * wind
    return pd.DataFrame(
        {
            "site_id": np.repeat(s["site_id"].to_numpy(dtype=object), H),
            "timestamp": np.tile(iso, S),
            "grid_price_cny_per_mwh": np.round(price, 3).reshape(-1),
            "grid_carbon_kg_per_mwh": np.round(carbon, 2).reshape(-1),
            "green_available_mw": np.round(green, 4).reshape(-1),
            "green_price_cny_per_mwh": np.zeros(S * H),
            **green_quantile_columns(pack, cap, pv, np.round(green, 4)),
        }
    )


def typical_site_series(
    region: str | Path | RegionPack,
    base_sites: dict[str, str],
    start: str | pd.Timestamp,
    hours: int,
    carbon_mode: str = "hourly",
) -> pd.DataFrame:
    """The pack's typical-year site series (the same as `build_scenario` writes) for
    `hours` from `start`, for scenario sites named by the pack site whose data each takes
    (`base_sites`: scenario site id -> pack site id)."""
    pack = region if isinstance(region, RegionPack) else load_region(region)
    base = pack.sites.set_index("site_id", drop=False).loc[list(base_sites.values())]
    sites = base.assign(
        site_id=list(base_sites), base_site_id=list(base_sites.values())
    ).reset_index(drop=True)
    stamps = pd.date_range(_start(start, pack.timezone), periods=hours, freq="h")
    iso = np.array([t.isoformat() for t in stamps], dtype=object)
    return _site_series(_World.make(pack, sites, stamps), iso, carbon_mode)


def green_quantile_columns(
    pack: RegionPack, cap: dict[str, np.ndarray], pv_pu: np.ndarray, p50: np.ndarray
) -> dict[str, np.ndarray]:
    """site_series' green quantile columns (flattened site-major) around the P50 `p50`
    [site, hour], from the pack's forecast error model (`optimizer.forecast`)."""
    sigma = error_sigma_mw(pack.forecast_error, cap, pv_pu, p50.shape[1])
    total = cap["pv"] + cap["wind"]
    qs = green_quantiles(p50, sigma, total, dict(GREEN_QUANTILES))
    return {green_quantile_column(q): np.round(v, 4).reshape(-1) for q, v in qs.items()}


# ============================================================================= jobs
def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names = [o[0] for o in options]
    p = np.array([o[1] for o in options], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _accelerator_set(w: _World, rule: str, rng: np.random.Generator) -> list[int]:
    ref = w.ref
    others = [a for a in np.argsort(-w.rel_train, kind="stable") if a != ref]
    if rule == "reference" or not others:
        return [ref]
    if rule == "reference+best":
        return [ref, int(others[0])]
    if rule == "fast":
        return [
            int(a) for a in range(len(w.accels)) if w.rel_train[a] >= FAST_MIN_RELATIVE_THROUGHPUT
        ]
    if rule == "single_other":
        return [int(rng.choice(others))]
    return list(range(len(w.accels)))  # "any"


def work_in_horizon(work: float, release_h: int, deadline_h: int, hours: int) -> float:
    """Reference device-hours due within the horizon (rolling-horizon pro-rata share, as in
    optimizer.rules.work_in_horizon; releases before the start count from the start)."""
    r = max(0, release_h)
    if deadline_h <= hours:
        return work
    return work * (hours - r) / (deadline_h - r)


def _capacity_scale(w: _World) -> tuple[float, float]:
    """Fleet throughput in reference devices: (training scale, inference scale)."""
    return float((w.devices * w.rel_train).sum()), float((w.devices * w.rel_infer).sum())


@dataclass
class _JobDraw:
    """One job's random draws, before its run time is scaled to the target utilisation."""

    kind: str
    gang: int
    accs: list[int]
    origin: int
    allowed: list[str]
    duration_h: float  # wall-clock run time on the fastest accepted type
    slack: float
    release_h: int  # relative to the horizon start; negative for running jobs
    current_site: str
    preemptible: bool
    data_gb: float
    priority: float


def _draw_jobs(w: _World, rng: np.random.Generator, n_jobs: int) -> list[_JobDraw]:
    H = w.hours
    S = len(w.sites)
    site_ids = w.sites["site_id"].astype(str).to_numpy()
    residency = w.sites["residency_region"].astype(str).to_numpy()
    res_regions = sorted(set(residency))
    origin_p = w.sites["data_origin_weight"].to_numpy(dtype=float)
    origin_p = origin_p / origin_p.sum() if origin_p.sum() > 0 else np.full(S, 1.0 / S)
    running_free = np.floor(w.devices * RUNNING_MAX_POOL_SHARE).astype(np.int64)
    submit = np.array(SUBMIT_WEIGHT_BY_HOUR)[w.local_hour]
    span = max(1, int(H * RELEASE_SPAN))
    submit_p = submit[:span] / submit[:span].sum()
    kinds = list(KIND_SHARES)
    kind_p = np.array([KIND_SHARES[k] for k in kinds])
    kind_p = kind_p / kind_p.sum()
    priorities = np.array([p for p, _ in PRIORITIES])
    priority_p = np.array([q for _, q in PRIORITIES])

    draws = []
    for _ in range(n_jobs):
        kind = kinds[int(rng.choice(len(kinds), p=kind_p))]
        probs = np.array(GANG_LOG2_PROBS[kind])
        gang = 2 ** int(rng.choice(len(probs), p=probs / probs.sum()))
        accs = _accelerator_set(w, _choice(rng, ACCELERATOR_SET_PROBS[kind]), rng)
        origin = int(rng.choice(S, p=origin_p))
        allowed: list[str] = []
        if rng.random() < RESIDENCY_SHARE:
            allowed = [str(residency[origin])]
            if rng.random() < RESIDENCY_SECOND_REGION_SHARE and len(res_regions) > 1:
                allowed.append(str(rng.choice([r for r in res_regions if r != allowed[0]])))
        ok_sites = np.array([not allowed or residency[s] in allowed for s in range(S)])
        # never larger than the largest pool it could use (the validator's rule), in powers of two
        cap = int(w.devices[np.ix_(ok_sites, np.array(accs))].max())
        gang = min(gang, 2 ** int(math.floor(math.log2(cap)))) if cap >= 1 else 1
        duration = float(
            np.exp(math.log(DURATION_MEDIAN_H[kind]) + DURATION_SIGMA[kind] * rng.standard_normal())
        )
        slack = SLACK_MIN[kind] + float(rng.exponential(SLACK_SCALE[kind]))
        current = ""
        u = rng.random()
        if u < RUNNING_SHARE:
            # running now on a site where its gang fits in the pool running jobs may hold
            fits = [
                (s, a) for s in np.flatnonzero(ok_sites) for a in accs if running_free[s, a] >= gang
            ]
            if fits:
                prefer = [f for f in fits if f[0] == origin]
                s, a = (
                    prefer[0]
                    if prefer and rng.random() < 0.5
                    else fits[int(rng.integers(len(fits)))]
                )
                running_free[s, a] -= gang
                current = str(site_ids[s])
                release = -int(rng.integers(1, RUNNING_SINCE_MAX_H + 1))
            else:
                release = 0
        elif u < RUNNING_SHARE + QUEUED_AT_START_SHARE:
            release = 0
        else:
            release = int(rng.choice(span, p=submit_p))
        draws.append(
            _JobDraw(
                kind=kind,
                gang=gang,
                accs=accs,
                origin=origin,
                allowed=allowed,
                duration_h=duration,
                slack=slack,
                release_h=release,
                current_site=current,
                preemptible=bool(rng.random() >= NON_PREEMPTIBLE_SHARE[kind]),
                data_gb=float(
                    np.exp(math.log(DATA_GB_MEDIAN[kind]) + DATA_GB_SIGMA * rng.standard_normal())
                ),
                priority=float(priorities[int(rng.choice(len(priorities), p=priority_p))]),
            )
        )
    return draws


def _realise(
    w: _World, draws: list[_JobDraw], scale: float
) -> tuple[list[tuple[float, int]], float]:
    """(work in reference device-hours, deadline hour) per job at a run-time scale, and the
    total work due within the horizon.

    A run time is wall-clock time on the fastest type the job accepts (as in the traces); its
    work in reference device-hours follows, and the deadline gives slack on that type.
    """
    out: list[tuple[float, int]] = []
    total = 0.0
    for d in draws:
        dur = float(np.clip(d.duration_h * scale, DURATION_MIN_H[d.kind], DURATION_MAX_H[d.kind]))
        start = max(0, d.release_h)
        deadline = start + math.ceil(dur * d.slack - 1e-9)
        work = round(d.gang * dur * float(w.rel_train[d.accs].max()), 4)
        out.append((work, deadline))
        total += work_in_horizon(work, start, deadline, w.hours)
    return out, total


def _jobs(w: _World, rng: np.random.Generator, n_jobs: int) -> tuple[pd.DataFrame, float]:
    """The jobs table and their reference device-hours due within the horizon."""
    cols = [
        "job_id",
        "kind",
        "accelerators",
        "gang",
        "work_device_hours",
        "release",
        "deadline",
        "preemptible",
        "allowed_regions",
        "data_origin_site",
        "data_gb",
        "current_site",
        "lost_hours_on_move",
        "priority",
    ]
    if n_jobs == 0:
        return pd.DataFrame(columns=cols), 0.0
    draws = _draw_jobs(w, rng, n_jobs)
    # scale run times so the jobs' share of the target utilisation is met (clipping to each
    # kind's range and the bounds make it approximate; the inference amount then follows
    # the exact total, so the mix is exact)
    cap_train, cap_infer = _capacity_scale(w)
    ratio = INFERENCE_SHARE / (1.0 - INFERENCE_SHARE)
    target = TARGET_UTILISATION * w.hours / (1.0 / cap_train + ratio / cap_infer)
    scale = 1.0
    for _ in range(SCALE_ITERATIONS):
        _, total = _realise(w, draws, scale)
        scale = float(np.clip(scale * target / max(total, 1e-9), *RUN_TIME_SCALE_BOUNDS))
    realised, total = _realise(w, draws, scale)

    site_ids = w.sites["site_id"].astype(str).to_numpy()
    start = w.stamps[0]
    rows = [
        {
            "job_id": f"job-{i + 1:05d}",
            "kind": d.kind,
            "accelerators": ";".join(w.accels[a] for a in d.accs),
            "gang": d.gang,
            "work_device_hours": work,
            "release": (start + pd.Timedelta(hours=d.release_h)).isoformat(),
            "deadline": (start + pd.Timedelta(hours=deadline)).isoformat(),
            "preemptible": "true" if d.preemptible else "false",
            "allowed_regions": ";".join(d.allowed),
            "data_origin_site": site_ids[d.origin],
            "data_gb": round(d.data_gb, 1),
            "current_site": d.current_site,
            "lost_hours_on_move": LOST_HOURS_LARGE if d.gang > LARGE_GANG else LOST_HOURS_SMALL,
            "priority": d.priority,
        }
        for i, (d, (work, deadline)) in enumerate(zip(draws, realised, strict=True))
    ]
    return pd.DataFrame(rows, columns=cols), total


# ============================================================================= services
def _services(
    w: _World,
    rng: np.random.Generator,
    n_services: int,
    job_work: float,
    iso: np.ndarray,
    trace_shapes: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Services, their per-type throughput and hourly demand per region (tokens/s); with
    `trace_shapes`, hourly shapes after inference traces (`optimizer.workloads`)."""
    H = w.hours
    svc_cols = ["service_id", "latency_limit_ms", "unmet_penalty_cny_per_mtoken"]
    if n_services == 0:
        return (
            pd.DataFrame(columns=svc_cols),
            pd.DataFrame(columns=["service_id", "accelerator", "tokens_per_s_per_device"]),
            pd.DataFrame(columns=["service_id", "demand_region", "timestamp", "tokens_per_s"]),
        )
    if job_work > 0:
        total = job_work * INFERENCE_SHARE / (1.0 - INFERENCE_SHARE)
    else:
        _, cap_infer = _capacity_scale(w)
        total = TARGET_UTILISATION * H * cap_infer
    # tiers by quota, then per-service draws
    counts = _quota([t.count_share for t in TIERS], n_services)
    tier_of: list[Tier] = [t for t, c in zip(TIERS, counts, strict=True) for _ in range(c)]
    popularity, tokens_ref, stack_locked, mix = _service_draws(w, rng, tier_of)
    dev_h = _service_device_hours(tier_of, popularity, total)
    per_region = dev_h[:, None] * mix  # [service, region] reference device-hours
    shapes = _service_shapes(w, rng, tier_of, trace_shapes)
    per_region = _cap_latency_bound(w, tier_of, per_region, shapes)

    return _service_tables(w, tier_of, tokens_ref, stack_locked, per_region, shapes, iso)


def _service_draws(
    w: _World, rng: np.random.Generator, tier_of: list[Tier]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each service's popularity, reference tokens/s, stack lock and [service, region] mix."""
    K, R = len(tier_of), len(w.regions)
    popularity = np.exp(SERVICE_POPULARITY_SIGMA * rng.standard_normal(K))
    tokens_ref = np.empty(K)
    stack_locked = np.zeros(K, dtype=bool)
    mix = np.zeros((K, R))
    for k, t in enumerate(tier_of):
        cls = _choice(rng, MODEL_CLASS_PROBS[t.name])
        tokens_ref[k] = MODEL_TOKENS_PER_S[cls] * rng.uniform(*THROUGHPUT_JITTER)
        stack_locked[k] = rng.random() < STACK_LOCKED_SHARE
        if rng.random() < REGIONAL_SERVICE_SHARE:
            mix[k, int(rng.choice(R, p=w.region_weight))] = 1.0
        else:
            mix[k] = w.region_weight * np.exp(REGION_WEIGHT_SIGMA * rng.standard_normal(R))
            mix[k] /= mix[k].sum()
    return popularity, tokens_ref, stack_locked, mix


def _service_device_hours(
    tier_of: list[Tier], popularity: np.ndarray, total_dev_h: float
) -> np.ndarray:
    """Reference device-hours per service: each tier's share of the total, split by popularity."""
    K = len(tier_of)
    # a tier with no services hands its share to the others
    present = [t for t in TIERS if t in tier_of]
    share_sum = sum(t.demand_share for t in present)
    dev_h = np.zeros(K)
    for t in present:
        ks = [k for k in range(K) if tier_of[k] is t]
        dev_h[ks] = total_dev_h * t.demand_share / share_sum * popularity[ks] / popularity[ks].sum()
    return dev_h


def _service_shapes(
    w: _World, rng: np.random.Generator, tier_of: list[Tier], trace_shapes: bool
) -> np.ndarray:
    """Each service's hourly demand shape [service, hour] (local time), mean 1 over the window."""
    H = w.hours
    K = len(tier_of)
    base = np.array(DIURNAL_BY_HOUR)[w.local_hour]
    weekend = np.where(
        w.stamps.tz_convert(w.pack.timezone).dayofweek.to_numpy() >= 5, WEEKEND_FACTOR, 1.0
    )
    shapes = np.empty((K, H))
    for k, t in enumerate(tier_of):
        s = (t.flat + (1.0 - t.flat) * base) * (weekend if t.flat < 1.0 else 1.0)
        if trace_shapes:
            s = service_shape(t.flat > 0, w.local_hour)
        s = s * np.exp(HOURLY_NOISE_SIGMA * rng.standard_normal(H))
        shapes[k] = s / s.mean()
    return shapes


def _service_tables(
    w: _World,
    tier_of: list[Tier],
    tokens_ref: np.ndarray,
    stack_locked: np.ndarray,
    per_region: np.ndarray,
    shapes: np.ndarray,
    iso: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The services, throughput and demand tables from the drawn per-service quantities."""
    H, K = w.hours, len(tier_of)
    demand_ref = per_region[:, :, None] * shapes[:, None, :] / H  # reference devices per hour
    tokens = demand_ref * tokens_ref[:, None, None]
    ids = []
    n_in_tier: dict[str, int] = {}
    for t in tier_of:
        n_in_tier[t.name] = n_in_tier.get(t.name, 0) + 1
        ids.append(f"{t.id_prefix}-{n_in_tier[t.name]:03d}")
    services = pd.DataFrame(
        {
            "service_id": ids,
            "latency_limit_ms": [t.latency_limit_ms for t in tier_of],
            "unmet_penalty_cny_per_mtoken": [t.unmet_penalty_cny_per_mtoken for t in tier_of],
        }
    )
    ref_stack = w.stack[w.ref]
    tp_rows = []
    for k in range(K):
        for a, acc in enumerate(w.accels):
            if stack_locked[k] and w.stack[a] != ref_stack:
                continue
            tp_rows.append((ids[k], acc, round(tokens_ref[k] * w.rel_infer[a], 3)))
    throughput = pd.DataFrame(
        tp_rows, columns=["service_id", "accelerator", "tokens_per_s_per_device"]
    )
    kk, rr = np.nonzero(per_region > 0)
    demand = pd.DataFrame(
        {
            "service_id": np.repeat(np.array(ids, dtype=object)[kk], H),
            "demand_region": np.repeat(np.array(w.regions, dtype=object)[rr], H),
            "timestamp": np.tile(iso, kk.size),
            "tokens_per_s": np.round(tokens[kk, rr].reshape(-1), 3),
        }
    )
    return services, throughput, demand


def _quota(shares: list[float], n: int) -> list[int]:
    """Largest-remainder split of n items by shares."""
    raw = np.array(shares) / sum(shares) * n
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - out.sum()]:
        out[i] += 1
    return [int(x) for x in out]


def _cap_latency_bound(
    w: _World, tier_of: list[Tier], per_region: np.ndarray, shapes: np.ndarray
) -> np.ndarray:
    """Keep latency-bound peak demand within what nearby sites can serve.

    Tightest tier first, each region's peak is spread over the sites within the tier's limit,
    each site giving at most `LATENCY_BOUND_MAX_SITE_SHARE` of its inference capacity; demand
    beyond that moves to the services of the loosest tier, so the inference total is kept.
    """
    per_region = per_region.copy()
    H = w.hours
    site_cap = LATENCY_BOUND_MAX_SITE_SHARE * (w.devices * w.rel_infer).sum(axis=1)
    loosest = max(TIERS, key=lambda t: t.latency_limit_ms)
    moved = 0.0
    for t in sorted({t for t in tier_of if t is not loosest}, key=lambda t: t.latency_limit_ms):
        ks = [k for k in range(len(tier_of)) if tier_of[k] is t]
        near = w.latency_ms <= t.latency_limit_ms  # [site, region]
        # regions with fewest nearby sites first: they have no alternatives
        for r in sorted(range(len(w.regions)), key=lambda r: near[:, r].sum()):
            peak = float((per_region[ks, r][:, None] * shapes[ks]).sum(axis=0).max()) / H
            if peak <= 0:
                continue
            avail = site_cap * near[:, r]
            room = float(avail.sum())
            keep = min(1.0, room / peak)
            if keep < 1.0:
                moved += float(per_region[ks, r].sum()) * (1.0 - keep)
                per_region[ks, r] *= keep
            used = peak * keep
            if room > 0:
                site_cap -= avail / room * used
    loose = [k for k in range(len(tier_of)) if tier_of[k] is loosest]
    if moved > 0 and loose:
        per_region[loose] += moved * per_region[loose] / per_region[loose].sum()
    return per_region


# ============================================================================= maintenance
def _maintenance(w: _World, rng: np.random.Generator, iso: np.ndarray) -> pd.DataFrame:
    """A few night-time maintenance windows: one node in eight of a pool offline."""
    cols = ["site_id", "accelerator", "timestamp", "available_fraction"]
    H = w.hours
    si, ai = np.nonzero(w.devices)
    n = int(round(MAINTENANCE_POOL_SHARE * si.size))
    starts = np.flatnonzero(np.isin(w.local_hour, MAINTENANCE_START_HOURS))
    if H < MIN_HOURS_FOR_MAINTENANCE or n == 0 or starts.size == 0:
        return pd.DataFrame(columns=cols)
    frames = []
    for p in rng.choice(si.size, size=n, replace=False):
        frac = np.ones(H)
        h0 = int(rng.choice(starts))
        length = int(rng.integers(MAINTENANCE_HOURS[0], MAINTENANCE_HOURS[1] + 1))
        frac[h0 : h0 + length] = 1.0 - MAINTENANCE_OFFLINE_FRACTION
        frames.append(
            pd.DataFrame(
                {
                    "site_id": w.sites["site_id"].iloc[si[p]],
                    "accelerator": w.accels[ai[p]],
                    "timestamp": iso,
                    "available_fraction": frac,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
