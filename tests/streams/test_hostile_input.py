"""The streams worker on the real broker with hostile input.

A link-stats record dated ten years ahead used to stay "the newest reading" of its link for
the rest of the run: every real reading after it fell out of the counter history, and the
link's utilisation had no counters. Now it is dead-lettered (``implausible-time``) where it
is decoded and the next real reading is used. Bodies valid for their topic's schema but
under a ``schema`` header of another major are dead-lettered too (``schema-mismatch``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from netpilot.wire import flows as F
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from streams.metrics import StreamsMetrics
from streams.service import StreamsService
from streams.settings import StreamsSettings
from tests.streams.helpers import flows_at, read_until

BYTES = 1000 * 100  # bytes_scaled of every test flow
TEN_YEARS = 10 * 365 * 86_400


def _wait_metric(metrics: StreamsMetrics, name: str, labels: dict, value: float, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sample_value(metrics.registry, name, labels) >= value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name}{labels} stayed at {sample_value(metrics.registry, name, labels)}, expected {value}")


@pytest.mark.timeout(240)
def test_reading_ten_years_ahead_is_dead_lettered_and_the_next_one_used(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    k = kafka_settings
    t0 = (int(time.time()) // 60) * 60_000 - 300_000  # 5 minutes ago, on a minute
    sec = lambda *s: t0 + 1000 * np.asarray(s, np.int64)  # noqa: E731
    producer = KafkaProducer(k)
    inv = LinkInventory(pop="hst", link_id="hst-l1", router="r1", if_index=7, capacity_bps=10e9)
    producer.produce(
        k.topic(catalog.LINK_INVENTORY),
        inv.encode(),
        key="hst|hst-l1",
        headers=LinkInventory.headers(),
        partition_key="hst",
    )
    stats_topic = k.topic(catalog.LINK_STATS)
    future = LinkStats(pop="hst", router="r1", if_index=7, ts=time.time() + TEN_YEARS, interval_s=30, out_bps=9e9)
    producer.produce(stats_topic, future.encode(), key="hst", headers=LinkStats.headers())
    # a real reading, but under the header of a major this reader does not know
    other_major = LinkStats(pop="hst", router="r1", if_index=7, ts=t0 / 1000 + 30, interval_s=30, out_bps=8e9)
    producer.produce(stats_topic, other_major.encode(), key="hst", headers=[("schema", b"link-stats/2")])
    counter = 4e9
    for ts in (30, 60):  # the real readings come after both
        st = LinkStats(pop="hst", router="r1", if_index=7, ts=t0 / 1000 + ts, interval_s=30, out_bps=counter)
        producer.produce(stats_topic, st.encode(), key="hst", headers=LinkStats.headers())
    # flows: 60 in the minute, plus a valid flows/1 body under a flows/9 header (not counted)
    minute = flows_at("hst", "hst-l1", sec(*range(0, 60)), "198.51.100.0")
    producer.produce(k.topic(catalog.FLOWS), F.encode_flows(minute), key="hst", headers=F.headers())
    producer.produce(k.topic(catalog.FLOWS), F.encode_flows(minute), key="hst", headers=[("schema", b"flows/9")])
    producer.flush()

    settings = StreamsSettings(
        kafka=k, data_dir=tmp_path, allowed_lateness_s=10, max_counter_wait_s=30, idle_after_s=600
    )
    metrics = StreamsMetrics.create()
    svc = StreamsService(settings, metrics)
    svc.start()
    try:
        dead = "netpilot_streams_dead_letters_total"
        _wait_metric(metrics, dead, {"topic": stats_topic, "reason": "schema-mismatch"}, 1)
        _wait_metric(metrics, dead, {"topic": k.topic(catalog.FLOWS), "reason": "schema-mismatch"}, 1)
        _wait_metric(metrics, "netpilot_streams_link_stats_total", {"outcome": "used"}, 2)
        _wait_metric(metrics, "netpilot_streams_flows_total", {"pop": "hst"}, 60)
        # flows far past the minute move the watermark: the minute closes and is published
        later = flows_at("hst", "hst-l1", sec(200), "198.51.100.0")
        producer.produce(k.topic(catalog.FLOWS), F.encode_flows(later), key="hst", headers=F.headers())
        producer.flush()

        def minute_published(ms: list) -> bool:
            return any(u.window_start * 1000 == t0 and u.window_s == 60 for u in _utilisations(ms))

        util_msgs = read_until(k, k.topic(catalog.LINK_UTILISATION), minute_published)
        (u,) = [u for u in _utilisations(util_msgs) if u.window_start * 1000 == t0 and u.window_s == 60]
        assert u.counter_bps == pytest.approx(counter)  # the real readings: the link is not blinded
        _wait_metric(metrics, dead, {"topic": stats_topic, "reason": "implausible-time"}, 1)
        letters_msgs = read_until(k, k.topic(catalog.DEAD_LETTERS), lambda ms: len(ms) >= 3)
        assert sample_value(metrics.registry, "netpilot_streams_flows_total", {"pop": "hst"}) == 61
    finally:
        svc.stop()

    assert u.utilisation == pytest.approx(counter / 10e9)
    assert u.flow_bps == pytest.approx(60 * BYTES * 8 / 60)  # the flows/9 batch is not in it
    letters = [DeadLetter.from_headers(m.key(), m.value(), m.headers()) for m in letters_msgs]
    assert sorted((d.source_topic, d.reason) for d in letters) == sorted(
        [
            (stats_topic, "implausible-time"),
            (stats_topic, "schema-mismatch"),
            (k.topic(catalog.FLOWS), "schema-mismatch"),
        ]
    )
    (ahead,) = [d for d in letters if d.reason == "implausible-time"]
    assert LinkStats.decode(ahead.value).ts == future.ts and "ahead" in ahead.error
    assert all(d.component == "streams" for d in letters)


def _utilisations(messages: list) -> list[LinkUtilisation]:
    return [LinkUtilisation.decode(m.value()) for m in messages]
