"""What forecast feeds add to a rolled night (issue 13): the median time to re-stamp the
default scenario's series onto a 48 h window (`service.rolling.shift_series`, the night
without feeds) against that plus the typical-year feed, the choice and writing it in
(`service.feeds` / `optimizer.feeds`), in one run. `python -m bench.feeds_window`."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from optimizer import feeds as of
from optimizer.scenario import load_scenario, scenario_to_tables
from service.feeds import window_request
from service.rolling import shift_series

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "scenarios" / "cn-edwc-48h"
REPEATS = 7


def _median_s(f: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    sc = load_scenario(SCENARIO)
    tables = {k: v.astype(str) for k, v in scenario_to_tables(sc)[1].items()}
    start, hours = pd.Timestamp("2025-07-20T00:00+08:00"), 48
    as_of = start - pd.Timedelta(hours=22, minutes=30)
    src = pd.Timestamp(sc.start)
    provider = of.TypicalYearProvider("cn-edwc", error=0.05, seed=1)

    def shifted() -> dict[str, pd.DataFrame]:
        return {
            n: shift_series(tables[n], src, sc.hours, start, hours)
            for n in ("site_series", "service_demand")
        }

    def with_feeds() -> dict[str, pd.DataFrame]:
        t = shifted()
        req = window_request(t, start, hours, as_of)
        res = of.resolve(req, [provider.fetch(req)], max_age=pd.Timedelta(hours=24))
        return of.apply(t, res)

    base, full = _median_s(shifted), _median_s(with_feeds)
    print(f"load average {os.getloadavg()}")
    print(
        f"re-stamp only {base * 1000:.0f} ms; with feeds {full * 1000:.0f} ms; x{full / base:.2f}"
    )


if __name__ == "__main__":
    main()
