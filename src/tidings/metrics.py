"""Prometheus metrics. Each hub has its own registry, so tests and embedded hubs don't collide."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Counter_
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

disable_created_metrics()  # the *_created series only add noise to every scrape

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LatencyHistogram(Collector):
    """``tidings_delivery_latency_seconds`` by integration. A custom collector rather than
    prometheus_client's Histogram: that one takes a lock and walks the buckets per observation,
    this one is fed a whole batch of outcomes at once from the event loop."""

    name = "tidings_delivery_latency_seconds"

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self._series: dict[str, list[float]] = {}
        """Integration -> a count per bucket (the last one +Inf), then the sum."""

    def observe(self, integration: str, seconds: float) -> None:
        series = self._series.get(integration)
        if series is None:
            series = self._series[integration] = [0.0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, "Time one send took, from request to the peer's answer", labels=["integration"])
        for integration, series in sorted(self._series.items()):
            cumulative, buckets = 0.0, []
            for bound, n in zip((*self.bounds, float("inf")), series[:-1], strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric([integration], buckets, series[-1])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, "Time one send took, from request to the peer's answer", labels=["integration"])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "tidings_deliveries",
            "Delivery attempts finished, by integration and resulting status",
            ["integration", "status"],
            registry=self.registry,
        )
        self.latency = LatencyHistogram(LATENCY_BUCKETS)
        self.registry.register(self.latency)
        self.enqueued = Counter(
            "tidings_messages", "Messages accepted and stored", registry=self.registry
        )
        self.queue_depth = Gauge(
            "tidings_queue_depth",
            "Deliveries waiting to be sent (pending, retrying or sending), by integration",
            ["integration"],
            registry=self.registry,
        )
        self.inbound = Counter(
            "tidings_inbound_requests",
            "Inbound webhook requests by integration and result (stored, duplicate, requeued, rejected...)",
            ["integration", "result"],
            registry=self.registry,
        )
        self.pruned = Counter(
            "tidings_pruned_rows",
            "Rows removed by retention, by table",
            ["table"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "tidings_oldest_pending_age_seconds",
            "Age of the oldest delivery still waiting to be sent",
            registry=self.registry,
        )

    def observe_batch(self, results: Iterable[Any]) -> None:
        """Count finished attempts (objects with ``integration``, ``status``, ``latency_ms``)."""
        counts: Counter_[tuple[str, str]] = Counter_()
        observe = self.latency.observe
        for r in results:
            counts[(r.integration, r.status)] += 1
            if r.latency_ms is not None:
                observe(r.integration, r.latency_ms / 1000)
        for (integration, status), n in counts.items():
            self.deliveries.labels(integration, status).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
