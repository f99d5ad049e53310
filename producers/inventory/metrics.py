"""Metrics of the inventory publisher (``netpilot_inventory_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors


@dataclass(frozen=True)
class InventoryMetrics:
    publishes: Counter
    records: Counter
    invalid_files: Counter
    links: Gauge
    last_publish_ts: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> InventoryMetrics:
        m = metrics_for("inventory", registry)
        records = m.counter("records_total", "Records produced, by kind", ["kind"])
        for kind in ("upsert", "tombstone"):
            records.labels(kind)
        out = cls(
            publishes=m.counter("publishes_total", "Publish runs that reached Kafka"),
            records=records,
            invalid_files=m.counter("invalid_files_total", "Times the file was invalid (the topic was left as it was)"),
            links=m.gauge("links", "Links in the last valid inventory"),
            last_publish_ts=m.gauge("last_publish_timestamp_seconds", "Unix time of the last publish"),
        )
        m.service(processed={"records": out.records}, errors=[Errors(out.invalid_files, "invalid-file")])
        return out
