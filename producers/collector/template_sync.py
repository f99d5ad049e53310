"""Templates survive restarts: publish them to the compacted templates topic, load at start.

Key ``exporter|observation_domain|template_id[|source_port]`` (catalog.EXPORTER_TEMPLATES);
a withdrawal is a tombstone. At start the whole topic is read up to its end offsets (no
consumer group: every collector wants every template) and each template installed in the
decoder, so data that arrives first after a restart decodes at once. Templates carry the
exporter's source port (their Transport Session): a second collector fed by the same
exporter session (failover, anycast, a load balancer keeping the 5-tuple) decodes its data
at once; after an exporter restart on a new port its new session re-sends its templates.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.kafka.consumer import position
from netpilot.kafka.deadletters import DeadLetterPublisher
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.logging import librdkafka_logger
from netpilot.settings import KafkaSettings
from netpilot.wire.flows import addr_to_str, str_to_addr
from netpilot.wire.intake import Intake
from netpilot.wire.templates import ExporterTemplate, template_key
from producers.collector.decode.decoder import Decoder
from producers.collector.decode.errors import DecodeError
from producers.collector.decode.result import TemplateEvent


def publish(producer: KafkaProducer, kafka: KafkaSettings, events: list[TemplateEvent]) -> int:
    topic = kafka.topic(catalog.EXPORTER_TEMPLATES)
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
            received_at=time.time(),
            source_port=e.source_port,
        )
        producer.produce(topic, msg.encode(), key=key, headers=ExporterTemplate.headers())
    return len(events)


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


def load(
    kafka: KafkaSettings,
    decoder: Decoder,
    timeout_s: float = 30.0,
    intake: Intake | None = None,
    dead_letters: DeadLetterPublisher | None = None,
) -> tuple[int, int]:
    """Read the templates topic to its end; returns (templates loaded, records skipped).
    Records skipped: undecodable, or refused by ``intake`` (another schema in the ``schema``
    header, an implausible ``received_at``); each goes to ``dead_letters`` with the reason.
    A record stays on the compacted topic until its key gets a newer value, so each start
    dead-letters it again (at least once, as every consumer's replays do)."""
    intake = intake if intake is not None else Intake()
    topic = kafka.topic(catalog.EXPORTER_TEMPLATES)
    cfg = kafka.client_config()
    cfg.update(
        {"group.id": "netpilot-collector-template-load", "enable.auto.commit": "false", "enable.partition.eof": "true"}
    )
    consumer = Consumer({**cfg, "logger": librdkafka_logger()})
    latest: dict[str, ExporterTemplate | None] = {}
    skipped = 0
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions if topic in md.topics else {}
        deadline = time.monotonic() + timeout_s
        ends = {}
        for p in parts:
            lo, hi = _watermarks(consumer, TopicPartition(topic, p), deadline)
            if hi > lo:
                ends[p] = hi
        if ends:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(500, 1.0):
                if m.error():
                    continue
                key = (m.key() or b"").decode(errors="replace")
                if m.value() is None:
                    latest[key] = None
                else:
                    try:
                        latest[key] = intake.model(ExporterTemplate, m.value(), m.headers())
                    except WireError as exc:
                        skipped += 1
                        if dead_letters is not None:
                            dead_letters.send(m, exc)
                _, partition, offset = position(m)
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
    finally:
        consumer.close()
    loaded = 0
    for t in latest.values():
        if t is None:
            continue
        try:
            installed = decoder.load_template(
                str_to_addr(t.exporter),
                t.version,
                t.observation_domain,
                t.kind,
                bytes.fromhex(t.definition_hex),
                t.source_port,
            )
            loaded += installed
            skipped += not installed
        except (DecodeError, ValueError):
            skipped += 1
    return loaded, skipped
