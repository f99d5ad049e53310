"""Static membership (``group_instance_id``): two live autopilot workers with one id fence
each other for ever unless stopped; one of them must fail with an error naming the id
(streams/membership.py). A broker restart under a static member is covered by the chaos
test (tests/e2e/test_chaos.py: its pipeline runs streams and the autopilot as static
members)."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkInventory
from streams.membership import COORDINATOR_LOGGER, FENCES, DuplicateInstanceId, FencingWatch
from tests.streams.autopilot.test_two_workers import Worker
from tests.streams.helpers import pops_one_per_partition


def _fence(watch: FencingWatch) -> None:
    watch.handle(
        logging.LogRecord(
            COORDINATOR_LOGGER,
            logging.WARNING,
            __file__,
            1,
            "Heartbeat failed: local member_id was not recognized; resetting and re-joining group",
            None,
            None,
        )
    )


def test_a_fence_now_and_then_is_a_session_expiry_many_are_a_duplicate_id() -> None:
    now = [0.0]
    found: list[DuplicateInstanceId] = []
    watch = FencingWatch("ap-0", found.append, window_s=60.0, clock=lambda: now[0])
    for _ in range(2 * FENCES):  # one per window: a member whose session expired re-joins
        _fence(watch)
        now[0] += 61.0
    assert found == []
    for _ in range(FENCES):
        _fence(watch)
        now[0] += 3.0
    assert len(found) == 1 and "'ap-0'" in str(found[0]) and "another live worker" in str(found[0])
    _fence(watch)
    assert len(found) == 1  # reported once


@pytest.mark.slow  # about a minute: two workers start and fence each other a few times
def test_two_live_workers_with_one_instance_id_fail_with_a_clear_error(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    k = kafka_settings
    p = KafkaProducer(k)
    for pop in pops_one_per_partition():
        li = LinkInventory(pop=pop, link_id="transit", router="r1", capacity_bps=10e9, peer_type="transit")
        p.produce(k.topic(catalog.LINK_INVENTORY), li.encode(), key=f"{pop}|transit", partition_key=pop)
    p.flush()
    app, same = f"apdup-{uuid.uuid4().hex[:6]}", f"dup-{uuid.uuid4().hex[:6]}"
    a = Worker(k, app, tmp_path / "a", tmp_path / "a.log", NETPILOT_AUTOPILOT__GROUP_INSTANCE_ID=same)
    b = Worker(k, app, tmp_path / "b", tmp_path / "b.log", NETPILOT_AUTOPILOT__GROUP_INSTANCE_ID=same)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and a.proc.poll() is None and b.proc.poll() is None:
            time.sleep(0.5)
        failed = [w for w in (a, b) if w.proc.poll() is not None]
        assert failed, "two workers with one group_instance_id still running after 180 s"
        for w in failed:
            log = w.log.read_text()
            assert w.proc.returncode == 1, log[-2000:]
            assert f"group_instance_id '{same}' is used by another live worker" in log, log[-2000:]
    finally:
        a.close()
        b.close()
