"""Templates survive restarts and move between collectors: the compacted templates topic.

Key ``exporter|observation_domain|template_id[|source_port]`` (catalog.EXPORTER_TEMPLATES);
a withdrawal is a tombstone. At start the whole topic is read up to its end offsets (no
consumer group: every collector wants every template) and each template installed in the
decoder, so data that arrives first after a restart decodes at once. Then the same reader
keeps following the topic (:class:`TemplateFollower`): collectors sharing a port
(SO_REUSEPORT) see an exporter session move to them when another one dies or joins, and
must decode it with the templates the other one learned, since an exporter re-sends its
templates only every few seconds or packets. Templates carry the exporter's source port
(their Transport Session); after an exporter restart on a new port its new session re-sends
its templates anyway.

A template from the topic is installed only if it is newer than what this collector learned
of that key itself (``received_at``; the collectors sharing a port share a clock): its own
records coming back, or another collector's older copy arriving late, never replace a
definition learned since from the exporter.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.kafka.consumer import position
from netpilot.kafka.deadletters import DeadLetterPublisher
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.logging import get_logger, librdkafka_logger
from netpilot.settings import KafkaSettings
from netpilot.wire.flows import addr_to_str, str_to_addr
from netpilot.wire.intake import Intake
from netpilot.wire.templates import ExporterTemplate, template_key
from producers.collector.decode.decoder import Decoder
from producers.collector.decode.errors import DecodeError
from producers.collector.decode.result import TemplateEvent

log = get_logger("netpilot.collector.templates")


def publish(
    producer: KafkaProducer, kafka: KafkaSettings, events: list[TemplateEvent], received_at: float | None = None
) -> int:
    topic = kafka.topic(catalog.EXPORTER_TEMPLATES)
    received_at = time.time() if received_at is None else received_at
    for e in events:
        key = template_key(addr_to_str(e.exporter), e.domain, e.template_id, e.source_port)
        if e.definition is None:
            producer.produce(topic, None, key=key)
            continue
        msg = ExporterTemplate(
            exporter=addr_to_str(e.exporter),
            observation_domain=e.domain,
            template_id=e.template_id,
            version=e.version,  # type: ignore[arg-type]
            kind=e.kind,  # type: ignore[arg-type]
            definition_hex=e.definition.hex(),
            scope_field_count=e.scope_field_count,
            received_at=received_at,
            source_port=e.source_port,
        )
        producer.produce(topic, msg.encode(), key=key, headers=ExporterTemplate.headers())
    return len(events)


@dataclass(frozen=True)
class StoredTemplate:
    """One record of the templates topic, checked: a template, or a withdrawal (``template``
    None) at ``at`` (seconds: the template's ``received_at``, a tombstone's Kafka timestamp)."""

    key: str
    template: ExporterTemplate | None
    at: float


def event_key(e: TemplateEvent) -> str:
    """The topic key of a template the decoder learned or withdrew."""
    return template_key(addr_to_str(e.exporter), e.domain, e.template_id, e.source_port)


def as_events(rec: StoredTemplate) -> list[TemplateEvent]:
    """A topic record as what the decoder installs; ValueError when it cannot be one."""
    t = rec.template
    if t is not None:
        definition = bytes.fromhex(t.definition_hex)
        return [
            TemplateEvent(
                str_to_addr(t.exporter),
                t.version,
                t.observation_domain,
                t.template_id,
                t.kind,
                definition,
                t.scope_field_count,
                t.source_port,
            )
        ]
    # a tombstone: its key names the template, not its protocol version: withdraw either
    parts = rec.key.split("|")
    if len(parts) not in (3, 4):
        raise ValueError(f"not a template key: {rec.key!r}")
    exporter, domain, tid = str_to_addr(parts[0]), int(parts[1]), int(parts[2])
    port = int(parts[3]) if len(parts) == 4 else 0
    return [TemplateEvent(exporter, v, domain, tid, "data", None, 0, port) for v in (9, 10)]


def install(decoder: Decoder, t: ExporterTemplate) -> bool:
    """Put one stored template into ``decoder`` (at start: nothing waits for it yet)."""
    try:
        return decoder.load_template(
            str_to_addr(t.exporter),
            t.version,
            t.observation_domain,
            t.kind,
            bytes.fromhex(t.definition_hex),
            t.source_port,
        )
    except (DecodeError, ValueError):
        return False


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """Watermarks, retrying while a just-created partition has no leader yet."""
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException as exc:
            retriable = exc.args[0].code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
            )
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class LearnedAt:
    """When this collector last learned each template key (from its exporters or the topic):
    the freshness rule above. Bounded: the oldest keys are forgotten first (a forgotten key
    takes the topic's copy, as at start)."""

    def __init__(self, max_keys: int) -> None:
        self._at: OrderedDict[str, float] = OrderedDict()
        self._max = max_keys

    def note(self, key: str, at: float) -> None:
        self._at[key] = at
        self._at.move_to_end(key)
        while len(self._at) > self._max:
            self._at.popitem(last=False)

    def newer(self, key: str, at: float) -> bool:
        """Whether something stored ``at`` is newer than what we know of ``key``."""
        return at > self._at.get(key, float("-inf"))


class TemplateFollower:
    """The templates topic, read from its beginning by one consumer without a group.

    :meth:`load` reads up to the end offsets found at start and returns the latest record of
    each key; :meth:`follow` then keeps reading in a thread, and :meth:`take` hands what came
    since to the decode worker (the decoder is the worker's alone). Records that fail the
    intake checks go to the dead letters, once per read."""

    def __init__(
        self,
        kafka: KafkaSettings,
        intake: Intake | None = None,
        dead_letters: DeadLetterPublisher | None = None,
        max_waiting: int = 100_000,
    ) -> None:
        self.kafka = kafka
        self.topic = kafka.topic(catalog.EXPORTER_TEMPLATES)
        self.intake = intake if intake is not None else Intake()
        self.dead_letters = dead_letters
        cfg = kafka.client_config()
        cfg.update(
            {
                "group.id": "netpilot-collector-template-load",  # never joined: assign() only
                "enable.auto.commit": "false",
                "enable.partition.eof": "false",
            }
        )
        self._consumer = Consumer({**cfg, "logger": librdkafka_logger()})
        self._assigned: set[int] = set()
        self._waiting: queue.Queue[StoredTemplate] = queue.Queue(max_waiting)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_discovery = 0.0
        self.skipped = 0
        """Records refused (undecodable, or failing the intake checks)."""
        self.overflowed = 0
        """Records lost because the worker did not take them (queue full): counted, and a
        template lost this way is only a delay until the exporter re-sends it."""
        self.error: str | None = None

    # -- reading -----------------------------------------------------------------------
    def _check(self, m: Message) -> StoredTemplate | None:
        key = (m.key() or b"").decode(errors="replace")
        if m.value() is None:
            _, ts = m.timestamp()
            return StoredTemplate(key, None, ts / 1000 if ts > 0 else time.time())
        try:
            t = self.intake.model(ExporterTemplate, m.value(), m.headers())
        except WireError as exc:
            self.skipped += 1
            if self.dead_letters is not None:
                self.dead_letters.send(m, exc)
            return None
        return StoredTemplate(key, t, t.received_at)

    def _discover(self, deadline: float | None = None) -> dict[int, int]:
        """Assign partitions not assigned yet, from their beginning (the topic may not exist
        yet, or may have grown); returns their end offsets where they hold records."""
        md = self._consumer.list_topics(self.topic, timeout=10)
        meta = md.topics.get(self.topic)
        parts = sorted(set(meta.partitions) - self._assigned) if meta is not None and not meta.error else []
        ends: dict[int, int] = {}
        if not parts:
            return ends
        for p in parts:
            lo, hi = _watermarks(self._consumer, TopicPartition(self.topic, p), deadline or time.monotonic() + 10)
            if hi > lo:
                ends[p] = hi
        self._consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
        self._assigned.update(parts)
        return ends

    def load(self, timeout_s: float = 30.0) -> dict[str, StoredTemplate]:
        """Read to the end offsets found now; the latest record per key (withdrawals too)."""
        deadline = time.monotonic() + timeout_s
        ends = self._discover(deadline)
        latest: dict[str, StoredTemplate] = {}
        while ends and time.monotonic() < deadline:
            for m in self._consumer.consume(500, 1.0):
                if m.error():
                    continue
                rec = self._check(m)
                if rec is not None:
                    latest[rec.key] = rec
                _, partition, offset = position(m)
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        if ends:
            log.warning("templates topic not read to its end at start", partitions=sorted(ends))
        return latest

    # -- following ---------------------------------------------------------------------
    def follow(self) -> None:
        self._thread = threading.Thread(target=self._run, name="template-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() >= self._next_discovery:
                    self._next_discovery = time.monotonic() + 10
                    try:
                        self._discover()
                    except KafkaException as exc:  # broker away: librdkafka reconnects, we retry
                        log.warning("templates topic metadata", error=str(exc))
                for m in self._consumer.consume(500, 0.2):
                    if m.error():
                        continue  # transport hiccups: librdkafka reconnects on its own
                    rec = self._check(m)
                    if rec is None:
                        continue
                    try:
                        self._waiting.put_nowait(rec)
                    except queue.Full:
                        self.overflowed += 1
        except Exception as exc:  # noqa: BLE001 - reported through the collector's health
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("template follower failed", error=self.error)

    def take(self) -> list[StoredTemplate]:
        """Records read since the last call, oldest first."""
        out: list[StoredTemplate] = []
        while True:
            try:
                out.append(self._waiting.get_nowait())
            except queue.Empty:
                return out

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._consumer.close()
