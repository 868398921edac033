"""Prometheus metrics. Each hub has its own registry, so tests and embedded hubs don't collide."""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()  # the *_created series only add noise to every scrape

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self._latency_children: dict[str, Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "tidings_deliveries",
            "Delivery attempts finished, by integration and resulting status",
            ["integration", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tidings_delivery_latency_seconds",
            "Time one send took, from request to the peer's answer",
            ["integration"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self.oldest_pending = Gauge(
            "tidings_oldest_pending_age_seconds",
            "Age of the oldest delivery still waiting to be sent",
            registry=self.registry,
        )

    def observe_batch(self, results: Iterable[Any]) -> None:
        """Count finished attempts (objects with ``integration``, ``status``, ``latency_ms``)."""
        counts: Counter_[tuple[str, str]] = Counter_()
        for r in results:
            counts[(r.integration, r.status)] += 1
            if r.latency_ms is not None:
                child = self._latency_children.get(r.integration)
                if child is None:
                    child = self._latency_children[r.integration] = self.latency.labels(r.integration)
                child.observe(r.latency_ms / 1000)
        for (integration, status), n in counts.items():
            self.deliveries.labels(integration, status).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
