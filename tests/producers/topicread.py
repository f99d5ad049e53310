"""Read a whole topic in tests (every partition, start to end, no consumer group)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from netpilot.settings import KafkaSettings


@dataclass(frozen=True)
class Rec:
    key: str
    value: bytes | None
    partition: int


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 20.0) -> list[Rec]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**kafka.client_config(), "group.id": "t-read", "enable.partition.eof": "true"})
    try:
        n = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in range(n)])
        out: list[Rec] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(eof) < n and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                if m.error():
                    eof.add(m.partition())
                else:
                    out.append(Rec(m.key().decode(), m.value(), m.partition()))
        return out
    finally:
        c.close()
