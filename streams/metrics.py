"""Metrics of the streams worker: ``netpilot_streams_*``, updated per batch, never per flow."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from netpilot.kafka.deadletters import REASONS
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors


@dataclass(frozen=True)
class StreamsMetrics:
    registry: CollectorRegistry
    batches: Counter
    flows: Counter
    flows_dropped: Counter
    windows_closed: Counter
    aggregate_rows: Counter
    aggregate_messages: Counter
    utilisation_messages: Counter
    utilisation_dropped: Counter
    link_stats: Counter
    inventory_updates: Counter
    dead_letters: Counter
    open_partials: Gauge
    watermark_lag: Gauge
    idle_pops: Gauge
    idle_advances: Counter
    idle_skips: Counter
    task_crashes: Counter
    restore_stalls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> StreamsMetrics:
        m = metrics_for("streams", registry)
        out = cls(
            registry=m.registry,
            batches=m.counter("flow_batches_total", "flows/1 messages aggregated"),
            flows=m.counter("flows_total", "flows received (decoded), including the dropped ones", ["pop"]),
            flows_dropped=m.counter(
                "flows_dropped_total",
                "flows not aggregated, by reason (too-late, future)",
                ["pop", "reason", "window_s"],
            ),
            windows_closed=m.counter("windows_closed_total", "windows closed and published", ["window_s"]),
            aggregate_rows=m.counter("aggregate_rows_total", "flow-aggregates/1 rows published"),
            aggregate_messages=m.counter("aggregate_messages_total", "flow-aggregates/1 messages published"),
            utilisation_messages=m.counter("utilisation_messages_total", "link-utilisation/1 messages published"),
            utilisation_dropped=m.counter(
                "utilisation_dropped_total", "link windows dropped: their link never appeared in the inventory"
            ),
            link_stats=m.counter("link_stats_total", "link-stats/1 readings, by outcome", ["outcome"]),
            inventory_updates=m.counter("inventory_updates_total", "link-inventory/1 records applied"),
            dead_letters=m.counter("dead_letters_total", "messages sent to the dead-letter topic", ["topic", "reason"]),
            open_partials=m.gauge("open_partials", "partial-window blobs held in the window table"),
            watermark_lag=m.gauge("watermark_lag_seconds", "wall clock minus the PoP's watermark", ["pop"]),
            idle_pops=m.gauge("idle_pops", "PoPs without flows for idle_after_s: windows closed on the wall clock"),
            idle_advances=m.counter("idle_advances_total", "watermark advances of an idle PoP", ["pop"]),
            idle_skips=m.counter(
                "idle_skips_total",
                "idle checks not acted on: the tick came back late (stale-tick) or flows wait unread (backlog)",
                ["reason"],
            ),
            task_crashes=m.counter(
                "task_crashes_total", "agents and timers that raised (health fails from the first)", ["task"]
            ),
            restore_stalls=m.counter(
                "restore_stalls_total",
                "table restores that stopped moving and were sought again (streams.restore_watch)",
            ),
        )
        for reason in ("stale-tick", "backlog"):  # streams.aggregate.agents.IDLE_SKIP_REASONS
            out.idle_skips.labels(reason)
        m.service(
            processed={"flows": out.flows, "link-stats": out.link_stats},
            errors=[
                Errors(out.flows_dropped, reasons=("too-late", "future")),
                Errors(out.utilisation_dropped, "link-not-in-inventory"),
                Errors(out.dead_letters, reasons=REASONS),
            ],
            lag=out.watermark_lag,
        )
        return out
