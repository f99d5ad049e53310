"""When an idle tick may close a PoP's windows: only when flows could have been received."""

from __future__ import annotations

from streams.aggregate.agents import IDLE_SKIP_REASONS, idle_blocked, tick_time
from streams.metrics import StreamsMetrics


def test_a_fresh_tick_without_backlog_may_close() -> None:
    assert idle_blocked(tick_sent_s=100.0, now_s=100.4, check_s=5.0, backlog=0) is None
    assert idle_blocked(tick_sent_s=None, now_s=100.0, check_s=5.0, backlog=None) is None  # nothing known


def test_a_tick_delayed_by_a_broker_outage_is_stale() -> None:
    # sent just before the broker went away, handed over 30 s later with the backlog
    assert idle_blocked(tick_sent_s=100.0, now_s=130.0, check_s=5.0, backlog=None) == "stale-tick"
    assert idle_blocked(tick_sent_s=100.0, now_s=105.1, check_s=5.0, backlog=0) == "stale-tick"


def test_unprocessed_flows_of_the_partition_block_it() -> None:
    assert idle_blocked(tick_sent_s=100.0, now_s=100.2, check_s=5.0, backlog=12) == "backlog"


def test_tick_time_reads_what_the_timer_sends() -> None:
    assert tick_time(str(1796430390.25).encode()) == 1796430390.25
    assert tick_time(b"tick") is None and tick_time(None) is None


def test_the_skip_reasons_are_precreated_metric_labels() -> None:
    m = StreamsMetrics.create()
    text = {
        s.labels.get("reason") for f in m.registry.collect() for s in f.samples if s.name.endswith("idle_skips_total")
    }
    assert text == set(IDLE_SKIP_REASONS)
