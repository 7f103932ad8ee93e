"""Region packs: the sites, grid zones, tariffs, fleets, demand regions and typical-year
hourly profiles of one part of the world, read from a directory of CSV files.

A pack is found by name under the data directory (``<repo>/data/regions/<name>``, or
``$GREENOPT_DATA_DIR/regions/<name>``) or by path. Nothing here knows any particular
region: China's "East Data West Computing" clusters are one pack among others. The file
formats are described in data/REGIONS.md; every figure's source is in the pack's SOURCES.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from optimizer.forecast import TECHNOLOGIES
from optimizer.units import KW_PER_MW, W_PER_KW

DATA_DIR_ENV = "GREENOPT_DATA_DIR"
MANIFEST_FILE = "region.toml"
HOURS_PER_YEAR = 8760
MONTHS = 12
HOURS_PER_DAY = 24
# days before each month in a non-leap year: profiles are a typical (non-leap) year
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_DAYS_BEFORE_MONTH = np.concatenate([[0], np.cumsum(_DAYS_IN_MONTH)[:-1]])

# file -> required columns (extra columns, e.g. notes, are allowed and kept)
REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "sites.csv": (
            "site_id",
            "name",
            "hub",
            "site_class",
            "zone",
            "residency_region",
            "lat",
            "lon",
            "climate_zone",
            "pue",
            "pue_cap",
            "pue_cap_rule",
            "grid_limit_mw",
            "pv_contract_mw",
            "wind_contract_mw",
            "data_origin_weight",
            "source",
            "confidence",
        ),
        "grid_zones.csv": (
            "zone_id",
            "name",
            "ef_kg_per_mwh",
            "ef_confidence",
            "ef_fossil_kg_per_mwh",
            "ci_floor_kg_per_mwh",
            "wind_share",
            "solar_share",
            "price_basis_local_per_mwh",
            "price_basis_confidence",
            "price_adder_local_per_mwh",
            "green_price_local_per_mwh",
            "tou_scheme_id",
            "source",
        ),
        "climate_zones.csv": (
            "climate_zone",
            "pv_cf_target",
            "pv_cf_min",
            "pv_cf_max",
            "wind_cf_target",
            "wind_cf_min",
            "wind_cf_max",
            "source",
            "confidence",
        ),
        "tou_bands.csv": ("scheme_id", "month", "hour", "band", "multiplier"),
        "tou_schemes.csv": ("scheme_id", "name", "confidence", "source"),
        "accelerators.csv": (
            "accelerator",
            "name",
            "board_power_w",
            "node_overhead_factor",
            "idle_fraction",
            "relative_throughput",
            "relative_inference_throughput",
            "software_stack",
            "source",
        ),
        "fleets.csv": ("site_id", "accelerator", "devices"),
        "demand_regions.csv": ("demand_region", "lat", "lon", "weight", "source"),
        "latency.csv": ("site_id", "demand_region", "latency_ms"),
        "profiles_8760.csv": ("site_id", "hour_of_year", "pv_pu", "wind_pu", "carbon_kg_per_mwh"),
        "forecast_error.csv": ("technology", "lead_h", "sigma_pu", "source", "confidence"),
    }
)
MANIFEST_KEYS = ("name", "timezone", "currency", "fx_cny_per_unit", "min_peak_valley_ratio")


GREEN_CONTRACT_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "green_contract": "own",
        "green_premium_local_per_mwh": 0.0,
        "green_resale_local_per_mwh": 0.0,
        "min_green_share": 0.0,
    }
)
"""Optional sites.csv columns of a pack and their value when absent: the site's green supply
contract form (scenario schema `green_contract`), the premium over the zone's green price
its payment carries, the value of a curtailed MWh, and the site's minimum green share (a
policy target such as a share of green power required of hub data centres; scenario schema
`min_green_share`, counted with certificates when the pack prices them)."""

PRICE_ADDER_PARTS = (
    "price_td_local_per_mwh",
    "price_funds_local_per_mwh",
    "price_other_local_per_mwh",
)
"""Optional grid_zones.csv columns that break `price_adder_local_per_mwh` down (network
tariff, government funds, the rest); given, they must sum to it."""


def _green_contracts(sites: pd.DataFrame, fx: float) -> pd.DataFrame:
    """The sites' contract and green-share columns (defaults where the pack has none),
    money in CNY."""
    for col, default in GREEN_CONTRACT_DEFAULTS.items():
        if col not in sites.columns:
            sites[col] = default
        sites[col] = sites[col].fillna(default)
    sites["green_premium_cny_per_mwh"] = sites["green_premium_local_per_mwh"] * fx
    sites["green_resale_cny_per_mwh"] = sites["green_resale_local_per_mwh"] * fx
    return sites


class RegionPackError(ValueError):
    """A region pack is missing files or has inconsistent data; `problems` lists them all."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"region pack {path}: {len(self.problems)} problem(s):\n{lines}")


def data_dir() -> Path:
    """The data directory: $GREENOPT_DATA_DIR if set, else the repository's data/."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / "data"


def regions_dir() -> Path:
    return data_dir() / "regions"


def available_regions() -> list[str]:
    """Names of the packs in the data directory."""
    root = regions_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_FILE).is_file())


def resolve_region(region: str | Path) -> Path:
    """Directory of a pack given by name (in the data directory) or by path."""
    if isinstance(region, Path) or os.sep in str(region) or str(region).startswith("."):
        path = Path(region).expanduser().resolve()
    else:
        path = regions_dir() / str(region)
        if not path.is_dir() and Path(region).is_dir():
            path = Path(region).resolve()
    if not (path / MANIFEST_FILE).is_file():
        known = ", ".join(available_regions()) or "none"
        raise RegionPackError(path, [f"no {MANIFEST_FILE} here; packs in {regions_dir()}: {known}"])
    return path


def hour_of_year(timestamps: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """Row of a typical-year (non-leap, local wall-clock) profile for each timestamp.

    Any date of any year maps by its local month, day and hour; 29 February reuses 28
    February.
    """
    local = (
        timestamps.tz_convert(timezone)
        if timestamps.tz is not None
        else timestamps.tz_localize(timezone)
    )
    month = local.month.to_numpy() - 1
    day = np.minimum(local.day.to_numpy(), _DAYS_IN_MONTH[month])
    doy0 = _DAYS_BEFORE_MONTH[month] + day - 1
    return (doy0 * HOURS_PER_DAY + local.hour.to_numpy()).astype(np.int64)


@dataclass(frozen=True, eq=False)
class RegionPack:
    """One region pack, validated. Tables are shared between loads: treat them as read-only.

    Money: the pack's ``*_local_*`` columns are in ``currency``; the derived ``*_cny_*``
    columns are converted at ``fx_cny_per_unit``.
    """

    name: str
    path: Path
    title: str
    timezone: str
    currency: str
    fx_cny_per_unit: float
    min_peak_valley_ratio: float
    meta: Mapping[str, Any]
    sites: pd.DataFrame
    grid_zones: pd.DataFrame
    climate_zones: pd.DataFrame
    tou_bands: pd.DataFrame
    tou_schemes: pd.DataFrame
    accelerators: pd.DataFrame
    fleets: pd.DataFrame
    demand_regions: pd.DataFrame
    latency: pd.DataFrame
    profiles: pd.DataFrame = field(repr=False)
    # the green forecast's error model (optimizer.forecast): sigma per technology and lead
    forecast_error: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @cached_property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(self.sites["site_id"])

    @cached_property
    def reference_accelerator(self) -> str:
        """The type whose relative training throughput is 1: jobs' work unit."""
        acc = self.accelerators
        return str(acc.loc[np.isclose(acc["relative_throughput"], 1.0), "accelerator"].iloc[0])

    def profile(self, column: str) -> np.ndarray:
        """[site (in `sites` order), hour_of_year] array of a profile column."""
        return self._profile_arrays[column]

    @cached_property
    def _profile_arrays(self) -> Mapping[str, np.ndarray]:
        pos = {s: i for i, s in enumerate(self.site_ids)}
        si = self.profiles["site_id"].map(pos).to_numpy()
        hi = self.profiles["hour_of_year"].to_numpy()
        out = {}
        for col in ("pv_pu", "wind_pu", "carbon_kg_per_mwh"):
            arr = np.zeros((len(pos), HOURS_PER_YEAR))
            arr[si, hi] = self.profiles[col].to_numpy(dtype=float)
            arr.flags.writeable = False
            out[col] = arr
        return MappingProxyType(out)

    def tou_multipliers(self, scheme_id: str) -> np.ndarray:
        """[month 0..11, hour 0..23] price multipliers of a scheme."""
        return self._tou_arrays[scheme_id]

    @cached_property
    def _tou_arrays(self) -> Mapping[str, np.ndarray]:
        out = {}
        for scheme, g in self.tou_bands.groupby("scheme_id"):
            arr = np.full((MONTHS, HOURS_PER_DAY), np.nan)
            arr[g["month"].to_numpy() - 1, g["hour"].to_numpy()] = g["multiplier"].to_numpy(
                dtype=float
            )
            arr.flags.writeable = False
            out[str(scheme)] = arr
        return MappingProxyType(out)

    def hour_of_year(self, timestamps: pd.DatetimeIndex) -> np.ndarray:
        return hour_of_year(timestamps, self.timezone)

    def facility_mw_at_full_load(self) -> pd.Series:
        """Facility power of each site with every device busy (MW), indexed by site_id."""
        busy = self.accelerators.set_index("accelerator")["busy_kw"]
        kw = self.fleets["devices"] * self.fleets["accelerator"].map(busy)
        it_mw = kw.groupby(self.fleets["site_id"]).sum() / KW_PER_MW
        return (it_mw * self.sites.set_index("site_id")["pue"]).reindex(self.site_ids).fillna(0.0)


def load_region(region: str | Path) -> RegionPack:
    """Load and validate a region pack by name or path; raises `RegionPackError` listing every problem."""
    path = resolve_region(region)
    stamp = tuple(
        (f.name, f.stat().st_mtime_ns, f.stat().st_size)
        for f in sorted(path.iterdir())
        if f.is_file()
    )
    return _load(str(path), stamp)


@lru_cache(maxsize=8)
def _load(path_str: str, _stamp: tuple[tuple[str, int, int], ...]) -> RegionPack:
    # `_stamp` (file names, mtimes, sizes) makes an edited pack load afresh
    path = Path(path_str)
    problems: list[str] = []
    meta: dict[str, Any] = {}
    try:
        meta = tomllib.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{MANIFEST_FILE}: not valid TOML: {exc}")
    for key in MANIFEST_KEYS:
        if key not in meta:
            problems.append(f"{MANIFEST_FILE}: key {key!r} missing")
    tables: dict[str, pd.DataFrame] = {}
    for file, cols in REQUIRED_COLUMNS.items():
        fpath = path / file
        if not fpath.is_file():
            problems.append(f"{file}: file missing")
            continue
        df = pd.read_csv(fpath, keep_default_na=False, na_values=[""])
        missing = [c for c in cols if c not in df.columns]
        if missing:
            problems.append(f"{file}: columns missing: {', '.join(missing)}")
            continue
        tables[file] = df
    if problems:
        raise RegionPackError(path, problems)
    tz = str(meta["timezone"])
    try:
        pd.Timestamp("2000-01-01").tz_localize(tz)
    except Exception:  # zoneinfo and pytz raise different types for unknown zones
        raise RegionPackError(path, [f"{MANIFEST_FILE}: unknown timezone {tz!r}"]) from None
    fx = float(meta["fx_cny_per_unit"])

    sites = _green_contracts(tables["sites.csv"].copy(), fx)
    zones = tables["grid_zones.csv"].copy()
    zones["flat_price_cny_per_mwh"] = (
        zones["price_basis_local_per_mwh"] + zones["price_adder_local_per_mwh"]
    ) * fx
    zones["green_price_cny_per_mwh"] = zones["green_price_local_per_mwh"] * fx
    acc = tables["accelerators.csv"].copy()
    acc["busy_kw"] = acc["board_power_w"] / W_PER_KW * acc["node_overhead_factor"]
    acc["idle_kw"] = acc["busy_kw"] * acc["idle_fraction"]
    pack = RegionPack(
        name=str(meta["name"]),
        path=path,
        title=str(meta.get("title", meta["name"])),
        timezone=tz,
        currency=str(meta["currency"]),
        fx_cny_per_unit=fx,
        min_peak_valley_ratio=float(meta["min_peak_valley_ratio"]),
        meta=MappingProxyType(dict(meta)),
        sites=sites,
        grid_zones=zones,
        climate_zones=tables["climate_zones.csv"],
        tou_bands=tables["tou_bands.csv"],
        tou_schemes=tables["tou_schemes.csv"],
        accelerators=acc,
        fleets=tables["fleets.csv"],
        demand_regions=tables["demand_regions.csv"],
        latency=tables["latency.csv"],
        profiles=tables["profiles_8760.csv"],
        forecast_error=tables["forecast_error.csv"],
    )
    problems = check_pack(pack)
    if problems:
        raise RegionPackError(path, problems)
    return pack


def _unique(problems: list[str], file: str, df: pd.DataFrame, key: list[str]) -> None:
    dup = df.duplicated(subset=key, keep="first")
    for r in np.flatnonzero(dup.to_numpy())[:5]:
        vals = ", ".join(f"{k}={df[k].iloc[r]}" for k in key)
        problems.append(f"{file} row {r + 1}: duplicate key ({vals})")


def _refs(problems: list[str], file: str, values: pd.Series, known: set[str], what: str) -> None:
    for r, v in enumerate(values):
        if v not in known:
            problems.append(f"{file} row {r + 1}: unknown {what} {v!r}")


def check_pack(pack: RegionPack) -> list[str]:
    """Every inconsistency of a loaded pack (references, coverage, ranges, PUE caps)."""
    p: list[str] = []
    _check_pack_keys(p, pack)
    _check_pack_refs(p, pack)
    _check_pack_ranges(p, pack)
    _check_pack_coverage(p, pack)
    return p


def _check_pack_keys(p: list[str], pack: RegionPack) -> None:
    """Append a problem for each duplicated key in the pack's tables."""
    _unique(p, "sites.csv", pack.sites, ["site_id"])
    _unique(p, "grid_zones.csv", pack.grid_zones, ["zone_id"])
    _unique(p, "climate_zones.csv", pack.climate_zones, ["climate_zone"])
    _unique(p, "accelerators.csv", pack.accelerators, ["accelerator"])
    _unique(p, "fleets.csv", pack.fleets, ["site_id", "accelerator"])
    _unique(p, "demand_regions.csv", pack.demand_regions, ["demand_region"])
    _unique(p, "latency.csv", pack.latency, ["site_id", "demand_region"])
    _unique(p, "tou_bands.csv", pack.tou_bands, ["scheme_id", "month", "hour"])


def _check_pack_refs(p: list[str], pack: RegionPack) -> None:
    """Append a problem for each reference to a zone, scheme, site, type or region not defined."""
    s, z, cz = pack.sites, pack.grid_zones, pack.climate_zones
    site_ids = set(s["site_id"])
    accs = set(pack.accelerators["accelerator"])
    regions = set(pack.demand_regions["demand_region"])
    _refs(p, "sites.csv", s["zone"], set(z["zone_id"]), "zone")
    _refs(p, "sites.csv", s["climate_zone"], set(cz["climate_zone"]), "climate_zone")
    _refs(p, "grid_zones.csv", z["tou_scheme_id"], set(pack.tou_bands["scheme_id"]), "TOU scheme")
    _refs(
        p,
        "tou_schemes.csv",
        pack.tou_schemes["scheme_id"],
        set(pack.tou_bands["scheme_id"]),
        "TOU scheme",
    )
    _refs(p, "fleets.csv", pack.fleets["site_id"], site_ids, "site")
    _refs(p, "fleets.csv", pack.fleets["accelerator"], accs, "accelerator")
    _refs(p, "latency.csv", pack.latency["site_id"], site_ids, "site")
    _refs(p, "latency.csv", pack.latency["demand_region"], regions, "demand region")


def _check_pack_ranges(p: list[str], pack: RegionPack) -> None:
    """Append a problem for each value out of its range (PUE and its cap, signs, the work unit)."""
    s = pack.sites
    # PUE within the stated cap: `le` means <=, `lt` strictly below; an empty cap = none stated
    pue = s["pue"].to_numpy(dtype=float)
    cap = s["pue_cap"].to_numpy(dtype=float)
    rule = s["pue_cap_rule"].astype(str).to_numpy()
    for r in range(len(s)):
        if not 1.0 <= pue[r] < 3.0:
            p.append(f"sites.csv row {r + 1}: pue {pue[r]} outside [1, 3)")
        if np.isnan(cap[r]):
            continue
        if rule[r] not in ("le", "lt"):
            p.append(f"sites.csv row {r + 1}: pue_cap_rule {rule[r]!r} must be le or lt")
        elif (rule[r] == "le" and pue[r] > cap[r]) or (rule[r] == "lt" and pue[r] >= cap[r]):
            p.append(f"sites.csv row {r + 1}: pue {pue[r]} breaks its cap ({rule[r]} {cap[r]})")
    for col in ("grid_limit_mw", "pv_contract_mw", "wind_contract_mw", "data_origin_weight"):
        for bad in np.flatnonzero((s[col] < 0).to_numpy()):
            p.append(f"sites.csv row {bad + 1}: negative {col}")
    if (pack.fleets["devices"] < 0).any():
        p.append("fleets.csv: negative device count")
    ref = np.isclose(pack.accelerators["relative_throughput"], 1.0)
    if ref.sum() != 1:
        p.append(
            "accelerators.csv: exactly one type must have relative_throughput 1 (the work unit)"
        )
    elif not np.isclose(pack.accelerators.loc[ref, "relative_inference_throughput"].iloc[0], 1.0):
        p.append(
            "accelerators.csv: the reference type (relative_throughput 1) must have relative_inference_throughput 1"
        )
    if (pack.demand_regions["weight"] <= 0).any():
        p.append("demand_regions.csv: weights must be positive")
    share = s["min_green_share"].to_numpy(dtype=float)
    for bad in np.flatnonzero((share < 0) | (share > 1)):
        p.append(f"sites.csv row {bad + 1}: min_green_share {share[bad]} outside [0, 1]")
    _check_adder_parts(p, pack.grid_zones)
    _check_forecast_error(p, pack.forecast_error)


def _check_adder_parts(p: list[str], zones: pd.DataFrame) -> None:
    """Where a pack breaks the price adder down, the parts must add up to it."""
    parts = [c for c in PRICE_ADDER_PARTS if c in zones.columns]
    if not parts:
        return
    if len(parts) != len(PRICE_ADDER_PARTS):
        p.append(f"grid_zones.csv: adder parts need all of {', '.join(PRICE_ADDER_PARTS)}")
        return
    total = zones[parts].sum(axis=1).to_numpy(dtype=float)
    adder = zones["price_adder_local_per_mwh"].to_numpy(dtype=float)
    for bad in np.flatnonzero(~np.isclose(total, adder, atol=0.01)):
        p.append(
            f"grid_zones.csv row {bad + 1}: price adder {adder[bad]} != sum of its parts "
            f"{total[bad]:.2f}"
        )


def _check_forecast_error(p: list[str], fe: pd.DataFrame) -> None:
    """The error model names each technology, with non-negative spreads that grow (or
    stay) with lead time."""
    for tech in TECHNOLOGIES:
        rows = fe[fe["technology"] == tech].sort_values("lead_h")
        if rows.empty:
            p.append(f"forecast_error.csv: no rows for {tech}")
            continue
        sig = rows["sigma_pu"].to_numpy(dtype=float)
        if (sig < 0).any() or (rows["lead_h"] < 0).any():
            p.append(f"forecast_error.csv: negative lead_h or sigma_pu for {tech}")
        if (np.diff(sig) < 0).any():
            p.append(f"forecast_error.csv: sigma_pu of {tech} falls with lead time")


def _check_pack_coverage(p: list[str], pack: RegionPack) -> None:
    """Append a problem for each missing latency, TOU or profile row, and each bad profile value."""
    s = pack.sites
    site_ids = set(s["site_id"])
    # coverage: latency for every site x region, TOU for every month x hour, 8760 h per site
    have = set(zip(pack.latency["site_id"], pack.latency["demand_region"], strict=True))
    for sid in s["site_id"]:
        for reg in pack.demand_regions["demand_region"]:
            if (sid, reg) not in have:
                p.append(f"latency.csv: no row for site {sid}, region {reg}")
    for scheme, g in pack.tou_bands.groupby("scheme_id"):
        if (
            len(g) != MONTHS * HOURS_PER_DAY
            or set(g["month"]) != set(range(1, 13))
            or set(g["hour"]) != set(range(24))
        ):
            p.append(f"tou_bands.csv: scheme {scheme} does not cover 24 h in each of 12 months")
        if (g["multiplier"] <= 0).any():
            p.append(f"tou_bands.csv: scheme {scheme} has a non-positive multiplier")
    counts = pack.profiles.groupby("site_id")["hour_of_year"].nunique()
    for sid in s["site_id"]:
        if counts.get(sid, 0) != HOURS_PER_YEAR:
            p.append(
                f"profiles_8760.csv: site {sid} has {counts.get(sid, 0)} of {HOURS_PER_YEAR} hours"
            )
    _refs(p, "profiles_8760.csv", pd.Series(counts.index), site_ids, "site")
    prof = pack.profiles
    for col in ("pv_pu", "wind_pu"):
        if ((prof[col] < 0) | (prof[col] > 1)).any() or prof[col].isna().any():
            p.append(f"profiles_8760.csv: {col} outside [0, 1]")
    if (prof["carbon_kg_per_mwh"] < 0).any() or prof["carbon_kg_per_mwh"].isna().any():
        p.append("profiles_8760.csv: negative or missing carbon_kg_per_mwh")
