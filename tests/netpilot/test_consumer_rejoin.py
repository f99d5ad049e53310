"""A consumer that stays out of its group is recreated (``rejoin_timeout_s``).

librdkafka 2.16.0 can be left knowing no broker after a broker restart (a Metadata answer
listing no broker, from a broker at the end of its controlled shutdown, decommissions the
last one and cancels the re-bootstrap): the client then never rejoins, and a sink reading
nothing still looks healthy. The race is rare and not provokable on demand (3 clients of
46 restarts, docs/recovery.md); what it leaves, a client with no member id, is what a
broker outage longer than the session leaves too, so a real outage drives the watchdog
here: the client is recreated, and the new one consumes once the broker is back. A member
in a healthy group is never recreated, and 0 turns the watchdog off.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from netpilot.kafka.consumer import BatchConsumer, ConsumerOptions
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs import client_recreations
from tests.conftest import private_broker

pytestmark = pytest.mark.kafka  # a private broker: the test stops it

LIMIT_S = 3.0


def _poll_until(consumers: list[BatchConsumer], want: set[bytes], timeout: float) -> dict[int, set[bytes]]:
    """Poll every consumer until each has read every value of ``want``."""
    got: dict[int, set[bytes]] = {i: set() for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(not want <= g for g in got.values()):
        for i, c in enumerate(consumers):
            got[i] |= {m.value() or b"" for m in c.poll_batch(100, 0.2)}
    return got


def test_a_consumer_out_of_its_group_past_the_limit_is_recreated_and_reads_again(tmp_path: Path) -> None:
    from netpilot.catalog import FLOWS

    with private_broker(tmp_path / "kafka", "rj.", [FLOWS]) as (broker, kafka):
        topic = kafka.topic(FLOWS)
        watched = BatchConsumer(kafka, f"rj-{uuid.uuid4().hex[:6]}", [topic], ConsumerOptions(rejoin_timeout_s=LIMIT_S))
        unwatched = BatchConsumer(kafka, f"rj-{uuid.uuid4().hex[:6]}", [topic], ConsumerOptions(rejoin_timeout_s=0))
        producer = KafkaProducer(kafka)
        producer.produce(topic, b"before", key="k")
        producer.flush()
        got = _poll_until([watched, unwatched], {b"before"}, 60)
        assert all(b"before" in g for g in got.values()), got
        # a healthy member polling for several limits without a message is left alone
        _poll_until([watched, unwatched], {b"never"}, 3 * LIMIT_S)
        assert watched.stall_recreations == 0

        counted = client_recreations.snapshot()[("consumer", "out_of_group")]
        down = time.monotonic()
        broker.down()
        # out of the group once the session (6 s) has expired, then past the limit
        while time.monotonic() < down + 6 + 3 * LIMIT_S:
            for c in (watched, unwatched):
                c.poll_batch(100, 0.2)
        assert watched.stall_recreations >= 1 and unwatched.stall_recreations == 0
        # what every service's /metrics exports (netpilot_service_kafka_client_recreations_total)
        assert client_recreations.snapshot()[("consumer", "out_of_group")] == counted + watched.stall_recreations

        broker.up(timeout=180)
        producer.produce(topic, b"after", key="k")
        producer.flush(60)
        got = _poll_until([watched, unwatched], {b"after"}, 90)
        assert b"after" in got[0], (got, watched.stall_recreations)
        assert watched.recreations == 0  # fences only: none here
        for c in (watched, unwatched):
            c.close()
        producer.close()
