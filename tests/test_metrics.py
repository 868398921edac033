"""The Prometheus metrics a hub keeps: the latency histogram fed in batches."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tidings.metrics import Metrics


@dataclass
class _Result:
    integration: str
    status: str
    latency_ms: float | None


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_latencies_land_in_cumulative_buckets_with_le_semantics() -> None:
    m = Metrics()
    m.observe_batch(
        [
            _Result("ops", "delivered", 5.0),  # exactly on the 0.005 s bound: counted in it
            _Result("ops", "delivered", 20.0),
            _Result("ops", "retrying", 40_000.0),  # beyond the last bound: only +Inf
            _Result("ops", "dead", None),  # no send happened: no latency
            _Result("slack", "delivered", 100.0),
        ]
    )
    s = _samples(m)
    ops = (("integration", "ops"),)
    assert s[("tidings_delivery_latency_seconds_bucket", (*ops, ("le", "0.005")))] == 1
    assert s[("tidings_delivery_latency_seconds_bucket", (*ops, ("le", "0.01")))] == 1
    assert s[("tidings_delivery_latency_seconds_bucket", (*ops, ("le", "0.025")))] == 2
    assert s[("tidings_delivery_latency_seconds_bucket", (*ops, ("le", "30.0")))] == 2
    assert s[("tidings_delivery_latency_seconds_bucket", (*ops, ("le", "+Inf")))] == 3
    assert s[("tidings_delivery_latency_seconds_count", ops)] == 3
    assert abs(s[("tidings_delivery_latency_seconds_sum", ops)] - 40.025) < 1e-9
    assert s[("tidings_delivery_latency_seconds_count", (("integration", "slack"),))] == 1
    assert s[("tidings_deliveries_total", (("integration", "ops"), ("status", "delivered")))] == 2
    assert s[("tidings_deliveries_total", (("integration", "ops"), ("status", "dead")))] == 1


def test_an_empty_histogram_still_describes_itself() -> None:
    text = Metrics().render().decode()
    assert "# TYPE tidings_delivery_latency_seconds histogram" in text
