"""ClickHouse unavailable (and an insert whose acknowledgement is lost), poison messages.

Fault injection: chDB is in-process, so "unavailable" cannot be a stopped server. The
sink's own client wrapper (sinks/clickhouse/client.py) has a fault seam driven by a file
(named by the ``NETPILOT_TEST_CLICKHOUSE_FAULT_FILE`` environment variable):
``unavailable`` refuses calls before they reach chDB, ``ack-lost`` lets one insert through
and then raises as if the answer was lost. Everything else (Kafka, chDB, the process) is real.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow as pa
from confluent_kafka import Consumer

from netpilot import catalog
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates
from netpilot.wire.autopilot import CycleSummary, LinkSide, Recommendation
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.flows import str_to_addr
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from sinks.clickhouse.client import FAULT_FILE_ENV
from tests.sinks.clickhouse.helpers import NETPILOT, REPO, SinkProcess, make_flows, produce

TOTALS = "SELECT count(), sum(bytes), sum(bytes_scaled) FROM netpilot.flows_raw"
M = "netpilot_sink_clickhouse_"


def test_unavailable_pauses_then_resumes_without_loss_or_duplicates(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    data = make_flows(n_messages=24, rows_per_message=1000, seed=3, base_ms=(int(time.time()) // 3600 - 1) * 3_600_000)
    fault = tmp_path / "fault"
    fault.write_text("unavailable")
    env = {
        FAULT_FILE_ENV: str(fault),
        "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_ROWS": "4000",
        "NETPILOT_SINK_CLICKHOUSE__BACKOFF_INITIAL_S": "0.2",
        "NETPILOT_SINK_CLICKHOUSE__BACKOFF_MAX_S": "0.5",
        # migrations would fail too while "unavailable": the schema exists already
        "NETPILOT_SINK_CLICKHOUSE__MIGRATE_ON_START": "false",
    }
    group = f"sink-unavail-{uuid.uuid4().hex[:8]}"
    migrate = subprocess.run(
        [*NETPILOT, "sink", "clickhouse", "migrate"],
        cwd=REPO,
        env={**os.environ, "NETPILOT_SINK_CLICKHOUSE__DSN": clickhouse_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0 and "steps applied" in migrate.stdout, migrate.stderr

    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "sink.log", env).start()
    produce(kafka_settings, data.messages)
    sink.wait_metric(M + 'errors_total{reason="unavailable"', 4, timeout=60)
    assert sink.metric(M + "rows_total") <= 0
    assert sink.metric(M + "clickhouse_up") == 0
    assert sink.query("SELECT count() FROM netpilot.flows_raw") == [[0]]
    time.sleep(1.0)  # an outage of a few seconds; the sink keeps its batch and waits
    assert sink.proc is not None and sink.proc.poll() is None

    fault.write_text("ack-lost")  # back, but the first answer is lost: retried, deduplicated
    expected = [[data.rows, data.bytes, data.bytes_scaled]]
    assert sink.wait_query(TOTALS, expected, timeout=60) == expected, sink.tail()
    time.sleep(1.0)
    assert sink.query(TOTALS) == expected
    assert sink.metric(M + "clickhouse_up") == 1
    assert fault.read_text() == ""  # the ack-lost fault fired
    assert sink.stop() == 0, sink.tail()


def _dead_letters(kafka: KafkaSettings, expect: int, timeout: float = 30) -> list[DeadLetter]:
    c = Consumer({**kafka.client_config(), "group.id": f"dlq-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    c.subscribe([kafka.topic(catalog.DEAD_LETTERS)])
    out: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in c.consume(10, 0.5):
            if m.error() is None:
                out.append(DeadLetter.from_headers(m.key(), m.value(), m.headers()))
    c.close()
    return out


def test_poison_messages_go_to_dead_letters_and_json_topics_land(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    from netpilot.kafka.producer import KafkaProducer

    now = time.time()
    # rows spread over 30 minutes from base_ms: all in the past (the sink refuses the future)
    good = make_flows(n_messages=2, rows_per_message=500, seed=4, base_ms=int(now - 1860) * 1000)
    produce(kafka_settings, [("ams", b"definitely not arrow")] + good.messages)
    p = KafkaProducer(kafka_settings)
    k = kafka_settings.topic
    stats = LinkStats(
        pop="ams", router="ams-r1", link_id="ams-l1", if_index=3, ts=now, out_bps=4e9, speed_bps=1e10, out_octets=123
    )
    util = LinkUtilisation(
        pop="ams",
        link_id="ams-l1",
        window_start=now - 60,
        window_s=60,
        capacity_bps=1e10,
        counter_bps=4e9,
        flow_bps=3.6e9,
        utilisation=0.4,
        coverage=0.9,
    )
    inv = LinkInventory(pop="ams", link_id="ams-l1", router="ams-r1", capacity_bps=1e10)
    cyc = CycleSummary(
        cycle_id="c1",
        pop="ams",
        generated_at=now,
        mode="suggest",
        overloaded_links=("ams-l1",),
        unresolved_bps={"ams-l1": 1e8},
        adds=2,
    )
    p.produce(k(catalog.LINK_STATS), stats.encode(), key="ams", headers=stats.headers())
    p.produce(k(catalog.LINK_STATS), b'{"schema": "link-stats/9"}', key="ams")
    too_big = LinkStats(pop="ams", router="ams-r1", if_index=2**40, ts=now)  # valid JSON, no UInt32
    p.produce(k(catalog.LINK_STATS), too_big.encode(), key="ams")
    p.produce(k(catalog.LINK_UTILISATION), util.encode(), key="ams")
    p.produce(k(catalog.LINK_INVENTORY), inv.encode(), key="ams|ams-l1", partition_key="ams")
    p.produce(k(catalog.LINK_INVENTORY), None, key="ams|ams-l2", partition_key="ams")
    p.produce(k(catalog.CYCLE_SUMMARIES), cyc.encode(), key="ams")
    rec = Recommendation(
        id="r1",
        cycle_id="c1",
        generated_at=now,
        valid_until=now + 600,
        pop="ams",
        action="ADD",
        mode="suggest",
        prefix="198.51.100.0/24",
        afi=4,
        rate_bps=2.5e8,
        reason="OVERLOAD",
        thresholds={"hi": 0.9},
        **{"from": LinkSide(link_id="ams-l1", peer_type="transit")},
        to=LinkSide(link_id="ams-l2", util_projected_after=0.6),
    )
    p.produce(k(catalog.RECOMMENDATIONS), rec.encode(), key=rec.key(), partition_key="ams")
    p.produce(k(catalog.RECOMMENDATIONS), None, key="ams|192.0.2.0/24", partition_key="ams")
    agg = pa.table(
        {
            "window_start": pa.array([int(now) * 1000] * 2, pa.timestamp("ms", tz="UTC")),
            "window_s": pa.array([60, 60], pa.uint32()),
            "pop": ["ams", "ams"],
            "link_id": ["ams-l1", "ams-l2"],
            "dst_prefix": pa.array([str_to_addr("198.51.100.0")] * 2, pa.binary(16)),
            "dst_prefix_len": pa.array([24, 24], pa.uint8()),
            "dst_as": pa.array([64500, 64501], pa.uint32()),
            "bytes": pa.array([1000, 2000], pa.uint64()),
            "packets": pa.array([1, 2], pa.uint64()),
            "flows": pa.array([1, 1], pa.uint64()),
            "samples": pa.array([1, 1], pa.uint64()),
        }
    )
    p.produce(k(catalog.FLOW_AGGREGATES), aggregates.encode_aggregates(agg), key="ams")
    p.flush()

    sink = SinkProcess(
        kafka_settings, clickhouse_dsn, f"sink-dlq-{uuid.uuid4().hex[:8]}", tmp_path / "sink.log"
    ).start()
    expected = [[good.rows, good.bytes, good.bytes_scaled]]
    assert sink.wait_query(TOTALS, expected, timeout=60) == expected, sink.tail()
    q = (
        "SELECT (SELECT count() FROM netpilot.link_stats), "
        "(SELECT sum(out_bps) FROM netpilot.link_stats), "
        "(SELECT sum(coverage) FROM netpilot.link_utilisation), "
        "(SELECT count() FROM netpilot.link_inventory FINAL WHERE deleted), "
        "(SELECT count() FROM netpilot.link_inventory FINAL WHERE NOT deleted), "
        "(SELECT sum(adds) FROM netpilot.cycle_summaries), "
        "(SELECT sum(rate_bps) FROM netpilot.recommendations WHERE to_util_after = 0.6), "
        "(SELECT sum(bytes) FROM netpilot.flow_aggregates FINAL "
        " WHERE dst_prefix = toIPv6('::ffff:198.51.100.0'))"
    )
    want = [[1, 4e9, 0.9, 1, 1, 2, 2.5e8, 3000]]
    assert sink.wait_query(q, want, timeout=30) == want, sink.tail()
    sink.wait_metric(M + "dead_letters_total", 3, timeout=30)
    assert sink.stop() == 0, sink.tail()

    letters = sorted(_dead_letters(kafka_settings, 3), key=lambda d: (d.source_topic, d.reason))
    assert [(d.source_topic, d.reason) for d in letters] == [
        (k(catalog.FLOWS), "wire-decode"),
        (k(catalog.LINK_STATS), "insert-rejected"),
        (k(catalog.LINK_STATS), "wire-version"),
    ]
    assert letters[1].value == too_big.encode()
    assert letters[0].value == b"definitely not arrow"
    assert letters[0].component == "sink-clickhouse" and "Arrow" in letters[0].error
