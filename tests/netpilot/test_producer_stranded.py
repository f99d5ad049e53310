"""A producer left with no broker at all is recreated (``stranded_recreate_s``).

librdkafka 2.16.0 can decommission its last broker in a re-bootstrap race after a broker
restart and never look for another (upstream #5628, seen stuck in consumers only: 3 of 46
restarts, docs/recovery.md). What it leaves is a client whose statistics list no broker.
The race cannot be provoked on demand, so the second test hands the producer that
statistics record while its real client holds queued messages: the client is replaced, the
queued messages fail at once (counted, seen by ``on_delivery``), and what comes after reaches
the broker. The first test is the misfire the watchdog must not have: a real broker outage
(the brokers stay listed, down) and a healthy producer are never recreated.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message

from netpilot.catalog import FLOWS
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs import client_recreations
from netpilot.settings import KafkaSettings
from tests.conftest import private_broker

LIMIT_S = 1.0


@pytest.mark.kafka  # a private broker: the test stops it
def test_a_broker_outage_does_not_strand_the_producer_and_its_messages_arrive_after(tmp_path: Path) -> None:
    with private_broker(tmp_path / "kafka", "ps.", [FLOWS]) as (broker, kafka):
        topic = kafka.topic(FLOWS)
        producer = KafkaProducer(kafka, ProducerOptions(stranded_recreate_s=LIMIT_S))
        counts: list[int | None] = []

        def produce_for(seconds: float, value: bytes) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                producer.produce(topic, value, key="k")
                producer.poll(0.1)
                counts.append(producer.broker_count)

        produce_for(4 * LIMIT_S, b"before")  # healthy, several limits
        broker.down()
        produce_for(8 * LIMIT_S, b"during")  # librdkafka re-bootstraps meanwhile
        seen = [c for c in counts if c is not None]
        assert seen and min(seen) >= 1, counts
        assert producer.stats.stranded_recreations == 0

        broker.up(timeout=180)
        producer.flush(90)  # raises if any message failed
        assert producer.stats.delivered == producer.stats.queued > 0
        assert producer.stats.stranded_recreations == 0


def test_a_producer_whose_statistics_list_no_broker_is_recreated_and_delivers_again(
    kafka_settings: KafkaSettings,
) -> None:
    # The client's own statistics off (they would list the live broker), so that only the
    # handed record speaks; a long linger keeps the first messages queued in the client.
    kafka = kafka_settings.model_copy(
        update={"librdkafka": {**kafka_settings.librdkafka, "statistics.interval.ms": "0"}}
    )
    topic = kafka.topic(FLOWS)
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = KafkaProducer(kafka, ProducerOptions(linger_ms=10_000, stranded_recreate_s=LIMIT_S), on_delivery)
    counted = client_recreations.snapshot()[("producer", "stranded")]
    for i in range(5):
        producer.produce(topic, f"stranded-{i}".encode(), key="k")
    # what a stranded client reports, twice, the limit apart (librdkafka's clock, µs)
    producer._on_stats('{"ts": 1000000000, "brokers": {}}')
    producer.poll(0.1)
    assert producer.stats.stranded_recreations == 0  # not yet past the limit
    producer._on_stats(f'{{"ts": {1000000000 + int(LIMIT_S * 1e6)}, "brokers": {{}}}}')
    deadline = time.monotonic() + 10 * LIMIT_S
    while producer.stats.stranded_recreations == 0 and time.monotonic() < deadline:
        producer.poll(0.1)
    assert producer.stats.stranded_recreations == 1
    # what every service's /metrics exports (netpilot_service_kafka_client_recreations_total)
    assert client_recreations.snapshot()[("producer", "stranded")] == counted + 1
    assert producer.stats.failed == 5 and producer.stats.delivered == 0
    assert {e.code() for e in errors} == {KafkaError._PURGE_QUEUE}

    for i in range(3):
        producer.produce(topic, f"after-{i}".encode(), key="k")
    deadline = time.monotonic() + 60
    while producer.stats.delivered < 3 and time.monotonic() < deadline:
        producer.poll(0.2)
    assert producer.stats.delivered == 3 and producer.stats.failed == 5

    consumer = BatchConsumer(kafka, f"ps-{uuid.uuid4().hex[:6]}", [topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 3 and time.monotonic() < deadline:
            got += [m.value() or b"" for m in consumer.poll_batch(100, 0.5)]
        # a little longer: a purged message that had been sent anyway would show now
        end = time.monotonic() + 2
        while time.monotonic() < end:
            got += [m.value() or b"" for m in consumer.poll_batch(100, 0.5)]
    finally:
        consumer.close()
    assert sorted(got) == [b"after-0", b"after-1", b"after-2"]
