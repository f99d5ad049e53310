"""Publish an inventory to the compacted link-inventory topic (diff + tombstones)."""

from __future__ import annotations

import time

from netpilot import catalog
from netpilot.kafka.compacted import Record, SyncReport, read_compacted, sync_compacted
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkInventory
from producers.inventory.load import Inventory
from producers.inventory.metrics import InventoryMetrics


def publish_inventory(
    inventory: Inventory, kafka: KafkaSettings, producer: KafkaProducer, metrics: InventoryMetrics | None = None
) -> SyncReport:
    """Make the topic equal to ``inventory``: changed links upserted, removed ones tombstoned.

    The topic's current state is read first, so a link deleted from the file while no
    publisher ran still gets its tombstone.
    """
    topic = kafka.topic(catalog.LINK_INVENTORY)
    current = read_compacted(kafka, topic)
    desired = {key: Record(link.encode(), link.pop) for key, link in inventory.keyed().items()}
    report = sync_compacted(producer, topic, desired, current, LinkInventory.headers())
    if metrics is not None:
        metrics.publishes.inc()
        metrics.records.labels("upsert").inc(len(report.upserted))
        metrics.records.labels("tombstone").inc(len(report.tombstoned))
        metrics.links.set(len(inventory.links))
        metrics.last_publish_ts.set(time.time())
    return report
