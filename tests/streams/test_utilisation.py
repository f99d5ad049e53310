"""Link utilisation: counter rate over a window, coverage, waiting for counters, unknown links."""

from __future__ import annotations

import json

import polars as pl
import pytest

from netpilot.wire.links import LinkInventory, LinkStats
from streams.aggregate import windows as w
from streams.utilisation import UtilisationSpec, UtilisationTracker, counter_bps

T0 = 1_790_000_040_000
T0_S = T0 / 1000
SPEC = UtilisationSpec(max_counter_wait_s=60, min_counter_overlap=0.5)


def _closed(rows: list[tuple[str, str, int, int, int]]) -> pl.DataFrame:
    """(pop, link_id, window_s, window_start_ms, bytes) rows as a closed partial frame."""
    return pl.DataFrame(
        {
            "window_start": [r[3] for r in rows],
            "window_s": [r[2] for r in rows],
            "pop": [r[0] for r in rows],
            "link_id": [r[1] for r in rows],
            "dst_prefix": [b"\x00" * 16] * len(rows),
            "dst_prefix_len": [24] * len(rows),
            "dst_as": [64500] * len(rows),
            "bytes": [r[4] for r in rows],
            "packets": [1] * len(rows),
            "flows": [1] * len(rows),
            "samples": [1] * len(rows),
        }
    ).cast(dict(w.PARTIAL_SCHEMA))


def _tracker() -> UtilisationTracker:
    t = UtilisationTracker(SPEC, {}, {}, {})
    for link_id, ifx in (("l1", 11), ("l2", 12)):
        t.set_link(
            f"ams|{link_id}", LinkInventory(pop="ams", link_id=link_id, router="r1", if_index=ifx, capacity_bps=10e9)
        )
    return t


def _stats(ts: float, bps: float, if_index: int = 11, **kw: object) -> LinkStats:
    return LinkStats(
        **{"pop": "ams", "router": "r1", "if_index": if_index, "ts": T0_S + ts, "interval_s": 30, "out_bps": bps, **kw}
    )


def test_counter_rate_is_the_time_weighted_mean_over_the_window() -> None:
    readings = [(T0_S + 30, 30, 100.0), (T0_S + 60, 30, 300.0), (T0_S + 90, 30, 1e9)]
    assert counter_bps(readings, T0_S, T0_S + 60, 0.5) == pytest.approx(200.0)
    # a reading straddling the window start counts for its overlap only
    assert counter_bps([(T0_S + 15, 30, 100.0), (T0_S + 45, 30, 400.0)], T0_S, T0_S + 30, 0.5) == pytest.approx(
        (100 * 15 + 400 * 15) / 30
    )
    assert counter_bps([(T0_S + 20, 20, 5.0)], T0_S, T0_S + 60, 0.5) is None  # 1/3 covered
    assert counter_bps([], T0_S, T0_S + 60, 0.5) is None


def test_coverage_and_utilisation_per_link_and_window() -> None:
    t = _tracker()
    flow_bytes = 75_000_000  # -> 10 Mb/s over 60 s
    assert t.add_stats(_stats(30, 20e6)) and t.add_stats(_stats(60, 20e6))
    t.add_closed(_closed([("ams", "l1", 60, T0, flow_bytes)]))
    [l1, l2] = sorted(t.ready("ams", T0 + 60_000), key=lambda u: u.link_id)[:1] + sorted(
        t.ready("ams", T0 + 200_000), key=lambda u: u.link_id
    )
    assert (l1.link_id, l1.window_s, l1.window_start) == ("l1", 60, T0_S)
    assert l1.flow_bps == pytest.approx(10e6) and l1.counter_bps == pytest.approx(20e6)
    assert l1.coverage == pytest.approx(0.5) and l1.utilisation == pytest.approx(20e6 / 10e9)
    # l2 had no flows and no counters: published after the wait, with nulls, not zeros
    assert (l2.link_id, l2.flow_bps, l2.counter_bps, l2.coverage, l2.utilisation) == ("l2", 0, None, None, None)
    assert t.ready("ams", T0 + 10**9) == []  # each window once


def test_a_window_waits_for_the_counter_reading_that_covers_its_end() -> None:
    t = _tracker()
    t.add_stats(_stats(30, 8e6))
    t.add_closed(_closed([("ams", "l1", 60, T0, 60_000_000)]))
    assert [u.link_id for u in t.ready("ams", T0 + 70_000)] == []  # neither l1 nor l2 ready
    t.add_stats(_stats(60, 8e6))
    [u] = t.ready("ams", T0 + 70_000)
    assert u.link_id == "l1" and u.coverage == pytest.approx(1.0)


def test_links_are_found_by_router_and_if_index_and_unknown_ones_counted() -> None:
    t = _tracker()
    assert t.add_stats(_stats(60, 1e6, if_index=12))  # no link_id: matched to l2
    assert not t.add_stats(_stats(60, 1e6, if_index=99))
    assert not t.add_stats(_stats(60, 1e6, link_id="nope"))
    assert t.unmatched_stats == 2
    t.add_closed(_closed([("ams", "l2", 60, T0, 0)]))
    [u] = [u for u in t.ready("ams", T0 + 60_000) if u.link_id == "l2"]
    assert u.counter_bps == pytest.approx(1e6) and u.coverage == 0


def test_readings_that_come_before_their_inventory_record_are_held_for_it() -> None:
    t = UtilisationTracker(SPEC, {}, {}, {})  # the inventory is not read yet (start-up race)
    for ts in (30, 60):
        assert not t.add_stats(_stats(ts, 4e6, if_index=12))
        assert not t.add_stats(_stats(ts, 9e6, link_id="l3"))
    assert not t.add_stats(_stats(60, 7e6, if_index=12, pop="fra"))  # same interface, other PoP
    assert t.unmatched_stats == 5
    t.set_link("ams|l2", LinkInventory(pop="ams", link_id="l2", router="r1", if_index=12, capacity_bps=10e9))
    t.set_link("ams|l3", LinkInventory(pop="ams", link_id="l3", router="r9", capacity_bps=10e9))
    t.add_closed(_closed([("ams", "l2", 60, T0, 0)]))
    got = {u.link_id: u.counter_bps for u in t.ready("ams", T0 + 60_000)}
    assert got == {"l2": pytest.approx(4e6), "l3": pytest.approx(9e6)}
    # held only so long, and only so many interfaces
    small = UtilisationTracker(UtilisationSpec(unknown_stats_hold_s=30, max_held_interfaces=1), {}, {}, {})
    for ts in (0, 30, 60):
        small.add_stats(_stats(ts, 1e6 * (1 + ts), if_index=12))
    small.add_stats(_stats(60, 1e6, if_index=13))  # over the bound: counted, not held
    small.set_link("ams|l3", LinkInventory(pop="ams", link_id="l3", router="r1", if_index=13, capacity_bps=1e9))
    small.set_link("ams|l2", LinkInventory(pop="ams", link_id="l2", router="r1", if_index=12, capacity_bps=1e9))
    assert [r[0] - T0_S for r in json.loads(small._counters["ams|l2"])] == [30, 60]
    assert "ams|l3" not in small._counters


def test_counter_resets_are_not_rates() -> None:
    t = _tracker()
    t.add_stats(_stats(30, 5e9, counter_reset=True))
    t.add_stats(_stats(60, 1e6))
    t.add_closed(_closed([("ams", "l1", 60, T0, 0)]))
    [u] = [u for u in t.ready("ams", T0 + 60_000) if u.link_id == "l1"]
    assert u.counter_bps == pytest.approx(1e6)  # only the second reading


def test_windows_of_links_missing_from_the_inventory_wait_then_are_dropped() -> None:
    t = UtilisationTracker(UtilisationSpec(max_counter_wait_s=0, unknown_link_wait_s=300), {}, {}, {})
    t.add_closed(_closed([("ams", "l9", 60, T0, 1000), ("ams", "", 60, T0, 5)]))
    assert t.ready("ams", T0 + 120_000) == []
    t.set_link("ams|l9", LinkInventory(pop="ams", link_id="l9", router="r1", capacity_bps=1e9))
    [u] = t.ready("ams", T0 + 120_000)  # the inventory arrived after the flows
    assert u.flow_bps == pytest.approx(1000 * 8 / 60)
    t.set_link("ams|l9", None)
    t.add_closed(_closed([("ams", "gone", 60, T0 + 60_000, 1)]))
    assert t.ready("ams", T0 + 419_000) == [] and t.unknown_link_windows == 0
    assert t.ready("ams", T0 + 420_000) == [] and t.unknown_link_windows == 1


def test_a_tombstone_removes_the_link() -> None:
    t = _tracker()
    t.set_link("ams|l2", None)
    assert [link.link_id for link in t.links("ams")] == ["l1"]


def test_idle_windows_are_registered_once_with_zero_flows_and_keep_real_bytes() -> None:
    t = _tracker()
    t.add_closed(_closed([("ams", "l1", 10, T0 + 10_000, 5_000)]))  # a window that got flows
    # the watermark moves from T0+5 s to T0+30 s: windows ending at 10, 20 and 30 s, both links
    assert t.add_idle_windows("ams", T0 + 5_000, T0 + 30_000, (10, 60)) == 3 * 2 - 2
    assert t.add_idle_windows("ams", T0 + 5_000, T0 + 30_000, (10,)) == 0  # already there
    assert t.pops() == ["ams"]
    for s_ in (10, 20, 30):
        t.add_stats(_stats(s_, 8e6))
        t.add_stats(_stats(s_, 8e6, if_index=12))
    got = {(u.link_id, u.window_start - T0_S): (u.flow_bps, u.coverage) for u in t.ready("ams", T0 + 30_000)}
    assert got == {
        ("l1", 0): (0, 0),
        ("l2", 0): (0, 0),
        ("l1", 10): (pytest.approx(4000), pytest.approx(4000 / 8e6)),
        ("l2", 10): (0, 0),
        ("l1", 20): (0, 0),
        ("l2", 20): (0, 0),
    }
    # a long idle gap registers only what counters can still cover
    far = T0 + 10**8
    n = t.add_idle_windows("ams", T0 + 30_000, far, (10,))
    assert n == 2 * int(SPEC.counter_history_s // 10)
