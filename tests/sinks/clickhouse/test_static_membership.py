"""Static membership (``group_instance_id``) of the ClickHouse sink, on the real broker.

- a static member fenced by the broker (its id given to a newer member) recreates its
  consumer, rejoins and goes on: nothing lost, nothing stored twice;
- two live sinks with one id would fence each other for ever: one stops with an error naming
  the id instead;
- a broker restart (SIGTERM, then SIGKILL) does not stop a static sink, and every row lands
  once;
- a SIGKILLed static sink restarted with its id gets its partitions back before the dead
  member's session (60 s here) has expired.
- a fence right after a broker outage (a restart can make librdkafka fence itself) is not
  counted toward the duplicate-id limit (a BatchConsumer in the test process).

A fence cannot be provoked through a broker restart at will (the one seen in the recovery
benchmark was not reproduced with a bare consumer, see docs/recovery.md), so the first test
fences the sink with a consumer of its own that joins under the same ``group.instance.id``:
the broker fences the sink exactly as it would after a restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from netpilot import catalog
from netpilot.settings import KafkaSettings
from tests.sinks.clickhouse.helpers import (
    SinkProcess,
    free_port,
    make_flows,
    produce,
    query_stopped,
    wait_group_members,
)

TOTALS = "SELECT count(), sum(bytes), sum(bytes_scaled) FROM netpilot.flows_raw"
M = "netpilot_sink_clickhouse_"
FENCED = M + 'errors_total{reason="fenced"'
RECREATED = (
    'netpilot_service_kafka_client_recreations_total{client="consumer",component="sink-clickhouse",reason="fenced"'
)
"""The same recreation, on the service contract every component exports (labels sorted)."""


def _hour_ago_ms() -> int:
    return (int(time.time()) // 3600 - 1) * 3_600_000


def _intrude(kafka: KafkaSettings, group: str, instance_id: str, timeout: float = 60) -> None:
    """Join ``group`` under ``instance_id`` until the broker gives this consumer partitions
    (the sink holding the id is fenced by then), then close: a static member sends no
    LeaveGroup, so the id stays this consumer's until the sink rejoins with it."""
    assigned: list[int] = []
    c = Consumer(
        {
            **kafka.client_config(),
            "group.id": group,
            "group.instance.id": instance_id,
            "session.timeout.ms": "6000",
            "partition.assignment.strategy": "range",
            "enable.auto.commit": "false",
        }
    )
    c.subscribe([kafka.topic(catalog.FLOWS)], on_assign=lambda _c, parts: assigned.append(len(parts)))
    try:
        deadline = time.monotonic() + timeout
        while not assigned and time.monotonic() < deadline:
            c.poll(0.2)  # polled messages are dropped: never committed, so the sink replays them
        assert assigned, f"the intruder got no assignment in {timeout}s"
    finally:
        c.close()


def _stable_with_one_member(kafka: KafkaSettings, group: str) -> bool:
    try:
        wait_group_members(kafka, group, 1, timeout=0.5)
    except AssertionError:
        return False
    return True


def test_fenced_static_sink_recreates_its_consumer_without_loss_or_duplicates(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    group = f"sink-fence-{uuid.uuid4().hex[:8]}"
    first = make_flows(n_messages=12, rows_per_message=1000, seed=21, base_ms=_hour_ago_ms())
    second = make_flows(n_messages=12, rows_per_message=1000, seed=22, base_ms=_hour_ago_ms())
    # Batches stay open for 3 s: the fence comes while some are buffered (and are dropped,
    # then replayed by the recreated consumer from the committed offsets).
    env = {"NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "3", "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_ROWS": "4000"}
    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "sink.log", env).start()
    try:
        sink.wait_metric(M + "messages_total", 0, timeout=60)  # serving /metrics
        produce(kafka_settings, first.messages)
        sink.wait_metric(M + "messages_total", len(first.messages), timeout=60)
        _intrude(kafka_settings, group, f"{group}-0")
        sink.wait_metric(FENCED, 1, timeout=60)
        sink.wait_metric(RECREATED, 1, timeout=5)  # counted before the sink's own counter
        produce(kafka_settings, second.messages)
        expected = [[first.rows + second.rows, first.bytes + second.bytes, first.bytes_scaled + second.bytes_scaled]]
        got = sink.wait_query(TOTALS, expected, timeout=120)
        assert got == expected, sink.tail()
        assert sink.stop() == 0, sink.tail()
    finally:
        if sink.proc is not None and sink.proc.poll() is None:
            sink.kill()
    # read again with the sink stopped: anything still in flight would show as a duplicate
    assert query_stopped(clickhouse_dsn, TOTALS) == expected


def test_two_sinks_with_one_instance_id_stop_with_an_error_naming_it(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    """Each join of one fences the other; each recreates its consumer, up to the limit (3
    fences in 5 minutes), then stops with an error naming the id instead of fencing back."""
    group = f"sink-dup-{uuid.uuid4().hex[:8]}"
    dup_id = f"{group}-same"
    env = {"NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID": dup_id}
    a = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "a.log", env).start()
    b_dsn = clickhouse_dsn if not clickhouse_dsn.startswith("chdb:") else f"chdb://{tmp_path / 'ch-b'}"
    b = SinkProcess(kafka_settings, b_dsn, group, tmp_path / "b.log", env)
    try:
        a.wait_metric(M + "messages_total", 0, timeout=60)
        b.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and a.proc.poll() is None and b.proc.poll() is None:  # type: ignore[union-attr]
            time.sleep(0.2)
        exited = [s for s in (a, b) if s.proc is not None and s.proc.poll() is not None]
        assert exited, f"both still running after 180 s\n--- a\n{a.tail()}\n--- b\n{b.tail()}"
        loser = exited[0]
        assert loser.proc is not None and loser.proc.returncode != 0
        log = loser.log.read_text(errors="replace")
        assert "DuplicateInstanceId" in log and dup_id in log, loser.tail()
        # the other one keeps the id (the loser no longer fences it) and stays up
        if len(exited) == 1:
            survivor = b if loser is a else a
            wait_group_members(kafka_settings, group, 1)  # it owns the partitions
            assert survivor.proc is not None and survivor.proc.poll() is None, survivor.tail()
            assert survivor.stop() == 0, survivor.tail()
    finally:
        for s in (a, b):
            if s.proc is not None and s.proc.poll() is None:
                s.kill()


@pytest.mark.kafka  # a private broker, not the kafka_broker fixture
def test_static_sink_rides_out_broker_restarts_without_loss_or_duplicates(tmp_path: Path, clickhouse_dsn: str) -> None:
    from netpilot.dev.kafka import LocalKafka
    from netpilot.kafka.admin import TopicAdmin
    from tests.conftest import _wait_until_visible as wait_until_visible

    broker = LocalKafka(tmp_path / "kafka", port=free_port())
    bootstrap = broker.up().bootstrap
    sink: SinkProcess | None = None
    try:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="st.")
        admin = TopicAdmin(kafka)
        admin.sync(catalog.ALL_TOPICS)
        wait_until_visible(admin, [kafka.topic(t) for t in catalog.ALL_TOPICS])
        parts = [make_flows(n_messages=6, rows_per_message=500, seed=31 + i, base_ms=_hour_ago_ms()) for i in range(3)]
        sink = SinkProcess(
            kafka,
            clickhouse_dsn,
            f"sink-st-{uuid.uuid4().hex[:8]}",
            tmp_path / "sink.log",
            {  # static membership (the helper's default id); the batch timer outlasts the
                # time to stop the broker, so the commits meet the outage
                "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "3",
                "NETPILOT_SINK_CLICKHOUSE__BACKOFF_INITIAL_S": "0.2",
                "NETPILOT_SINK_CLICKHOUSE__BACKOFF_MAX_S": "1",
            },
        ).start()
        polled = 0
        for part, sig in zip(parts, (signal.SIGTERM, signal.SIGKILL), strict=False):
            produce(kafka, part.messages)
            polled += len(part.messages)
            sink.wait_metric(M + "messages_total", polled, timeout=60)  # polled, not flushed
            pid = broker.pid()
            assert pid is not None
            if sig == signal.SIGTERM:
                broker.down()
            else:
                os.kill(pid, signal.SIGKILL)
            # the outage outlasts the batch timer and the session: the commits fail meanwhile
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                assert sink.proc is not None and sink.proc.poll() is None, sink.tail()
                time.sleep(0.2)
            assert broker.up(timeout=180).bootstrap == bootstrap
            if sig == signal.SIGKILL:
                try:
                    os.waitpid(pid, os.WNOHANG)  # the broker was started by this process
                except ChildProcessError:
                    pass
        produce(kafka, parts[2].messages)
        want = [[sum(p.rows for p in parts), sum(p.bytes for p in parts), sum(p.bytes_scaled for p in parts)]]
        got = sink.wait_query(TOTALS, want, timeout=180)
        assert got == want, (got, sink.tail())
        print(f"fences recovered: {sink.metric(FENCED):.0f}")  # seen, not asserted: not reproducible
        assert sink.stop() == 0, sink.tail()
        assert query_stopped(clickhouse_dsn, TOTALS) == want
    finally:
        if sink is not None and sink.proc is not None and sink.proc.poll() is None:
            sink.kill()
        broker.down()


def test_sigkilled_static_sink_restarted_gets_its_partitions_before_the_session_expires(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    """The session is 60 s: a dynamic member (or a static one with another id) would wait
    for it before the dead member's partitions move. The restarted sink, same id, inserts
    well within it: the broker hands the id's partitions to it on its join."""
    session_s = 60
    group = f"sink-skill-{uuid.uuid4().hex[:8]}"
    env = {
        "NETPILOT_KAFKA__LIBRDKAFKA": json.dumps({"session.timeout.ms": str(session_s * 1000)}),
        "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "0.2",
    }
    first = make_flows(n_messages=6, rows_per_message=500, seed=41, base_ms=_hour_ago_ms())
    second = make_flows(n_messages=6, rows_per_message=500, seed=42, base_ms=_hour_ago_ms())
    log = tmp_path / "sink.log"
    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, log, env).start()
    try:
        produce(kafka_settings, first.messages)
        sink.wait_metric(M + "rows_total", first.rows, timeout=90)
        sink.kill()
        killed = time.monotonic()
        sink = SinkProcess(kafka_settings, clickhouse_dsn, group, log, env).start()
        produce(kafka_settings, second.messages)
        expected = [[first.rows + second.rows, first.bytes + second.bytes, first.bytes_scaled + second.bytes_scaled]]
        # a deadline well inside the dead member's session: only a rejoin under its id meets it
        got = sink.wait_query(TOTALS, expected, timeout=session_s * 0.75)
        assert got == expected, sink.tail()
        print(f"all rows stored {time.monotonic() - killed:.1f} s after the kill (session {session_s} s)")
        assert sink.stop() == 0, sink.tail()
    finally:
        if sink.proc is not None and sink.proc.poll() is None:
            sink.kill()


@pytest.mark.kafka  # a private broker, not the kafka_broker fixture
def test_a_fence_right_after_a_broker_outage_is_not_counted_as_a_duplicate_id(tmp_path: Path) -> None:
    """A broker restart can make librdkafka fence its own static member (docs/recovery.md):
    such a fence must not count toward the duplicate-id limit. With a limit of 0 a counted
    fence raises at once; the same fence within the grace after the broker's errors only
    recreates the client. (The counted case: the two-sinks test above.)"""
    from netpilot.dev.kafka import LocalKafka
    from netpilot.kafka.admin import TopicAdmin
    from netpilot.kafka.consumer import BatchConsumer, ConsumerOptions
    from tests.conftest import _wait_until_visible as wait_until_visible

    broker = LocalKafka(tmp_path / "kafka", port=free_port())
    bootstrap = broker.up().bootstrap
    consumer: BatchConsumer | None = None
    try:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="og.")
        admin = TopicAdmin(kafka)
        admin.sync([catalog.FLOWS])
        wait_until_visible(admin, [kafka.topic(catalog.FLOWS)])
        group, instance = f"og-{uuid.uuid4().hex[:8]}", "og-0"
        consumer = BatchConsumer(
            kafka,
            group,
            [kafka.topic(catalog.FLOWS)],
            ConsumerOptions(group_instance_id=instance, fence_limit=0, outage_grace_s=300),
        )

        def poll_until(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
            assert consumer is not None
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, f"no {what} within {timeout}s"
                consumer.poll_batch(timeout=0.2)

        poll_until(lambda: bool(consumer.assignment()), "assignment")
        broker.down()
        down = time.monotonic()
        poll_until(lambda: time.monotonic() - down > 3, "outage")  # the client reports the errors
        assert broker.up(timeout=180).bootstrap == bootstrap
        # Back in the group under its id: until its session (6 s) has either resumed or timed
        # out and rejoined, an intruder would only take the id from a client that is not
        # talking to the coordinator, which then rejoins and fences nobody.
        back = time.monotonic()
        poll_until(lambda: time.monotonic() - back > 12, "a session after the outage")
        poll_until(lambda: _stable_with_one_member(kafka, group), "rejoin after the outage", timeout=120)
        _intrude(kafka, group, instance)
        poll_until(lambda: consumer.recreations == 1, "recreation")  # DuplicateInstanceId if counted
        poll_until(lambda: bool(consumer.assignment()), "assignment of the new client")
    finally:
        if consumer is not None:
            consumer.close()
        broker.down()
