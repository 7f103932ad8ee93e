"""Build the derived tables of a region pack from its hand-kept inputs, reproducibly.

Writes into ``data/regions/<pack>/``:

- ``tou_bands.csv``: time-of-use multipliers expanded to month x hour, from
  ``data/build/inputs/<pack>/tou_rules.csv`` (half-hour rules averaged into hours);
- ``tou_schemes.csv``: one row per scheme with its confidence and source;
- ``latency.csv``: round-trip latency from each site to each demand region (distance model,
  its route factor and overhead fitted to published round trips where the pack gives them);
- ``profiles_8760.csv``: a typical year of hourly PV and wind output per unit of contracted
  capacity and grid carbon intensity, per site, in the pack's local wall-clock time;
- ``profiles_summary.csv``: the calibration of every site (capacity factors, carbon means).

Method (details and sources in data/REGIONS.md and each pack's SOURCES.md):

- PV: pvlib clear sky (Ineichen, Linke turbidity lookup, offline) on a fixed tilt facing the
  equator, PVWatts DC with Faiman cell temperature, system losses; then a seeded day-to-day
  cloudiness factor (Beta-distributed, AR(1) across days) and a scale so the annual capacity
  factor equals the climate zone's stated target exactly.
- Wind: a seeded hub-height wind speed series (Gaussian AR(1) mapped to a Weibull
  distribution, with diurnal and seasonal modulation) through windpowerlib's bundled power
  curve of a real turbine; the Weibull scale is solved so the capacity factor equals the target.
- Carbon: ``ef_fossil x (1 - local renewable share)``, scaled and clipped to
  [ci_floor, ef_fossil] so that its annual mean equals the published factor.

Run: ``python data/build/build_region.py cn-edwc`` (needs the ``data`` extra: pvlib,
windpowerlib). Same inputs, same seed: byte-identical outputs.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE.parent

HOURS_PER_YEAR = 8760
DAYS_PER_YEAR = 365
HOURS_PER_DAY = 24
SLOTS_PER_HOUR = 2  # TOU rules are given to the half hour (Ningxia's 18:30, 22:30)
STC_IRRADIANCE_W_M2 = 1000.0  # PV nameplate is rated at 1000 W/m2
WIND_BURN_IN_H = 500  # hours discarded so the AR(1) series starts in its stationary state
BISECTION_STEPS = 80
MIN_CLOUD_MEAN = 0.05  # Beta mean bounds keep the cloudiness distribution proper
MAX_CLOUD_MEAN = 0.95


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class PackInputs:
    """The hand-kept files of one pack and its build parameters."""

    pack_dir: Path
    region: dict[str, Any]
    build: dict[str, Any]
    sites: pd.DataFrame
    zones: pd.DataFrame
    climate: pd.DataFrame
    regions: pd.DataFrame
    tou_rules: pd.DataFrame
    latency_calibration: pd.DataFrame  # city pairs with a published round trip (may be empty)


def read_inputs(pack: str, data_dir: Path) -> PackInputs:
    pack_dir = data_dir / "regions" / pack
    inputs_dir = data_dir / "build" / "inputs" / pack
    if not pack_dir.is_dir():
        raise SystemExit(f"no region pack at {pack_dir}")
    return PackInputs(
        pack_dir=pack_dir,
        region=tomllib.loads((pack_dir / "region.toml").read_text(encoding="utf-8")),
        build=tomllib.loads((inputs_dir / "build.toml").read_text(encoding="utf-8")),
        sites=pd.read_csv(pack_dir / "sites.csv"),
        zones=pd.read_csv(pack_dir / "grid_zones.csv"),
        climate=pd.read_csv(pack_dir / "climate_zones.csv"),
        regions=pd.read_csv(pack_dir / "demand_regions.csv"),
        tou_rules=pd.read_csv(inputs_dir / "tou_rules.csv", dtype=str),
        latency_calibration=(
            pd.read_csv(cal)
            if (cal := inputs_dir / "latency_calibration.csv").is_file()
            else pd.DataFrame(columns=["lat_a", "lon_a", "lat_b", "lon_b", "rtt_ms"])
        ),
    )


# ----------------------------------------------------------------------------- TOU
def _months(spec: str) -> list[int]:
    """'1-12', '7-9', '1;12' -> month numbers."""
    out: list[int] = []
    for part in spec.split(";"):
        part = part.strip()
        if "-" in part:
            a, b = (int(x) for x in part.split("-"))
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    return out


def _slots(spec: str) -> list[int]:
    """'08:00-11:00;18:30-22:30' -> half-hour slot numbers 0..47."""
    out: list[int] = []
    for part in spec.split(";"):
        a, b = (x.strip() for x in part.split("-"))
        ha, ma = (int(x) for x in a.split(":"))
        hb, mb = (int(x) for x in b.split(":"))
        sa = ha * SLOTS_PER_HOUR + ma // 30
        sb = hb * SLOTS_PER_HOUR + mb // 30
        if sb <= sa:
            raise ValueError(f"TOU period {part!r} must not wrap midnight; split it in two")
        out.extend(range(sa, sb))
    return out


def expand_tou(rules: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Month x hour bands per scheme. Later rules override earlier ones (critical peaks)."""
    bands_rows = []
    scheme_rows = []
    for scheme, group in rules.groupby("scheme_id", sort=False):
        band = np.full((12, HOURS_PER_DAY * SLOTS_PER_HOUR), "", dtype=object)
        mult = np.full(band.shape, np.nan)
        for r in group.to_dict("records"):
            for m in _months(str(r["months"])):
                s = _slots(str(r["hours"]))
                band[m - 1, s] = r["band"]
                mult[m - 1, s] = float(r["multiplier"])
        if np.isnan(mult).any():
            m, s = np.argwhere(np.isnan(mult))[0]
            raise ValueError(f"TOU scheme {scheme}: month {m + 1} slot {s / 2:.1f} h not covered")
        for m in range(12):
            for h in range(HOURS_PER_DAY):
                sl = slice(h * SLOTS_PER_HOUR, (h + 1) * SLOTS_PER_HOUR)
                names = list(dict.fromkeys(band[m, sl]))  # ordered, unique
                bands_rows.append(
                    (scheme, m + 1, h, "/".join(names), round(float(mult[m, sl].mean()), 6))
                )
        first = group.iloc[0]
        scheme_rows.append(
            {
                "scheme_id": scheme,
                "name": first.scheme_name,
                "confidence": "; ".join(dict.fromkeys(group["confidence"])),
                "source": first.source,
            }
        )
    bands = pd.DataFrame(bands_rows, columns=["scheme_id", "month", "hour", "band", "multiplier"])
    return bands, pd.DataFrame(scheme_rows)


# ----------------------------------------------------------------------------- latency
def great_circle_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    earth_radius_km = 6371.0
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * earth_radius_km * np.arcsin(np.sqrt(a))


def fit_latency(cal: pd.DataFrame, p: dict[str, Any]) -> dict[str, float]:
    """Route factor and overhead fitted (least squares) to published round-trip times.

    Model: rtt = overhead_ms + route_factor x 2 x great-circle km / fibre_km_per_ms. The
    calibration table (``latency_calibration.csv``) holds city pairs with a published RTT;
    without one, or with fewer than two distinct distances, ``build.toml`` values stand.
    """
    out = {k: float(v) for k, v in p.items() if isinstance(v, int | float)}
    if cal.empty:
        return out
    km = great_circle_km(
        cal["lat_a"].to_numpy(float),
        cal["lon_a"].to_numpy(float),
        cal["lat_b"].to_numpy(float),
        cal["lon_b"].to_numpy(float),
    )
    if np.unique(np.round(km)).size < 2:
        return out
    x = 2.0 * km / out["fibre_km_per_ms"]  # ms of light in fibre along the great circle
    slope, intercept = np.polyfit(x, cal["rtt_ms"].to_numpy(float), 1)
    if slope < 1.0 or intercept < 0.0:
        raise ValueError(
            f"latency calibration gives route factor {slope:.2f} < 1 or overhead "
            f"{intercept:.2f} ms < 0: check latency_calibration.csv"
        )
    out["route_factor"], out["overhead_ms"] = round(float(slope), 3), round(float(intercept), 2)
    fitted = out["overhead_ms"] + out["route_factor"] * x
    out["rms_error_ms"] = round(float(np.sqrt(np.mean((fitted - cal["rtt_ms"]) ** 2))), 2)
    return out


def latency_table(sites: pd.DataFrame, regions: pd.DataFrame, p: dict[str, float]) -> pd.DataFrame:
    """Round trip = overhead (access, equipment, serving) + the fibre route's flight time;
    ``backbone_ms`` is the fibre part alone (what a hub-to-hub target compares with)."""
    s = sites.loc[sites.index.repeat(len(regions))].reset_index(drop=True)
    r = pd.concat([regions] * len(sites), ignore_index=True)
    km = great_circle_km(
        s["lat"].to_numpy(), s["lon"].to_numpy(), r["lat"].to_numpy(), r["lon"].to_numpy()
    )
    backbone = 2.0 * p["route_factor"] * km / p["fibre_km_per_ms"]
    return pd.DataFrame(
        {
            "site_id": s["site_id"],
            "demand_region": r["demand_region"],
            "distance_km": np.round(km, 0),
            "backbone_ms": np.round(backbone, 1),
            "latency_ms": np.round(p["overhead_ms"] + backbone, 1),
        }
    )


# ----------------------------------------------------------------------------- time
def typical_year_instants(tz: str, year: int, offset_minutes: int) -> pd.DatetimeIndex:
    """The instants of the 8760 local wall-clock hours of `year` (+ offset), tz-aware.

    Hour-of-year h is wall-clock hour h of a non-leap year in the pack's zone; across a
    daylight-saving gap the missing wall-clock hour is shifted forward, across the repeated
    hour the summer-time instant is used.
    """
    naive = pd.date_range(f"{year}-01-01", periods=HOURS_PER_YEAR, freq="h") + pd.Timedelta(
        minutes=offset_minutes
    )
    return naive.tz_localize(
        tz, nonexistent="shift_forward", ambiguous=np.ones(HOURS_PER_YEAR, dtype=bool)
    )


# ----------------------------------------------------------------------------- PV
def clear_sky_pv(lat: float, lon: float, tz: str, year: int, p: dict[str, float]) -> np.ndarray:
    """Clear-sky AC output per unit of DC nameplate, hourly (mid-hour sun position)."""
    import pvlib

    times = typical_year_instants(tz, year, offset_minutes=30)
    loc = pvlib.location.Location(
        lat, lon, tz=tz, altitude=pvlib.location.lookup_altitude(lat, lon)
    )
    cs = loc.get_clearsky(times, model="ineichen")
    sp = loc.get_solarposition(times)
    tilt = min(abs(lat), p["max_tilt_deg"])
    azimuth = 180.0 if lat >= 0 else 0.0
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, sp["apparent_zenith"], sp["azimuth"], cs["dni"], cs["ghi"], cs["dhi"]
    )
    poa_global = poa["poa_global"].fillna(0.0).clip(lower=0.0)
    t_cell = pvlib.temperature.faiman(poa_global, p["air_temp_c"], p["wind_speed_m_s"])
    dc = pvlib.pvsystem.pvwatts_dc(poa_global, t_cell, pdc0=1.0, gamma_pdc=p["temp_coeff_per_k"])
    ac = np.asarray(dc, dtype=float) * (1.0 - p["system_losses"])
    return np.clip(ac, 0.0, 1.0)


def _ar1(rng: np.random.Generator, n: int, phi: float, burn_in: int) -> np.ndarray:
    """Standard-normal AR(1) series (stationary variance 1)."""
    eps = rng.standard_normal(n + burn_in)
    z = np.empty_like(eps)
    z[0] = eps[0]
    innov = np.sqrt(1.0 - phi * phi)
    for t in range(1, z.size):
        z[t] = phi * z[t - 1] + innov * eps[t]
    return z[burn_in:]


def _scale_to_mean(values: np.ndarray, target: float, cap: float) -> tuple[np.ndarray, float]:
    """alpha such that mean(min(alpha x values, cap)) == target (monotone: bisection)."""
    lo, hi = 0.0, 1.0
    while np.minimum(values * hi, cap).mean() < target:
        hi *= 2.0
        if hi > 1e6:
            raise ValueError(f"cannot reach mean {target} under cap {cap}")
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if np.minimum(values * mid, cap).mean() < target:
            lo = mid
        else:
            hi = mid
    alpha = 0.5 * (lo + hi)
    return np.minimum(values * alpha, cap), alpha


def pv_profile(clear: np.ndarray, cz: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Clear sky x seeded daily cloudiness, scaled to the zone's target capacity factor."""
    target = float(cz["pv_cf_target"])
    mean_ratio = float(np.clip(target / clear.mean(), MIN_CLOUD_MEAN, MAX_CLOUD_MEAN))
    nu = float(cz["pv_cloud_concentration"])
    z = _ar1(rng, DAYS_PER_YEAR, float(cz["pv_cloud_ar1"]), burn_in=30)
    daily = stats.beta.ppf(stats.norm.cdf(z), mean_ratio * nu, (1.0 - mean_ratio) * nu)
    hourly = clear * np.repeat(daily, HOURS_PER_DAY)
    out, _ = _scale_to_mean(hourly, target, cap=1.0)
    return out


# ----------------------------------------------------------------------------- wind
def wind_profile(
    cz: pd.Series, p: dict[str, Any], tz: str, year: int, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Per-unit output of the turbine on a seeded Weibull wind series; returns (pu, scale m/s)."""
    from windpowerlib import WindTurbine
    from windpowerlib.power_output import power_curve

    turbine = WindTurbine(turbine_type=str(p["turbine_type"]), hub_height=float(p["hub_height_m"]))
    curve_ws = turbine.power_curve["wind_speed"].to_numpy(dtype=float)
    curve_w = turbine.power_curve["value"].to_numpy(dtype=float)
    nominal_w = float(turbine.nominal_power)

    k = float(cz["wind_weibull_k"])
    z = _ar1(rng, HOURS_PER_YEAR, float(cz["wind_hourly_ar1"]), burn_in=WIND_BURN_IN_H)
    unit_weibull = (-np.log1p(-stats.norm.cdf(z).clip(0.0, 1.0 - 1e-12))) ** (1.0 / k)
    times = typical_year_instants(tz, year, offset_minutes=0)
    hour = times.hour.to_numpy()
    doy = np.repeat(np.arange(1, DAYS_PER_YEAR + 1), HOURS_PER_DAY)
    diurnal = 1.0 + float(cz["wind_diurnal_amplitude"]) * np.cos(
        2 * np.pi * (hour - float(cz["wind_diurnal_peak_hour"])) / HOURS_PER_DAY
    )
    seasonal = 1.0 + float(cz["wind_seasonal_amplitude"]) * np.cos(
        2 * np.pi * (doy - float(cz["wind_seasonal_peak_doy"])) / DAYS_PER_YEAR
    )
    shape = unit_weibull * diurnal * seasonal

    def cf(scale: float) -> np.ndarray:
        return np.asarray(power_curve(shape * scale, curve_ws, curve_w), dtype=float) / nominal_w

    target = float(cz["wind_cf_target"])
    lo, hi = 0.5, 20.0  # m/s: far below and above any CF target of interest
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if cf(mid).mean() < target:
            lo = mid
        else:
            hi = mid
    scale = 0.5 * (lo + hi)
    return np.clip(cf(scale), 0.0, 1.0), scale


# ----------------------------------------------------------------------------- carbon
def carbon_profile(pv: np.ndarray, wind: np.ndarray, zone: pd.Series) -> np.ndarray:
    """Hourly grid intensity whose annual mean equals the published factor (FACTS §8.4)."""
    ef = float(zone["ef_kg_per_mwh"])
    fossil = float(zone["ef_fossil_kg_per_mwh"])
    floor = float(zone["ci_floor_kg_per_mwh"])
    if not floor < ef < fossil:
        raise ValueError(
            f"zone {zone['zone_id']}: need ci_floor < ef < ef_fossil, got {floor}, {ef}, {fossil}"
        )
    re_share = float(zone["wind_share"]) * wind / max(wind.mean(), 1e-9) + float(
        zone["solar_share"]
    ) * pv / max(pv.mean(), 1e-9)
    raw = fossil * (1.0 - np.minimum(re_share, 1.0))
    raw = np.maximum(raw, 1e-6)  # keeps the scaling monotone where local RE covers all load
    lo, hi = 0.0, fossil / raw.min()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if np.clip(raw * mid, floor, fossil).mean() < ef:
            lo = mid
        else:
            hi = mid
    return np.clip(raw * 0.5 * (lo + hi), floor, fossil)


# ----------------------------------------------------------------------------- main
def site_rng(seed: int, site_id: str) -> np.random.Generator:
    """One stream per site, independent of the order and number of sites."""
    return np.random.default_rng([seed, zlib.crc32(site_id.encode("utf-8"))])


def build(pack: str, data_dir: Path = DATA_DIR) -> None:
    inp = read_inputs(pack, data_dir)
    pack_dir = inp.pack_dir
    cfg = inp.build
    zones = inp.zones.set_index("zone_id")
    climate = inp.climate.set_index("climate_zone")
    tz = str(inp.region["timezone"])
    year = int(cfg["typical_year"])
    seed = int(cfg["seed"])

    bands, schemes = expand_tou(inp.tou_rules)
    bands.to_csv(pack_dir / "tou_bands.csv", index=False)
    schemes.to_csv(pack_dir / "tou_schemes.csv", index=False)

    fit = fit_latency(inp.latency_calibration, cfg["latency"])
    print("latency model:", fit)
    lat = latency_table(inp.sites, inp.regions, fit)
    lat.to_csv(pack_dir / "latency.csv", index=False)

    frames = []
    summary = []
    for s in inp.sites.to_dict("records"):
        site_id = str(s["site_id"])
        cz = climate.loc[s["climate_zone"]]
        zone = pd.concat([zones.loc[s["zone"]], pd.Series({"zone_id": s["zone"]})])
        pv_rng, wind_rng = site_rng(seed, site_id).spawn(2)
        clear = clear_sky_pv(float(s["lat"]), float(s["lon"]), tz, year, cfg["pv"])
        pv = pv_profile(clear, cz, pv_rng)
        wind, scale = wind_profile(cz, cfg["wind"], tz, year, wind_rng)
        pv, wind = np.round(pv, 4), np.round(wind, 4)
        carbon = np.round(carbon_profile(pv, wind, zone), 1)
        frames.append(
            pd.DataFrame(
                {
                    "site_id": site_id,
                    "hour_of_year": np.arange(HOURS_PER_YEAR),
                    "pv_pu": pv,
                    "wind_pu": wind,
                    "carbon_kg_per_mwh": carbon,
                }
            )
        )
        summary.append(
            {
                "site_id": site_id,
                "pv_cf_clearsky": round(float(clear.mean()), 4),
                "pv_cf": round(float(pv.mean()), 4),
                "wind_cf": round(float(wind.mean()), 4),
                "wind_weibull_scale_m_s": round(scale, 3),
                "carbon_mean_kg_per_mwh": round(float(carbon.mean()), 2),
                "carbon_min_kg_per_mwh": float(carbon.min()),
                "carbon_max_kg_per_mwh": float(carbon.max()),
                "ef_published_kg_per_mwh": float(zone["ef_kg_per_mwh"]),
            }
        )
    pd.concat(frames, ignore_index=True).to_csv(pack_dir / "profiles_8760.csv", index=False)
    summ = pd.DataFrame(summary)
    summ.to_csv(pack_dir / "profiles_summary.csv", index=False)
    print(summ.to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pack", nargs="+", help="region pack name(s), e.g. cn-edwc eu-west")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help="the data/ directory")
    args = ap.parse_args(argv)
    for pack in args.pack:
        print(f"== {pack}")
        build(pack, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
