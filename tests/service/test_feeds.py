"""Forecast feeds in the service, on SQLite and PostgreSQL: documents uploaded over the
API (a bad one refused naming file, row or field, column and hour, and nothing stored),
the watched folder, and period forecasts pulled over real HTTP from a server the test
starts; a rolled night takes each series from the first good feed, falls back from a
missing, failing or stale one, keeps the choice with its scenario version and says it in
its plan's summary."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from service import nightly, plans, scenarios
from service.bootstrap import prepare_database
from service.db import Database
from service.execution import execute_run
from service.models import FeedSeries, Plan, Run, ScenarioVersion
from service.settings import Settings
from tests.service.helpers import BACKENDS, fresh_database, make_settings

UTC = dt.UTC
NIGHT_1 = dt.datetime(2025, 7, 15, 17, 30, tzinfo=UTC)  # 01:30 on the 16th in Shanghai
WINDOW_1 = pd.Timestamp("2025-07-17T00:00+08:00")  # its window (boundary 00:00, 24 h)
ISSUED = "2025-07-15T12:00:00Z"  # 5.5 h before night 1; 29.5 h before night 2


def carbon_doc(site: str, start: pd.Timestamp, values: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "provider": "grid-op",
        "issued_at": ISSUED,
        "series": [
            {
                "series": "grid_carbon",
                "site_id": site,
                "start": start.isoformat(),
                "values": values,
                **extra,
            }
        ],
    }


# ----------------------------------------------------------------------------- the API
def test_an_uploaded_document_is_stored_with_its_provenance(
    admin: httpx.Client, viewer: httpx.Client
) -> None:
    doc = carbon_doc("nx-west", WINDOW_1, [400.0] * 24, p10=[380.0] * 24, p90=[420.0] * 24)
    r = admin.post("/feeds", params={"file_name": "carbon.json"}, json=doc)
    assert r.status_code == 200, r.text
    (row,) = r.json()["stored"]
    assert row["series"] == "grid_carbon" and row["entity"] == "nx-west"
    assert row["provider"] == "grid-op" and row["channel"] == "upload"
    assert row["hours"] == 24 and row["quantiles"] == ["p10", "p90"]
    assert row["horizon_h"] == 28 + 24  # from 12:00Z on the 15th: 28 h to its start, then 24
    listed = viewer.get("/feeds", params={"entity": "nx-west"}).json()
    assert row["id"] in [i["id"] for i in listed["items"]]
    assert viewer.post("/feeds", json=doc).status_code == 403  # feeds are data: admin's


def test_a_bad_document_is_refused_naming_where_and_nothing_is_stored(
    admin: httpx.Client,
) -> None:
    before = admin.get("/feeds").json()["total"]
    doc = carbon_doc("nx-west", WINDOW_1, [400.0, "n/a", 400.0])
    doc["series"].append({**doc["series"][0], "site_id": "atlantis", "values": [1.0]})
    r = admin.post("/feeds", params={"file_name": "bad.json"}, json=doc)
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert {
        "file": "bad.json",
        "column": "series[0].values[1]",
        "hour": "2025-07-17T01:00:00+08:00",
    }.items() <= problems[0].items()
    csv = (
        "series,site_id,timestamp,value,issued_at\n"
        f"grid_price,sh-east,2025-07-17T00:00+08:00,300,{ISSUED}\n"
        f"grid_price,sh-east,2025-07-17T01:00+08:00,-9999999,{ISSUED}\n"
    )
    r = admin.post(
        "/feeds",
        params={"file_name": "prices.csv"},
        content=csv,
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 422, r.text
    (p,) = r.json()["problems"]
    assert (p["file"], p["row"], p["column"], p["hour"]) == (
        "prices.csv",
        2,
        "value",
        "2025-07-17T01:00:00+08:00",
    )
    # a document naming a site the scenario does not have: every series refused
    r = admin.post("/feeds", json=carbon_doc("atlantis", WINDOW_1, [1.0]))
    assert r.status_code == 422 and "atlantis" in r.text
    assert admin.get("/feeds").json()["total"] == before


def test_a_scenario_format_table_needs_its_issue_time(admin: httpx.Client) -> None:
    csv = "site_id,timestamp,green_available_mw\ngz-west,2025-07-17T00:00+08:00,12.5\n"
    headers = {"content-type": "text/csv"}
    r = admin.post("/feeds", content=csv, headers=headers)
    assert r.status_code == 422 and r.json()["problems"][0]["column"] == "issued_at"
    r = admin.post("/feeds", params={"issued_at": ISSUED}, content=csv, headers=headers)
    assert r.status_code == 200, r.text
    assert [(s["series"], s["entity"]) for s in r.json()["stored"]] == [
        ("green_available", "gz-west")
    ]


# ----------------------------------------------------------------------------- the night
class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []

    def submit(self, run_id: int, priority: int = 0) -> None:
        self.got.append((run_id, priority))


class PeriodForecasts(BaseHTTPRequestHandler):
    """/intensity/<from>/fw24h/<site>: 48 half-hour periods from <from>, alternately 100
    and 200 gCO2/kWh (hourly 150) for nx-west; a 500 for any other site."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        PeriodForecasts.requests.append(self.path)
        _, _, start, _, site = self.path.split("/")
        if site != "nx-west":
            self.send_error(500, "forecast model down")
            return
        t0 = pd.Timestamp(start)
        half = pd.Timedelta(minutes=30)
        body = {
            "data": [
                {
                    "from": (t0 + i * half).strftime("%Y-%m-%dT%H:%MZ"),
                    "to": (t0 + (i + 1) * half).strftime("%Y-%m-%dT%H:%MZ"),
                    "intensity": {"forecast": 100 if i % 2 == 0 else 200, "index": "moderate"},
                }
                for i in range(48)
            ]
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def forecast_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), PeriodForecasts)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = fresh_database(str(request.param), tmp_path, "feeds")
    database = Database(url)
    prepare_database(database, make_settings(url))
    yield database
    database.dispose()


def night_settings(db: Database, folder: Path, url: str) -> Settings:
    return make_settings(
        db.url,
        nightly_horizon_h=24,
        feed_dir=folder,
        feed_http_urls={"grid_carbon": url + "/intensity/{from}/fw24h/{site_id}"},
    )


def roll(db: Database, settings: Settings, day: int) -> tuple[int, ScenarioVersion, dict[str, Any]]:
    """Night `day` (0-based): its run id, its version and the version's site series."""
    row = nightly.run_night(
        db, settings, Collect(), now=NIGHT_1 + dt.timedelta(days=day, milliseconds=200)
    )
    assert row is not None and row.run_id is not None, row and row.reason
    with db.read() as s:
        run = s.get(Run, row.run_id)
        assert run is not None
        version = s.get(ScenarioVersion, run.scenario_version_id)
        assert version is not None
        series = scenarios.table_frame(s, version, "site_series").copy()
    carbon = {
        site: [float(v) for v in g["grid_carbon_kg_per_mwh"]]
        for site, g in series.groupby("site_id")
    }
    return row.run_id, version, carbon


def test_a_night_takes_each_series_from_the_first_good_feed_and_says_its_fall_backs(
    db: Database, tmp_path: Path, forecast_server: str
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    # sh-east's carbon for three days from the folder, issued 5.5 h before night 1
    days3 = [500.0 + h for h in range(72)]
    (folder / "carbon.json").write_text(json.dumps(carbon_doc("sh-east", WINDOW_1, days3)))
    (folder / "broken.csv").write_text("series,site_id,timestamp,value,issued_at\nwind,x,y,z,w\n")
    with db.read() as s:
        demo = scenarios.table_frame(s, scenarios.current_version(s), "site_series")
    gz_profile = [float(v) for v in demo[demo["site_id"] == "gz-west"]["grid_carbon_kg_per_mwh"]]
    settings = night_settings(db, folder, forecast_server)

    run_id, v1, carbon = roll(db, settings, 0)
    assert carbon["sh-east"] == days3[:24]  # the folder's document
    assert carbon["nx-west"] == [150.0] * 24  # pulled: half hours of 100 and 200, averaged
    assert carbon["gz-west"] == gz_profile  # its pull failed: the scenario's own profile
    feeds = v1.feeds
    assert feeds is not None
    assert feeds["used"]["grid_carbon"] == {"grid-op": 1, "http-pull": 1, "scenario-profile": 1}
    warnings = "\n".join(feeds["warnings"])
    assert "broken.csv" in warnings and "row 1" in warnings  # named, stored nowhere
    assert "gz-west" in warnings and "500" in warnings
    assert "region pack cn-edwc" in warnings  # the demo's sites are not the pack's
    by_key = {(s["series"], s["key"]): s for s in feeds["series"]}
    assert by_key[("grid_carbon", "sh-east")]["issued_at"] == "2025-07-15T12:00:00+00:00"
    assert by_key[("grid_carbon", "nx-west")]["provider"] == "http-pull"
    assert by_key[("grid_carbon", "nx-west")]["issued_at"] == pd.Timestamp(NIGHT_1).isoformat()
    assert any(r.startswith("/intensity/2025-07-16T16:00Z/") for r in PeriodForecasts.requests)
    with db.read() as s:
        stored = s.query(FeedSeries).filter(FeedSeries.source == "broken.csv").count()
        assert stored == 0

    # night 2: the folder's document is now 29.5 h old, past the 24 h limit: stale, and
    # the scenario's profile, now night 1's window, stands in (its day 2 hours unused)
    _, v2, carbon2 = roll(db, settings, 1)
    assert carbon2["sh-east"] == days3[:24]
    assert v2.feeds is not None
    assert any(w.startswith("grid_carbon sh-east: files is stale") for w in v2.feeds["warnings"]), (
        v2.feeds["warnings"]
    )


@pytest.mark.slow
def test_the_plan_of_a_night_from_feeds_says_where_its_series_came_from(
    db: Database, tmp_path: Path, forecast_server: str
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    run_id, version, carbon = roll(db, night_settings(db, folder, forecast_server), 0)
    assert carbon["nx-west"] == [150.0] * 24
    assert execute_run(run_id, db.url, monitor_interval_s=0.2) == "succeeded"
    with db.read() as s:
        plan = s.query(Plan).filter(Plan.run_id == run_id).one()
        summary = plans.load_plan(s, plan.id).summary
    assert version.feeds is not None
    assert summary["feeds"]["used"] == version.feeds["used"]
    assert summary["feeds"]["warnings"] == version.feeds["warnings"]
    assert plan.summary["feeds"]["used"]["grid_carbon"]["http-pull"] == 1
