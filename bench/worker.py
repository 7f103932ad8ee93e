"""Run one benchmark task in this (fresh) process and write its result as JSON, so that the
task's peak memory is this process's alone: ``python -m bench.worker JOB.json OUT.json``."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

BYTES_PER_GIB = 1024**3


def main(argv: list[str]) -> int:
    job_path, out_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text())
    limit_gib = job.get("mem_limit_gib")
    if limit_gib:
        # a runaway instance fails with MemoryError instead of pushing a shared machine
        # into swap or the OOM killer; address space, so set it well above the peak RSS
        limit = int(float(limit_gib) * BYTES_PER_GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from bench.sizes import Size
    from bench.tasks import run_task

    size = Size(**{k: v for k, v in job["size"].items() if k != "label"})
    out = run_task(job["task"], size, Path(job["workdir"]), **job.get("params", {}))
    out_path.write_text(json.dumps(out, default=_plain))
    return 0


def _plain(x: object) -> object:
    """numpy scalars and other stragglers as plain JSON values."""
    if hasattr(x, "item"):
        return x.item()  # type: ignore[attr-defined]
    if hasattr(x, "tolist"):
        return x.tolist()  # type: ignore[attr-defined]
    return str(x)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
