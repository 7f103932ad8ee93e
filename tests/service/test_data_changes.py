"""Data changes are deliberate (issue 10, rows 2 and 10), over a real server on SQLite and
PostgreSQL: an upload that guts a table is refused unless confirmed, a dry run diffs without
writing, identical content makes no version, and any version can be restored, each change
recording who made it."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pandas as pd
import pytest

from service.scenario_diff import table_diff


def current(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/data")
    assert r.status_code == 200, r.text
    return dict(r.json())


def n_versions(c: httpx.Client) -> int:
    return int(c.get("/data/versions", params={"limit": 1}).json()["total"])


def rows(c: httpx.Client, table: str, **params: Any) -> list[dict[str, Any]]:
    r = c.get(f"/data/{table}", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["rows"])


def admin_label(c: httpx.Client) -> str:
    me = [k for k in c.get("/keys").json()["items"] if k["name"] == "test-admin"]
    return f"key:test-admin#{me[0]['id']}"


# ----------------------------------------------------------------------------- row 2
@pytest.mark.parametrize(
    ("table", "body", "ctype"),
    [
        ("jobs", b"", "text/csv"),  # the probe: an empty body
        ("jobs", b"[]", "application/json"),
        ("service_demand", b"", "text/csv"),
    ],
)
def test_an_upload_that_empties_a_table_is_refused_and_changes_nothing(
    admin: httpx.Client, table: str, body: bytes, ctype: str
) -> None:
    """Before: 200 "0 rows", every row gone and the gutted version current (the nightly
    would have planned it). Now: 409 naming the table and its counts; nothing written."""
    before, versions, n = current(admin), n_versions(admin), len(rows(admin, table))
    assert n > 0
    for dry_run in (False, True):  # a dry run answers what the real request would
        r = admin.put(
            f"/data/{table}",
            content=body,
            headers={"Content-Type": ctype},
            params={"dry_run": dry_run},
        )
        assert r.status_code == 409, r.text
        err = r.json()
        assert err["error"] == "confirmation_required"
        assert table in err["message"] and "confirm_removal=true" in err["message"]
        (p,) = err["problems"]
        assert (p["table"], p["rows_before"], p["rows_after"], p["removed"]) == (table, n, 0, n)
        assert f"{n} row(s) before, 0 after" in p["message"]
    assert current(admin)["id"] == before["id"] and n_versions(admin) == versions
    assert len(rows(admin, table)) == n


def test_removing_more_than_half_needs_confirmation_and_half_does_not(
    admin: httpx.Client,
) -> None:
    jobs = rows(admin, "jobs")
    n = len(jobs)
    half, too_many = jobs[: n - n // 2], jobs[: n - n // 2 - 1]
    body = {"dry_run": True}
    r = admin.put("/data/jobs", json=half, params=body)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "dry_run"
    assert r.json()["diff"] == [
        {
            "table": "jobs",
            "rows_before": n,
            "rows_after": len(half),
            "added": 0,
            "removed": n // 2,
            "changed": 0,
        }
    ]
    r = admin.put("/data/jobs", json=too_many, params=body)
    assert r.status_code == 409, r.text
    assert r.json()["problems"][0]["removed"] == n // 2 + 1


def test_availability_emptied_only_when_confirmed_then_restored(admin: httpx.Client) -> None:
    """`availability` (optional, absent from the demo): filled, then an empty upload is
    refused, then accepted with confirm_removal=true; restoring brings the rows back."""
    hours = [r["timestamp"] for r in rows(admin, "site_series") if r["site_id"] == "sh-east"]
    fill = [
        {"site_id": "sh-east", "accelerator": "H100", "timestamp": t, "available_fraction": 0.5}
        for t in hours
    ]
    made = admin.patch("/data/availability", json=fill)
    assert made.status_code == 200, made.text
    assert made.json()["diff"][0]["added"] == len(hours) == 24
    r = admin.put("/data/availability", content=b"", headers={"Content-Type": "text/csv"})
    assert r.status_code == 409 and r.json()["problems"][0]["rows_before"] == 24
    r = admin.put(
        "/data/availability",
        content=b"",
        headers={"Content-Type": "text/csv"},
        params={"confirm_removal": True},
    )
    assert r.status_code == 200, r.text
    gutted = r.json()
    assert gutted["outcome"] == "created" and gutted["sizes"]["rows"]["availability"] == 0
    assert gutted["created_by"] == admin_label(admin)
    r = admin.post(f"/data/versions/{made.json()['id']}/restore")
    assert r.status_code == 200, r.text
    assert len(rows(admin, "availability")) == 24


def test_dry_run_validates_and_diffs_without_writing(admin: httpx.Client) -> None:
    before, versions = current(admin), n_versions(admin)
    jobs = rows(admin, "jobs")
    change = [
        {**jobs[0], "priority": 2.5},  # changed
        {"job_id": "dry-new", "accelerators": "H100", "gang": 8, "work_device_hours": 16},
    ]
    change[1]["deadline"] = jobs[0]["deadline"]
    r = admin.patch("/data/jobs", json=change, params={"dry_run": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outcome"] == "dry_run" and "nothing written" in out["message"]
    assert out["id"] == before["id"]
    assert out["diff"] == [
        {
            "table": "jobs",
            "rows_before": len(jobs),
            "rows_after": len(jobs) + 1,
            "added": 1,
            "removed": 0,
            "changed": 1,
        }
    ]
    # an invalid change is reported the same with or without dry_run
    bad = admin.patch("/data/jobs", json=[{"job_id": "x", "gang": -4}], params={"dry_run": True})
    assert bad.status_code == 422 and any(p["column"] == "gang" for p in bad.json()["problems"])
    r = admin.post(f"/data/versions/{before['id']}/restore", params={"dry_run": True})
    assert r.status_code == 200 and r.json()["outcome"] == "unchanged"
    assert current(admin)["id"] == before["id"] and n_versions(admin) == versions
    assert rows(admin, "jobs") == jobs


# ----------------------------------------------------------------------------- row 10
def test_identical_content_makes_no_version(admin: httpx.Client) -> None:
    """Before: a no-op PATCH made a new version. Now nothing is written, and it says so."""
    before, versions = current(admin), n_versions(admin)
    job = rows(admin, "jobs")[0]
    same_patch = admin.patch("/data/jobs", json=[{"job_id": job["job_id"], "gang": job["gang"]}])
    csv = admin.get("/data/fleets", headers={"Accept": "text/csv"}).text
    same_csv = admin.put("/data/fleets", content=csv, headers={"Content-Type": "text/csv"})
    # JSON as GET gives it, PUT back: numbers now typed (64 for "64") are the same values
    same_json = admin.put("/data/site_series", json=admin.get("/data/site_series").json())
    explicit = admin.get("/data/policy").json()
    same_policy = admin.put(
        "/data/policy", json={k: explicit["values"][k] for k in explicit["explicit"]}
    )
    for r in (same_patch, same_csv, same_json, same_policy):
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["outcome"] == "unchanged", out
        assert "no version made" in out["message"]
        assert out.get("id", out.get("version_id")) == before["id"]
    assert n_versions(admin) == versions and current(admin)["id"] == before["id"]


def test_restore_makes_a_new_version_equal_to_the_old_one(
    admin: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: no way back to an earlier version. Now POST .../restore, noted and audited."""
    old = current(admin)
    job = rows(admin, "jobs")[0]
    edited = admin.patch("/data/jobs", json=[{"job_id": job["job_id"], "priority": 7}])
    assert edited.status_code == 200 and edited.json()["outcome"] == "created"
    assert edited.json()["created_by"] == admin_label(admin)
    with caplog.at_level(logging.INFO, logger="greenopt.data"):
        r = admin.post(f"/data/versions/{old['id']}/restore")
    assert r.status_code == 200, r.text
    restored = r.json()
    assert restored["outcome"] == "created"
    assert restored["parent_id"] == edited.json()["id"]
    assert restored["note"] == f"restored from version {old['id']}"
    assert restored["created_by"] == admin_label(admin)
    # the very same stored tables and the same scenario
    assert restored["tables"] == old["tables"]
    assert restored["fingerprint"] == old["fingerprint"]
    assert restored["diff"] == [
        {
            "table": "jobs",
            "rows_before": len(rows(admin, "jobs")),
            "rows_after": len(rows(admin, "jobs")),
            "added": 0,
            "removed": 0,
            "changed": 1,
        }
    ]
    (line,) = [rec for rec in caplog.records if getattr(rec, "event", None) == "data_change"]
    assert (line.version_id, line.actor, line.note) == (  # type: ignore[attr-defined]
        restored["id"],
        admin_label(admin),
        restored["note"],
    )
    listed = admin.get("/data/versions", params={"limit": 1}).json()["items"][0]
    assert (listed["id"], listed["note"]) == (restored["id"], restored["note"])
    # restoring it again changes nothing; an unknown version is a 404
    again = admin.post(f"/data/versions/{old['id']}/restore").json()
    assert again["outcome"] == "unchanged" and again["id"] == restored["id"]
    assert admin.post("/data/versions/999999/restore").status_code == 404


def test_restore_needs_the_admin_role(server: Any) -> None:
    for role in ("viewer", "planner"):
        with server.client(role) as c:
            assert c.post("/data/versions/1/restore").status_code == 403


# ----------------------------------------------------------------------------- diff
def test_table_diff_matches_rows_by_key_and_compares_values() -> None:
    before = pd.DataFrame(
        {"job_id": ["a", "b", "c"], "gang": ["8", "16", "4"], "preemptible": ["true", "", "no"]}
    )
    same = pd.DataFrame(
        {"preemptible": ["0", "TRUE", ""], "job_id": ["c", "a", "b"], "gang": ["4.0", "8", "16"]}
    )
    d = table_diff("jobs", before, same, "UTC")
    assert d.is_empty and not d.needs_confirmation
    after = pd.DataFrame({"job_id": ["a", "d"], "gang": ["9", "1"], "preemptible": ["", ""]})
    d = table_diff("jobs", before, after, "UTC")
    assert (d.added, d.removed, d.changed) == (1, 2, 1)
    assert d.needs_confirmation  # 2 of 3 removed
    assert not table_diff("jobs", before, before.iloc[:2], "UTC").needs_confirmation
    assert table_diff("jobs", before, before.iloc[:0], "UTC").needs_confirmation
