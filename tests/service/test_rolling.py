"""The nightly rolling forward on the real database and solver: a controlled clock
advanced three nights gives three plans with three windows, each from that night's queue;
a job submitted on day 1 and reported half done on day 2 is planned for its remaining
work, from the site it reported, on night 2; each plan sits beside the exact scenario it
was made for. Solves are demo-sized (24 h windows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from optimizer.whatif import Overrides, apply_overrides
from service import nightly, plans, queue, rolling, scenarios
from service.bootstrap import prepare_database
from service.db import Database
from service.execution import execute_run
from service.models import Plan, Run, ScenarioVersion
from service.settings import Settings
from tests.service.helpers import BACKENDS, fresh_database, make_settings

UTC = dt.UTC
NIGHT_1 = dt.datetime(2025, 7, 15, 17, 30, tzinfo=UTC)  # 01:30 on the 16th in Shanghai
SHANGHAI = "Asia/Shanghai"
JOB = {
    "kind": "training",
    "accelerators": ["H100"],
    "gang": 8,
    "work_device_hours": 80,
    "release": "2025-07-16T00:00:00+08:00",
    "deadline": "2025-07-21T00:00:00+08:00",
    "preemptible": True,
}


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []

    def submit(self, run_id: int, priority: int = 0) -> None:
        self.got.append((run_id, priority))


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = fresh_database(str(request.param), tmp_path, "rolling")
    database = Database(url)
    prepare_database(database, make_settings(url))
    yield database
    database.dispose()


def settings_of(db: Database) -> Settings:
    return make_settings(db.url, nightly_horizon_h=24)


def night(db: Database, n: int) -> dict[str, Any]:
    """Run night n (0-based) of the controlled clock and solve its run; its plan's facts."""
    row = nightly.run_night(
        db, settings_of(db), Collect(), now=NIGHT_1 + dt.timedelta(days=n, milliseconds=200)
    )
    assert row is not None and row.run_id is not None, row
    assert execute_run(row.run_id, db.url, monitor_interval_s=0.2) == "succeeded"
    with db.read() as s:
        run = s.get(Run, row.run_id)
        assert run is not None
        plan = s.query(Plan).filter(Plan.run_id == run.id).one()
        version = s.get(ScenarioVersion, plan.scenario_version_id)
        assert version is not None
        opt = plans.load_plan(s, plan.id)
        return {
            "plan_id": plan.id,
            "start": opt.summary["start"],
            "hours": opt.summary["hours"],
            "fingerprint": plan.scenario_fingerprint,
            "version_fingerprint": version.fingerprint,
            # the exact scenario solved: the version with the night's overrides applied
            "solved_fingerprint": apply_overrides(
                scenarios.scenario_of(s, version),
                Overrides.read(run.overrides),
            ).fingerprint,
            "version_note": version.note,
            "workloads": opt.workloads.set_index("workload_id"),
            "active": plans.active_plan_id(s),
        }


@pytest.mark.slow
def test_three_nights_roll_forward_with_the_queue(db: Database) -> None:
    with db.write() as s:
        queue.submit(s, "job", "q-train", JOB, by="test")  # day 1
    first = night(db, 0)
    with db.write() as s:  # day 2: half done, running where night 1 put it
        site = str(first["workloads"].loc["q-train", "site_id"]).strip("[]'")
        queue.report_progress(s, "q-train", done_device_hours=40, current_site=site, by="test")
    second = night(db, 1)
    third = night(db, 2)
    starts = [n["start"] for n in (first, second, third)]
    assert starts == [
        "2025-07-17T00:00:00+08:00",
        "2025-07-18T00:00:00+08:00",
        "2025-07-19T00:00:00+08:00",
    ]
    for n in (first, second, third):
        assert n["hours"] == 24
        assert n["fingerprint"] == n["solved_fingerprint"]  # the exact scenario, beside it
        assert "from the queue" in n["version_note"]
        assert set(n["workloads"].index) - {"chat-large", "code-assist", "batch-summarise"} == {
            "q-train"
        }
    w1, w2 = first["workloads"].loc["q-train"], second["workloads"].loc["q-train"]
    assert w1["work_device_hours"] == 80 and pd.isna(w1["current_site"])
    assert w2["work_device_hours"] == 40 and w2["current_site"] == site
    assert len({n["fingerprint"] for n in (first, second, third)}) == 3
    assert third["active"] == third["plan_id"]  # each night's plan activated in turn


def test_the_window_starts_at_the_next_boundary_and_series_keep_their_hour_of_day() -> None:
    after = dt.datetime(2025, 7, 15, 17, 30, tzinfo=UTC)  # 01:30 local
    assert rolling.next_boundary(after, SHANGHAI, 0) == pd.Timestamp("2025-07-17T00:00+08:00")
    assert rolling.next_boundary(after, SHANGHAI, 2) == pd.Timestamp("2025-07-16T02:00+08:00")
    src = pd.Timestamp("2025-07-15T00:00+08:00")
    df = pd.DataFrame(
        {
            "site_id": "a",
            "timestamp": [(src + pd.Timedelta(hours=h)).isoformat() for h in range(48)],
            "v": range(48),
        }
    )
    start = pd.Timestamp("2025-07-20T06:00+08:00")
    out = rolling.shift_series(df, src, 48, start, 30)
    assert list(out["v"]) == [(5 * 24 + 6 + k) % 48 for k in range(30)]
    assert all(pd.Timestamp(t).hour == (6 + k) % 24 for k, t in enumerate(out["timestamp"]))


def test_a_night_whose_inputs_fail_keeps_the_active_plan_and_says_why(db: Database) -> None:
    with db.write() as s:
        queue.submit(s, "job", "q-old", {**JOB, "deadline": "2025-07-16T12:00:00+08:00"}, by="t")
        version = scenarios.current_version(s)
        manifest, tables, late = rolling.window_tables(
            s, version, pd.Timestamp("2025-07-17T00:00+08:00"), 24
        )
    assert late == 1 and tables["jobs"].empty  # past its deadline: left out, and counted
    settings = make_settings(db.url, nightly_horizon_h=24, nightly_boundary_hour=0)
    with db.write() as s:
        # a site the queue's job names vanishes from the data: the night's scenario is invalid
        queue.submit(s, "job", "q-train", {**JOB, "data_origin_site": "sh-east"}, by="t")
        v = scenarios.current_version(s)
        sites = scenarios.table_frame(s, v, "sites")
        raw = scenarios.raw_tables(s, v)
        fleets = raw["fleets"]
        keep = {**raw, "sites": sites[sites["site_id"] != "sh-east"].copy()}
        keep["fleets"] = fleets[fleets["site_id"] != "sh-east"]
        for name in ("site_series", "availability", "latency"):
            if name in keep:
                keep[name] = keep[name][keep[name]["site_id"] != "sh-east"]
        jobs = keep["jobs"]
        keep["jobs"] = jobs[jobs["data_origin_site"] != "sh-east"]
        keep["jobs"] = keep["jobs"][keep["jobs"]["current_site"].fillna("") != "sh-east"]
        scenarios.store_version(s, parent=v, manifest=v.manifest, tables=keep, actor="t", note="")
    row = nightly.run_night(db, settings, Collect(), now=NIGHT_1 + dt.timedelta(milliseconds=200))
    assert row is not None and row.state == "failed" and row.run_id is None
    assert "sh-east" in row.reason, row.reason


def test_a_night_applies_the_progress_files_dropped_for_it(db: Database, tmp_path: Path) -> None:
    """Progress files dropped in the watched folder are applied before the night plans (and
    renamed .applied); a refused file changes nothing, stays, and the night's scenario note
    names it."""
    with db.write() as s:
        queue.submit(s, "job", "q-train", JOB, by="test")
    folder = tmp_path / "progress"
    folder.mkdir()
    (folder / "a-good.csv").write_text("job_id,done_device_hours,current_site\nq-train,40,\n")
    (folder / "b-bad.csv").write_text("job_id,done_device_hours\nq-train,999\n")
    settings = make_settings(db.url, nightly_horizon_h=24, progress_dir=folder)
    row = nightly.run_night(db, settings, Collect(), now=NIGHT_1 + dt.timedelta(milliseconds=200))
    assert row is not None and row.run_id is not None
    assert sorted(p.name for p in folder.iterdir()) == ["a-good.csv.applied", "b-bad.csv"]
    with db.read() as s:
        assert queue.get(s, "job", "q-train").done_device_hours == 40
        run = s.get(Run, row.run_id)
        assert run is not None
        version = s.get(ScenarioVersion, run.scenario_version_id)
        assert version is not None
        assert "progress files not applied: progress file b-bad.csv" in version.note
        assert "row 1, column done_device_hours" in version.note
        sc = scenarios.scenario_of(s, version)
    assert {j.job_id: j.work_device_hours for j in sc.jobs} == {"q-train": 40}
