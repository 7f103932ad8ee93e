"""Alibaba GPU cluster trace 2023 (`cluster-trace-gpu-v2023/csv/openb_pod_list_*.csv`):
one row per pod with name, num_gpu, gpu_milli, gpu_spec, qos, pod_phase and
creation/scheduled/deletion times in seconds from the trace's start.

Rows with num_gpu 0 (CPU pods) are skipped; a GPU-sharing pod (num_gpu 1, gpu_milli <
1000) is counted as holding one device. `gpu_spec` lists acceptable types separated by
`|` (empty or `nan`: any). qos `LS` (latency sensitive) pods are not preemptible, `BE`
(best effort) pods are; other classes take the import's default.
Reference: https://github.com/alibaba/clusterdata/tree/master/cluster-trace-gpu-v2023
(README: column meanings), Weng et al., USENIX ATC 2023.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from optimizer.importers.records import BadRow, Parsed, Record, TimeParser

REQUIRED = ("name", "num_gpu", "creation_time", "scheduled_time", "deletion_time")
PREEMPTIBLE_BY_QOS = {"LS": False, "BE": True}
# The trace counts seconds from its own start; its day 0 is taken to begin at midnight
# of this date (any date: the import shifts the history onto the horizon by whole days).
EPOCH = "2023-01-01"


def parse(text: str, times: TimeParser) -> Parsed:
    out = Parsed()
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        out.bad.append(
            BadRow(1, f"header lacks {', '.join(missing)} (columns: {','.join(header)})")
        )
        return out
    epoch = pd.Timestamp(EPOCH).tz_localize(times.naive_tz)
    for row in reader:
        n = reader.line_num
        if None in row or any(v is None for v in row.values()):
            out.bad.append(BadRow(n, f"wrong number of fields, the header has {len(header)}"))
            continue
        try:
            gpus = float(row["num_gpu"])
        except ValueError:
            out.bad.append(BadRow(n, f"num_gpu is not a number: {row['num_gpu']!r}"))
            continue
        if gpus != int(gpus) or gpus < 0:
            out.bad.append(
                BadRow(n, f"num_gpu is not a whole number of devices: {row['num_gpu']!r}")
            )
            continue
        if gpus == 0:
            out.skipped["no GPUs"] += 1
            continue
        try:
            submit, start, end = (
                times.seconds(row[c], epoch)
                for c in ("creation_time", "scheduled_time", "deletion_time")
            )
        except ValueError as exc:
            out.bad.append(BadRow(n, str(exc)))
            continue
        if start is None or end is None:
            out.skipped["not started or not finished"] += 1
            continue
        if submit is None:
            out.bad.append(BadRow(n, "no creation_time"))
            continue
        spec = (row.get("gpu_spec") or "").strip()
        types = () if spec.lower() in ("", "nan") else tuple(t for t in spec.split("|") if t)
        qos = (row.get("qos") or "").strip()
        out.records.append(
            Record(
                n, row["name"], int(gpus), types, submit, start, end, PREEMPTIBLE_BY_QOS.get(qos)
            )
        )
    return out
