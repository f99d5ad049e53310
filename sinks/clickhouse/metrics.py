"""Metrics of the ClickHouse sink: ``netpilot_sink_clickhouse_*``, updated once per batch."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.kafka.deadletters import REASONS
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors


@dataclass(frozen=True)
class SinkMetrics:
    messages: Counter
    """Kafka messages consumed, by topic (catalog id)."""
    rows: Counter
    """Rows ClickHouse acknowledged, by table (rate() of it is rows/s)."""
    rows_expired: Counter
    """Of those, rows already past the table's TTL when inserted, by table: ClickHouse drops
    them from the table (its rollup views keep their share). Kept: rows - rows_expired."""
    batches: Counter
    """Inserts acknowledged, by table."""
    insert_seconds: Histogram
    """Latency of one acknowledged insert (retries excluded), by table."""
    errors: Counter
    """Failures by reason: unavailable, rejected, wire-decode, wire-version, commit, fenced (the
    static member's consumer was recreated, see netpilot.kafka.consumer)."""
    dead_letters: Counter
    """Messages sent to the dead-letter topic, by reason."""
    replays: Counter
    """Batches re-inserted from a write-ahead intent after a crash (deduplicated by ClickHouse)."""
    consumer_lag: Gauge
    """Messages between the committed offset and the end of the log, by topic."""
    pending_rows: Gauge
    """Rows buffered and not yet acknowledged by ClickHouse."""
    clickhouse_up: Gauge
    """1 while the last ClickHouse call succeeded, 0 while inserts are failing."""


DEAD_LETTER_REASONS = (*REASONS, "insert-rejected")
ERROR_REASONS = (*DEAD_LETTER_REASONS, "rejected", "unavailable", "commit", "fenced")


def sink_metrics(registry: CollectorRegistry) -> SinkMetrics:
    m = metrics_for("sink-clickhouse", registry)
    out = SinkMetrics(
        messages=m.counter("messages_total", "Kafka messages consumed", ["topic"]),
        rows=m.counter("rows_total", "Rows acknowledged by ClickHouse", ["table"]),
        rows_expired=m.counter(
            "rows_expired_total", "Rows acknowledged but already past the table's TTL (dropped by it)", ["table"]
        ),
        batches=m.counter("batches_total", "Inserts acknowledged by ClickHouse", ["table"]),
        insert_seconds=m.histogram("insert_duration_seconds", "Duration of one acknowledged insert", ["table"]),
        errors=m.counter("errors_total", "Failures by reason", ["reason"]),
        dead_letters=m.counter("dead_letters_total", "Messages sent to the dead-letter topic", ["reason"]),
        replays=m.counter("intent_replays_total", "Batches replayed from a write-ahead intent after a crash"),
        consumer_lag=m.gauge("consumer_lag_messages", "Messages not yet committed", ["topic"]),
        pending_rows=m.gauge("pending_rows", "Rows buffered, not yet acknowledged"),
        clickhouse_up=m.gauge("clickhouse_up", "1 if the last ClickHouse call succeeded"),
    )
    # Every reason exists from the start at 0, so rate() and alerts see the first failure
    # (a counter born at 1 has no increase to show).
    for reason in ERROR_REASONS:
        out.errors.labels(reason)
    for reason in DEAD_LETTER_REASONS:
        out.dead_letters.labels(reason)
    # errors, not dead letters too: ERROR_REASONS already holds every dead-letter reason
    m.service(
        processed={"messages": out.messages, "rows": out.rows},
        errors=[Errors(out.errors)],
        duration=out.insert_seconds,
        backlog=out.consumer_lag,
    )
    return out
