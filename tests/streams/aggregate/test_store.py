"""Open windows in a key-value store (a dict here, a faust Table in the worker): closing at
the watermark, restoring from the stored blobs alone, idempotent replays."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from streams.aggregate import windows as w
from streams.aggregate.store import AddOutcome, WindowStore
from tests.streams.helpers import concat, flows_at

SPEC = w.WindowSpec(sizes_s=(10, 60), allowed_lateness_s=5)
T0 = 1_790_000_040_000
s = lambda *x: T0 + 1000 * np.asarray(x, np.int64)  # noqa: E731


def _drain(store: WindowStore, pops: tuple[str, ...]) -> pl.DataFrame:
    closed, keys = store.closable(pops)
    store.discard(keys)
    return closed


def test_windows_close_when_the_watermark_passes_their_end() -> None:
    store = WindowStore(SPEC, {})
    out = store.add(flows_at("ams", "l1", s(1, 2, 12), "198.51.100.0"), "0.1")
    assert out.pops == ("ams",)  # first watermark (7 s): worth a look, nothing closes yet
    assert _drain(store, out.pops).height == 0
    out = store.add(flows_at("ams", "l1", s(16), "198.51.100.0"), "0.2")  # watermark 11 s
    closed = _drain(store, out.pops)
    assert closed.select("window_s", "window_start", "flows").to_dicts() == [
        {"window_s": 10, "window_start": T0, "flows": 2}
    ]
    assert store.open_keys() == 4  # per batch: its part of [10,20) and of the open minute


def test_state_restored_from_the_blobs_alone_gives_the_same_result() -> None:
    backing: dict = {}
    first = WindowStore(SPEC, backing)
    # records of no duration: each lands whole in one window (spreading has its own tests)
    first.add(flows_at("ams", "l1", s(*range(0, 30)), "2001:db8:1::", span_ms=0), "3.10")
    restarted = WindowStore(SPEC, dict(backing))  # a new process: empty cache, same table
    restarted.add(flows_at("ams", "l1", s(*range(30, 60)), "2001:db8:1::", span_ms=0), "3.11")
    out = restarted.add(flows_at("ams", "l1", s(70), "2001:db8:1::"), "3.12")
    closed = _drain(restarted, out.pops)
    minute = closed.filter(pl.col("window_s") == 60)
    assert minute["flows"].to_list() == [60] and minute["bytes"].to_list() == [60 * 100_000]
    assert closed.filter(pl.col("window_s") == 10)["flows"].sum() == 60


def test_replaying_a_source_message_does_not_count_it_twice() -> None:
    store = WindowStore(SPEC, {})
    batch = flows_at("ams", "l1", s(1, 2, 3), "198.51.100.0")
    store.add(batch, "0.7")
    store.add(batch, "0.7")  # redelivered after a crash before the offset commit
    out = store.add(flows_at("ams", "l1", s(100), "198.51.100.0"), "0.8")
    closed = _drain(store, out.pops)
    assert closed.filter(pl.col("window_s") == 60)["flows"].to_list() == [3]


def test_nothing_is_removed_until_discard() -> None:
    store = WindowStore(SPEC, {})
    store.add(concat(flows_at("ams", "l1", s(1), "198.51.100.0"), flows_at("ams", "l1", s(100), "198.51.100.0")), "0.1")
    closed, keys = store.closable(("ams",))
    assert closed.height == 2 and keys
    again, _ = store.closable(("ams",))  # a failed publish: the windows are still there
    assert again.sort(w.GROUP_KEYS).equals(closed.sort(w.GROUP_KEYS))
    store.discard(keys)
    assert store.closable(("ams",))[0].height == 0
    assert store.pops() == ["ams"] and store.max_event("ams") == int(s(100)[0])


def test_an_idle_watermark_closes_windows_and_makes_later_flows_too_late() -> None:
    store = WindowStore(SPEC, {})
    store.add(flows_at("ams", "l1", s(1, 2, 12), "198.51.100.0"), "0.1")  # watermark 7 s
    assert store.advance_idle("ams", T0 + 3_000) is None  # behind the flows' watermark: no-op
    assert store.advance_idle("ams", T0 + 60_000) == T0 + 7_000
    assert store.watermark("ams") == T0 + 60_000 and store.max_event("ams") == int(s(12)[0])
    closed = _drain(store, ("ams",))
    assert sorted(closed.select("window_s", "window_start", "flows").rows()) == [
        (10, T0, 2),
        (10, T0 + 10_000, 1),
        (60, T0, 3),
    ]
    out = store.add(flows_at("ams", "l1", s(30, 65), "198.51.100.0"), "0.2")
    assert out.seen == ("ams",) and out.batch.too_late.height  # 30 s is in a closed window
    assert store.watermark("ams") == T0 + 60_000  # 65 s - 5 s lateness: not past the idle one
    # a PoP never seen with flows (only in the inventory) gets a watermark too
    assert store.advance_idle("lis", T0) == w.NO_WATERMARK and store.pops() == ["ams", "lis"]


def _stamped(times_ms: np.ndarray, received_ms: np.ndarray) -> pa.Table:
    """Flows to one prefix with their own receive times (as the collector stamps them)."""
    t = flows_at("ams", "l1", times_ms, "198.51.100.0")
    i = t.schema.get_field_index("time_received")
    return t.set_column(i, t.schema.field(i), pa.array(received_ms, pa.int64()).cast(t.schema.field(i).type))


def _one_outlier_then_the_rest(ahead_ms: int) -> tuple[WindowStore, int, list[AddOutcome]]:
    """17,416 real flows of the window [T0, T0+10 s), received at T0 + 9.5 s; the first
    batch also holds one flow from the same exporter stamped ``ahead_ms`` later. The worker
    runs an hour behind (a backlog replay), so its own clock cannot tell the outlier."""
    store = WindowStore(SPEC, {})
    rng = np.random.default_rng(13)
    real = T0 + rng.integers(0, 10_000, 17_416)
    rx = T0 + 9_500
    now = T0 + 3_600_000
    outcomes = [
        store.add(_stamped(np.append(real[:1], real[0] + ahead_ms), np.full(2, rx, np.int64)), "0.1", now_ms=now)
    ]
    outcomes.append(store.add(_stamped(real[1:], np.full(len(real) - 1, rx, np.int64)), "0.2", now_ms=now))
    # the next window's flows move the watermark past T0 + 10 s: the window closes
    outcomes.append(store.add(_stamped(s(16, 17), s(17, 18)), "0.3", now_ms=now))
    return store, len(real), outcomes


def test_one_flow_minutes_ahead_is_dropped_and_the_real_flows_of_its_window_are_kept() -> None:
    store, n, outcomes = _one_outlier_then_the_rest(ahead_ms=240_000)
    future = sum(o.batch.future["flows"].sum() for o in outcomes)
    late = sum(o.batch.too_late["flows"].sum() for o in outcomes)
    assert (future, late) == (1, 0)
    closed = _drain(store, ("ams",))
    ten = closed.filter((pl.col("window_s") == 10) & (pl.col("window_start") == T0))
    assert ten["flows"].to_list() == [n]  # all 17,416, not 1


def test_a_flow_slightly_ahead_is_kept_but_does_not_move_the_watermark() -> None:
    # 40 s ahead of its receive time: within max_future_s, so aggregated (into its own
    # window), but the watermark follows the receive time, so no real flow is late
    store, n, outcomes = _one_outlier_then_the_rest(ahead_ms=40_000)
    assert sum(o.batch.future.height for o in outcomes) == 0
    assert sum(o.batch.too_late.height for o in outcomes) == 0
    assert store.max_event("ams") == T0 + 17_000  # not T0 + 40 s + something
    closed = _drain(store, ("ams",))
    ten = closed.filter((pl.col("window_s") == 10) & (pl.col("window_start") == T0))
    assert ten["flows"].to_list() == [n]
