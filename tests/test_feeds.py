"""Forecast feeds, the pure part: reading feed documents (every problem named by file,
row or field, column and hour), the period forecasts of a carbon-intensity API averaged to
hours, the typical-year provider against the generator, and the choice of providers with
its fall backs. Values small enough to check by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from optimizer import feeds as of
from optimizer.feeds import (
    FeedError,
    FeedRequest,
    FixedProvider,
    HourlySeries,
    Provenance,
    TypicalYearProvider,
)
from optimizer.generator import build_scenario
from optimizer.regions import load_region

START = pd.Timestamp("2025-07-17T00:00+08:00")
AS_OF = pd.Timestamp("2025-07-16T01:30+08:00")
H = pd.Timedelta(hours=1)


def _problems(err: pytest.ExceptionInfo[FeedError]) -> list[dict[str, object]]:
    return [p.as_dict() for p in err.value.problems]


# ----------------------------------------------------------------------------- documents
def test_a_json_document_reads_into_series_with_provenance_and_quantiles() -> None:
    doc = {
        "provider": "grid-op",
        "issued_at": "2025-07-16T00:00+08:00",
        "series": [
            {
                "series": "green_available",
                "site_id": "a",
                "start": "2025-07-17T00:00+08:00",
                "values": [1, 2],
                "p10": [0.5, 1.5],
                "p90": [1.5, 2.5],
            },
            {
                "series": "inference_demand",
                "service_id": "chat",
                "demand_region": "east",
                "start": "2025-07-17T00:00+08:00",
                "values": [1000.0],
            },
        ],
    }
    green, demand = of.parse_json_document(json.dumps(doc), file="f.json", default_provider="x")
    assert (green.series, green.key, green.hours) == ("green_available", "a", 2)
    assert green.provenance == Provenance(
        "grid-op", pd.Timestamp("2025-07-16T00:00+08:00"), "f.json"
    )
    assert list(green.quantiles["p10"]) == [0.5, 1.5]
    assert green.horizon_h == 26  # issued at midnight the day before, ends 02:00
    assert demand.key == "chat/east" and list(demand.values) == [1000.0]


def test_a_bad_json_document_names_every_field_and_hour_and_yields_nothing() -> None:
    doc = {
        "issued_at": "2025-07-16T00:00+08:00",
        "series": [
            {
                "series": "grid_carbon",
                "site_id": "a",
                "start": "2025-07-17T00:00+08:00",
                "values": [500, "x", -1],
            },
            {"series": "wind", "site_id": "a"},
            {"series": "green_available", "start": "2025-07-17T00:00", "values": [1]},
            {
                "series": "green_available",
                "site_id": "b",
                "start": "2025-07-17T00:00+08:00",
                "values": [1, 2],
                "p10": [2, 1],
            },
        ],
    }
    with pytest.raises(FeedError) as err:
        of.parse_json_document(json.dumps(doc), file="f.json", default_provider="x")
    got = {(p["column"], p["hour"]) for p in _problems(err)}
    assert ("series[0].values[1]", "2025-07-17T01:00:00+08:00") in got
    assert ("series[0].values[2]", "2025-07-17T02:00:00+08:00") in got  # below 0 kg/MWh
    assert ("series[1].series", None) in got  # unknown series
    assert ("series[2].site_id", None) in got
    assert ("series[2].start", None) in got  # no UTC offset
    assert ("series[3].values[0]", "2025-07-17T00:00:00+08:00") in got  # p10 above the value
    assert all(p["file"] == "f.json" for p in _problems(err))


def test_the_long_csv_names_row_column_and_hour_of_a_gap_a_duplicate_and_a_bad_value() -> None:
    csv = (
        "series,site_id,timestamp,value,issued_at\n"
        "grid_price,a,2025-07-17T00:00+08:00,300,2025-07-16T00:00+08:00\n"
        "grid_price,a,2025-07-17T02:00+08:00,300,2025-07-16T00:00+08:00\n"  # 01:00 missing
        "grid_price,b,2025-07-17T00:00+08:00,300,2025-07-16T00:00+08:00\n"
        "grid_price,b,2025-07-17T00:00+08:00,301,2025-07-16T00:00+08:00\n"  # twice
        "grid_carbon,c,2025-07-17T00:00+08:00,nan,2025-07-16T00:00+08:00\n"
    )
    with pytest.raises(FeedError) as err:
        of.parse_csv_document(csv, file="drop.csv", default_provider="folder")
    got = {(p["row"], p["column"], p["hour"]) for p in _problems(err)}
    assert got == {
        (5, "value", "2025-07-17T00:00:00+08:00"),
        (2, "timestamp", "2025-07-17T01:00:00+08:00"),
        (4, "timestamp", "2025-07-17T00:00:00+08:00"),
    }


def test_a_scenario_format_table_gives_a_series_per_feed_column_and_needs_its_issue_time() -> None:
    csv = (
        "site_id,timestamp,grid_price_cny_per_mwh,grid_carbon_kg_per_mwh,green_available_mw,"
        "green_price_cny_per_mwh,green_available_p10_mw\n"
        "a,2025-07-17T00:00+08:00,300,500,1.5,0,1.0\n"
        "a,2025-07-17T01:00+08:00,310,510,2.5,0,2.0\n"
    )
    with pytest.raises(FeedError) as err:
        of.parse_csv_document(csv, file="site_series.csv", default_provider="folder")
    assert _problems(err)[0]["column"] == "issued_at"
    got = of.parse_csv_document(
        csv, file="site_series.csv", default_provider="folder", issued_at=AS_OF
    )
    by = {s.series: list(s.values) for s in got}
    assert by == {
        "grid_price": [300, 310],
        "grid_carbon": [500, 510],
        "green_available": [1.5, 2.5],
    }
    (green,) = (s for s in got if s.series == "green_available")
    assert list(green.quantiles["p10"]) == [1.0, 2.0] and "p90" not in green.quantiles


# ----------------------------------------------------------------------------- periods
def _periods(start: str, values: list[float], minutes: int = 30) -> dict[str, object]:
    t0 = pd.Timestamp(start)
    step = pd.Timedelta(minutes=minutes)
    return {
        "data": [
            {
                "from": (t0 + i * step).strftime("%Y-%m-%dT%H:%MZ"),
                "to": (t0 + (i + 1) * step).strftime("%Y-%m-%dT%H:%MZ"),
                "intensity": {"forecast": v, "actual": None, "index": "moderate"},
            }
            for i, v in enumerate(values)
        ]
    }


def test_half_hour_forecasts_average_to_hours_and_a_partial_first_hour_is_dropped() -> None:
    # from 23:30Z: the 23:00 hour is half covered (dropped), then 00:00 and 01:00 whole
    doc = _periods("2025-07-16T23:30Z", [999, 100, 200, 300, 100])
    prov = Provenance("http-pull", AS_OF, "http://x")
    s = of.parse_period_forecasts(
        json.dumps(doc), file="u", series="grid_carbon", key="a", provenance=prov
    )
    assert s.start == pd.Timestamp("2025-07-17T00:00Z")
    assert list(s.values) == [150.0, 200.0]


def test_a_missing_period_inside_the_forecast_is_named_by_its_hour() -> None:
    doc = _periods("2025-07-17T00:00Z", [100, 100, 100, 100, 100, 100])
    del doc["data"][3]  # type: ignore[attr-defined]  # 01:30-02:00 missing
    with pytest.raises(FeedError) as err:
        of.parse_period_forecasts(
            json.dumps(doc),
            file="u",
            series="grid_carbon",
            key="a",
            provenance=Provenance("p", AS_OF),
        )
    assert [p["hour"] for p in _problems(err)] == ["2025-07-17T01:00:00+00:00"]


# ----------------------------------------------------------------------------- typical year
def test_the_typical_year_provider_gives_the_generators_series_on_the_requested_dates() -> None:
    pack = load_region("cn-edwc")
    site = pack.site_ids[-1]
    sc = build_scenario("cn-edwc", START, 24, 0, 0, seed=1)
    i = sc.site_ids.index(site)
    req = FeedRequest(
        START,
        24,
        AS_OF,
        {"green_available": (site, f"{site}-c2"), "grid_price": (site,), "grid_carbon": (site,)},
    )
    got = {(s.series, s.key): s for s in TypicalYearProvider(pack).fetch(req).series}
    np.testing.assert_allclose(got[("grid_price", site)].values, sc.grid_price_cny_per_mwh[i])
    np.testing.assert_allclose(got[("grid_carbon", site)].values, sc.grid_carbon_kg_per_mwh[i])
    green = got[("green_available", site)].values
    np.testing.assert_allclose(green, sc.green_available_mw[i], atol=1e-4)
    np.testing.assert_allclose(got[("green_available", f"{site}-c2")].values, green)  # campus
    assert got[("green_available", site)].provenance.issued_at == AS_OF
    # the pack's forecast band comes along (a night must not plan robustly on a zero band)
    band = got[("green_available", site)].quantiles
    assert band["p10"] is not None and (band["p10"] < green - 1e-6).any()
    np.testing.assert_allclose(band["p10"], sc.green_available_p10_mw[i], atol=1e-4)
    np.testing.assert_allclose(band["p90"], sc.green_available_p90_mw[i], atol=1e-4)


def test_the_forecast_error_is_seeded_and_its_quantiles_bracket_the_forecast() -> None:
    pack = load_region("cn-edwc")
    site = pack.site_ids[0]
    req = FeedRequest(START, 48, AS_OF, {"green_available": (site,), "grid_price": (site,)})
    exact = {s.series: s for s in TypicalYearProvider(pack).fetch(req).series}

    def with_error(seed: int) -> dict[str, HourlySeries]:
        return {
            s.series: s for s in TypicalYearProvider(pack, error=0.1, seed=seed).fetch(req).series
        }

    a, b, c = with_error(1), with_error(1), with_error(2)
    np.testing.assert_array_equal(a["green_available"].values, b["green_available"].values)
    assert not np.allclose(a["green_available"].values, c["green_available"].values)
    np.testing.assert_array_equal(a["grid_price"].values, exact["grid_price"].values)  # a tariff
    g = a["green_available"]
    assert np.all(g.quantiles["p10"] <= g.values) and np.all(g.values <= g.quantiles["p90"])
    rel = (
        g.values[exact["green_available"].values > 0]
        / exact["green_available"].values[exact["green_available"].values > 0]
    )
    assert rel.min() > 0.5 and rel.max() < 1.5  # sigma 0.1: errors of a few tenths at most


def test_a_site_the_pack_does_not_know_is_reported() -> None:
    req = FeedRequest(START, 2, AS_OF, {"grid_carbon": ("nowhere",)})
    r = TypicalYearProvider("cn-edwc").fetch(req)
    assert r.series == () and "nowhere" in r.problems[0]


# ----------------------------------------------------------------------------- choice
def _series(
    provider: str, issued: pd.Timestamp, start: pd.Timestamp, values: list[float]
) -> HourlySeries:
    return HourlySeries(
        "grid_carbon", "a", start, np.array(values, dtype=float), Provenance(provider, issued)
    )


def test_stale_and_short_feeds_fall_back_in_rank_order_and_the_fall_back_is_said() -> None:
    req = FeedRequest(START, 2, AS_OF, {"grid_carbon": ("a", "b")})
    stale = _series("up", AS_OF - 30 * H, START, [1, 1])
    short = _series("http", AS_OF - H, START, [2])  # one hour of two
    good = _series("typ", AS_OF, START - H, [9, 3, 3, 9])
    future = _series("up", AS_OF + H, START, [7, 7])  # not issued yet at the night
    results = [
        FixedProvider("files", [stale, future]).fetch(req),
        FixedProvider("http-pull", [short], ["b: GET answered 500"]).fetch(req),
        FixedProvider("typical-year", [good]).fetch(req),
    ]
    res = of.resolve(req, results, max_age=24 * H)
    assert list(res.chosen[("grid_carbon", "a")].values) == [3, 3]  # good's window
    assert res.provider_of("grid_carbon", "b") == of.SCENARIO_PROFILE
    warn = "\n".join(res.warnings)
    assert "http-pull: b: GET answered 500" in warn
    assert "files is stale: issued" in warn and "30.0 h before" in warn
    assert "http-pull covers" in warn and "typ used instead" in warn
    assert res.report()["used"] == {"grid_carbon": {"scenario-profile": 1, "typ": 1}}


def test_the_newest_fresh_issue_wins_and_apply_writes_it_into_its_rows() -> None:
    req = FeedRequest(START, 2, AS_OF, {"grid_carbon": ("a",)})
    old = _series("up", AS_OF - 5 * H, START, [1, 1])
    new = _series("up", AS_OF - 2 * H, START, [4.25, 5.5])
    res = of.resolve(req, [FixedProvider("files", [old, new]).fetch(req)], max_age=24 * H)
    assert res.warnings == ()
    table = pd.DataFrame(
        {
            "site_id": ["a", "b", "a", "b"],
            "timestamp": [t.isoformat() for t in (START, START, START + H, START + H)],
            "grid_carbon_kg_per_mwh": ["500", "600", "500", "600"],
        }
    )
    out = of.apply({"site_series": table}, res)["site_series"]
    assert list(out["grid_carbon_kg_per_mwh"]) == ["4.25", "600", "5.5", "600"]
    assert list(table["grid_carbon_kg_per_mwh"]) == ["500", "600", "500", "600"]  # a copy


def test_quantiles_go_to_the_scenarios_quantile_columns_and_a_series_without_clears_them() -> None:
    spec = of.SERIES_BY_NAME["green_available"]
    assert spec.quantile_column("p10") == "green_available_p10_mw"  # the scenario's rule
    req = FeedRequest(START, 1, AS_OF, {"green_available": ("a", "b")})
    banded = HourlySeries(
        "green_available",
        "a",
        START,
        np.array([5.0]),
        Provenance("up", AS_OF),
        {"p10": np.array([4.0]), "p90": np.array([6.5])},
    )
    bare = HourlySeries("green_available", "b", START, np.array([3.0]), Provenance("up", AS_OF))
    res = of.resolve(req, [FixedProvider("files", [banded, bare]).fetch(req)], max_age=24 * H)
    table = pd.DataFrame(
        {
            "site_id": ["a", "b"],
            "timestamp": [START.isoformat()] * 2,
            "green_available_mw": ["1", "1"],
            "green_available_p10_mw": ["0.5", "0.5"],  # an older band, from the scenario
            "green_available_p90_mw": ["1.5", "1.5"],
        }
    )
    out = of.apply({"site_series": table}, res)["site_series"]
    assert out.to_dict("list") == {
        "site_id": ["a", "b"],
        "timestamp": [START.isoformat()] * 2,
        "green_available_mw": ["5.0", "3.0"],
        "green_available_p10_mw": ["4.0", ""],
        "green_available_p90_mw": ["6.5", ""],
    }
