"""Consumer lag from local state only (no broker round trip), for both sinks.

``BatchConsumer.lag()`` asks the broker for committed offsets and watermarks partition by
partition and can block for seconds; called from a consume loop it stalls inserts. Here
the high watermark comes from the last fetch response (``cached=True``) and the consumed
point from the caller (the start of an open batch) or the fetch position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from netpilot.kafka.consumer import BatchConsumer

EVERY_S = 1.0
"""How often the sinks refresh their lag gauges: local state only, so cheap; a coarser
period left the gauge without a series for the first seconds after an assignment."""


def local_lag(
    consumer: BatchConsumer,
    topic_ids: Mapping[str, str],
    done_at: Callable[[str, int], int | None] = lambda _t, _p: None,
) -> dict[str, int]:
    """Messages not yet done, per catalog topic id. ``done_at(topic, partition)`` may
    return an earlier offset than the fetch position (e.g. the first unacknowledged one)."""
    assigned = consumer.assignment()
    out: dict[str, int] = {}
    if not assigned:
        return out
    for tp in consumer.raw.position(assigned):
        _lo, hi = consumer.raw.get_watermark_offsets(tp, cached=True)
        done = done_at(tp.topic, tp.partition)
        done = tp.offset if done is None else done
        if hi < 0 or done < 0:
            continue
        tid = topic_ids.get(tp.topic, tp.topic)
        out[tid] = out.get(tid, 0) + max(0, hi - done)
    return out
