"""An idempotent, acks=all producer with delivery accounting and backpressure.

``produce()`` never drops: when librdkafka's queue is full it serves delivery callbacks
(``poll``) until there is room, so a slow broker slows the caller instead of losing data.
``close()`` flushes and raises if anything could not be delivered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from netpilot.errors import NetpilotError
from netpilot.kafka.partitioning import partition_for
from netpilot.obs.logging import librdkafka_logger
from netpilot.settings import KafkaSettings

Headers = Sequence[tuple[str, bytes]]


class DeliveryError(NetpilotError):
    """Messages could not be delivered to Kafka."""


@dataclass
class DeliveryStats:
    """Counters the producer keeps; components mirror them into Prometheus."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0
    delivered_bytes: int = 0
    backpressure_waits: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class ProducerOptions:
    linger_ms: int = 20
    compression: str = "lz4"
    """librdkafka compression; use ``none`` for values that are already compressed (flows)."""
    message_max_bytes: int = 8 * 1024 * 1024
    queue_max_kbytes: int = 256 * 1024
    transactional_id: str | None = None


class KafkaProducer:
    """Thin, explicit wrapper over ``confluent_kafka.Producer``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        options: ProducerOptions = ProducerOptions(),
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        cfg = kafka.client_config()
        cfg.update(
            {
                "enable.idempotence": "true",
                "acks": "all",
                "linger.ms": str(options.linger_ms),
                "compression.type": options.compression,
                "message.max.bytes": str(options.message_max_bytes),
                "queue.buffering.max.kbytes": str(options.queue_max_kbytes),
                # the default partitioner of the Java client, so keys land where Java puts them
                "partitioner": "murmur2_random",
            }
        )
        if options.transactional_id:
            cfg["transactional.id"] = options.transactional_id
        cfg.update(kafka.librdkafka)
        self.kafka = kafka
        self.stats = DeliveryStats()
        self._user_cb = on_delivery
        # librdkafka's own log lines go through the rate-limited stdlib logging, not raw stderr
        self._producer = Producer({**cfg, "logger": librdkafka_logger()})
        self._partitions: dict[str, int] = {}

    # -- delivery ------------------------------------------------------------------------
    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        with self.stats._lock:
            if err is None:
                self.stats.delivered += 1
                self.stats.delivered_bytes += len(msg.value() or b"")
            else:
                self.stats.failed += 1
                self.stats.last_error = f"{err.name()}: {err.str()}"
        if self._user_cb is not None:
            self._user_cb(err, msg)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: str | bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        partition_key: str | None = None,
    ) -> None:
        """Queue one message. ``partition_key`` picks the partition (e.g. the PoP) when the
        message key is finer-grained (compacted topics)."""
        if partition is None and partition_key is not None:
            partition = partition_for(partition_key, self.partition_count(topic))
        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": self._delivered}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                # Queue full: serve callbacks until librdkafka has room (backpressure).
                self.stats.backpressure_waits += 1
                self._producer.poll(0.05)
        self.stats.queued += 1
        self._producer.poll(0)

    def partition_count(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            # A topic created a moment ago may not be in every broker's metadata yet: retry
            # briefly before calling it missing.
            deadline = time.monotonic() + 10
            while True:
                md = self._producer.list_topics(topic, timeout=10)
                t = md.topics.get(topic)
                if t is not None and t.error is None and t.partitions:
                    break
                if time.monotonic() > deadline:
                    raise DeliveryError(f"topic {topic!r} does not exist (run `netpilot topics sync`)")
                time.sleep(0.2)
            n = len(t.partitions)
            self._partitions[topic] = n
        return n

    def poll(self, timeout: float = 0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued message is delivered or failed; raise on failures."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(timeout)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(max(0.1, deadline - time.monotonic()))
        if remaining:
            raise DeliveryError(
                f"{remaining} messages still queued after {timeout:.0f}s "
                f"(broker {self.kafka.bootstrap_servers} unreachable?)"
            )
        if self.stats.failed:
            raise DeliveryError(f"{self.stats.failed} messages failed delivery; last: {self.stats.last_error}")

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)

    # -- transactions (faust-free exactly-once producers may use them) -------------------
    @property
    def raw(self) -> Producer:
        """The underlying confluent-kafka producer, for what this wrapper does not cover."""
        return self._producer
