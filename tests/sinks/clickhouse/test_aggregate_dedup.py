"""A closed window the streams worker published twice is counted once in ``flow_aggregates``.

docs/streams.md ("Guarantees and their limits"): a worker that dies after publishing a window
and before its table deletions reach the changelog publishes it again, as a new Kafka
message (so another insert token), with the same row keys and sums at most the first
copy's. The table keeps one row per key, the largest copy; readers use FINAL. The repeat
here is the worst case: one row with fewer flows and bytes, one with as many flows and
fewer bytes (a spread share missing, which a ``flows``-only version would let win), one
row missing. And rows of one window that differ only in window size, AS or prefix length
are different rows, all kept.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pyarrow as pa

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates
from netpilot.wire.flows import str_to_addr
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.settings import Retention
from tests.sinks.clickhouse.helpers import SinkProcess

M = "netpilot_sink_clickhouse_"
# a window that closed a minute ago (the sink refuses rows ahead of its clock)
WINDOW_MS = (int(time.time()) // 60 - 1) * 60_000
PREFIX = str_to_addr("198.51.100.0")

# (window_s, link_id, dst_prefix_len, dst_as, bytes, packets, flows, samples): rows 0-1
# differ only by window size (a 60 s and a 10 s window start together), 1-2 only by AS,
# 2-3 only by prefix length; every key is a row of its own
FIRST = [
    (60, "ams-l1", 24, 64500, 9000, 90, 9, 30),
    (10, "ams-l1", 24, 64500, 3000, 30, 3, 10),
    (10, "ams-l1", 24, 64501, 2000, 20, 2, 8),
    (10, "ams-l1", 23, 64501, 1000, 10, 1, 4),
    (10, "ams-l2", 24, 64500, 500, 5, 0, 2),
]
REPEAT = [
    (60, "ams-l1", 24, 64500, 6000, 60, 6, 20),  # fewer flows and bytes
    (10, "ams-l1", 24, 64500, 2500, 25, 3, 8),  # as many flows, fewer bytes
    (10, "ams-l1", 24, 64501, 2000, 20, 2, 8),  # the same
    (10, "ams-l2", 24, 64500, 400, 4, 0, 1),  # no flows in either copy (spread shares only)
]  # (10, ams-l1, /23, 64501) is missing


def table_of(rows: list[tuple[int, str, int, int, int, int, int, int]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    t = pa.table(
        {
            "window_start": pa.array([WINDOW_MS] * n, pa.timestamp("ms", tz="UTC")),
            "window_s": pa.array(cols[0], pa.uint32()),
            "pop": ["ams"] * n,
            "link_id": list(cols[1]),
            "dst_prefix": pa.array([PREFIX] * n, pa.binary(16)),
            "dst_prefix_len": pa.array(cols[2], pa.uint8()),
            "dst_as": pa.array(cols[3], pa.uint32()),
            **{c: pa.array(cols[4 + i], pa.uint64()) for i, c in enumerate(aggregates.SUM_COLUMNS)},
        }
    )
    return t.cast(aggregates.AGGREGATE_SCHEMA)


KEYED = (
    "SELECT window_s, link_id, dst_prefix_len, dst_as, bytes, packets, flows, samples "
    "FROM netpilot.flow_aggregates FINAL ORDER BY window_s DESC, link_id, dst_prefix_len DESC, dst_as"
)
TOTALS = "SELECT count(), sum(bytes), sum(packets), sum(flows), sum(samples) FROM netpilot.flow_aggregates"
WANT_TOTALS = (len(FIRST), *(sum(r[i] for r in FIRST) for i in range(4, 8)))


def test_a_partial_repeat_inserted_after_the_window_is_counted_once(ch_client: ClickHouseClient) -> None:
    migrate(ch_client, "netpilot", Retention(), 1000)
    ch_client.insert_arrow("netpilot.flow_aggregates", table_of(FIRST), "flow_aggregates/0/7-7")
    ch_client.insert_arrow("netpilot.flow_aggregates", table_of(REPEAT), "flow_aggregates/0/9-9")
    # both inserts stored (another token is another batch), until a merge
    assert ch_client.rows("SELECT count() FROM netpilot.flow_aggregates") == [(len(FIRST) + len(REPEAT),)]

    assert [tuple(r) for r in ch_client.rows(KEYED)] == FIRST
    assert ch_client.rows(TOTALS.replace("flow_aggregates", "flow_aggregates FINAL")) == [WANT_TOTALS]
    # a merge keeps the same rows: the stored table itself no longer counts the repeat
    ch_client.command("OPTIMIZE TABLE netpilot.flow_aggregates FINAL")
    assert ch_client.rows(TOTALS) == [WANT_TOTALS]
    assert [tuple(r) for r in ch_client.rows(KEYED)] == FIRST


def test_the_sink_stores_a_republished_window_once(
    kafka_settings: KafkaSettings, clickhouse_dsn: str, tmp_path: Path
) -> None:
    """The same through the real sink and broker: two messages, two inserts."""
    topic = kafka_settings.topic(catalog.FLOW_AGGREGATES)
    p = KafkaProducer(kafka_settings)
    sink = SinkProcess(
        kafka_settings, clickhouse_dsn, f"sink-aggdedup-{uuid.uuid4().hex[:8]}", tmp_path / "sink.log"
    ).start()
    try:
        for n, rows in ((len(FIRST), FIRST), (len(FIRST) + len(REPEAT), REPEAT)):
            p.produce(topic, aggregates.encode_aggregates(table_of(rows)), key="ams", headers=aggregates.headers())
            p.flush(30)
            # the repeat only after the first copy's insert was acknowledged: two inserts
            sink.wait_metric(M + "rows_total", n, timeout=60)
        assert sink.metric(M + "batches_total") == 2
        final = TOTALS.replace("flow_aggregates", "flow_aggregates FINAL")
        assert sink.query(final) == [list(WANT_TOTALS)], sink.tail()
        assert [tuple(r) for r in sink.query(KEYED)] == FIRST, sink.tail()
        assert sink.stop() == 0, sink.tail()
    finally:
        sink.stop()  # after a failed assertion (a no-op once stopped)


def test_a_saturated_first_copy_still_wins(ch_client: ClickHouseClient) -> None:
    """streams caps a sum at 2**64 - 1 (streams.arith.sum_u64); the version must not wrap."""
    migrate(ch_client, "netpilot", Retention(), 1000)
    top = 2**64 - 1
    ch_client.insert_arrow("netpilot.flow_aggregates", table_of([(10, "ams-l1", 24, 64500, top, 9, 9, 9)]), "a")
    ch_client.insert_arrow("netpilot.flow_aggregates", table_of([(10, "ams-l1", 24, 64500, 100, 1, 1, 1)]), "b")
    assert ch_client.rows("SELECT bytes, flows FROM netpilot.flow_aggregates FINAL") == [(top, 9)]
