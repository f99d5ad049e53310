"""applied-override/1 through the real sink: records and a tombstone published to the real
broker land in ``autopilot_applied`` on chDB, the latest per (pop, prefix) wins and the
tombstone reads as "no longer installed", with the Kafka record time as when."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.injector import AppliedOverride
from tests.sinks.clickhouse.helpers import SinkProcess

M = "netpilot_sink_clickhouse_"
NOW = float(int(time.time()))


def _applied(pop: str, prefix: str, link_id: str | None, confirmed_at: float, **extra: object) -> AppliedOverride:
    return AppliedOverride(
        pop=pop,
        prefix=prefix,
        link_id=link_id,
        next_hop="192.0.2.31",
        routers=(f"{pop}-r1", f"{pop}-r2"),
        since=NOW - 120,
        confirmed_at=confirmed_at,
        **extra,
    )


def _ms(t: float) -> int:
    return int(t * 1000)


def _routers(pop: str) -> list[str]:
    return [f"{pop}-r1", f"{pop}-r2"]


def test_applied_overrides_and_tombstones_land_latest_per_prefix(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    topic = kafka_settings.topic(catalog.APPLIED_OVERRIDES)
    p = KafkaProducer(kafka_settings)
    first = _applied(
        "ams1",
        "203.0.113.0/24",
        "ams1-r2:ix-1",
        NOW - 60,
        local_pref=500,
        communities=("64496:666", "no-export"),
        recommendation_id="rec-1",
    )
    again = first.model_copy(update={"confirmed_at": NOW - 30})  # a later read-back found it
    gone = _applied("ams1", "198.51.100.0/26", "ams1-r1:transit-1", NOW - 90)
    other = _applied("fra1", "2001:db8::/48", None, NOW - 45)  # next-hop not in the inventory
    published_from = time.time()
    for m in (first, gone, other, again):
        p.produce(topic, m.encode(), key=m.key(), headers=AppliedOverride.headers(), partition_key=m.pop)
    p.produce(topic, None, key=gone.key(), partition_key="ams1")  # no router holds it any more
    p.produce(topic, None, key=b"not-a-pop-prefix-key", partition_key="ams1")  # undecodable
    p.flush()
    published_to = time.time()

    sink = SinkProcess(
        kafka_settings, clickhouse_dsn, f"sink-applied-{uuid.uuid4().hex[:8]}", tmp_path / "sink.log"
    ).start()
    rows = (
        "SELECT pop, prefix, link_id, next_hop, routers, local_pref, communities, "
        "recommendation_id, toUnixTimestamp64Milli(since), toUnixTimestamp64Milli(confirmed_at), "
        "deleted FROM netpilot.autopilot_applied FINAL ORDER BY pop, prefix"
    )
    want = [
        ["ams1", "198.51.100.0/26", "", "", [], None, [], None, None, None, True],
        [
            "ams1",
            "203.0.113.0/24",
            "ams1-r2:ix-1",
            "192.0.2.31",
            _routers("ams1"),
            500,
            ["64496:666", "no-export"],
            "rec-1",
            _ms(NOW - 120),
            _ms(NOW - 30),
            False,
        ],
        [
            "fra1",
            "2001:db8::/48",
            "",
            "192.0.2.31",
            _routers("fra1"),
            None,
            [],
            None,
            _ms(NOW - 120),
            _ms(NOW - 45),
            False,
        ],
    ]
    assert sink.wait_query(rows, want, timeout=60) == want, sink.tail()
    # what a dashboard asks: installed now, and removed since when (the record's Kafka time)
    installed = sink.query(
        "SELECT pop, count() FROM netpilot.autopilot_applied FINAL WHERE NOT deleted GROUP BY pop ORDER BY pop"
    )
    assert installed == [["ams1", 1], ["fra1", 1]]
    [[removed_ms]] = sink.query(
        "SELECT toUnixTimestamp64Milli(published_at) FROM netpilot.autopilot_applied FINAL WHERE deleted"
    )
    assert _ms(published_from) - 1 <= removed_ms <= _ms(published_to) + 1
    sink.wait_metric(M + 'dead_letters_total{reason="wire-decode"}', 1, timeout=30)
    rows_metric = M + 'rows_total{table="netpilot.autopilot_applied"}'
    assert sink.wait_metric(rows_metric, 5, timeout=30) == 5  # 4 + 1 records, the bad key none
    assert sink.stop() == 0, sink.tail()
