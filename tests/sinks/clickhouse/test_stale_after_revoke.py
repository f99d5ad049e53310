"""Messages polled before a revocation are not added after it.

A commit that waits out a broker outage polls the consumer meanwhile (to stay in the
group), and such a poll may serve a rebalance: the batch being flushed is dropped and the
partition is fetched again from its committed offset. The messages later in the same
poll's list are stale copies: before the fix they went on into new batches of their own
bounds, ahead of the refetched ones (commits went backwards, and batch bounds that differ
from the intent's defeat the deduplication token: the chaos test stored one second of
flows twice). The Kafka side and ClickHouse are seams, as in test_hostile.py.
"""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from netpilot.wire import flows
from sinks.clickhouse.metrics import sink_metrics
from sinks.clickhouse.settings import ClickHouseSinkSettings
from sinks.clickhouse.sink import ClickHouseSink
from tests.sinks.clickhouse.helpers import make_flows
from tests.sinks.clickhouse.test_hostile import _Producer

T = "x.netpilot.flows.v1"


class _Client:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def insert_arrow(self, table: str, data: object, token: str) -> None:
        self.tokens.append(token)


class _Consumer:
    """Fails the first commit (the broker is away); the poll made while waiting serves a
    rebalance (revoke, assigned back) and the refetch then returns the partition again."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.polls = 0
        self.sink: ClickHouseSink | None = None
        self.commits: list[tuple[int, str | None]] = []
        self.failed = False
        self.raw = self
        self.recreations = 0  # never fenced

    def recover_if_fenced(self, exc: BaseException) -> bool:
        return False

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        self.polls += 1
        if self.polls == 1:
            return list(self.messages)
        if self.polls == 2:  # inside the commit's wait: the rebalance, nothing fetched yet
            assert self.sink is not None
            self.sink.on_revoke([TopicPartition(T, 0)])
            return []
        if self.polls == 3:  # fetched again from the committed offset (none: the start)
            return list(self.messages)
        return []

    def committed(self, tps: list[TopicPartition], timeout: float = 10) -> list[TopicPartition]:
        done = [o for o, meta in self.commits if not meta]
        return [TopicPartition(tp.topic, tp.partition, done[-1] if done else -1001) for tp in tps]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = False) -> None:
        if not self.failed:
            self.failed = True
            raise KafkaException(KafkaError(KafkaError._WAIT_COORD))
        self.commits.extend((tp.offset, tp.metadata) for tp in offsets)

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return tps

    def assignment(self) -> list[TopicPartition]:
        return []

    def pause(self) -> None: ...

    def resume(self) -> None: ...


def _messages(n: int, seed: int) -> list[Message]:
    """``n`` flows messages of 10 rows each on partition 0 of T, offsets 0 to n-1."""
    data = make_flows(n_messages=n, rows_per_message=10, seed=seed, base_ms=(int(time.time()) - 7200) * 1000)
    return [
        Message(
            topic=T,
            partition=0,
            offset=i,
            key=b"ams",
            value=v,
            headers=flows.headers(),
            timestamp=(TIMESTAMP_CREATE_TIME, int(time.time() * 1000)),
        )
        for i, (_, v) in enumerate(data.messages)
    ]


def _sink(consumer: _Consumer, client: _Client, settings: ClickHouseSinkSettings) -> ClickHouseSink:
    """The sink on the seams; the consumer gets it back to serve its rebalances."""
    sink = ClickHouseSink(
        settings,
        consumer,  # type: ignore[arg-type]
        client,  # type: ignore[arg-type]
        _Producer(),  # type: ignore[arg-type]
        sink_metrics(CollectorRegistry()),
        {T: "flows"},
        {"flows": "netpilot.flows_raw"},
    )
    consumer.sink = sink
    return sink


def test_messages_polled_before_a_revocation_are_not_added_after_it() -> None:
    consumer = _Consumer(_messages(3, seed=3))
    client = _Client()
    sink = _sink(
        consumer, client, ClickHouseSinkSettings(batch_max_rows=10, backoff_initial_s=0.01, backoff_max_s=0.01)
    )
    sink.step(poll_timeout=0)  # m0's intent commit fails, the wait's poll revokes: m1, m2 stale
    while consumer.polls < 4:
        sink.step(poll_timeout=0)
    sink.flush_all()
    # each message inserted once, in order, and the committed offsets only go forward
    assert client.tokens == [f"{T}/0/{i}-{i}" for i in range(3)], client.tokens
    done = [o for o, meta in consumer.commits if not meta]
    assert done == sorted(done) and done[-1] == 3, consumer.commits


class _ReassignedConsumer(_Consumer):
    """As _Consumer, but the poll inside the commit's wait serves the revocation *and* the
    new assignment at once: it returns the partition fetched again from the start, more
    messages than the dropped batch had (a fenced static member's new client did that in
    the three-broker chaos test)."""

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        self.polls += 1
        if self.polls == 1:
            return self.messages[:3]
        if self.polls == 2:
            assert self.sink is not None
            self.sink.on_revoke([TopicPartition(T, 0)])
            return list(self.messages)
        return []


def test_a_batch_of_the_new_assignment_survives_the_drop_of_the_revoked_one() -> None:
    """The revoked batch's commit gives up (PartitionLost) after its wait polled the new
    assignment's messages into a new batch of the same partition: dropping the old batch
    must leave the new one alone. It used to drop both by key, and the new one's messages
    (already consumed: no refetch follows) were never stored: 8,628 flows in CI."""
    consumer = _ReassignedConsumer(_messages(5, seed=4))
    client = _Client()
    settings = ClickHouseSinkSettings(
        batch_max_rows=25, batch_max_seconds=60, backoff_initial_s=0.01, backoff_max_s=0.01
    )
    sink = _sink(consumer, client, settings)
    sink.step(poll_timeout=0)  # [0, 2]'s intent commit fails; its wait polls the new assignment
    sink.step(poll_timeout=0)
    sink.flush_all()
    assert client.tokens == [f"{T}/0/0-2", f"{T}/0/3-4"], client.tokens
    done = [o for o, meta in consumer.commits if not meta]
    assert done == sorted(done) and done[-1] == 5, consumer.commits
