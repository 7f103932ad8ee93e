"""The workload queue over the real HTTP stack and database: jobs and services submitted by
id (a retry changes nothing), bad specs refused naming the column, progress reported, cancel;
and the scenario a night is built from: the queue as it is, a half-done job with half its
work left, from the site it reports."""

from __future__ import annotations

from typing import Any

import httpx

from optimizer.scenario import scenario_from_tables
from service import queue, scenarios
from service.db import Database
from tests.service.helpers import LiveServer

JOB = {
    "kind": "training",
    "accelerators": ["H100"],
    "gang": 8,
    "work_device_hours": 80,
    "release": "2025-07-15T00:00:00+08:00",
    "deadline": "2025-07-16T00:00:00+08:00",
    "preemptible": True,
}


def night_scenario(server: LiveServer) -> Any:
    db = Database(server.settings.database_url)
    try:
        with db.read() as s:
            version = scenarios.current_version(s)
            return scenario_from_tables(version.manifest, queue.scenario_tables(s, version))
    finally:
        db.dispose()


def test_a_job_submitted_by_id_twice_is_one_job(
    planner: httpx.Client, viewer: httpx.Client
) -> None:
    r = planner.put("/jobs/q-train", json=JOB)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "created" and r.json()["revision"] == 1
    again = planner.put("/jobs/q-train", json=JOB).json()
    assert again["outcome"] == "unchanged" and again["revision"] == 1
    changed = planner.put("/jobs/q-train", json={**JOB, "gang": 16}).json()
    assert changed["outcome"] == "replaced" and changed["spec"]["gang"] == 16
    assert [i["workload_id"] for i in viewer.get("/jobs").json()["items"]] == ["q-train"]
    assert viewer.put("/jobs/q-x", json=JOB).status_code == 403  # changes are planner's


def test_a_bad_spec_is_refused_naming_the_column_and_changes_nothing(
    planner: httpx.Client,
) -> None:
    before = planner.get("/jobs").json()
    r = planner.put("/jobs/q-bad", json={**JOB, "accelerators": ["TPU9"]})
    assert r.status_code == 422, r.text
    assert any(p.get("column") == "accelerators" for p in r.json()["problems"]), r.json()
    assert planner.put("/jobs/q-bad", json={**JOB, "colour": "red"}).status_code == 422
    assert planner.put("/jobs/q-bad", json={**JOB, "gang": -1}).status_code == 422
    assert planner.get("/jobs").json() == before
    assert planner.get("/jobs/q-bad").status_code == 404


def test_progress_carries_into_the_nights_scenario(
    server: LiveServer, planner: httpx.Client
) -> None:
    """Submitted on day 1, reported half done on day 2: the night's scenario has the job
    with half its work left, running where it reported; a job done or cancelled is gone."""
    assert planner.put("/jobs/q-half", json=JOB).status_code == 200
    assert planner.put("/jobs/q-done", json=JOB).status_code == 200
    assert planner.put("/jobs/q-gone", json=JOB).status_code == 200
    sc = night_scenario(server)
    job = {j.job_id: j for j in sc.jobs}
    assert job["q-half"].work_device_hours == 80 and job["q-half"].current_site is None
    r = planner.post(
        "/jobs/q-half/progress", json={"done_device_hours": 40, "current_site": "nx-west"}
    )
    assert r.status_code == 200, r.text
    assert planner.post("/jobs/q-done/progress", json={"done_device_hours": 80}).status_code == 200
    assert planner.delete("/jobs/q-gone").json()["state"] == "cancelled"
    assert planner.delete("/jobs/q-gone").status_code == 200  # twice is harmless
    sc = night_scenario(server)
    job = {j.job_id: j for j in sc.jobs}
    assert job["q-half"].work_device_hours == 40 and job["q-half"].current_site == "nx-west"
    assert "q-done" not in job and "q-gone" not in job
    assert "train-llm-a" not in job  # the queue, not the version's own jobs, says what runs
    bad = planner.post(
        "/jobs/q-half/progress", json={"done_device_hours": 81, "current_site": "mars"}
    )
    assert bad.status_code == 422
    assert {p["column"] for p in bad.json()["problems"]} == {"done_device_hours", "current_site"}
    assert planner.post("/jobs/q-gone/progress", json={"done_device_hours": 1}).status_code == 409
    assert planner.post("/jobs/nope/progress", json={"done_device_hours": 1}).status_code == 404


def test_a_progress_file_lands_whole_or_not_at_all(
    server: LiveServer, planner: httpx.Client
) -> None:
    """A scheduler's accounting export as CSV: every row lands, or a 422 names each bad row
    and column and nothing changes."""
    for job_id in ("q-a", "q-b", "q-c"):
        assert planner.put(f"/jobs/{job_id}", json=JOB).status_code == 200
    assert planner.delete("/jobs/q-c").status_code == 200
    csv_type = {"content-type": "text/csv"}
    before = planner.get("/jobs").json()
    bad = planner.post(
        "/jobs/progress?file_name=sacct-0716.csv",
        content="job_id,done_device_hours,current_site\n"
        "q-a,20,nx-west\n"  # fine on its own
        "q-b,81,\n"  # more than its 80 device-hours
        "q-c,1,\n"  # cancelled
        "q-a,30,\n"  # reported twice
        "q-x,1,mars\n"  # no such job
        "q-b,lots,\n",  # not a number (and q-b again)
        headers=csv_type,
    )
    assert bad.status_code == 422, bad.text
    where = {(p["file"], p["row"], p["column"]) for p in bad.json()["problems"]}
    assert where == {
        ("sacct-0716.csv", 2, "done_device_hours"),
        ("sacct-0716.csv", 3, "job_id"),
        ("sacct-0716.csv", 4, "job_id"),
        ("sacct-0716.csv", 5, "job_id"),
        ("sacct-0716.csv", 6, "job_id"),
    }
    assert planner.get("/jobs").json() == before  # q-a's good row did not land either
    header = planner.post("/jobs/progress", content="job,done\nq-a,1\n", headers=csv_type)
    assert header.status_code == 422 and "missing column" in header.json()["problems"][0]["message"]
    as_json = planner.post("/jobs/progress", json=[{"job_id": "q-a"}])
    assert as_json.status_code == 415
    good = planner.post(
        "/jobs/progress",
        content="job_id,done_device_hours,current_site\nq-a,20,nx-west\nq-b,80,\n",
        headers=csv_type,
    )
    assert good.status_code == 200, good.text
    assert {i["workload_id"] for i in good.json()["items"]} == {"q-a", "q-b"}
    job = {j.job_id: j for j in night_scenario(server).jobs}
    assert job["q-a"].work_device_hours == 60 and job["q-a"].current_site == "nx-west"
    assert "q-b" not in job  # all its work done


def test_services_from_the_queue_keep_their_demand_series(
    server: LiveServer, planner: httpx.Client
) -> None:
    svc = {"latency_limit_ms": 25, "throughput": {"H100": 2400.0}}
    r = planner.put("/services/chat-large", json=svc)
    assert r.status_code == 200, r.text
    bad = planner.put("/services/chat-x", json={**svc, "throughput": {"TPU9": 1.0}})
    assert bad.status_code == 422
    sc = night_scenario(server)
    assert sc.services[0].service_id == "chat-large" and len(sc.services) == 1
    assert dict(sc.services[0].throughput_tokens_per_s) == {"H100": 2400.0}
    assert sc.demand_tokens_per_s.sum() > 0  # chat-large's series from the version
