"""The faust worker on the real broker: flows + counters + inventory in, aggregates and link
utilisation out with exact totals, poison messages to dead letters, state across a restart."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates as wire_agg
from netpilot.wire import flows as F
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from streams.metrics import StreamsMetrics
from streams.service import StreamsService
from streams.settings import StreamsSettings
from tests.streams.helpers import concat, flows_at, prefix_addr, read_until

BYTES = 1000 * 100  # bytes_scaled of every test flow


def _wait_metric(metrics: StreamsMetrics, name: str, labels: dict, value: float, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sample_value(metrics.registry, name, labels) >= value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name}{labels} stayed at {sample_value(metrics.registry, name, labels)}, expected {value}")


def _worker(kafka: KafkaSettings, data_dir: Path, **settings_: object) -> tuple[StreamsService, StreamsMetrics]:
    # flows here are minutes old: unless a test is about it, no PoP may turn idle
    settings = StreamsSettings(
        kafka=kafka,
        data_dir=data_dir,
        **{"allowed_lateness_s": 10, "max_counter_wait_s": 30, "idle_after_s": 600, **settings_},
    )
    metrics = StreamsMetrics.create()
    svc = StreamsService(settings, metrics)
    svc.start()
    return svc, metrics


def _totals(messages: list) -> dict:
    totals: dict = defaultdict(lambda: [0, 0])
    for m in messages:
        for r in wire_agg.decode_aggregates(m.value()).to_pylist():
            totals[(r["pop"], r["window_s"])][0] += r["bytes"]
            totals[(r["pop"], r["window_s"])][1] += r["flows"]
    return dict(totals)


WANTED_UTIL = {(link, size) for link in ("par-l1", "par-l2", "ams-l1") for size in (10, 60)}


def _utilisations(messages: list) -> list[LinkUtilisation]:
    return [LinkUtilisation.decode(m.value()) for m in messages]


def _first_windows(messages: list, t0: int) -> dict:
    """Utilisation of the windows starting at t0, by (link, window size)."""
    return {(u.link_id, u.window_s): u for u in _utilisations(messages) if u.window_start * 1000 == t0}


def _send_flows(producer: KafkaProducer, kafka: KafkaSettings, pop: str, table: pa.Table) -> None:
    producer.produce(kafka.topic(catalog.FLOWS), F.encode_flows(table), key=pop, headers=F.headers())


@pytest.mark.timeout(240)
def test_worker_end_to_end_with_restart(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    k = kafka_settings
    t0 = (int(time.time()) // 60) * 60_000 - 600_000  # 10 minutes ago, on a minute
    sec = lambda *s: t0 + 1000 * np.asarray(s, np.int64)  # noqa: E731
    producer = KafkaProducer(k)
    for pop, link, cap, ifx in (("par", "par-l1", 10e9, 11), ("par", "par-l2", 10e9, 12), ("ams", "ams-l1", 1e9, 11)):
        inv = LinkInventory(pop=pop, link_id=link, router="r1", if_index=ifx, capacity_bps=cap)
        producer.produce(
            k.topic(catalog.LINK_INVENTORY),
            inv.encode(),
            key=f"{pop}|{link}",
            headers=LinkInventory.headers(),
            partition_key=pop,
        )

    # phase 1: first half of the minute, IPv4 and IPv6, two PoPs, plus two poison messages
    par_l1_a = flows_at("par", "par-l1", sec(*range(0, 30)), "198.51.100.0")
    par_l2 = flows_at("par", "par-l2", sec(*range(5, 26)), "2001:db8:1::", dst_as=64501)
    ams = flows_at("ams", "ams-l1", sec(*range(0, 60)), "203.0.113.0")
    _send_flows(producer, k, "par", concat(par_l1_a, par_l2))
    _send_flows(producer, k, "ams", ams)
    producer.produce(k.topic(catalog.FLOWS), b"not an arrow stream", key="par")
    future_schema = F.FLOW_SCHEMA.with_metadata({"netpilot.schema": "flows", "netpilot.version": "9.0"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, future_schema) as wr:
        wr.write_table(par_l1_a.replace_schema_metadata(future_schema.metadata))
    producer.produce(k.topic(catalog.FLOWS), sink.getvalue().to_pybytes(), key="par")
    producer.produce(k.topic(catalog.LINK_STATS), b'{"schema":"link-stats/7","pop":"par"}', key="par")
    producer.flush()

    svc, metrics = _worker(k, tmp_path)
    try:
        _wait_metric(metrics, "netpilot_streams_flows_total", {"pop": "par"}, 30 + 21)
        _wait_metric(
            metrics,
            "netpilot_streams_dead_letters_total",
            {"topic": k.topic(catalog.FLOWS), "reason": "wire-version"},
            1,
        )
        _wait_metric(
            metrics,
            "netpilot_streams_dead_letters_total",
            {"topic": k.topic(catalog.FLOWS), "reason": "wire-decode"},
            1,
        )
        _wait_metric(metrics, "netpilot_streams_inventory_updates_total", {}, 3)
        _wait_metric(
            metrics,
            "netpilot_streams_dead_letters_total",
            {"topic": k.topic(catalog.LINK_STATS), "reason": "wire-version"},
            1,
        )
    finally:
        svc.stop()

    # phase 2 on a new worker: open windows must come back from the changelog
    par_l1_b = flows_at("par", "par-l1", sec(*range(30, 60)), "198.51.100.0")
    advance = flows_at("par", "par-l1", sec(65), "198.51.100.0")  # watermark -> t0+55 s
    late_ok = flows_at("par", "par-l1", sec(52), "198.51.100.0")  # [50,60) still open
    too_late_10 = flows_at("par", "par-l1", sec(45), "198.51.100.0")  # [40,50) closed; 60 s open
    flush = {p: flows_at(p, f"{p}-l1", sec(200), "198.51.100.0") for p in ("par", "ams")}
    svc, metrics = _worker(k, tmp_path)
    try:
        for table in (par_l1_b, advance, late_ok, too_late_10):
            _send_flows(producer, k, "par", table)
        producer.flush()
        _wait_metric(metrics, "netpilot_streams_flows_total", {"pop": "par"}, 30 + 3)
        l1_window = 60 + 2  # par-l1 flows in [t0, t0+60): 30 + 30 + late_ok + too_late_10
        counter = 2 * (l1_window * BYTES * 8 / 60)  # flows explain half of it
        for ts in (30, 60):
            st = LinkStats(pop="par", router="r1", if_index=11, ts=t0 / 1000 + ts, interval_s=30, out_bps=counter)
            producer.produce(k.topic(catalog.LINK_STATS), st.encode(), key="par", headers=LinkStats.headers())
        producer.flush()
        # topics are consumed concurrently: let the counters in before the watermark jump
        _wait_metric(metrics, "netpilot_streams_link_stats_total", {"outcome": "used"}, 2)
        for p, table in flush.items():
            _send_flows(producer, k, p, table)
        producer.flush()

        par_flows = 30 + 21 + 30 + 1 + 1 + 1  # everything but the flush batch
        expected = {
            ("par", 60): [par_flows * BYTES, par_flows],
            ("par", 10): [(par_flows - 1) * BYTES, par_flows - 1],  # minus the too-late one
            ("ams", 60): [60 * BYTES, 60],
            ("ams", 10): [60 * BYTES, 60],
        }
        aggs = read_until(k, k.topic(catalog.FLOW_AGGREGATES), lambda ms: _totals(ms) == expected)
        util_msgs = read_until(
            k, k.topic(catalog.LINK_UTILISATION), lambda ms: set(_first_windows(ms, t0)) >= WANTED_UTIL
        )
        dead = read_until(k, k.topic(catalog.DEAD_LETTERS), lambda ms: len(ms) >= 3)
        assert (
            sample_value(
                metrics.registry,
                "netpilot_streams_flows_dropped_total",
                {"pop": "par", "reason": "too-late", "window_s": "10"},
            )
            == 1
        )
    finally:
        svc.stop()

    assert _totals(aggs) == expected
    rows = [r for m in aggs for r in wire_agg.decode_aggregates(m.value()).to_pylist()]
    assert all(r["pop"] == m.key().decode() for m in aggs for r in wire_agg.decode_aggregates(m.value()).to_pylist())
    keys = [(r["pop"], r["window_s"], r["window_start"], r["link_id"], r["dst_prefix"]) for r in rows]
    assert len(keys) == len(set(keys)), "a window was published twice"
    v6 = [r for r in rows if r["link_id"] == "par-l2" and r["window_s"] == 60]
    assert [(r["dst_prefix"], r["dst_prefix_len"], r["dst_as"], r["flows"], r["samples"]) for r in v6] == [
        (prefix_addr("2001:db8:1::"), 48, 64501, 21, 42)
    ]

    utils = _first_windows(util_msgs, t0)
    assert set(utils) >= WANTED_UTIL
    l1 = utils[("par-l1", 60)]
    assert l1.counter_bps == pytest.approx(counter)
    assert l1.flow_bps == pytest.approx(l1_window * BYTES * 8 / 60)
    assert l1.coverage == pytest.approx(0.5)
    assert l1.utilisation == pytest.approx(counter / 10e9)
    assert utils[("par-l2", 60)].counter_bps is None and utils[("par-l2", 60)].coverage is None
    assert utils[("ams-l1", 60)].flow_bps == pytest.approx(60 * BYTES * 8 / 60)

    letters = [DeadLetter.from_headers(m.key(), m.value(), m.headers()) for m in dead]
    assert sorted((d.source_topic, d.reason) for d in letters) == [
        (k.topic(catalog.FLOWS), "wire-decode"),
        (k.topic(catalog.FLOWS), "wire-version"),
        (k.topic(catalog.LINK_STATS), "wire-version"),
    ]
    assert all(d.component == "streams" and d.error for d in letters)
    assert b"not an arrow stream" in [d.value for d in letters]


@pytest.mark.timeout(180)
def test_idle_pop_closes_its_windows_and_keeps_utilisation_from_counters(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Flows of a PoP stop: its open windows still get published (after idle_after_s of wall
    clock), its link keeps a utilisation from counters with coverage 0 (the flow outage made
    visible), and flows that come back late for those windows are counted too late."""
    k = kafka_settings
    now = time.time()
    t0 = int((now - 75) // 60 * 60) * 1000  # a minute that ended at least 15 s ago
    sec = lambda *s: t0 + 1000 * np.asarray(s, np.int64)  # noqa: E731
    counter = 5e9
    producer = KafkaProducer(k)
    inv = LinkInventory(pop="lis", link_id="lis-l1", router="r1", if_index=11, capacity_bps=10e9)
    producer.produce(
        k.topic(catalog.LINK_INVENTORY),
        inv.encode(),
        key="lis|lis-l1",
        headers=LinkInventory.headers(),
        partition_key="lis",
    )
    reading_ts = range(t0 // 1000 + 10, int(now) + 1, 10)
    for ts in reading_ts:
        st = LinkStats(pop="lis", router="r1", if_index=11, ts=ts, interval_s=10, out_bps=counter)
        producer.produce(k.topic(catalog.LINK_STATS), st.encode(), key="lis", headers=LinkStats.headers())
    # flows for the first 30 s only: by themselves they close just the first 10 s window
    _send_flows(producer, k, "lis", flows_at("lis", "lis-l1", sec(*range(0, 30)), "198.51.100.0"))
    producer.flush()

    # windows wait for the reading that covers their end however far the idle watermark
    # jumps (these flows are a minute old; the counters may be read after them)
    svc, metrics = _worker(k, tmp_path, idle_after_s=2, idle_check_s=0.5, max_counter_wait_s=600)
    try:
        _wait_metric(metrics, "netpilot_streams_idle_pops", {}, 1)
        assert sample_value(metrics.registry, "netpilot_streams_idle_advances_total", {"pop": "lis"}) >= 1
        expected = {("lis", 10): [30 * BYTES, 30], ("lis", 60): [30 * BYTES, 30]}
        aggs = read_until(k, k.topic(catalog.FLOW_AGGREGATES), lambda ms: _totals(ms) == expected)
        starts = [t0 + 10_000 * i for i in range(6)]
        util_msgs = read_until(
            k,
            k.topic(catalog.LINK_UTILISATION),
            lambda ms: {u.window_start * 1000 for u in _utilisations(ms) if u.window_s == 10} >= set(starts),
        )
        # flows come back, one of them for a window the idle PoP already closed
        _send_flows(producer, k, "lis", flows_at("lis", "lis-l1", sec(15), "198.51.100.0"))
        producer.flush()
        _wait_metric(
            metrics, "netpilot_streams_flows_dropped_total", {"pop": "lis", "reason": "too-late", "window_s": "10"}, 1
        )
        deadline = time.time() + 10
        while sample_value(metrics.registry, "netpilot_streams_idle_pops", {}) != 0 and time.time() < deadline:
            time.sleep(0.1)
        assert sample_value(metrics.registry, "netpilot_streams_idle_pops", {}) == 0, "flows resumed: not idle"
    finally:
        svc.stop()

    assert _totals(aggs) == expected
    decoded = _utilisations(util_msgs)
    published = [(u.window_s, u.window_start) for u in decoded]
    assert len(published) == len(set(published)), "a window's utilisation was published twice"
    utils = {u.window_start * 1000: u for u in decoded if u.window_s == 10 and u.link_id == "lis-l1"}
    for start in starts[:3]:  # windows with flows: 10 flows each
        assert utils[start].flow_bps == pytest.approx(10 * BYTES * 8 / 10)
        assert utils[start].counter_bps == pytest.approx(counter)
    for start in starts[3:]:  # after the flows stopped: counters alone, coverage 0
        u = utils[start]
        assert (u.flow_bps, u.counter_bps, u.coverage) == (0, pytest.approx(counter), 0), u
        assert u.utilisation == pytest.approx(0.5)
