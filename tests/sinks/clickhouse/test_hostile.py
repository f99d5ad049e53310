"""The sink on chDB with hostile input: a body under another schema's header and a timestamp
ten years ahead go to dead letters with their reason; rows older than their table's TTL are
inserted (the rollups keep them), counted per table and logged.

The Kafka side is a seam we own (the two methods of BatchConsumer and KafkaProducer the sink
calls), fed with real confluent-kafka ``Message`` objects; the broker path of the same code
is covered by test_faults.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from structlog.testing import capture_logs

from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from netpilot.wire import flows
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.links import LinkStats
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.metrics import sink_metrics
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.settings import ClickHouseSinkSettings, Retention
from sinks.clickhouse.sink import ClickHouseSink
from tests.sinks.clickhouse.helpers import make_flows

DAY = 86_400.0
FLOWS_T, STATS_T = "x.netpilot.flows.v1", "x.netpilot.link-stats.v1"


class _Consumer:
    """What ClickHouseSink uses of BatchConsumer (and of its ``raw`` confluent consumer)."""

    def __init__(self, messages: list[Message]) -> None:
        self.queue = messages
        self.commits: dict[tuple[str, int], list[tuple[int, str | None]]] = {}
        self.raw = self
        self.recreations = 0  # never fenced

    def recover_if_fenced(self, exc: BaseException) -> bool:
        return False

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        out, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        return out

    def committed(self, tps: list[TopicPartition], timeout: float = 10) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in tps]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = False) -> None:
        for tp in offsets:
            self.commits.setdefault((tp.topic, tp.partition), []).append((tp.offset, tp.metadata))

    def assignment(self) -> list[TopicPartition]:
        return []

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class _Producer:
    """What DeadLetterPublisher and the sink use of KafkaProducer."""

    def __init__(self) -> None:
        self.kafka = KafkaSettings()
        self.sent: list[DeadLetter] = []

    def produce(self, topic: str, value: bytes | None, key: str | None = None, headers: list | None = None) -> None:
        self.sent.append(DeadLetter.from_headers(None, value, headers))

    def flush(self, timeout: float = 30.0) -> None: ...

    def poll(self, timeout: float = 0) -> int:
        return 0


def _msg(topic: str, offset: int, value: bytes, headers: list[tuple[str, bytes]]) -> Message:
    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        key=b"ams",
        value=value,
        headers=headers,
        timestamp=(TIMESTAMP_CREATE_TIME, int(time.time() * 1000)),
    )


def _stats(ts: float) -> bytes:
    return LinkStats(pop="ams", router="r1", link_id="ams-l1", if_index=3, ts=ts, interval_s=30, out_bps=1e9).encode()


@pytest.mark.timeout(300)
def test_hostile_messages_are_dead_lettered_and_rows_past_ttl_counted(
    ch_client: ClickHouseClient, tmp_path: Path
) -> None:
    now = time.time()
    retention = Retention(raw_days=1, links_days=1)
    settings = ClickHouseSinkSettings(dsn=SecretStr(f"chdb://{tmp_path}/unused"), retention=retention)
    migrate(ch_client, "netpilot", retention, 1000)

    fresh = make_flows(n_messages=1, rows_per_message=200, seed=1, base_ms=int((now - 2400) * 1000))
    old = make_flows(n_messages=1, rows_per_message=300, seed=2, base_ms=int((now - 3 * DAY) * 1000))
    (_, fresh_v), (_, old_v) = fresh.messages[0], old.messages[0]
    messages = [
        _msg(FLOWS_T, 0, fresh_v, flows.headers()),
        _msg(FLOWS_T, 1, fresh_v, [("schema", b"flows/9")]),  # a valid flows/1 body: not trusted
        _msg(FLOWS_T, 2, old_v, flows.headers()),  # 3 days old: past flows_raw's 1-day TTL
        _msg(STATS_T, 0, _stats(now - 60), LinkStats.headers()),
        _msg(STATS_T, 1, _stats(now - 60), [("schema", b"link-stats/2")]),
        _msg(STATS_T, 2, _stats(now + 10 * 365 * DAY), LinkStats.headers()),
        _msg(STATS_T, 3, _stats(now - 2 * DAY), LinkStats.headers()),  # past link_stats' 1-day TTL
    ]
    consumer, producer = _Consumer(messages), _Producer()
    registry = CollectorRegistry()
    sink = ClickHouseSink(
        settings,
        consumer,  # type: ignore[arg-type]
        ch_client,
        producer,  # type: ignore[arg-type]
        sink_metrics(registry),
        {FLOWS_T: "flows", STATS_T: "link_stats"},
        {"flows": "netpilot.flows_raw", "link_stats": "netpilot.link_stats"},
    )
    with capture_logs() as logs:
        sink.step(poll_timeout=0)
        sink.flush_all()

    # every message accounted for: dead-lettered with its reason, or inserted
    assert sorted((d.source_topic, d.source_offset, d.reason) for d in producer.sent) == [
        (FLOWS_T, 1, "schema-mismatch"),
        (STATS_T, 1, "schema-mismatch"),
        (STATS_T, 2, "implausible-time"),
    ]
    assert all(d.component == "sink-clickhouse" and d.error for d in producer.sent)
    assert consumer.commits[(FLOWS_T, 0)][-1] == (3, "") and consumer.commits[(STATS_T, 0)][-1] == (4, "")

    def metric(name: str, **labels: str) -> float:
        return sample_value(registry, f"netpilot_sink_clickhouse_{name}", labels)

    assert metric("dead_letters_total", reason="schema-mismatch") == 2
    assert metric("dead_letters_total", reason="implausible-time") == 1
    assert metric("rows_total", table="netpilot.flows_raw") == 500
    assert metric("rows_expired_total", table="netpilot.flows_raw") == 300
    assert metric("rows_total", table="netpilot.link_stats") == 2
    assert metric("rows_expired_total", table="netpilot.link_stats") == 1

    # the count is what ClickHouse drops: the raw table keeps the rest, the rollups all of it
    ch_client.command("OPTIMIZE TABLE netpilot.flows_raw FINAL")
    ch_client.command("OPTIMIZE TABLE netpilot.link_stats FINAL")
    assert ch_client.rows("SELECT count() FROM netpilot.flows_raw") == [(200,)]
    assert ch_client.rows("SELECT sum(samples) FROM netpilot.flows_1m") == [(500,)]
    assert ch_client.rows("SELECT count() FROM netpilot.link_stats") == [(1,)]

    expired = [e for e in logs if e["event"].startswith("rows older than the table's TTL")]
    assert {(e["table"], e["rows"], e["ttl_days"]) for e in expired} == {
        ("netpilot.flows_raw", 300, 1),
        ("netpilot.link_stats", 1, 1),
    }
    assert all(e["oldest_age_days"] >= 1 for e in expired)
