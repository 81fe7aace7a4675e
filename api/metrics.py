"""Prometheus figures read from the database on every scrape.

The collector holds no counts of its own: each scrape reads the all-time rollups and a
few indexed counts (``services.dashboard.metrics_snapshot``), so whichever gunicorn worker
answers, the figures are the same, cover every worker's decisions, and cost O(rulesets x
buckets) whatever the number of decisions. Latency is a real histogram (cumulative
``_bucket{le=..}``, ``_sum``, ``_count``), so it can be aggregated across instances and
turned into quantiles by ``histogram_quantile``. Each app gets its own
``CollectorRegistry`` (never the global one), so many apps can live in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from flask import Flask
from prometheus_client import Histogram, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from rules_service.adapters.heartbeats import Heartbeat
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.figures import LATENCY_BUCKETS_MS
from rules_service.services.dashboard import (
    RulesetCounters,
    Uncounted,
    metrics_snapshot,
)
from rules_service.services.notifications import (
    DeliveryHealth,
    delivery_health,
    worker_heartbeats,
)

REGISTRY_EXTENSION = "rules_service.metrics_registry"
# The histogram's upper bounds in seconds, as Prometheus writes them.
LATENCY_LE: tuple[str, ...] = (*(floatToGoString(ms / 1000.0) for ms in LATENCY_BUCKETS_MS),
                               "+Inf")

Family = CounterMetricFamily | GaugeMetricFamily
Reading = TypeVar("Reading")


def _families() -> dict[str, Family]:
    return {
        "decisions": CounterMetricFamily(
            "rules_service_decisions", "Recorded decisions by ruleset and outcome.",
            labels=["ruleset", "outcome"]),
        "fallbacks": CounterMetricFamily(
            "rules_service_fallbacks", "Decisions settled by the ruleset's fallback because "
            "the engine could not decide.", labels=["ruleset"]),
        "open": GaugeMetricFamily(
            "rules_service_escalations_open", "Escalations waiting for a person.",
            labels=["ruleset"]),
        "overdue": GaugeMetricFamily(
            "rules_service_escalations_overdue", "Open escalations past their due time (the "
            "runbook's response-time target).", labels=["ruleset"]),
        "active": GaugeMetricFamily(
            "rules_service_active_version", "Number of the active version (0: none).",
            labels=["ruleset"]),
        "pending": GaugeMetricFamily(
            "rules_service_pending_versions", "Versions waiting for sign-off.",
            labels=["ruleset"]),
        "hours": CounterMetricFamily(
            "rules_service_hours_saved", "Hours saved by auto-decided decisions (approve or "
            "reject, no fallback), each valued at its version's "
            "impact.minutes_saved_per_auto_decision.", labels=["ruleset"]),
    }


def _latency_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "rules_service_evaluation_latency_seconds", "Evaluation latency (duration_ms) of "
        "every recorded decision.", labels=["ruleset"])


def _fill(families: dict[str, Family], latency: HistogramMetricFamily,
          row: RulesetCounters) -> None:
    name = row.ruleset
    for outcome, count in sorted(row.decisions_by_outcome.items()):
        families["decisions"].add_metric([name, outcome], count)
    families["fallbacks"].add_metric([name], row.fallbacks)
    families["open"].add_metric([name], row.escalations_open)
    families["overdue"].add_metric([name], row.escalations_overdue)
    families["active"].add_metric([name], row.active_version or 0)
    families["pending"].add_metric([name], row.pending_versions)
    families["hours"].add_metric([name], row.hours_saved)
    cumulative, buckets = 0, []
    for le, count in zip(LATENCY_LE, row.latency_histogram, strict=True):
        cumulative += count
        buckets.append((le, float(cumulative)))
    latency.add_metric([name], buckets, sum_value=row.latency_sum_ms / 1000.0)


class DatabaseCollector(Collector):
    """Collects the service's figures from the database at scrape time."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self._uow_factory = uow_factory

    def describe(self) -> Iterator[Metric]:
        """The metric names, without touching the database (used at registration)."""
        yield from _families().values()
        yield _latency_family()
        yield from uncounted_families(None)

    def collect(self) -> Iterator[Metric]:
        """Every metric family, with one sample per ruleset (and label)."""
        families, latency = _families(), _latency_family()
        snapshot = metrics_snapshot(self._uow_factory())
        for row in snapshot.rulesets:
            _fill(families, latency, row)
        yield from families.values()
        yield latency
        yield from uncounted_families(snapshot.uncounted)


def delivery_families(health: DeliveryHealth | None) -> list[Family]:
    """The notification delivery figures: deliveries by state (queued, delivered, failed,
    dead) and the age of the oldest one still waiting (0 when nothing waits)."""
    by_state = GaugeMetricFamily(
        "rules_service_deliveries", "Notification deliveries by state (failed ones are "
        "retried with backoff; dead ones are not).", labels=["state"])
    oldest = GaugeMetricFamily(
        "rules_service_delivery_oldest_undelivered_seconds", "Age of the oldest event or "
        "delivery still waiting for the worker (0: nothing waits).")
    if health is not None:
        for state, count in health.by_state.items():
            by_state.add_metric([state], count)
        oldest.add_metric([], health.oldest_undelivered_s)
    return [by_state, oldest]


def uncounted_families(uncounted: Uncounted | None) -> list[Family]:
    """Decisions recorded but not yet folded into the counts above, and the wait of the
    oldest: the figures lag the decision log by at most about 2 s while the fold works."""
    waiting = GaugeMetricFamily(
        "rules_service_decisions_uncounted", "Decisions recorded but not yet counted in "
        "the figures (the rollup fold counts each within about 2 s).")
    oldest = GaugeMetricFamily(
        "rules_service_decisions_uncounted_oldest_seconds", "How long the oldest decision "
        "not yet counted has waited (0: none wait).")
    if uncounted is not None:
        waiting.add_metric([], uncounted.decisions)
        oldest.add_metric([], uncounted.oldest_age_s)
    return [waiting, oldest]


def worker_families(beats: list[Heartbeat] | None) -> list[Family]:
    """Each notification worker's heartbeat and its totals since it started (label
    ``worker``: ``host:pid``)."""
    beat = GaugeMetricFamily(
        "rules_service_worker_last_pass_timestamp_seconds", "Unix time of the worker's "
        "latest heartbeat (written at most every 5 s while it runs).", labels=["worker"])
    duration = GaugeMetricFamily(
        "rules_service_worker_last_pass_duration_seconds", "How long the worker's latest "
        "pass took.", labels=["worker"])
    passes = CounterMetricFamily(
        "rules_service_worker_passes", "Passes since the worker started.", labels=["worker"])
    work = CounterMetricFamily(
        "rules_service_worker_work", "What the worker's passes did since it started: "
        "escalation_steps, events_dispatched, delivered, failed (retried later), dead.",
        labels=["worker", "kind"])
    for b in beats or ():
        beat.add_metric([b.worker], b.beat_at.timestamp())
        duration.add_metric([b.worker], b.last_pass_ms / 1000.0)
        passes.add_metric([b.worker], b.passes)
        for kind in ("escalation_steps", "events_dispatched", "delivered", "failed", "dead"):
            work.add_metric([b.worker, kind], getattr(b, kind))
    return [beat, duration, passes, work]


class ReadingCollector(Collector, Generic[Reading]):
    """Metric families made from one reading of the database at scrape time: ``read``
    takes a unit of work, ``families`` makes the families of a reading (of None, without
    touching the database, to describe them at registration)."""

    def __init__(self, families: Callable[[Reading | None], list[Family]],
                 read: Callable[[UnitOfWork], Reading],
                 uow_factory: Callable[[], UnitOfWork]) -> None:
        self._families = families
        self._read = read
        self._uow_factory = uow_factory

    def describe(self) -> Iterator[Metric]:
        """The metric names, without touching the database."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        """The families of a fresh reading."""
        yield from self._families(self._read(self._uow_factory()))


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000.0 for ms in LATENCY_BUCKETS_MS)


class RequestMetrics:
    """The HTTP request duration by route, method and status class, and each phase's
    duration by route (``services.phases``), as Prometheus histograms.

    Kept in this process's memory; under gunicorn (``PROMETHEUS_MULTIPROC_DIR`` set by
    rules_service/gunicorn_conf.py) in that directory's memory-mapped files instead, so
    every worker's requests are in whichever worker answers the scrape.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Histogram(
            "rules_service_http_request_duration_seconds", "Time from a request's first "
            "hook to its response (the request log line's duration_ms).",
            ["route", "method", "status_class"], registry=registry, buckets=REQUEST_BUCKETS_S)
        self.phases = Histogram(
            "rules_service_request_phase_seconds", "Time a request spent in each phase "
            "(auth, body, validate, engine, record, response).", ["route", "phase"],
            registry=registry, buckets=REQUEST_BUCKETS_S)

    def observe(self, method: str, route: str | None, status: int, seconds: float,
                phases: dict[str, float]) -> None:
        """Counts one finished request and its phases."""
        route = route or "unmatched"
        self.requests.labels(route, method, f"{status // 100}xx").observe(seconds)
        for name, spent in phases.items():
            self.phases.labels(route, name).observe(spent)


def make_registry(uow_factory: Callable[[], UnitOfWork]) -> tuple[CollectorRegistry,
                                                                   RequestMetrics]:
    """A registry of its own holding the database collectors and the request histograms
    (this process's, or every worker's under gunicorn)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(uow_factory))
    registry.register(ReadingCollector(delivery_families, delivery_health, uow_factory))
    registry.register(ReadingCollector(worker_families, worker_heartbeats, uow_factory))
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.MultiProcessCollector(registry)
        return registry, RequestMetrics(None)
    return registry, RequestMetrics(registry)


def app_registry(app: Flask) -> CollectorRegistry:
    """The app's registry (made when the ops blueprint is registered)."""
    registry: CollectorRegistry = app.extensions[REGISTRY_EXTENSION]
    return registry
