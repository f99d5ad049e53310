"""The exporter's own metrics: ``netpilot_sink_prometheus_*``, updated once per poll."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.kafka.deadletters import REASONS
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors


@dataclass(frozen=True)
class ExporterMetrics:
    messages: Counter
    errors: Counter
    dead_letters: Counter
    batch_seconds: Histogram
    consumer_lag: Gauge


def exporter_metrics(registry: CollectorRegistry) -> ExporterMetrics:
    m = metrics_for("sink-prometheus", registry)
    out = ExporterMetrics(
        messages=m.counter("messages_total", "Kafka messages applied", ["topic"]),
        errors=m.counter("errors_total", "Messages that could not be applied", ["reason"]),
        dead_letters=m.counter("dead_letters_total", "Messages sent to dead letters", ["reason"]),
        batch_seconds=m.histogram("batch_duration_seconds", "Time to apply one polled batch"),
        consumer_lag=m.gauge("consumer_lag_messages", "Messages not yet applied", ["topic"]),
    )
    for reason in REASONS:  # from the start at 0: rate() and alerts see the first one
        out.errors.labels(reason)
        out.dead_letters.labels(reason)
    # errors, not dead letters too: a message that cannot be applied is counted in both
    m.service(
        processed={"messages": out.messages},
        errors=[Errors(out.errors)],
        duration=out.batch_seconds,
        backlog=out.consumer_lag,
    )
    return out
