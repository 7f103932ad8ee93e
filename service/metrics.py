"""Prometheus metrics. Request counts and latencies are observed in this process; runs,
solve durations and the active plan's KPIs are read from the database at scrape time, so
every API replica reports the same numbers and nothing is lost across restarts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.db import Database
from service.models import RUN_STATES
from service.repo import plans as plans_repo
from service.repo import runs as runs_repo

log = logging.getLogger("greenopt.metrics")

SOLVE_BUCKETS_S = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _DatabaseCollector(Collector):
    def __init__(
        self,
        db: Database,
        queue_depth: Callable[[], int],
        runner_metrics: Callable[[], Iterable[Metric]] | None = None,
    ) -> None:
        self.db = db
        self.queue_depth = queue_depth
        self.runner_metrics = runner_metrics

    def describe(self) -> list[Metric]:
        # without this, registering would run `collect` (a database query) at once
        return []

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "greenopt_queue_depth",
            "runs handed to the runner, not started yet (local: this process's pool; "
            "celery: messages waiting in the broker)",
        )
        depth.add_metric([], self.queue_depth())
        yield depth
        if self.runner_metrics is not None:  # the runner's own gauges (the broker's queues)
            yield from self.runner_metrics()
        try:
            with self.db.read() as s:
                by_state = runs_repo.count_by_state(s)
                hist = runs_repo.duration_histogram(s, SOLVE_BUCKETS_S)
                active = plans_repo.active(s)
                plan = plans_repo.get(s, active.plan_id) if active is not None else None
        except Exception:  # a scrape must not fail because the database is away
            log.exception("metrics: database unavailable")
            return
        runs = GaugeMetricFamily("greenopt_runs", "runs by state", labels=["state"])
        for state in RUN_STATES:
            runs.add_metric([state], by_state.get(state, 0))
        yield runs
        h = HistogramMetricFamily(
            "greenopt_solve_duration_seconds",
            "wall time of finished runs, claim to final state",
            labels=["kind", "state"],
        )
        for (kind, state), (counts, _n, total) in sorted(hist.items()):
            buckets: list[tuple[str, float]] = [
                (str(b), float(c)) for b, c in zip(SOLVE_BUCKETS_S, counts, strict=True)
            ]
            buckets.append(("+Inf", float(_n)))
            h.add_metric([kind, state], buckets, total)
        yield h
        if plan is None:
            return
        for name, doc, value in (
            ("greenopt_active_plan_id", "id of the active plan", plan.id),
            (
                "greenopt_active_plan_cost_cny",
                "total cost of the active plan, CNY",
                plan.total_cost,
            ),
            (
                "greenopt_active_plan_objective_cny",
                "objective of the active plan, CNY",
                plan.objective,
            ),
            (
                "greenopt_active_plan_emissions_t",
                "contract-based emissions of the active plan, tCO2",
                plan.emissions_t,
            ),
            (
                "greenopt_active_plan_green_share",
                "green energy / facility energy of the active plan",
                plan.green_share,
            ),
            ("greenopt_active_plan_gap", "relative MIP gap of the active plan", plan.gap),
        ):
            if value is not None:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], float(value))
                yield g


class Metrics:
    """The registry of one app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "greenopt_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "greenopt_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS_S,
            registry=self.registry,
        )
        self._collector: _DatabaseCollector | None = None

    def bind(
        self,
        db: Database,
        queue_depth: Callable[[], int],
        runner_metrics: Callable[[], Iterable[Metric]] | None = None,
    ) -> None:
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = _DatabaseCollector(db, queue_depth, runner_metrics)
        self.registry.register(self._collector)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
