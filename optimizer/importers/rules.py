"""The rules that turn a job history's records into scenario jobs, the same for every
format, and stated in the scenario's description when it is imported (`describe`).

- **Types.** A source type maps to scenario accelerators through the mapping table
  (`type_map`, case-insensitive); a source type that names a scenario accelerator
  (case-insensitive) maps to it; a job without a type may run on `any_type` (default:
  every accelerator of the scenario). A type that maps to nothing is a bad row.
- **Work.** The recorded run (start to end) at full gang on the type it ran on:
  `gang x run hours x relative_throughput` of the first mapped type, in reference
  device-hours (a job without a type is taken to have run on the reference device).
- **Time.** The history is moved onto the horizon by whole days (`shift_days`), so its
  earliest submission falls on the horizon's first day and the hour-of-day and weekday
  shape is kept (weekday only when the shift is a whole number of weeks: `shift_weeks`).
  Release is the submission; a job submitted at or after the horizon end is skipped; one
  submitted before the horizon start (no shift) is released at the start.
- **Deadline.** `deadline_slack` x the recorded run time after the release hour, at least
  one hour: a job that ran for 3 h with slack 2 must finish within 6 h of its release.
- **Preemptible.** What the source says where it says it (Alibaba qos), else `preemptible`.
- **Kind.** `kind` for every imported job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from optimizer.importers.records import BadRow, Record
from optimizer.scenario.schema import JOBS

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
AFTER_HORIZON = "submitted after the horizon"


@dataclass(frozen=True)
class ImportRules:
    """How records become jobs; every field is stated in the scenario's description."""

    type_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    any_type: tuple[str, ...] = ()  # () = every accelerator of the scenario
    kind: str = "training"
    deadline_slack: float = 2.0
    preemptible: bool = True
    shift: bool = True
    shift_weeks: bool = False  # shift by whole weeks (keeps the weekday too)

    def __post_init__(self) -> None:
        if self.deadline_slack < 1:
            raise ValueError("deadline slack must be at least 1 (a job needs its run time)")

    def describe(self) -> str:
        maps = ", ".join(f"{k}={';'.join(v)}" for k, v in sorted(self.type_map.items()))
        unit = "weeks" if self.shift_weeks else "days"
        return (
            f"types mapped {maps or 'by name'} (untyped jobs: "
            f"{';'.join(self.any_type) or 'any type'}); work = gang x recorded run hours x "
            f"relative throughput; "
            + (f"history shifted by whole {unit} onto the horizon; " if self.shift else "")
            + f"deadline = release hour + max(1 h, {self.deadline_slack:g} x run time); "
            f"preemptible {'yes' if self.preemptible else 'no'} unless the source says; "
            f"kind {self.kind}"
        )


def read_type_map(path: Path | None, pairs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The mapping table: a CSV `source_type,accelerators` (accelerators `;`-separated),
    then `SOURCE=ACC[;ACC]` pairs (a pair overrides the file)."""
    out: dict[str, tuple[str, ...]] = {}
    if path is not None:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"source_type", "accelerators"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: the type map needs columns source_type,accelerators")
        for row in table.itertuples(index=False):
            out[str(row.source_type).strip()] = _accs(str(row.accelerators))
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not _accs(dst):
            raise ValueError(f"type map entry {pair!r}: write SOURCE=ACCELERATOR[;ACCELERATOR]")
        out[src.strip()] = _accs(dst)
    return out


def _accs(text: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in text.split(";") if a.strip())


@dataclass(frozen=True)
class Horizon:
    """What of the scenario the rules need: its start, length and accelerators."""

    start: pd.Timestamp
    hours: int
    timezone: str
    accelerators: Mapping[str, float]  # name -> relative throughput


def resolve_types(
    source: Sequence[str], h: Horizon, rules: ImportRules
) -> tuple[tuple[str, ...], str | None]:
    """Scenario accelerators for a record's source types, or the reason there are none."""
    if not source:
        return rules.any_type or tuple(h.accelerators), None
    by_lower = {k.lower(): v for k, v in rules.type_map.items()}
    names = {a.lower(): a for a in h.accelerators}
    out: list[str] = []
    for t in source:
        mapped = by_lower.get(t.lower()) or ((names[t.lower()],) if t.lower() in names else ())
        if not mapped:
            return (), (
                f"GPU type {t!r} maps to no accelerator of the scenario "
                f"({', '.join(h.accelerators)}): add it to the type map, e.g. {t}={next(iter(h.accelerators), 'X')}"
            )
        out.extend(mapped)
    unknown = [a for a in out if a not in h.accelerators]
    if unknown:
        return (), f"type map names {', '.join(unknown)}, not an accelerator of the scenario"
    return tuple(dict.fromkeys(out)), None


def shift_of(records: Sequence[Record], h: Horizon, rules: ImportRules) -> pd.Timedelta:
    """Whole days (or weeks) that put the earliest submission on the horizon's first day
    (week); no shift without `rules.shift` or records."""
    if not rules.shift or not records:
        return pd.Timedelta(0)
    step = WEEK if rules.shift_weeks else DAY
    earliest = min(r.submit for r in records)
    return step * math.ceil((h.start - earliest) / step)


def to_jobs(
    records: Sequence[Record], h: Horizon, rules: ImportRules
) -> tuple[pd.DataFrame, list[int], list[BadRow], dict[str, int]]:
    """jobs.csv rows (text, the schema's columns) of `records`, the source line of each
    row, the bad rows, and the records skipped by reason."""
    shift = shift_of(records, h, rules)
    end = h.start + h.hours * HOUR
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    skipped: dict[str, int] = {}
    seen: dict[str, int] = {}
    for r in records:
        if r.job_id in seen:
            bad.append(BadRow(r.line, f"job {r.job_id!r} already on line {seen[r.job_id]}"))
            continue
        seen[r.job_id] = r.line
        run_h = (r.end - r.start) / HOUR
        if run_h <= 0:
            bad.append(
                BadRow(r.line, f"job {r.job_id!r} ends ({r.end}) before it starts ({r.start})")
            )
            continue
        types, why = resolve_types(r.gpu_types, h, rules)
        if why:
            bad.append(BadRow(r.line, f"job {r.job_id!r}: {why}"))
            continue
        release = (r.submit + shift).tz_convert(h.timezone)
        if release >= end:
            skipped[AFTER_HORIZON] = skipped.get(AFTER_HORIZON, 0) + 1
            continue
        tp = h.accelerators[types[0]] if r.gpu_types else 1.0
        window = max(1, math.ceil(rules.deadline_slack * run_h - 1e-9))
        deadline = max(release, h.start).ceil("h") + window * HOUR
        preemptible = rules.preemptible if r.preemptible is None else r.preemptible
        rows.append(
            {
                "job_id": r.job_id,
                "kind": rules.kind,
                "accelerators": ";".join(types),
                "gang": str(r.gpus),
                "work_device_hours": f"{r.gpus * run_h * tp:.6g}",
                "release": release.isoformat(),
                "deadline": deadline.isoformat(),
                "preemptible": "true" if preemptible else "false",
            }
        )
        lines.append(r.line)
    df = pd.DataFrame(rows, columns=JOBS.column_names).fillna("")
    return df, lines, bad, skipped
