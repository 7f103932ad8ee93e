"""Slurm accounting: the output of `sacct --parsable2 --allocations --format=...`
(`|`-separated, a header line, no trailing `|`).

Columns read: JobID, Submit, Start, End (required) and AllocTRES (GPUs held; ReqTRES is
read when AllocTRES is absent). The GPU count is `gres/gpu=N`; the type is the `X` of
`gres/gpu:X=N` when exactly one type is listed. Job steps (`123.batch`, `123.0`) are
skipped: their job's row already holds the allocation. Times without a zone (sacct prints
the cluster's local time) are read in the import's source timezone.
Reference: https://slurm.schedmd.com/sacct.html (--parsable2, TRES fields).
"""

from __future__ import annotations

from optimizer.importers.records import BadRow, Parsed, Record, TimeParser

REQUIRED = ("JobID", "Submit", "Start", "End")
_GPU = "gres/gpu"


def parse(text: str, times: TimeParser) -> Parsed:
    out = Parsed()
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        out.bad.append(BadRow(1, "no header line (run sacct with --parsable2, not --noheader)"))
        return out
    header = [h.strip() for h in lines[0].split("|")]
    missing = [c for c in REQUIRED if c not in header]
    tres = next((c for c in ("AllocTRES", "ReqTRES") if c in header), "")
    if not tres:
        missing.append("AllocTRES")
    if missing:
        out.bad.append(
            BadRow(1, f"header lacks {', '.join(missing)} (columns: {'|'.join(header)})")
        )
        return out
    col = {name: i for i, name in enumerate(header)}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("|")
        if len(cells) != len(header):
            out.bad.append(BadRow(n, f"{len(cells)} fields, the header has {len(header)}"))
            continue
        row = {name: cells[i].strip() for name, i in col.items()}
        if "." in row["JobID"]:
            out.skipped["job steps"] += 1
            continue
        try:
            gpus, types = _gpus(row[tres])
            submit, start, end = (times(row[c]) for c in ("Submit", "Start", "End"))
        except ValueError as exc:
            out.bad.append(BadRow(n, str(exc)))
            continue
        if gpus == 0:
            out.skipped["no GPUs"] += 1
        elif start is None or end is None:
            out.skipped["not started or not finished"] += 1
        elif submit is None:
            out.bad.append(BadRow(n, "no Submit time"))
        else:
            out.records.append(Record(n, row["JobID"], gpus, types, submit, start, end))
    return out


def _gpus(tres: str) -> tuple[int, tuple[str, ...]]:
    """GPU count and types of a TRES list such as `cpu=16,gres/gpu:h100=8,gres/gpu=8`."""
    count: int | None = None
    typed: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in tres.split(","))):
        name, sep, value = item.partition("=")
        if not name.startswith(_GPU):
            continue
        if not sep or not value.isdigit():
            raise ValueError(f"GPU count is not a whole number: {item!r}")
        if name == _GPU:
            count = int(value)
        elif name.startswith(_GPU + ":"):
            typed[name[len(_GPU) + 1 :]] = int(value)
    if count is None:
        count = sum(typed.values())
    return count, tuple(typed) if len(typed) == 1 else ()
