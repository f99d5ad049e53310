"""An idempotent, acks=all producer with delivery accounting and backpressure.

``produce()`` never drops: when librdkafka's queue is full it serves delivery callbacks
(``poll``) until there is room, so a slow broker slows the caller instead of losing data.
``close()`` flushes and raises if anything could not be delivered.

A client whose broker list stays empty is recreated (``stranded_recreate_s``): librdkafka
2.16.0 can decommission its last broker in a re-bootstrap race and never look for another
(upstream #5628; the consumers' side of it is in docs/recovery.md). Its queued messages
could then only time out; they fail at once instead (counted, the caller's ``on_delivery``
sees them) and the new client delivers what comes after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from netpilot.errors import NetpilotError
from netpilot.kafka.partitioning import partition_for
from netpilot.obs import client_recreations
from netpilot.obs.logging import get_logger, librdkafka_logger
from netpilot.settings import KafkaSettings

Headers = Sequence[tuple[str, bytes]]

log = get_logger(__name__)


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
    stranded_recreations: int = 0
    """Clients replaced after ``stranded_recreate_s`` with no broker at all."""
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
    stranded_recreate_s: float = 30.0
    """Recreate the client once librdkafka's statistics have listed no broker for this long
    (0: never; transactional producers never are). During a broker outage the list holds
    the brokers, down: it is empty only once the client has given every broker up."""


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
        self._stranded_limit = 0.0 if options.transactional_id else options.stranded_recreate_s
        if self._stranded_limit > 0:
            # several statistics per limit, so the empty list is seen for most of it
            cfg["statistics.interval.ms"] = str(int(min(5.0, max(0.1, self._stranded_limit / 6)) * 1000))
        cfg.update(kafka.librdkafka)
        self.kafka = kafka
        self.stats = DeliveryStats()
        self._user_cb = on_delivery
        self._cfg = cfg
        self.broker_count: int | None = None
        """How many brokers the client's last statistics listed (None: none received yet)."""
        self._stranded_since: float | None = None
        """librdkafka's clock (``ts``, s) at the first of the statistics that listed no broker."""
        self._stranded_for = 0.0
        self._producer = self._new_client()
        self._partitions: dict[str, int] = {}

    def _new_client(self) -> Producer:
        extra: dict[str, Any] = {"stats_cb": self._on_stats} if self._stranded_limit > 0 else {}
        # librdkafka's own log lines go through the rate-limited stdlib logging, not raw stderr
        return Producer({**self._cfg, **extra, "logger": librdkafka_logger()})

    # -- the stranded-client watchdog ----------------------------------------------------
    def _on_stats(self, blob: str) -> None:
        """librdkafka's statistics (served by ``poll``): the broker list and the time it was
        taken. The statistics' own clock, not the time they are served: a producer polled
        only when it has something to send gets them in a burst."""
        try:
            stats = json.loads(blob)
            count = len(stats.get("brokers") or {})
            ts = float(stats["ts"]) / 1e6
        except (ValueError, KeyError, TypeError):
            return
        self.broker_count = count
        if count:
            self._stranded_since, self._stranded_for = None, 0.0
        else:
            if self._stranded_since is None:
                self._stranded_since = ts
            self._stranded_for = ts - self._stranded_since

    def _recreate_if_stranded(self) -> None:
        if self._stranded_since is None or self._stranded_for < self._stranded_limit:
            return
        with self.stats._lock:
            stranded_for = self._stranded_for
            if self._stranded_since is None:
                return  # another thread did it
            old, self._producer = self._producer, self._new_client()
            self._stranded_since, self._stranded_for = None, 0.0
            self.broker_count = None
            self.stats.stranded_recreations += 1
        client_recreations.count("producer", "stranded")  # on every service's /metrics
        queued = len(old)
        log.warning(
            "producer has had no broker for too long (librdkafka #5628); recreated it",
            stranded_s=round(stranded_for, 1),
            failing_queued=queued,
        )
        # The old client's messages can no longer be sent: fail them now (delivery
        # callbacks with _PURGE_QUEUE, counted), not after message.timeout.ms.
        old.purge()
        old.flush(0)

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
        self._recreate_if_stranded()

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
        served = self._producer.poll(timeout)
        self._recreate_if_stranded()
        return served

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued message is delivered or failed; raise on failures."""
        deadline = time.monotonic() + timeout
        while True:
            # in slices, so that a stranded client is replaced (its messages failed) meanwhile
            remaining = self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
            self._recreate_if_stranded()
            if not remaining or time.monotonic() >= deadline:
                break
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
