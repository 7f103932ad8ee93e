"""Import timings: `python -m bench.import_timing [rows]` writes a synthetic history of
`rows` GPU jobs in each supported format (the layouts of tests/data/importers) and times
`optimizer.importers.import_jobs` into the default scenario, parse to validated Scenario."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.importers import FORMATS, ImportRules, import_jobs

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "scenarios" / "cn-edwc-48h"
SEED = 17
HORIZON_S = 40 * 3600  # submissions within the first 40 h of the 48 h horizon


def _jobs(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    submit = np.sort(rng.uniform(0, HORIZON_S, n))
    run = np.exp(rng.normal(np.log(1200), 1.5, n)).clip(60, 20 * 3600)
    gpus = rng.choice([1, 1, 1, 1, 2, 4, 8, 16], n)
    return pd.DataFrame(
        {"submit": submit, "start": submit + 30, "end": submit + 30 + run, "gpus": gpus}
    )


def write(fmt: str, jobs: pd.DataFrame, path: Path) -> None:
    t0 = pd.Timestamp("2024-06-03")
    ts = {
        c: [t0 + pd.Timedelta(seconds=float(s)) for s in jobs[c]]
        for c in ("submit", "start", "end")
    }
    if fmt == "slurm":
        lines = ["JobID|Submit|Start|End|State|AllocTRES"] + [
            f"{i}|{ts['submit'][i]:%Y-%m-%dT%H:%M:%S}|{ts['start'][i]:%Y-%m-%dT%H:%M:%S}|"
            f"{ts['end'][i]:%Y-%m-%dT%H:%M:%S}|COMPLETED|cpu=8,gres/gpu:h100={g},gres/gpu={g}"
            for i, g in enumerate(jobs["gpus"])
        ]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "alibaba":
        pd.DataFrame(
            {
                "name": [f"pod-{i}" for i in range(len(jobs))],
                "num_gpu": jobs["gpus"],
                "gpu_spec": "",
                "qos": "BE",
                "creation_time": jobs["submit"].astype(int),
                "scheduled_time": jobs["start"].astype(int),
                "deletion_time": jobs["end"].astype(int),
            }
        ).to_csv(path, index=False)
    elif fmt == "philly":
        doc = [
            {
                "jobid": f"app_{i}",
                "submitted_time": f"{ts['submit'][i]:%Y-%m-%d %H:%M:%S}",
                "attempts": [
                    {
                        "start_time": f"{ts['start'][i]:%Y-%m-%d %H:%M:%S}",
                        "end_time": f"{ts['end'][i]:%Y-%m-%d %H:%M:%S}",
                        "detail": [{"ip": "m1", "gpus": [f"gpu{k}" for k in range(int(g))]}],
                    }
                ],
            }
            for i, g in enumerate(jobs["gpus"])
        ]
        path.write_text(json.dumps(doc, indent=4))
    else:
        items = [
            {
                "kind": "Pod",
                "metadata": {
                    "name": f"p{i}",
                    "creationTimestamp": f"{ts['submit'][i]:%Y-%m-%dT%H:%M:%S}Z",
                },
                "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": str(g)}}}]},
                "status": {
                    "startTime": f"{ts['start'][i]:%Y-%m-%dT%H:%M:%S}Z",
                    "containerStatuses": [
                        {
                            "state": {
                                "terminated": {"finishedAt": f"{ts['end'][i]:%Y-%m-%dT%H:%M:%S}Z"}
                            }
                        }
                    ],
                },
            }
            for i, g in enumerate(jobs["gpus"])
        ]
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=4))


def main(rows: int) -> None:
    jobs = _jobs(rows)
    rules = ImportRules(type_map={"h100": ("H100",)})
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "| format | rows | file MB | imported | skipped | seconds |\n|---|---|---|---|---|---|"
        )
        for fmt in FORMATS:
            path = Path(tmp) / f"history.{fmt}"
            write(fmt, jobs, path)
            r = import_jobs(path, fmt, SCENARIO, rules)
            assert not r.bad, r.bad[:3]
            mb = path.stat().st_size / 1e6
            print(
                f"| {fmt} | {rows:,} | {mb:.1f} | {r.imported:,} | {sum(r.skipped.values()):,} | {r.seconds:.2f} |"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
