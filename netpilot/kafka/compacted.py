"""Keep a compacted topic equal to a desired set of records (inventory, routes).

A file is the source of truth; the topic is its published copy. To publish, we read the
topic's current state (every partition from the beginning up to the high watermark, no
consumer group), then produce only what changed and a tombstone for every key that is no
longer wanted. Re-running with the same input produces nothing, so publishers are idempotent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from netpilot.errors import NetpilotError
from netpilot.kafka.consumer import position
from netpilot.kafka.producer import Headers, KafkaProducer
from netpilot.obs.logging import librdkafka_logger
from netpilot.settings import KafkaSettings


class CompactedReadError(NetpilotError):
    """The current state of a compacted topic could not be read."""


@dataclass(frozen=True)
class Record:
    """One desired record: its value and the key that picks its partition (the PoP)."""

    value: bytes
    partition_key: str


@dataclass
class SyncReport:
    upserted: list[str] = field(default_factory=list)
    unchanged: int = 0
    tombstoned: list[str] = field(default_factory=list)


def read_compacted(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> dict[str, bytes | None]:
    """Latest value per key (``None`` = tombstone) from the start to the current end."""
    cfg = kafka.client_config()
    cfg.update(
        {
            "group.id": f"netpilot-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": "false",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": "true",
        }
    )
    cfg.update(kafka.librdkafka)
    consumer = Consumer({**cfg, "logger": librdkafka_logger()})
    try:
        md = consumer.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise CompactedReadError(
                f"topic {topic!r} not readable: {t.error if t is not None else 'missing'} (run `netpilot topics sync`)"
            )
        ends: dict[int, int] = {}
        for p in t.partitions:
            lo, hi = _watermarks(consumer, TopicPartition(topic, p))
            if hi > lo:
                ends[p] = hi
        state: dict[str, bytes | None] = {}
        if not ends:
            return state
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        pending = dict(ends)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise CompactedReadError(f"reading {topic!r} timed out with partitions {sorted(pending)} unfinished")
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof = m.partition()
                        if eof is not None:
                            pending.pop(eof, None)
                        continue
                    raise CompactedReadError(f"reading {topic!r}: {err.name()}: {err.str()}")
                key = m.key()
                if key is not None:
                    state[key.decode()] = m.value()
                _, partition, offset = position(m)
                if offset + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)
        return state
    finally:
        consumer.close()


_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
}


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 15.0) -> tuple[int, int]:
    # A just-created topic answers NOT_LEADER / LEADER_NOT_AVAILABLE for a moment: retry those.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=5)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() not in _TRANSIENT or time.monotonic() > deadline:
                raise CompactedReadError(f"watermarks of {tp.topic}[{tp.partition}]: {err}") from exc
            time.sleep(0.2)


def sync_compacted(
    producer: KafkaProducer,
    topic: str,
    desired: Mapping[str, Record],
    current: Mapping[str, bytes | None],
    headers: Headers,
    partition_key_of: Callable[[str], str] | None = None,
) -> SyncReport:
    """Produce changed/new records and tombstones for keys gone from ``desired``.

    ``partition_key_of(key)`` gives the partition key of a key that only exists in the
    topic (its tombstone must land where the record is, or compaction never removes it).
    """
    partition_key_of = partition_key_of or pop_of
    report = SyncReport()
    for key, rec in desired.items():
        if current.get(key) == rec.value:
            report.unchanged += 1
            continue
        producer.produce(topic, rec.value, key=key, headers=headers, partition_key=rec.partition_key)
        report.upserted.append(key)
    for key, value in current.items():
        if value is not None and key not in desired:
            producer.produce(topic, None, key=key, headers=headers, partition_key=partition_key_of(key))
            report.tombstoned.append(key)
    producer.flush()
    return report


def pop_of(key: str) -> str:
    """The PoP part of a ``pop|...`` key."""
    return key.split("|", 1)[0]
