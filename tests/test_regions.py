"""Region packs: the published figures the packs must reproduce (carbon means, tariff rules,
capacity factors, PUE caps) and the loader's checks."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from optimizer import regions
from optimizer.regions import RegionPackError, hour_of_year, load_region

PACKS = ("cn-edwc", "eu-west")
CARBON_TOLERANCE = 0.01  # annual mean within 1 % of the published factor (FACTS §8.6)
PV_CF_BOUNDS = (0.08, 0.20)  # issue 3: PV CF must end within this range
NDRC_MIN_PEAK_VALLEY = 3.0  # 发改价格〔2021〕1093号
EAST_PUE_CAP, WEST_PUE_CAP = 1.25, 1.20  # 发改高技〔2022〕211号; 庆阳 reply
PROGRAMME_HUB_LATENCY_MS = 20.0  # EDWC target between hubs (FACTS §1.1)
GUANGDONG_FLAT_CNY_PER_MWH = 689.3  # verified 1-10 kV non-TOU price, Sep 2025 (FACTS §2.1)
BEIJING_SHANGHAI_RTT_MS = (25.0, 30.0)  # published 28.6 ms (cn-edwc SOURCES.md); issue 11
HUB_GREEN_SHARE_TARGET = 0.8  # new hub data centres: green share > 80 % (cn-edwc SOURCES.md)


@pytest.fixture(scope="module", params=PACKS)
def pack(request: pytest.FixtureRequest) -> regions.RegionPack:
    return load_region(request.param)


def test_both_packs_are_found_by_name() -> None:
    assert set(PACKS) <= set(regions.available_regions())


def test_every_hourly_carbon_series_averages_to_its_published_factor(
    pack: regions.RegionPack,
) -> None:
    ef = pack.sites["zone"].map(pack.grid_zones.set_index("zone_id")["ef_kg_per_mwh"]).to_numpy()
    carbon = pack.profile("carbon_kg_per_mwh")
    mean = carbon.mean(axis=1)
    np.testing.assert_allclose(mean, ef, rtol=CARBON_TOLERANCE)
    # it is an hourly shape, not a constant, and stays within the clip range
    assert (carbon.std(axis=1) > 0).all()
    zones = pack.grid_zones.set_index("zone_id").loc[pack.sites["zone"]]
    assert (carbon.min(axis=1) >= zones["ci_floor_kg_per_mwh"].to_numpy() - 1e-9).all()
    assert (carbon.max(axis=1) <= zones["ef_fossil_kg_per_mwh"].to_numpy() + 1e-9).all()


def test_every_tou_scheme_covers_each_month_and_hour_and_meets_the_ratio_rule(
    pack: regions.RegionPack,
) -> None:
    for scheme in pack.tou_bands["scheme_id"].unique():
        m = pack.tou_multipliers(scheme)
        assert m.shape == (12, 24)
        assert np.isfinite(m).all() and (m > 0).all(), scheme
        ratio = m.max(axis=1) / m.min(axis=1)
        assert (ratio >= pack.min_peak_valley_ratio - 1e-9).all(), (scheme, ratio)
    assert set(pack.grid_zones["tou_scheme_id"]) <= set(pack.tou_bands["scheme_id"])


def test_china_tariffs_follow_ndrc_1093() -> None:
    pack = load_region("cn-edwc")
    assert pack.min_peak_valley_ratio >= NDRC_MIN_PEAK_VALLEY
    for scheme in pack.tou_bands["scheme_id"].unique():
        m = pack.tou_multipliers(scheme)
        assert (m.max(axis=1) / m.min(axis=1) >= NDRC_MIN_PEAK_VALLEY - 1e-9).all(), scheme
    # Guangdong verified bands: valley 0-8 at 0.38, peak 10-12 at 1.7, critical peak in July
    gd = pack.tou_multipliers("guangdong")
    assert gd[0, :8].tolist() == [0.38] * 8
    assert gd[0, 10] == pytest.approx(1.70)
    assert gd[6, 11] == pytest.approx(2.125)
    # flat prices: coal benchmark + one adder, calibrated on Guangdong
    zones = pack.grid_zones.set_index("zone_id")
    assert zones.loc["guangdong", "flat_price_cny_per_mwh"] == pytest.approx(
        GUANGDONG_FLAT_CNY_PER_MWH
    )
    assert (zones["green_price_cny_per_mwh"] < zones["flat_price_cny_per_mwh"]).all()


def test_pv_and_wind_capacity_factors_within_stated_ranges(pack: regions.RegionPack) -> None:
    cz = pack.climate_zones.set_index("climate_zone").loc[pack.sites["climate_zone"]]
    pv_cf = pack.profile("pv_pu").mean(axis=1)
    wind_cf = pack.profile("wind_pu").mean(axis=1)
    assert (pv_cf >= cz["pv_cf_min"].to_numpy() - 1e-4).all() and (
        pv_cf <= cz["pv_cf_max"].to_numpy() + 1e-4
    ).all()
    assert (pv_cf >= PV_CF_BOUNDS[0]).all() and (pv_cf <= PV_CF_BOUNDS[1]).all()
    assert (wind_cf >= cz["wind_cf_min"].to_numpy() - 1e-4).all() and (
        wind_cf <= cz["wind_cf_max"].to_numpy() + 1e-4
    ).all()
    # solar is zero at night: local midnight rows carry no output
    midnight = np.arange(0, regions.HOURS_PER_YEAR, 24)
    assert pack.profile("pv_pu")[:, midnight].max() == 0.0


def test_pue_within_caps(pack: regions.RegionPack) -> None:
    s = pack.sites
    capped = s.dropna(subset=["pue_cap"])
    le = capped[capped["pue_cap_rule"] == "le"]
    lt = capped[capped["pue_cap_rule"] == "lt"]
    assert (le["pue"] <= le["pue_cap"]).all()
    assert (lt["pue"] < lt["pue_cap"]).all()
    assert len(le) + len(lt) == len(capped)


def test_china_pue_caps_are_the_programme_s() -> None:
    s = load_region("cn-edwc").sites
    east, west = s[s["site_class"] == "east"], s[s["site_class"] == "west"]
    assert len(east) == 6 and len(west) == 4
    assert (east["pue"] <= EAST_PUE_CAP).all() and (east["pue_cap"] == EAST_PUE_CAP).all()
    assert (west["pue"] < WEST_PUE_CAP).all() and (west["pue_cap_rule"] == "lt").all()


def test_china_west_has_much_more_green_supply_and_reaches_users_within_the_programme_target() -> (
    None
):
    pack = load_region("cn-edwc")
    s = pack.sites.set_index("site_id")
    full = pack.facility_mw_at_full_load()
    green = s["pv_contract_mw"] * pack.profile("pv_pu").mean(axis=1) + s[
        "wind_contract_mw"
    ] * pack.profile("wind_pu").mean(axis=1)
    west = s["site_class"] == "west"
    west_share = green[west].sum() / full[west].sum()
    east_share = green[~west].sum() / full[~west].sum()
    assert west_share > 2 * east_share
    # west grid connections cannot run every device without green supply: contention
    assert (s.loc[west, "grid_limit_mw"] < full[west]).all()
    lat = pack.latency.pivot(index="site_id", columns="demand_region", values="latency_ms")
    # the programme's 20 ms is a backbone target between hubs: the fibre part of the round
    # trip, without the users' access networks
    backbone = pack.latency.pivot(index="site_id", columns="demand_region", values="backbone_ms")
    assert (backbone.loc[s.index[west]].min(axis=1) <= PROGRAMME_HUB_LATENCY_MS).all()
    # and the round trips match published ones: the YRD cluster (by Shanghai) to Beijing
    lo, hi = BEIJING_SHANGHAI_RTT_MS
    assert lo <= lat.loc["yrd_demo_zone", "north"] <= hi
    assert (lat.loc[s.index[west]].min(axis=1) <= lat.loc["yrd_demo_zone", "north"]).all()


def test_china_network_charges_differ_by_province_and_add_up() -> None:
    """The adder over the energy price is the province's T&D tariff + its funds + one
    calibrated rest; the loader derives the flat price from it."""
    zones = load_region("cn-edwc").grid_zones.set_index("zone_id")
    parts = zones[list(regions.PRICE_ADDER_PARTS)].sum(axis=1)
    np.testing.assert_allclose(parts, zones["price_adder_local_per_mwh"], atol=0.01)
    assert zones["price_td_local_per_mwh"].nunique() == len(zones)  # one per province
    assert (
        zones.loc["chongqing", "price_td_local_per_mwh"]
        > 2 * zones.loc["mengxi", "price_td_local_per_mwh"]
    )


def test_china_carbon_floor_follows_each_zone_s_mix() -> None:
    """No hour falls below the zone's must-run floor (half its annual factor), and the floor
    binds somewhere in the windy and sunny zones."""
    pack = load_region("cn-edwc")
    zones = pack.grid_zones.set_index("zone_id")
    np.testing.assert_allclose(
        zones["ci_floor_kg_per_mwh"], 0.5 * zones["ef_kg_per_mwh"], atol=0.051
    )
    carbon = pack.profile("carbon_kg_per_mwh")
    floor = zones.loc[pack.sites["zone"], "ci_floor_kg_per_mwh"].to_numpy()
    assert (carbon.min(axis=1) >= floor - 1e-9).all()
    assert np.isclose(carbon.min(axis=1), floor).any()


def test_china_hub_sites_carry_the_green_share_target_countable_with_certificates() -> None:
    pack = load_region("cn-edwc")
    assert (pack.sites["min_green_share"] == HUB_GREEN_SHARE_TARGET).all()
    assert float(pack.meta["certificate_price_local_per_mwh"]) > 0


def test_hour_of_year_maps_any_date_to_the_typical_year() -> None:
    tz = "Asia/Shanghai"
    ts = pd.to_datetime(
        [
            "2025-01-01T00:00+08:00",
            "2025-07-15T00:00+08:00",
            "2024-02-29T05:00+08:00",  # leap day reuses 28 February
            "2031-12-31T23:00+08:00",
            "2025-07-14T16:00Z",  # the same instant as 2025-07-15 00:00 local
        ],
        utc=True,
    )
    assert hour_of_year(ts, tz).tolist() == [0, 195 * 24, 58 * 24 + 5, 8759, 195 * 24]


def test_loader_reports_every_problem_of_a_broken_pack(tmp_path: Path) -> None:
    src = regions.regions_dir() / "cn-edwc"
    dst = tmp_path / "regions" / "broken"
    shutil.copytree(src, dst)
    sites = pd.read_csv(dst / "sites.csv")
    sites.loc[sites["site_id"] == "zhongwei", "pue"] = 1.2  # west cap is strictly below 1.2
    sites.loc[sites["site_id"] == "wuhu", "zone"] = "atlantis"
    sites.loc[sites["site_id"] == "tianfu", "min_green_share"] = 1.5
    sites.to_csv(dst / "sites.csv", index=False)
    zones = pd.read_csv(dst / "grid_zones.csv")
    zones.loc[zones["zone_id"] == "gansu", "price_td_local_per_mwh"] += 10.0
    zones.to_csv(dst / "grid_zones.csv", index=False)
    bands = pd.read_csv(dst / "tou_bands.csv")
    bands = bands[
        ~((bands["scheme_id"] == "sichuan") & (bands["month"] == 3) & (bands["hour"] == 7))
    ]
    bands.to_csv(dst / "tou_bands.csv", index=False)
    with pytest.raises(RegionPackError) as err:
        load_region(dst)
    text = "\n".join(err.value.problems)
    assert "pue 1.2 breaks its cap (lt 1.2)" in text
    assert "unknown zone 'atlantis'" in text
    assert "scheme sichuan does not cover 24 h" in text
    assert "min_green_share 1.5 outside [0, 1]" in text
    assert "price adder 255.96 != sum of its parts 265.96" in text


def test_data_dir_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(regions.regions_dir() / "eu-west", tmp_path / "regions" / "eu-copy")
    monkeypatch.setenv(regions.DATA_DIR_ENV, str(tmp_path))
    assert regions.available_regions() == ["eu-copy"]
    assert load_region("eu-copy").name == "eu-west"
    with pytest.raises(RegionPackError):
        load_region("cn-edwc")


def _build_module() -> ModuleType:
    """data/build/build_region.py (a script, not a package), loaded from its path."""
    import importlib.util

    path = regions.data_dir() / "build" / "build_region.py"
    spec = importlib.util.spec_from_file_location("build_region", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_latency_fit_recovers_route_factor_and_overhead_from_round_trips() -> None:
    """Pairs on the equator 0, 1 and 2 degrees apart (0, 111.2 and 222.4 km): with fibre at
    204 km/ms the light path is 2 x km / 204 = 0, 1.090 and 2.180 ms; round trips
    5 + 1.5 x that (5.0, 6.635, 8.270 ms) give back route factor 1.5 and overhead 5 ms."""
    build = _build_module()
    km = build.great_circle_km(np.zeros(3), np.zeros(3), np.zeros(3), np.array([0.0, 1.0, 2.0]))
    light = 2 * km / 204.0
    np.testing.assert_allclose(light, [0.0, 1.0900, 2.1800], atol=1e-3)
    cal = pd.DataFrame(
        {
            "lat_a": 0.0,
            "lon_a": 0.0,
            "lat_b": 0.0,
            "lon_b": [0.0, 1.0, 2.0],
            "rtt_ms": 5 + 1.5 * light,
        }
    )
    params = {"fibre_km_per_ms": 204.0, "route_factor": 1.25, "overhead_ms": 2.0}
    fit = build.fit_latency(cal, params)
    assert fit["route_factor"] == pytest.approx(1.5) and fit["overhead_ms"] == pytest.approx(5.0)
    assert fit["rms_error_ms"] == pytest.approx(0.0, abs=0.01)
    # no calibration: the stated parameters stand
    empty = cal.iloc[:0]
    assert build.fit_latency(empty, params) == params
    # the table then puts the fibre part in backbone_ms and adds the overhead
    sites = pd.DataFrame({"site_id": ["s"], "lat": [0.0], "lon": [0.0]})
    users = pd.DataFrame({"demand_region": ["r"], "lat": [0.0], "lon": [2.0]})
    row = build.latency_table(sites, users, fit).iloc[0]
    assert row["backbone_ms"] == pytest.approx(1.5 * 2.18, abs=0.05)
    assert row["latency_ms"] == pytest.approx(5.0 + 1.5 * 2.18, abs=0.05)
