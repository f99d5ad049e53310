"""Kafka -> ClickHouse with an exactly-once *effect*: batches per partition, dedup tokens,
and a write-ahead intent in the Kafka commit so a replayed batch is the same batch.

Per (topic, partition) a batch collects consecutive messages and is flushed when it holds
``batch_max_rows`` rows or its first message is ``batch_max_seconds`` old. Flushing is:

1. **intent**: commit offset ``start`` (unchanged position) with metadata
   ``netpilot-intent:<start>-<end>``: "the batch starting here ends at ``end``";
2. **insert** the batch as one Arrow insert with
   ``insert_deduplication_token = <topic>/<partition>/<start>-<end>``;
3. **commit** ``end + 1`` with empty metadata, after ClickHouse acknowledged.

Why the intent: a dedup token only helps if the replay after a crash builds *the same*
batch, and a size-and-time cut does not (after a restart more or fewer messages are
waiting). A crash between 2 and 3 leaves the intent in Kafka; on restart the sink reads
it with the committed offset and cuts the first batch exactly at ``end``, so the insert
repeats with the same token and ClickHouse drops it (raw table and rollup views alike,
see schema.py). A crash before 2 leaves nothing inserted and any new cut is fine.

ClickHouse unavailable: the batch stays in memory, consumption pauses, the insert is
retried with the same token after an exponential backoff, then consumption resumes.
Undecodable messages go to the dead-letter topic (their offsets still count in the batch
range), and so do messages whose ``schema`` header names another schema or whose
timestamps are implausible (:mod:`netpilot.wire.intake`); a batch ClickHouse rejects is
retried message by message and the rejected messages are dead-lettered, so nothing is
silently dropped. Rows already past their table's TTL are inserted (the rollup views want
them) and counted per table in ``rows_expired_total`` (see :mod:`sinks.clickhouse.expiry`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaException, Message, TopicPartition

from netpilot.errors import WireError
from netpilot.kafka.consumer import BatchConsumer, is_retriable, position
from netpilot.kafka.deadletters import DeadLetterPublisher, reason_for
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.wire.intake import Intake
from sinks.clickhouse import convert, expiry, schema
from sinks.clickhouse.client import ClickHouseClient, ClickHouseUnavailable, InsertRejected
from sinks.clickhouse.metrics import SinkMetrics
from sinks.clickhouse.settings import ClickHouseSinkSettings
from sinks.lag import EVERY_S as LAG_EVERY_S
from sinks.lag import local_lag

INTENT = "netpilot-intent:"
# A value that passed its wire model but does not fit its column (e.g. an integer beyond
# UInt32) fails while building Arrow; treated like a batch ClickHouse rejects.
CONVERT_ERRORS: tuple[type[Exception], ...] = (pa.ArrowException, OverflowError, ValueError, TypeError)
REJECTED_ERRORS: tuple[type[Exception], ...] = (InsertRejected, *CONVERT_ERRORS)
log = get_logger("netpilot.sink.clickhouse")


def dedup_token(topic: str, partition: int, start: int, end: int) -> str:
    return f"{topic}/{partition}/{start}-{end}"


def parse_intent(metadata: str | None) -> tuple[int, int] | None:
    if not metadata or not metadata.startswith(INTENT):
        return None
    try:
        start, end = metadata[len(INTENT) :].split("-")
        return int(start), int(end)
    except ValueError:
        return None


def record_time(msg: Message) -> float | None:
    """The record's Kafka timestamp in unix seconds (None when the broker has none)."""
    kind, ms = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE or ms < 0 else ms / 1000


@dataclass
class Batch:
    topic: str
    topic_id: str
    partition: int
    start: int
    opened: float
    end_hint: int | None = None
    """Set while replaying an intent: the batch must end exactly here."""
    items: list[convert.Item] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    last: int = -1
    rows: int = 0

    def add(self, msg: Message, item: convert.Item | None) -> None:
        self.messages.append(msg)
        self.last = position(msg)[2]
        if item is not None:
            self.items.append(item)
            self.rows += item.rows

    @property
    def end(self) -> int:
        return self.end_hint if self.end_hint is not None else self.last


class Stopping(Exception):
    """Raised inside a retry loop when the service is asked to stop (the batch is not
    committed and will be replayed from its intent)."""


class PartitionLost(Exception):
    """The partition of a batch being flushed was revoked meanwhile: its new owner replays
    the batch from the committed intent (the same deduplication token), so it is dropped."""


class ClickHouseSink:
    def __init__(
        self,
        settings: ClickHouseSinkSettings,
        consumer: BatchConsumer,
        client: ClickHouseClient,
        producer: KafkaProducer,
        metrics: SinkMetrics,
        topic_ids: dict[str, str],
        tables: dict[str, str],
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._consumer = consumer
        self._client = client
        self._producer = producer
        self._dlq = DeadLetterPublisher(producer, "sink-clickhouse")
        self._m = metrics
        self._topic_ids = topic_ids  # real topic name -> catalog id
        self._tables = tables  # catalog id -> fully qualified table
        self._defs = schema.by_topic(settings.retention)  # catalog id -> table definition (TTL)
        self._should_stop = should_stop
        self._intake = Intake(settings.wire, clock)
        self._clock = clock
        for t in tables.values():  # from 0, so rate() and alerts see the first one
            metrics.rows_expired.labels(t)
        self._batches: dict[tuple[str, int], Batch] = {}
        self._intents: dict[tuple[str, int], tuple[int, int] | None] = {}
        self._revocations: dict[tuple[str, int], int] = {}
        """Partition -> how often it was revoked: a message polled before its partition's
        latest revocation is stale (the consumer fetches again from the committed offset)."""
        self._rl = RateLimitedLog(log)
        self._last_lag = 0.0
        self._recreations = 0  # of the consumer's client after a fence, counted as errors

    # -- rebalance: forget what belongs to partitions we lose (their owner replays) ------
    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._batches.pop(key, None)
            self._intents.pop(key, None)
            self._revocations[key] = self._revocations.get(key, 0) + 1

    # -- main loop --------------------------------------------------------------------
    def step(self, poll_timeout: float = 0.2) -> None:
        self._add_polled(self._consumer.poll_batch(self._s.poll_max_messages, poll_timeout))
        now = time.monotonic()
        for key, batch in list(self._batches.items()):
            if self._ready(batch, now):
                self._flush(key, batch)
        self._m.pending_rows.set(sum(b.rows for b in self._batches.values()))
        if self._consumer.recreations > self._recreations:
            self._m.errors.labels("fenced").inc(self._consumer.recreations - self._recreations)
            self._recreations = self._consumer.recreations
        if now - self._last_lag > LAG_EVERY_S:
            self._last_lag = now
            self._update_lag()

    def flush_all(self) -> None:
        """Flush every open batch (graceful stop); raises Stopping if ClickHouse is down."""
        for key, batch in list(self._batches.items()):
            if batch.end_hint is None or batch.last >= batch.end_hint:
                self._flush(key, batch)

    def _intent(self, topic: str, partition: int) -> tuple[int, int] | None:
        key = (topic, partition)
        if key not in self._intents:
            tp = self._committed(topic, partition)
            intent = parse_intent(tp.metadata)
            if intent and tp.offset != intent[0]:
                intent = None
            self._intents[key] = intent
            if intent:
                log.info(
                    "replaying batch from intent", topic=topic, partition=partition, start=intent[0], end=intent[1]
                )
        return self._intents[key]

    def _committed(self, topic: str, partition: int) -> TopicPartition:
        """The committed offset and metadata, retried through a broker outage."""
        delay = self._s.backoff_initial_s
        paused = False
        try:
            while True:
                try:
                    return self._consumer.raw.committed([TopicPartition(topic, partition)], timeout=10)[0]
                except KafkaException as exc:
                    if self._consumer.recover_if_fenced(exc):
                        continue  # a new client: its partitions come with its next assignment
                    if not is_retriable(exc):
                        raise
                    self._m.errors.labels("commit").inc()
                    self._rl.warning(
                        "committed",
                        "reading the committed offset failed; retrying",
                        topic=topic,
                        partition=partition,
                        retry_in_s=round(delay, 2),
                        error=str(exc)[:300],
                    )
                if not paused:
                    self._consumer.pause()
                    paused = True
                self._wait(delay)
                delay = min(delay * 2, self._s.backoff_max_s)
        finally:
            if paused:
                self._consumer.resume()

    def _add_polled(self, messages: list[Message]) -> None:
        """Add the messages of one poll, skipping those whose partition was revoked after
        the poll (by a rebalance served while an earlier message's commit or committed-offset
        read waited out a broker outage): the consumer fetches them again from the committed
        offset, and adding the stale copies would store rows twice (or skip some) under
        batch bounds of their own."""
        polled = dict(self._revocations)
        for msg in messages:
            topic, partition, _ = position(msg)
            key = (topic, partition)
            if self._revocations.get(key, 0) != polled.get(key, 0):
                continue
            self._add(msg)

    def _add(self, msg: Message) -> None:
        topic, partition, offset = position(msg)
        topic_id = self._topic_ids[topic]
        self._m.messages.labels(topic_id).inc()
        key = (topic, partition)
        revoked = self._revocations.get(key, 0)
        intent = self._intent(topic, partition)
        if self._revocations.get(key, 0) != revoked:
            return  # revoked while _intent waited: this copy is stale (see _add_polled)
        batch = self._batches.get(key)
        if batch is not None and offset <= batch.last:
            # Fetched again: a partition revoked and assigned back while _intent waited out
            # a broker outage restarts from its committed offset. The batch has it already.
            return
        if batch is not None and batch.end_hint is not None and offset > batch.end_hint:
            # the replayed batch is complete; this starts the next
            if not self._flush(key, batch):
                return  # the partition is someone else's now: so is this message
            batch = None
        if batch is None:
            batch = Batch(topic, topic_id, partition, start=offset, opened=time.monotonic())
            if intent is not None and intent[0] <= offset <= intent[1]:
                batch.start, batch.end_hint = intent
            self._intents[key] = None
            self._batches[key] = batch
        try:
            item = convert.decode(
                topic_id, offset, msg.key(), msg.value(), record_time(msg), headers=msg.headers(), intake=self._intake
            )
        except WireError as exc:
            self._dead_letter(msg, exc, reason_for(exc))
            item = None
        batch.add(msg, item)
        if batch.end_hint is not None:
            if offset >= batch.end_hint:
                self._flush(key, batch)
        elif batch.rows >= self._s.batch_max_rows:  # bound the insert size within a poll too
            self._flush(key, batch)

    def _ready(self, b: Batch, now: float) -> bool:
        if b.end_hint is not None:  # compaction may have removed the intent's last offset
            pos = self._consumer.raw.position([TopicPartition(b.topic, b.partition)])[0].offset
            return now - b.opened >= self._s.batch_max_seconds and pos > b.end_hint
        return b.rows >= self._s.batch_max_rows or now - b.opened >= self._s.batch_max_seconds

    # -- flushing ---------------------------------------------------------------------
    def _flush(self, key: tuple[str, int], b: Batch) -> bool:
        """Insert a batch and commit past it; False when its partition was lost meanwhile."""
        try:
            self._flush_batch(key, b)
            return True
        except PartitionLost as exc:
            # Only if nothing newer took its place: the commit's wait may have polled the
            # partition's new assignment into a new batch, whose messages are not fetched
            # again (dropping it by key lost them: 8,628 flows in the chaos test).
            current = self._batches.get(key)
            if current is b or current is None:  # identity: another batch may compare equal
                self._batches.pop(key, None)
                self._intents.pop(key, None)
            log.warning(
                "batch dropped: its partition moved to another consumer, which replays it",
                topic=b.topic,
                partition=b.partition,
                start=b.start,
                end=b.end,
                error=str(exc),
            )
            return False

    def _flush_batch(self, key: tuple[str, int], b: Batch) -> None:
        table = self._tables[b.topic_id]
        start, end = b.start, b.end
        if b.end_hint is None:
            self._commit(b, start, f"{INTENT}{start}-{end}")
        else:
            self._m.replays.inc()
        if b.items and b.rows:
            token = dedup_token(b.topic, b.partition, start, end)
            inserted: pa.Table | None = None
            try:
                data = convert.to_arrow(b.topic_id, b.items)
                self._insert_with_retry(table, data, token)
                inserted = data
            except REJECTED_ERRORS as exc:
                self._m.errors.labels("rejected").inc()
                self._rl.warning(
                    "rejected", "batch rejected; retrying message by message", table=table, error=str(exc)[:300]
                )
                self._insert_one_by_one(table, b)
            if inserted is not None:
                self._count_expired(b.topic_id, table, inserted)
            self._m.rows.labels(table).inc(b.rows)
            self._m.batches.labels(table).inc()
        self._producer.flush()  # dead letters of this batch are durable before we move on
        log.debug(
            "batch inserted",
            topic=b.topic,
            partition=b.partition,
            start=start,
            end=end,
            rows=b.rows,
            replay=b.end_hint is not None,
        )
        self._commit(b, end + 1, "")
        if self._batches.get(key) is b:
            self._batches.pop(key, None)

    def _insert_one_by_one(self, table: str, b: Batch) -> None:
        by_offset = {m.offset(): m for m in b.messages}
        for item in b.items:
            if not item.rows:
                continue
            token = dedup_token(b.topic, b.partition, item.offset, item.offset) + "/single"
            try:
                data = convert.to_arrow(b.topic_id, [item])
                self._insert_with_retry(table, data, token)
            except REJECTED_ERRORS as exc:
                b.rows -= item.rows
                self._dead_letter(by_offset[item.offset], exc, "insert-rejected")
                continue
            self._count_expired(b.topic_id, table, data)

    def _count_expired(self, topic_id: str, table: str, data: pa.Table) -> None:
        """Count (and log, rate-limited) the rows of an acknowledged insert that were already
        past the table's TTL: ClickHouse keeps none of them in this table."""
        expired = expiry.expired_rows(self._defs[topic_id], data, self._clock())
        if not expired.rows:
            return
        self._m.rows_expired.labels(table).inc(expired.rows)
        self._rl.warning(
            f"expired:{table}",
            "rows older than the table's TTL inserted; ClickHouse drops them from this table",
            table=table,
            rows=expired.rows,
            of_rows=data.num_rows,
            ttl_days=self._defs[topic_id].ttl_days,
            oldest_age_days=round((self._clock() * 1000 - (expired.oldest_ms or 0)) / 86_400_000, 1),
        )

    def _insert_with_retry(self, table: str, data: pa.Table, token: str) -> None:
        delay = self._s.backoff_initial_s
        paused = False
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    self._client.insert_arrow(table, data, token)
                except ClickHouseUnavailable as exc:
                    self._m.errors.labels("unavailable").inc()
                    self._m.clickhouse_up.set(0)
                    self._rl.warning(
                        "unavailable",
                        "ClickHouse unavailable; pausing consumption",
                        table=table,
                        retry_in_s=round(delay, 2),
                        error=str(exc)[:300],
                    )
                    if not paused:
                        self._consumer.pause()
                        paused = True
                    self._wait(delay)
                    delay = min(delay * 2, self._s.backoff_max_s)
                    continue
                self._m.insert_seconds.labels(table).observe(time.perf_counter() - t0)
                self._m.clickhouse_up.set(1)
                return
        finally:
            if paused:
                self._consumer.resume()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._should_stop():
                raise Stopping()
            # Paused partitions return nothing, but polling keeps us in the group
            # (max.poll.interval.ms) and serves the producer's delivery reports.
            # Messages come back when a rebalance served by this poll assigned partitions
            # anew (a pause holds only for the assignment it was made on): buffer them in
            # their partitions' batches exactly like a normal poll would.
            self._add_polled(self._consumer.poll_batch(self._s.poll_max_messages, 0.1))
            self._producer.poll(0)

    def _commit(self, b: Batch, offset: int, metadata: str) -> None:
        """Commit synchronously; through a broker restart or a rebalance, wait and retry.

        The intent commit comes before the insert and the offset commit after it, so giving
        up on either would either lose the exactly-once bookkeeping or stop the service: a
        retriable error is retried (consumption paused, staying in the group) until it
        passes, the partition is taken from us (its new owner replays from the intent), or
        the service is asked to stop."""
        topic, partition = b.topic, b.partition
        tp = TopicPartition(topic, partition, offset, metadata=metadata)
        delay = self._s.backoff_initial_s
        paused = False
        try:
            while True:
                # Revoked meanwhile (even if assigned back since: the consumer then fetches
                # again from the committed offset into a new batch): this one must not go on.
                # Checked before every attempt, as rebalances are served by any poll, also
                # the ones that waited out an earlier batch's commit in the same step.
                if self._batches.get((topic, partition)) is not b:
                    raise PartitionLost(f"{topic}[{partition}] was revoked before its commit")
                try:
                    self._consumer.raw.commit(offsets=[tp], asynchronous=False)
                    return
                except KafkaException as exc:
                    self._m.errors.labels("commit").inc()
                    if self._consumer.recover_if_fenced(exc):
                        continue  # the recreation revoked the batch's partition: PartitionLost
                    if not is_retriable(exc):
                        raise
                    self._rl.warning(
                        "commit",
                        "offset commit failed; retrying",
                        topic=topic,
                        partition=partition,
                        retry_in_s=round(delay, 2),
                        error=str(exc)[:300],
                    )
                if not paused:
                    self._consumer.pause()
                    paused = True
                self._wait(delay)
                delay = min(delay * 2, self._s.backoff_max_s)
        finally:
            if paused:
                self._consumer.resume()

    def _dead_letter(self, msg: Message, exc: BaseException, reason: str) -> None:
        self._dlq.send(msg, exc, reason)
        self._m.errors.labels(reason).inc()
        self._m.dead_letters.labels(reason).inc()
        self._rl.warning(
            f"dlq-{reason}",
            "message sent to dead letters",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            reason=reason,
            error=str(exc)[:300],
        )

    def _update_lag(self) -> None:
        def open_batch_start(topic: str, partition: int) -> int | None:
            batch = self._batches.get((topic, partition))
            return None if batch is None else batch.start

        for tid, n in local_lag(self._consumer, self._topic_ids, open_batch_start).items():
            self._m.consumer_lag.labels(tid).set(n)
