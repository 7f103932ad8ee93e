"""Forecast feeds (issue 13): hourly series (green availability, grid price, grid carbon,
inference demand) from ranked providers, each with its provenance, and the choice of
each window's series with the fall back said. The pure part: the provider interface, the
offline typical-year provider, reading and checking feed documents, the choice. Files,
uploads and HTTP pulls are the service's (service/feeds.py)."""

from optimizer.feeds.parse import (
    FeedError,
    parse_csv_document,
    parse_json_document,
    parse_period_forecasts,
)
from optimizer.feeds.providers import (
    FeedRequest,
    FixedProvider,
    Provider,
    ProviderResult,
    TypicalYearProvider,
    forecast_error,
)
from optimizer.feeds.resolve import SCENARIO_PROFILE, Resolution, apply, resolve
from optimizer.feeds.series import (
    QUANTILES,
    SERIES,
    SERIES_BY_NAME,
    HourlySeries,
    Provenance,
    SeriesSpec,
)

__all__ = [
    "QUANTILES",
    "SCENARIO_PROFILE",
    "SERIES",
    "SERIES_BY_NAME",
    "FeedError",
    "FeedRequest",
    "FixedProvider",
    "HourlySeries",
    "Provenance",
    "Provider",
    "ProviderResult",
    "Resolution",
    "SeriesSpec",
    "TypicalYearProvider",
    "apply",
    "forecast_error",
    "parse_csv_document",
    "parse_json_document",
    "parse_period_forecasts",
    "resolve",
]
