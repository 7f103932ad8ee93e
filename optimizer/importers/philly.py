"""Microsoft Philly trace (`trace-data/cluster_job_log`): a JSON array of jobs, each
with jobid, status, submitted_time and attempts (start_time, end_time and detail: the
servers and the GPUs of each).

The job's gang is the GPUs of its last attempt that lists any; it runs from the first
attempt's start to the last attempt's end. A job with no attempt, or whose last attempt
has no end (still running when the trace was cut), is skipped. The trace has no GPU type
(its servers held 12 GB and 24 GB GPUs), so a job may run on any type unless the import
maps the empty type. Times carry no zone: they are read in the import's source timezone.
Reference: https://github.com/msr-fiddle/philly-traces (README, schema of
cluster_job_log), Jeon et al., USENIX ATC 2019.
"""

from __future__ import annotations

from typing import Any

from optimizer.importers.records import BadRow, JsonItems, LayoutError, Parsed, Record, TimeParser


def parse(text: str, times: TimeParser) -> Parsed:
    out = Parsed()
    try:
        items = list(JsonItems(text).array())
    except LayoutError as exc:
        out.bad.append(exc.bad_row())
        return out
    for line, job in items:
        try:
            rec = _record(line, job, times)
        except ValueError as exc:
            out.bad.append(BadRow(line, str(exc)))
            continue
        if isinstance(rec, str):
            out.skipped[rec] += 1
        else:
            out.records.append(rec)
    return out


def _record(line: int, job: Any, times: TimeParser) -> Record | str:
    """The job's record, or the reason it is skipped; ValueError if it is malformed."""
    if not isinstance(job, dict):
        raise ValueError("a job is a JSON object")
    if not job.get("jobid"):
        raise ValueError("no jobid")
    attempts = job.get("attempts")
    if not isinstance(attempts, list):
        raise ValueError("attempts is not a list")
    if not attempts:
        return "never ran"
    gpus = 0
    for attempt in attempts:
        detail = attempt.get("detail") if isinstance(attempt, dict) else None
        if not isinstance(detail, list):
            raise ValueError("an attempt without a detail list")
        held = sum(len(d.get("gpus") or []) for d in detail if isinstance(d, dict))
        gpus = held or gpus
    if gpus == 0:
        return "no GPUs"
    submit = times(job.get("submitted_time"))
    start = times(attempts[0].get("start_time"))
    end = times(attempts[-1].get("end_time"))
    if start is None or end is None:
        return "not started or not finished"
    if submit is None:
        raise ValueError("no submitted_time")
    return Record(line, str(job["jobid"]), gpus, (), submit, start, end)
