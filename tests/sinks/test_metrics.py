"""Both sinks' failure counters exist at 0 before the first failure: a counter born at 1 shows
no increase to rate() or an alert, so the first poison message would go unnoticed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from netpilot.kafka.deadletters import REASONS
from sinks.clickhouse.metrics import sink_metrics
from sinks.prometheus.metrics import exporter_metrics


def test_every_failure_reason_starts_at_zero() -> None:
    reg = CollectorRegistry()
    sink_metrics(reg)
    exporter_metrics(reg)
    for reason in (*REASONS, "insert-rejected"):
        assert reg.get_sample_value("netpilot_sink_clickhouse_dead_letters_total", {"reason": reason}) == 0
    for reason in ("unavailable", "rejected", "commit"):
        assert reg.get_sample_value("netpilot_sink_clickhouse_errors_total", {"reason": reason}) == 0
    for reason in REASONS:
        assert reg.get_sample_value("netpilot_sink_prometheus_dead_letters_total", {"reason": reason}) == 0
        assert reg.get_sample_value("netpilot_sink_prometheus_errors_total", {"reason": reason}) == 0
