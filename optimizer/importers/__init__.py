"""Import real job histories into a scenario's jobs.csv: Slurm accounting (`sacct
--parsable2`), Kubernetes Job/Pod listings (JSON), the Microsoft Philly trace's job log
and the Alibaba GPU 2023 trace's pod list.

Each format's module parses its layout into `Record`s (`records.py`); `rules.py` turns
records into jobs by rules stated in the scenario's description; the jobs are checked by
the scenario loader itself before anything is written. Every bad row is reported with its
line in the source file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optimizer.importers import alibaba, kubernetes, philly, slurm
from optimizer.importers.records import BadRow, Parsed, Record, TimeParser
from optimizer.importers.rules import Horizon, ImportRules, to_jobs
from optimizer.scenario import (
    InputValidationError,
    Scenario,
    read_scenario_dir,
    scenario_from_tables,
    write_scenario,
)

FORMATS: dict[str, Callable[[str, TimeParser], Parsed]] = {
    "slurm": slurm.parse,
    "kubernetes": kubernetes.parse,
    "philly": philly.parse,
    "alibaba": alibaba.parse,
}
"""Format name -> parser of its text."""
PROVENANCE_PREFIX = "Jobs imported from "


@dataclass(frozen=True)
class ImportResult:
    """The scenario with the imported jobs (None if any row was bad and bad rows are not
    skipped), what was imported, skipped and wrong, and how long it took."""

    scenario: Scenario | None
    imported: int
    skipped: dict[str, int]
    bad: list[BadRow]
    provenance: str
    seconds: float


def import_jobs(
    source: str | Path,
    fmt: str,
    scenario_dir: str | Path,
    rules: ImportRules | None = None,
    source_timezone: str | None = None,
    append: bool = False,
    skip_bad: bool = False,
) -> ImportResult:
    """Read the job history `source` (format `fmt`) into the jobs of the scenario in
    `scenario_dir` (replacing them, or after them with `append`); nothing is written.

    Naive times in the source are read in `source_timezone` (default: the scenario's).
    With bad rows the result has no scenario unless `skip_bad`."""
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rules = rules or ImportRules()
    manifest, tables = read_scenario_dir(scenario_dir)
    base = scenario_from_tables(manifest, tables)
    horizon = Horizon(
        base.start,
        base.hours,
        base.timezone,
        {a.accelerator: a.relative_throughput for a in base.accelerators},
    )
    text = Path(source).read_text(encoding="utf-8-sig")  # a BOM is not part of the header
    parsed = FORMATS[fmt](text, TimeParser(source_timezone or base.timezone))
    jobs, lines, bad, skipped = to_jobs(parsed.records, horizon, rules)
    bad = parsed.bad + bad
    skipped = dict(parsed.skipped) | skipped
    provenance = (
        f"{PROVENANCE_PREFIX}{fmt} history {Path(source).name} "
        f"(naive times in {source_timezone or base.timezone}): {rules.describe()}."
    )
    read = len(jobs)
    if append and "jobs" in tables:
        jobs = pd.concat([tables["jobs"], jobs], ignore_index=True).fillna("")
        lines = [0] * len(tables["jobs"]) + lines  # line 0: a job already in the scenario
    earlier = base.description.splitlines()
    if not append:  # the rules of a replaced import no longer describe the jobs
        earlier = [d for d in earlier if not d.startswith(PROVENANCE_PREFIX)]
    manifest = manifest | {"description": "\n".join(filter(None, (*earlier, provenance)))}
    # the loader checks the rows that parsed even when others did not: every bad row at once
    sc, wrong = _validated(manifest, tables | {"jobs": jobs}, lines, skip_bad)
    bad += wrong
    bad.sort(key=lambda b: b.line)
    return ImportResult(
        sc if not bad or skip_bad else None,
        len(sc.jobs) - (len(tables.get("jobs", [])) if append else 0) if sc else read,
        skipped,
        bad,
        provenance,
        time.perf_counter() - t0,
    )


def _validated(
    manifest: dict, tables: dict[str, pd.DataFrame], lines: list[int], skip_bad: bool
) -> tuple[Scenario | None, list[BadRow]]:
    """The scenario of `tables` by the same loader as `scenario check`, and the imported
    rows it rejects (at their source lines); with `skip_bad`, without those rows."""
    try:
        return scenario_from_tables(manifest, tables), []
    except InputValidationError as err:
        bad = _source_lines(err, lines)
        rows = {p.row for p in err.problems if p.file == "jobs.csv" and p.row}
        if not skip_bad or any(p.file != "jobs.csv" or not p.row for p in err.problems):
            return None, bad  # not only job rows are wrong: nothing to skip past
        jobs = tables["jobs"].drop(index=[r - 1 for r in rows]).reset_index(drop=True)
        try:
            return scenario_from_tables(manifest, tables | {"jobs": jobs}), bad
        except InputValidationError as again:
            return None, bad + _source_lines(again, [])


def _source_lines(err: InputValidationError, lines: list[int]) -> list[BadRow]:
    """The loader's problems with the imported jobs, each at its line in the source."""
    out = []
    for p in err.problems:
        row = p.row if p.file == "jobs.csv" and p.row is not None else None
        line = lines[row - 1] if row is not None and 0 < row <= len(lines) else 0
        out.append(BadRow(line, p.message if line else str(p)))
    return out


def write_imported(result: ImportResult, scenario_dir: str | Path) -> Path:
    """Write the imported scenario back to `scenario_dir` (its description now states the
    import's rules)."""
    if result.scenario is None:
        raise ValueError("nothing to write: the import has bad rows")
    return write_scenario(result.scenario, scenario_dir)


__all__ = [
    "FORMATS",
    "BadRow",
    "ImportResult",
    "ImportRules",
    "Record",
    "import_jobs",
    "write_imported",
]
