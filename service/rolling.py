"""The nightly rolling forward (issue 13): each night plans the next window, from the
next planning boundary for `nightly_horizon_h` hours, with the workload queue as it is,
and stores that exact scenario as a version beside the plan (its fingerprint in both).

The hourly series of the window come from the forecast feeds (`service.feeds`: uploads
and the watched folder, HTTP pulls, the region pack's typical year, in that order); what no
feed gives comes from the current version's own series, used as a typical profile: window
hour k takes the version's hour with the same hour of day, cycling day by day
(`shift_series`); which provider gave each series, and every fall back, is kept with the
version (`feeds`) and shown in its plan's summary. Dated events (`availability` rows, i.e.
maintenance) are kept only where they fall in the window. Jobs come from the queue
(`service.queue.scenario_tables`: remaining work, reported site); a job whose deadline has
passed by the window start is left out and counted in the version's note; one released
at or after the window's end waits for a later night. Work due after
the window is valued by the optimizer's rolling-horizon rule (its pro-rata share), and the
previous plan warm-starts the solve by timestamp (`optimizer.plan.warm`), so its
overlapping hours carry over.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from service import feeds, queue, scenarios
from service.models import ScenarioVersion
from service.settings import Settings

HOURS_PER_DAY = 24
DENSE_SERIES = ("site_series", "service_demand")
"""Series with a row per hour: re-stamped onto the window as a typical profile."""
DATED_EVENTS = ("availability",)
"""Sparse dated rows: kept where they fall in the window."""


def next_boundary(after: dt.datetime, timezone: str, boundary_hour: int) -> pd.Timestamp:
    """The first local `boundary_hour`:00 strictly after `after`, in `timezone`."""
    local = pd.Timestamp(after).tz_convert(timezone)
    day = local.normalize() + pd.Timedelta(hours=boundary_hour)
    return day if day > local else day + pd.Timedelta(days=1)


def shift_series(
    df: pd.DataFrame, src_start: pd.Timestamp, src_hours: int, start: pd.Timestamp, hours: int
) -> pd.DataFrame:
    """A dense series table re-stamped onto [start, start + hours): hour k takes the source
    hour with the same hour of day, cycling over the source's whole days."""
    if df.empty:
        return df
    days = max(src_hours // HOURS_PER_DAY, 1)
    span = days * HOURS_PER_DAY if src_hours >= HOURS_PER_DAY else src_hours
    ts = pd.to_datetime(df["timestamp"], utc=True)
    src_h = ((ts - src_start.tz_convert("UTC")).dt.total_seconds() // 3600).astype(int)
    offset = int((start - src_start) / pd.Timedelta(hours=1))
    out = []
    for k in range(hours):
        rows = df[src_h == (offset + k) % span]
        stamp = (start + pd.Timedelta(hours=k)).isoformat()
        out.append(rows.assign(timestamp=stamp))
    return pd.concat(out, ignore_index=True) if out else df.iloc[0:0]


def window_tables(
    session: Session, version: ScenarioVersion, start: pd.Timestamp, hours: int
) -> tuple[dict[str, Any], dict[str, pd.DataFrame], int]:
    """(manifest, tables, jobs left out past their deadline) of the window's scenario."""
    manifest = dict(version.manifest)
    src_start = pd.Timestamp(manifest["start"])
    src_hours = int(manifest["hours"])
    manifest.update(start=start.isoformat(), hours=hours)
    tables = queue.scenario_tables(session, version)
    for name in DENSE_SERIES:
        if name in tables:
            tables[name] = shift_series(tables[name], src_start, src_hours, start, hours)
    end = start + pd.Timedelta(hours=hours)
    for name in DATED_EVENTS:
        if name in tables and not tables[name].empty:
            ts = pd.to_datetime(tables[name]["timestamp"], utc=True)
            tables[name] = tables[name][(ts >= start) & (ts < end)].reset_index(drop=True)
    jobs = tables["jobs"]
    late = pd.to_datetime(jobs["deadline"], utc=True) <= start
    release = pd.to_datetime(jobs["release"].replace("", None), utc=True)
    waiting = release.notna() & (release >= end)  # a later night's
    tables["jobs"] = jobs[~late & ~waiting].reset_index(drop=True)
    return manifest, tables, int(late.sum())


def window_start(version: ScenarioVersion, after: dt.datetime, boundary_hour: int) -> pd.Timestamp:
    return next_boundary(after, str(version.manifest.get("timezone", "UTC")), boundary_hour)


def roll(
    session: Session,
    version: ScenarioVersion,
    *,
    after: dt.datetime,
    horizon_h: int,
    boundary_hour: int,
    actor: str,
    label: str,
    settings: Settings | None = None,
    gathered: feeds.Gathered | None = None,
) -> ScenarioVersion:
    """Store the night's window scenario as the next version (validated: an invalid queue
    or series is a 422 naming the problems, and the night keeps the active plan). With
    `settings`, its series come from the feeds as known at `after` (`gathered`: what the
    night's feed I/O met)."""
    start = window_start(version, after, boundary_hour)
    manifest, tables, late = window_tables(session, version, start, horizon_h)
    note = f"{label}: window {start.isoformat()} + {horizon_h} h from the queue"
    if late:
        note += f"; {late} job(s) past their deadline left out"
    if gathered is not None and gathered.progress:
        note += "; progress files not applied: " + "; ".join(gathered.progress)
    resolution = None
    if settings is not None:
        tables, resolution = feeds.window_series(
            session,
            tables,
            start=start,
            hours=horizon_h,
            as_of=after,
            settings=settings,
            gathered=gathered or feeds.Gathered(),
        )
        note += "; series from " + feeds.describe_use(resolution)
    v = scenarios.store_version(
        session, parent=version, manifest=manifest, tables=tables, actor=actor, note=note[:4000]
    )
    if resolution is not None:
        v.feeds = resolution.report()
        session.flush()
    return v
