"""Forecast feeds in the service (issue 13): documents uploaded over the API or dropped
in the watched folder, period forecasts pulled over HTTP, all stored with their
provenance in `feed_series`; and the series of a night's window chosen from them.

Providers, in rank order: `files` (uploads and the watched folder), `http-pull` (the
configured period-forecast URLs), `typical-year` (the region pack's profiles on the
window's dates, offline), and last the scenario's own profile re-stamped onto the window
(`service.rolling.shift_series`). A series missing from a provider, or stale (issued more
than `feed_max_age_h` before the night), falls back to the next, and the night's scenario
version and its plan's summary (`feeds`) say so. The I/O (reading the folder, HTTP) runs
before the night's transaction, in `gather`; what it could not read is a warning of the
night, never its failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from optimizer import feeds as of
from optimizer.feeds import FeedError, FeedRequest, HourlySeries, Provenance, ProviderResult
from optimizer.feeds.series import entity_keys
from optimizer.scenario import Problem
from service import scenarios
from service.db import Database
from service.errors import InvalidInput, invalid_input
from service.models import FeedSeries, ScenarioVersion, utcnow
from service.repo import feeds as repo
from service.settings import Settings

log = logging.getLogger("greenopt.feeds")

FILES = "files"
HTTP = "http-pull"
FOLDER_SUFFIXES = (".json", ".csv")
LOOKBACK_AGES = 4
"""Stored series older than this many `feed_max_age_h` are not even looked at."""
Kind = Literal["json", "csv"]


@dataclass(frozen=True)
class Gathered:
    """What a night's I/O found before its transaction: the problems of each feed channel,
    and the progress files of the watched folder that were refused (service/queue.py)."""

    problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    progress: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- storing
def _row(s: HourlySeries, *, channel: str, sha256: str | None, by: str) -> FeedSeries:
    return FeedSeries(
        series=s.series,
        entity=s.key,
        provider=s.provenance.provider[:100],
        channel=channel,
        source=s.provenance.source[:500],
        source_sha256=sha256,
        issued_at=s.provenance.issued_at.to_pydatetime(),
        start_at=s.start.to_pydatetime(),
        hours=s.hours,
        horizon_h=s.horizon_h,
        values=[float(v) for v in s.values],
        quantiles={q: [float(v) for v in arr] for q, arr in s.quantiles.items()},
        received_at=utcnow(),
        received_by=by,
    )


def series_of(row: FeedSeries) -> HourlySeries:
    return HourlySeries(
        row.series,
        row.entity,
        pd.Timestamp(row.start_at),
        np.array(row.values, dtype=float),
        Provenance(row.provider, pd.Timestamp(row.issued_at), row.source),
        {q: np.array(v, dtype=float) for q, v in (row.quantiles or {}).items()},
    )


def known_entities(session: Session, version: ScenarioVersion) -> dict[str, set[str]]:
    """Entity keys each series may name in the version: its sites; its services' demand
    regions (every pair of a service of the version and a demand region it has)."""
    sites = set(scenarios.table_frame(session, version, "sites")["site_id"])
    demand = scenarios.table_frame(session, version, "service_demand")
    pairs = set(entity_keys(demand, of.SERIES_BY_NAME["inference_demand"].key_columns))
    return {s.name: (pairs if s.table == "service_demand" else sites) for s in of.SERIES}


def _check_entities(
    series: Sequence[HourlySeries], known: Mapping[str, set[str]], file: str
) -> list[Problem]:
    out = []
    for s in series:
        if s.key not in known[s.series]:
            what = (
                "site"
                if of.SERIES_BY_NAME[s.series].table == "site_series"
                else ("service/demand region")
            )
            out.append(Problem(file, f"{s.series}: unknown {what} {s.key!r}", column=s.series))
    return out


def parse_document(
    body: bytes, *, kind: Kind, file: str, provider: str, issued_at: pd.Timestamp | None
) -> list[HourlySeries]:
    """The document's series; anything unreadable is a `FeedError` naming the file (a
    time past the calendar's range, a body no parser expected), never a 500."""
    try:
        if kind == "json":
            return of.parse_json_document(body, file=file, default_provider=provider)
        return of.parse_csv_document(
            body, file=file, default_provider=provider, issued_at=issued_at
        )
    except FeedError:
        raise
    except (ValueError, OverflowError, TypeError, KeyError, RecursionError) as exc:
        raise FeedError([Problem(file, f"cannot be read: {type(exc).__name__}: {exc}")]) from None


def ingest(
    session: Session,
    body: bytes,
    *,
    kind: Kind,
    file: str,
    provider: str,
    issued_at: pd.Timestamp | None,
    channel: str,
    by: str,
) -> list[FeedSeries]:
    """Store every series of a feed document, or none: a problem anywhere (format, value,
    hour, an entity the current scenario does not have) is a 422 naming each."""
    try:
        series = parse_document(body, kind=kind, file=file, provider=provider, issued_at=issued_at)
        problems = _check_entities(
            series, known_entities(session, scenarios.current_version(session)), file
        )
        if problems:
            raise FeedError(problems)
    except FeedError as err:
        raise invalid_input(
            err, f"feed {file}: {len(err.problems)} problem(s), nothing stored"
        ) from None
    sha = hashlib.sha256(body).hexdigest()
    rows = [_row(s, channel=channel, sha256=sha, by=by) for s in series]
    repo.add_all(session, rows)
    log.info("feed %s: %s series stored (%s)", file, len(rows), channel)
    return rows


# ----------------------------------------------------------------------------- the night's I/O
def scan_folder(db: Database, folder: Path) -> list[str]:
    """Read each new feed file of the watched folder (each content once); a bad file is
    stored nowhere and named in the problems (again each night until it is fixed)."""
    problems: list[str] = []
    if not folder.is_dir():
        return [f"watched folder {folder} does not exist"]
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in FOLDER_SUFFIXES):
        body = path.read_bytes()
        with db.read() as s:
            if repo.has_source(s, hashlib.sha256(body).hexdigest()):
                continue
        mtime = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
        try:
            with db.write() as s:
                ingest(
                    s,
                    body,
                    kind="json" if path.suffix.lower() == ".json" else "csv",
                    file=path.name,
                    provider="folder",
                    issued_at=mtime,
                    channel="folder",
                    by=f"folder:{folder}",
                )
        except InvalidInput as err:
            first = err.problems[0] if err.problems else {}
            problems.append(f"{err.message}, e.g. {first.get('message', '')} ({_where(first)})")
    return problems


def _where(p: Mapping[str, object]) -> str:
    return ", ".join(f"{k} {p[k]}" for k in ("file", "row", "column", "hour") if p.get(k))


def pull_http(
    db: Database, settings: Settings, *, start: pd.Timestamp, hours: int, as_of: pd.Timestamp
) -> list[str]:
    """GET each configured URL for each site of the current scenario and store what it
    gives; a series is issued at the document's `issued_at` if it has one, else at the
    night it was pulled for. Each URL is fetched once (sites of a zone may share one)."""
    if not settings.feed_http_urls:
        return []
    with db.read() as s:
        sites = scenarios.table_frame(s, scenarios.current_version(s), "sites")
    end = start + pd.Timedelta(hours=hours)
    fill = {"from": _utc_minute(start), "to": _utc_minute(end)}
    got: dict[str, bytes | str] = {}
    series: list[HourlySeries] = []
    problems: list[str] = []
    with httpx.Client(timeout=settings.feed_http_timeout_s, follow_redirects=True) as client:
        for name, template in settings.feed_http_urls.items():
            for site, zone in zip(sites["site_id"], sites["zone"], strict=True):
                url = template.format(site_id=site, zone=zone, **fill)
                if url not in got:
                    got[url] = _get(client, url)
                body = got[url]
                if isinstance(body, str):
                    problems.append(f"{name} {site}: {body}")
                    continue
                try:
                    series.append(_period_series(body, url, name, site, as_of))
                except FeedError as err:
                    problems.append(f"{name} {site}: {err.problems[0]}")
    if series:
        with db.write() as s:
            repo.add_all(s, [_row(x, channel="http", sha256=None, by="http-pull") for x in series])
    return problems


def _utc_minute(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%MZ")


def _get(client: httpx.Client, url: str) -> bytes | str:
    """The body, or why there is none (a str)."""
    try:
        r = client.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        return f"GET {url} failed: {type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return f"GET {url} answered {r.status_code}"
    return r.content


def _period_series(
    body: bytes | str, url: str, name: str, site: str, as_of: pd.Timestamp
) -> HourlySeries:
    issued = as_of
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("issued_at"):
            issued = pd.Timestamp(str(doc["issued_at"]))
    except (json.JSONDecodeError, ValueError, UnicodeDecodeError):
        pass  # parse_period_forecasts says what is wrong with it
    if issued.tzinfo is None:
        issued = issued.tz_localize("UTC")
    return of.parse_period_forecasts(
        body, file=url, series=name, key=site, provenance=Provenance(HTTP, issued, url)
    )


def gather(
    db: Database, settings: Settings, *, start: pd.Timestamp, hours: int, as_of: pd.Timestamp
) -> Gathered:
    """The night's feed I/O, each part in its own short transaction: the watched folder,
    then the HTTP pulls. Never raises for a feed's fault."""
    problems: dict[str, tuple[str, ...]] = {}
    if settings.feed_dir is not None:
        problems[FILES] = tuple(scan_folder(db, settings.feed_dir))
    try:
        problems[HTTP] = tuple(pull_http(db, settings, start=start, hours=hours, as_of=as_of))
    except Exception as exc:  # a feed never fails the night: say it and fall back
        log.exception("the HTTP feed pull failed")
        problems[HTTP] = (f"the pull failed: {type(exc).__name__}: {exc}",)
    return Gathered({k: v for k, v in problems.items() if v})


# ----------------------------------------------------------------------------- the window
def window_request(
    tables: Mapping[str, pd.DataFrame], start: pd.Timestamp, hours: int, as_of: pd.Timestamp
) -> FeedRequest:
    """The series a window's tables need: each site's, each (service, region) pair's."""
    keys: dict[str, tuple[str, ...]] = {}
    for spec in of.SERIES:
        df = tables.get(spec.table)
        if df is None or df.empty:
            continue
        keys[spec.name] = tuple(dict.fromkeys(entity_keys(df, spec.key_columns)))
    return FeedRequest(start, hours, as_of, keys)


def _stored(
    session: Session, request: FeedRequest, channels: Sequence[str], max_age: pd.Timedelta
) -> list[HourlySeries]:
    rows = repo.candidates(
        session,
        channels=channels,
        series=list(request.keys),
        issued_from=(request.as_of - LOOKBACK_AGES * max_age).to_pydatetime(),
        as_of=request.as_of.to_pydatetime(),
        starts_by=request.start.to_pydatetime(),
    )
    wanted = {(n, k) for n, keys in request.keys.items() for k in keys}
    return [series_of(r) for r in rows if (r.series, r.entity) in wanted]


def window_series(
    session: Session,
    tables: Mapping[str, pd.DataFrame],
    *,
    start: pd.Timestamp,
    hours: int,
    as_of: dt.datetime,
    settings: Settings,
    gathered: Gathered,
) -> tuple[dict[str, pd.DataFrame], of.Resolution]:
    """The window's tables with each series from the first good provider, and the choice."""
    request = window_request(tables, start, hours, pd.Timestamp(as_of))
    max_age = pd.Timedelta(hours=settings.feed_max_age_h)
    providers: list[of.Provider] = [
        of.FixedProvider(
            FILES,
            _stored(session, request, ("upload", "folder"), max_age),
            gathered.problems.get(FILES, ()),
        ),
        of.FixedProvider(
            HTTP, _stored(session, request, ("http",), max_age), gathered.problems.get(HTTP, ())
        ),
    ]
    results = [p.fetch(request) for p in providers]
    if settings.feed_region:
        try:
            typical = of.TypicalYearProvider(
                settings.feed_region, error=settings.feed_forecast_error, seed=settings.feed_seed
            )
            results.append(typical.fetch(request))
        except Exception as exc:  # an unreadable pack: the scenario's profile stands in
            log.exception("typical-year feed of %s failed", settings.feed_region)
            results.append(ProviderResult("typical-year", (), (f"{type(exc).__name__}: {exc}",)))
    resolution = of.resolve(request, results, max_age=max_age)
    return of.apply(tables, resolution), resolution


def describe_use(resolution: of.Resolution) -> str:
    """One line for a version's note: providers per series, and the warnings' count."""
    used = resolution.report()["used"]
    parts = [
        f"{name}: " + ", ".join(f"{p} {n}" for p, n in counts.items())
        for name, counts in used.items()
    ]
    w = len(resolution.warnings)
    return "; ".join(parts) + (f" ({w} feed warning(s), see the plan's summary)" if w else "")
