"""The provider interface and the offline provider: a region pack's typical-year profiles
shifted to the requested dates, with a seeded forecast error.

A provider answers a `FeedRequest` (which series, for which entities, which window, as
of when) with the series it has and the problems it met; it never decides what a plan
uses: `optimizer.feeds.resolve` does, in the order the caller ranks the providers.

The forecast error model (`assumed`: no forecast-skill figures for the pack's sites are
sourced): a relative error e_h following an AR(1) process, e_h = phi e_{h-1} +
sqrt(1 - phi^2) sigma z_h with z_h standard normal, seeded by (seed, window start, series,
site), so the same night always gets the same forecast. Green availability and grid carbon
are forecast as typical x (1 + e_h), floored at 0; the grid price is a published
time-of-use tariff, known ahead, and carries no error. Green availability carries the
error's own P10/P90, typical x (1 + e_h -/+ 1.2816 sigma), floored at 0.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from optimizer.feeds.series import SERIES_BY_NAME, HourlySeries, Provenance
from optimizer.generator import typical_site_series
from optimizer.regions import RegionPack, load_region
from optimizer.scenario.schema import (
    GREEN_HIGH,
    GREEN_LOW,
    GREEN_QUANTILES,
    green_quantile_column,
)

ERROR_AR1_PHI = 0.8  # hour-to-hour persistence of the forecast error (`assumed`)
Z_P90 = 1.2816  # the standard normal's 90th percentile
WITH_ERROR = ("green_available", "grid_carbon")
"""Series the typical-year provider perturbs (a time-of-use price is known ahead)."""
WITH_QUANTILES = ("green_available",)
CAMPUS_SUFFIX = re.compile(r"-c\d+$")
"""A generated extra campus (`<site>-c2`) takes its pack site's data (optimizer.generator)."""


@dataclass(frozen=True)
class FeedRequest:
    """The series a window needs: `keys` per series name, `hours` from `start`, known at
    `as_of` (a series issued later does not exist yet)."""

    start: pd.Timestamp
    hours: int
    as_of: pd.Timestamp
    keys: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class ProviderResult:
    """What one provider returned: its series and the problems it met (an unreachable
    URL, a bad file, an unknown site); a problem means a fall back, never a failed night."""

    provider: str
    series: tuple[HourlySeries, ...] = ()
    problems: tuple[str, ...] = field(default=())


class Provider(Protocol):
    name: str

    def fetch(self, request: FeedRequest) -> ProviderResult: ...


def forecast_error(seed: int, *parts: object, hours: int, sigma: float) -> np.ndarray:
    """The seeded AR(1) relative error of the module docstring, `hours` long."""
    if sigma <= 0:
        return np.zeros(hours)
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    z = rng.standard_normal(hours)
    e = np.empty(hours)
    e[0] = sigma * z[0]
    k = np.sqrt(1 - ERROR_AR1_PHI**2) * sigma
    for h in range(1, hours):
        e[h] = ERROR_AR1_PHI * e[h - 1] + k * z[h]
    return e


class TypicalYearProvider:
    """The region pack's typical-year green, price and carbon profiles on the requested
    dates (the offline, embedded default). Sites the pack does not know are reported."""

    name = "typical-year"

    def __init__(
        self, region: str | Path | RegionPack, *, error: float = 0.0, seed: int = 0
    ) -> None:
        self.pack = region if isinstance(region, RegionPack) else load_region(region)
        self.error = float(error)
        self.seed = int(seed)

    def base_site(self, site_id: str) -> str | None:
        known = set(self.pack.site_ids)
        if site_id in known:
            return site_id
        base = CAMPUS_SUFFIX.sub("", site_id)
        return base if base in known else None

    def fetch(self, request: FeedRequest) -> ProviderResult:
        sites = sorted(
            {
                k
                for name, keys in request.keys.items()
                for k in keys
                if SERIES_BY_NAME[name].table == "site_series"
            }
        )
        base = {s: b for s in sites if (b := self.base_site(s)) is not None}
        unknown = [s for s in sites if s not in base]
        problems = (
            (f"sites {', '.join(unknown)} are not in region pack {self.pack.name}",)
            if unknown
            else ()
        )
        if not base:
            return ProviderResult(self.name, (), problems)
        table = typical_site_series(self.pack, base, request.start, request.hours)
        prov = Provenance(self.name, request.as_of, f"region pack {self.pack.name}")
        start = request.start.tz_convert(self.pack.timezone)
        out: list[HourlySeries] = []
        for name, keys in request.keys.items():
            spec = SERIES_BY_NAME[name]
            if spec.table != "site_series":
                continue
            for site in (k for k in keys if k in base):
                rows = table[table["site_id"] == site]
                typical = rows[spec.column].to_numpy(float)
                band = {
                    q: rows[green_quantile_column(q)].to_numpy(float)
                    for q, _ in GREEN_QUANTILES
                    if name in WITH_QUANTILES and green_quantile_column(q) in rows
                }
                out.append(self._series(name, site, start, typical, prov, band))
        return ProviderResult(self.name, tuple(out), problems)

    def _series(
        self,
        name: str,
        site: str,
        start: pd.Timestamp,
        typical: np.ndarray,
        prov: Provenance,
        band: dict[str, np.ndarray],
    ) -> HourlySeries:
        """One series; green carries a band: the pack's forecast error model's (the same
        the scenario builder writes) without an error of this provider's own, else one
        around the erred values."""
        if name not in WITH_ERROR:
            return HourlySeries(name, site, start, typical, prov)
        if self.error == 0.0:
            return HourlySeries(name, site, start, typical, prov, band)
        e = forecast_error(
            self.seed, start.isoformat(), name, site, hours=len(typical), sigma=self.error
        )
        values = np.maximum(typical * (1 + e), 0.0)
        q: dict[str, np.ndarray] = {}
        if name in WITH_QUANTILES:
            q[GREEN_LOW] = np.minimum(
                np.maximum(typical * (1 + e - Z_P90 * self.error), 0.0), values
            )
            q[GREEN_HIGH] = np.maximum(typical * (1 + e + Z_P90 * self.error), values)
        return HourlySeries(name, site, start, values, prov, q)


class FixedProvider:
    """Series already in hand (parsed from a file, stored, or fetched) offered under one
    provider name: the newest issue of each entity's series, as of the request."""

    def __init__(self, name: str, series: Sequence[HourlySeries], problems: Sequence[str] = ()):
        self.name = name
        self.series = tuple(series)
        self.problems = tuple(problems)

    def fetch(self, request: FeedRequest) -> ProviderResult:
        known = [s for s in self.series if s.provenance.issued_at <= request.as_of]
        return ProviderResult(self.name, tuple(known), self.problems)
