"""Prometheus metrics. Each hub has its own registry, so tests and embedded hubs don't collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()  # the *_created series only add noise to every scrape

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
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
        self.oldest_pending = Gauge(
            "tidings_oldest_pending_age_seconds",
            "Age of the oldest delivery still waiting to be sent",
            registry=self.registry,
        )

    def observe(self, integration: str, status: str, latency_s: float | None) -> None:
        self.deliveries.labels(integration, status).inc()
        if latency_s is not None:
            self.latency.labels(integration).observe(latency_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
