"""Publishing the inventory to the real broker: upserts, no-op re-runs, tombstones, partitions."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.compacted import read_compacted
from netpilot.kafka.partitioning import partition_for
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkInventory
from producers.inventory.load import load_inventory
from producers.inventory.publish import publish_inventory
from producers.inventory.service import InventoryWatcher
from producers.inventory.settings import InventorySettings
from tests.producers.topicread import read_topic

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "inventory.yaml"


def _partitions(kafka: KafkaSettings, topic: str) -> dict[str, int]:
    return {r.key: r.partition for r in read_topic(kafka, topic)}


def test_publish_diff_and_tombstone(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    topic = kafka_settings.topic(catalog.LINK_INVENTORY)
    producer = KafkaProducer(kafka_settings, ProducerOptions(linger_ms=1))
    inv = load_inventory(EXAMPLE)

    first = publish_inventory(inv, kafka_settings, producer)
    assert sorted(first.upserted) == ["ams1|transit-a", "fra1|ix-decix", "fra1|pni-b", "fra1|transit-a"]
    state = read_compacted(kafka_settings, topic)
    assert LinkInventory.decode(state["fra1|pni-b"]) == inv.keyed()["fra1|pni-b"]

    # every record sits in its PoP's partition (where a key of just the PoP would go)
    parts = _partitions(kafka_settings, topic)
    assert parts == {k: partition_for(k.split("|")[0], catalog.LINK_INVENTORY.partitions) for k in parts}

    # same file again: nothing produced
    again = publish_inventory(inv, kafka_settings, producer)
    assert (again.upserted, again.tombstoned, again.unchanged) == ([], [], 4)

    # delete one link and change another, with a *new* producer (state comes from the topic)
    edited = tmp_path / "inv.yaml"
    text = EXAMPLE.read_text().replace("capacity: 10Gbps", "capacity: 40G")
    start = text.index("      fra1-edge2:")  # its only link is ix-decix
    end = text.index("  ams1:")
    edited.write_text(text[:start] + text[end:])
    report = publish_inventory(
        load_inventory(edited), kafka_settings, KafkaProducer(kafka_settings, ProducerOptions(linger_ms=1))
    )
    assert report.upserted == ["ams1|transit-a"]
    assert report.tombstoned == ["fra1|ix-decix"]
    state = read_compacted(kafka_settings, topic)
    assert state["fra1|ix-decix"] is None
    assert LinkInventory.decode(state["ams1|transit-a"]).capacity_bps == 40e9
    # the tombstone went to the partition of the record it deletes
    assert _partitions(kafka_settings, topic)["fra1|ix-decix"] == parts["fra1|ix-decix"]


def test_watch_republishes_on_change_and_keeps_last_valid(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    shutil.copy(EXAMPLE, path)
    registry = CollectorRegistry()
    watcher = InventoryWatcher(InventorySettings(kafka=kafka_settings, file=path, watch_interval_s=0.2), registry)
    topic = kafka_settings.topic(catalog.LINK_INVENTORY)
    watcher.start()
    try:
        _wait(lambda: watcher.publishes == 1)
        path.write_text(path.read_text().replace("capacity: 400G", "capacity: 800G"))
        _wait(lambda: watcher.publishes == 2)
        assert LinkInventory.decode(read_compacted(kafka_settings, topic)["fra1|ix-decix"]).capacity_bps == 800e9

        # a broken edit: counted, reported by health(), topic untouched (no mass tombstones)
        path.write_text("pops: [\n")
        _wait(lambda: sample_value(registry, "netpilot_inventory_invalid_files_total") == 1)
        ok, why = watcher.health()
        assert ok and "not valid YAML" in why
        assert all(v is not None for v in read_compacted(kafka_settings, topic).values())
        assert watcher.publishes == 2
    finally:
        watcher.stop()
    assert sample_value(registry, "netpilot_inventory_records_total", {"kind": "upsert"}) == 5
    assert sample_value(registry, "netpilot_inventory_links") == 4


def _wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
