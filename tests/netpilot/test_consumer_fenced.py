"""Which librdkafka errors say "this static member was fenced" (the texts are those librdkafka
2.16 gave on Kafka 4.3, see tests/sinks/clickhouse/test_static_membership.py)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from netpilot.kafka.consumer import fenced_exception, is_fenced, is_retriable

POLLED = (
    "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id: "
    "Fatal consumer error: Broker: Static consumer fenced by other consumer with same group.instance.id"
)
COMMIT = "Commit failed: Broker: Static consumer fenced by other consumer with same group.instance.id"


def test_the_fence_as_polled_and_as_a_commit_error_is_recognised_and_not_retriable() -> None:
    polled = KafkaError(KafkaError._FATAL, POLLED)
    commit = KafkaError(KafkaError.FENCED_INSTANCE_ID, COMMIT)
    assert is_fenced(polled) and is_fenced(commit)
    assert fenced_exception(KafkaException(commit)) and fenced_exception(KafkaException(polled))
    assert not is_retriable(KafkaException(KafkaError(KafkaError._FATAL, POLLED, fatal=True)))


def test_other_errors_are_not_a_fence() -> None:
    assert not is_fenced(KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9092 failed"))
    assert not is_fenced(KafkaError(KafkaError._FATAL, "Fatal error: Local: Invalid argument or configuration"))
    assert not is_fenced(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "Broker: Group authorization failed"))
    assert not fenced_exception(ValueError("fenced"))
    assert not fenced_exception(KafkaException(KafkaError(KafkaError._WAIT_COORD)))
