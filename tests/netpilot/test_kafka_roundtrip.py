"""Against the real broker: batches survive the trip, PoPs partition deterministically,
poison messages are moved to the dead-letter topic with their reason."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer, ConsumeError, ConsumerOptions
from netpilot.kafka.deadletters import DeadLetterPublisher, decode_or_dead_letter
from netpilot.kafka.partitioning import murmur2, partition_for
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire import flows
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.links import LinkInventory
from tests.netpilot.flowgen import make_flows


def _consume_all(kafka: KafkaSettings, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [topic])
    got: list = []
    deadline = time.time() + timeout
    try:
        while len(got) < expected and time.time() < deadline:
            got.extend(consumer.poll_batch(500, timeout=0.5))
        consumer.commit(got)
    finally:
        consumer.close()
    return got


def test_flow_batch_round_trip_field_for_field(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(catalog.FLOWS)
    batch = make_flows(5000, seed=7)
    producer = KafkaProducer(kafka_settings, ProducerOptions(compression="none"))
    producer.produce(topic, flows.encode_flows(batch), key="ams1", headers=flows.headers())
    producer.flush()
    assert producer.stats.delivered == 1 and producer.stats.failed == 0

    [msg] = _consume_all(kafka_settings, topic, 1)
    assert dict(msg.headers())["schema"] == b"flows/1"
    assert msg.key() == b"ams1"
    back = flows.decode_flows(msg.value())
    assert back.num_rows == 5000
    for name in flows.FIELD_NAMES:
        assert back.column(name).equals(batch.column(name)), name


def test_murmur2_matches_kafka_reference_values() -> None:
    # Reference values from Kafka's UtilsTest.testMurmur2 (Java).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, expected in cases.items():
        assert murmur2(data) == expected, data


def test_pops_land_in_partitions_by_key_deterministically(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(catalog.FLOWS)
    pops = ["ams1", "fra1", "lon1", "nyc1"]
    producer = KafkaProducer(kafka_settings, ProducerOptions(compression="none"))
    for round_ in range(3):
        for pop in pops:
            producer.produce(
                topic, flows.encode_flows(make_flows(50, seed=round_, pop=pop)), key=pop, headers=flows.headers()
            )
    producer.flush()
    msgs = _consume_all(kafka_settings, topic, 12)
    assert len(msgs) == 12
    seen: dict[str, set[int]] = {}
    for m in msgs:
        seen.setdefault(m.key().decode(), set()).add(m.partition())
    for pop in pops:
        # every batch of a PoP in one partition, and the one Java's partitioner would pick
        assert seen[pop] == {partition_for(pop, catalog.FLOWS.partitions)}, pop
    assert len({p for s in seen.values() for p in s}) > 1, "all PoPs in one partition: key ignored?"


def test_compacted_topic_entity_keys_follow_their_pop(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(catalog.LINK_INVENTORY)
    producer = KafkaProducer(kafka_settings)
    links = [
        LinkInventory(pop=pop, link_id=f"{pop}-l{i}", router="r1", capacity_bps=1e10)
        for pop in ("ams1", "fra1")
        for i in range(4)
    ]
    for link in links:
        producer.produce(
            topic,
            link.encode(),
            key=f"{link.pop}|{link.link_id}",
            headers=LinkInventory.headers(),
            partition_key=link.pop,
        )
    producer.flush()
    msgs = _consume_all(kafka_settings, topic, len(links))
    assert len(msgs) == len(links)
    for m in msgs:
        decoded = LinkInventory.decode(m.value())
        assert m.partition() == partition_for(decoded.pop, catalog.LINK_INVENTORY.partitions)
        assert m.key().decode() == f"{decoded.pop}|{decoded.link_id}"


def test_malformed_message_goes_to_dead_letters_with_reason(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(catalog.FLOWS)
    producer = KafkaProducer(kafka_settings, ProducerOptions(compression="none"))
    good = flows.encode_flows(make_flows(10))
    future = make_flows(10).replace_schema_metadata({"netpilot.schema": "flows", "netpilot.version": "9.0"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, future.schema) as w:
        w.write_table(future)
    for value in (good, b"\x00garbage", sink.getvalue().to_pybytes(), good):
        producer.produce(topic, value, key="ams1", headers=[("trace", b"t-1")])
    producer.flush()

    msgs = _consume_all(kafka_settings, topic, 4)
    reasons: list[str] = []
    dlq = DeadLetterPublisher(producer, component="test")
    decoded = decode_or_dead_letter(msgs, flows.decode_flows, dlq, on_dead=reasons.append)
    producer.flush()
    assert [m.offset() for m, _ in decoded] == [0, 3]
    assert reasons == ["wire-decode", "wire-version"]

    dead = _consume_all(kafka_settings, kafka_settings.topic(catalog.DEAD_LETTERS), 2)
    letters = sorted(
        (DeadLetter.from_headers(m.key(), m.value(), m.headers()) for m in dead), key=lambda d: d.source_offset
    )
    assert [(d.source_offset, d.reason) for d in letters] == [(1, "wire-decode"), (2, "wire-version")]
    assert letters[0].value == b"\x00garbage"  # the original bytes, untouched
    assert letters[0].source_topic == topic
    assert "9.0" in letters[1].error
    assert dict(letters[0].original_headers)["trace"] == b"t-1"


def test_producer_reports_undeliverable_messages() -> None:
    from netpilot.kafka.producer import DeliveryError

    dead = KafkaSettings(bootstrap_servers="127.0.0.1:1", librdkafka={"message.timeout.ms": "1500", "log_level": "0"})
    producer = KafkaProducer(dead)
    producer.produce("nowhere", b"x", key="k")
    with pytest.raises(DeliveryError):
        producer.flush(timeout=5)


def test_a_missing_subscribed_topic_is_a_fatal_error_that_says_how_to_create_it(kafka_broker: str) -> None:
    # Topics are never auto-created (their settings come from the catalog): with no wait, a
    # consumer of a topic nobody made stops at once with the fix in its message.
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=f"missing{time.monotonic_ns()}.")
    options = ConsumerOptions(missing_topic_wait_s=0)
    consumer = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [kafka.topic(catalog.FLOWS)], options)
    try:
        deadline = time.time() + 30
        with pytest.raises(ConsumeError) as raised:
            while time.time() < deadline:
                assert consumer.poll_batch(10, timeout=0.5) == []
    finally:
        consumer.close()
    assert "UNKNOWN_TOPIC_OR_PART" in str(raised.value)
    assert "netpilot topics sync" in str(raised.value)


def test_a_missing_subscribed_topic_is_waited_for_and_read_once_created(kafka_broker: str) -> None:
    """A first install: consumers start before their topics exist (the Topic Operator makes
    them moments later). They wait without an error, one of two topics there is read
    meanwhile, and the late one is read once created. One consumer has none of its topics
    yet, so librdkafka joins no group for it: its out-of-group watchdog must not fire."""
    from netpilot.kafka.admin import TopicAdmin

    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=f"late{time.monotonic_ns()}.")
    admin = TopicAdmin(kafka)
    early, late = kafka.topic(catalog.LINK_STATS), kafka.topic(catalog.FLOWS)
    admin.sync([catalog.LINK_STATS])
    options = ConsumerOptions(missing_topic_wait_s=120, rejoin_timeout_s=2)
    both = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [early, late], options)
    lonely = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [late], options)
    producer = KafkaProducer(kafka)
    got: dict[BatchConsumer, list[bytes]] = {both: [], lonely: []}

    def poll() -> None:
        # committed as read, as the services do: the new topic's arrival is a rebalance, and
        # what was not committed would be read again
        for c in (both, lonely):
            batch = c.poll_batch(10, timeout=0.25)
            got[c].extend(m.value() or b"" for m in batch)
            c.commit(batch)

    try:
        producer.produce(early, b"early", key="ams1")
        producer.flush(30)
        deadline = time.monotonic() + 60
        while b"early" not in got[both] or both.missing_topics != [late] or lonely.missing_topics != [late]:
            assert time.monotonic() < deadline, (got, both.missing_topics, lonely.missing_topics)
            poll()
        waiting_until = time.monotonic() + 6  # three times the watchdog's limit
        while time.monotonic() < waiting_until:
            poll()
        assert lonely.stall_recreations == 0 and both.stall_recreations == 0
        assert both.missing_topics == [late] == lonely.missing_topics

        admin.sync([catalog.FLOWS])
        producer.produce(late, b"late", key="ams1")
        producer.flush(30)
        deadline = time.monotonic() + 60
        while any(b"late" not in g for g in got.values()) or both.missing_topics or lonely.missing_topics:
            assert time.monotonic() < deadline, (got, both.missing_topics, lonely.missing_topics)
            poll()
        assert got == {both: [b"early", b"late"], lonely: [b"late"]}
        assert lonely.stall_recreations == 0 and both.stall_recreations == 0
    finally:
        both.close()
        lonely.close()
        producer.close()
        admin.delete([early, late])


def test_a_topic_still_missing_after_the_wait_is_a_fatal_error_naming_it(kafka_broker: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=f"never{time.monotonic_ns()}.")
    topic = kafka.topic(catalog.FLOWS)
    consumer = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [topic], ConsumerOptions(missing_topic_wait_s=3))
    started = time.monotonic()
    try:
        with pytest.raises(ConsumeError) as raised:
            while time.monotonic() < started + 60:
                assert consumer.poll_batch(10, timeout=0.5) == []
    finally:
        consumer.close()
    assert time.monotonic() - started >= 3  # not before the wait was over
    assert topic in str(raised.value) and "netpilot topics sync" in str(raised.value)
