"""The plan bundle on disk: summary.json plus one CSV per table (see docs/bundle.md),
written atomically and read back as a `Plan`."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.contract import BUNDLE_TABLES
from optimizer.plan.types import Plan

CSV_FLOAT_FORMAT = "%.10g"


def write_bundle(plan: Plan, path: str | Path) -> Path:
    """Write the bundle atomically: a reader sees all of it or none of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
    try:
        (tmp / "summary.json").write_text(
            json.dumps(_jsonable(plan.summary), indent=2, sort_keys=False) + "\n"
        )
        for name in BUNDLE_TABLES:
            plan.table(name).to_csv(tmp / f"{name}.csv", index=False, float_format=CSV_FLOAT_FORMAT)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_bundle(path: str | Path) -> Plan:
    root = Path(path)
    summary = json.loads((root / "summary.json").read_text())
    tables = {}
    for name in BUNDLE_TABLES:
        f = root / f"{name}.csv"
        tables[name] = (
            pd.read_csv(f, keep_default_na=False, na_values=[""]) if f.is_file() else pd.DataFrame()
        )
    return Plan(
        summary=summary,
        workloads=tables["workloads"],
        assignments=tables["assignments"],
        site_hours=tables["site_hours"],
        site_hour_devices=tables["site_hour_devices"],
        service_hours=tables["service_hours"],
        service_flows=tables["service_flows"],
        binding=tables["binding"],
        moves=tables["moves"],
        actions=tables["actions"],
        churn=tables["churn"],
        pricing_duals=tables["pricing_duals"],
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
