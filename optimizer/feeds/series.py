"""The hourly series a forecast feed provides, declared once: each generic feed name, the
scenario column it fills (its unit and range come from the scenario schema), the columns
that name its entity, and the provenance every series carries (provider, issue time,
horizon)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from optimizer.scenario import schema

KEY_SEPARATOR = "/"
"""Joins a multi-column entity key (service demand: `service_id/demand_region`)."""
QUANTILES = tuple(q for q, _ in schema.GREEN_QUANTILES)
"""Quantiles a series may carry beside its central value (the P50)."""


@dataclass(frozen=True)
class SeriesSpec:
    """A generic hourly series and where it lands in a scenario."""

    name: str
    table: str
    column: str
    key_columns: tuple[str, ...]

    @property
    def column_spec(self) -> schema.Column:
        return schema.TABLES_BY_NAME[self.table].column(self.column)

    @property
    def unit(self) -> str:
        return self.column_spec.unit

    def quantile_column(self, q: str) -> str:
        """The scenario column of quantile `q` beside the central one, by the scenario
        format's rule (`green_available_mw` -> `green_available_p10_mw`); it may not exist
        in the schema (then a quantile stays with the feed)."""
        return self.column.replace(self.name, f"{self.name}_{q}", 1)

    def key_of(self, parts: Mapping[str, str]) -> str:
        return KEY_SEPARATOR.join(str(parts[c]) for c in self.key_columns)


SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("green_available", "site_series", "green_available_mw", ("site_id",)),
    SeriesSpec("grid_price", "site_series", "grid_price_cny_per_mwh", ("site_id",)),
    SeriesSpec("grid_carbon", "site_series", "grid_carbon_kg_per_mwh", ("site_id",)),
    SeriesSpec(
        "inference_demand", "service_demand", "tokens_per_s", ("service_id", "demand_region")
    ),
)
SERIES_BY_NAME: Mapping[str, SeriesSpec] = MappingProxyType({s.name: s for s in SERIES})
SERIES_BY_COLUMN: Mapping[tuple[str, str], SeriesSpec] = MappingProxyType(
    {(s.table, s.column): s for s in SERIES}
)


def entity_keys(df: pd.DataFrame, key_columns: tuple[str, ...]) -> np.ndarray:
    """Each row's entity key (`SeriesSpec.key_of` of the row), vectorised."""
    out = df[key_columns[0]].astype(str)
    for c in key_columns[1:]:
        out = out + KEY_SEPARATOR + df[c].astype(str)
    return out.to_numpy(dtype=object)


@dataclass(frozen=True)
class Provenance:
    """Where a series came from: the provider, when it was issued, where it was read."""

    provider: str
    issued_at: pd.Timestamp
    source: str = ""


@dataclass(frozen=True, eq=False)
class HourlySeries:
    """One entity's hourly values of one series from `start`, with optional quantiles."""

    series: str
    key: str
    start: pd.Timestamp
    values: np.ndarray
    provenance: Provenance
    quantiles: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def hours(self) -> int:
        return len(self.values)

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(hours=self.hours)

    @property
    def horizon_h(self) -> int:
        """Hours from the issue time to the end of the series (how far it looks ahead)."""
        return max(int((self.end - self.provenance.issued_at) / pd.Timedelta(hours=1)), 0)

    def covers(self, start: pd.Timestamp, hours: int) -> bool:
        return self.start <= start and start + pd.Timedelta(hours=hours) <= self.end

    def window(self, start: pd.Timestamp, hours: int) -> HourlySeries:
        """The part of the series in [start, start + hours) (it must cover it)."""
        i = int((start - self.start) / pd.Timedelta(hours=1))
        cut = slice(i, i + hours)
        return HourlySeries(
            self.series,
            self.key,
            start,
            self.values[cut],
            self.provenance,
            {q: v[cut] for q, v in self.quantiles.items()},
        )

    def describe(self) -> dict[str, object]:
        """Its provenance as JSON: what a plan summary and the feed listing show."""
        return {
            "series": self.series,
            "key": self.key,
            "provider": self.provenance.provider,
            "issued_at": self.provenance.issued_at.isoformat(),
            "start": self.start.isoformat(),
            "hours": self.hours,
            "horizon_h": self.horizon_h,
            "quantiles": sorted(self.quantiles),
            "source": self.provenance.source,
        }
