"""Two `netpilot streams run` workers started together in a *new* consumer group, while a
backlog of flows waits and more streams in: the second one joins while the first is still in
its first seconds, before any partition has a committed offset (docs/streams.md, "Two or
more workers"). Nothing may be lost: the first copy of every closed window's rows, summed,
equals the flows produced, exactly (a closed window may be published twice: at-least-once).

This is the rebalance that used to skip messages (6 runs in 9 before the fix): the
second worker's join makes the first restore its tables with its stream partitions paused,
faust drops the records aiokafka fetched for them meanwhile, and a partition with no commit
was not sought back (streams/faust_offsets.py). The backlog makes the fetched-and-dropped
records many."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates as wire_agg
from tests.streams.helpers import StreamsWorker, delete_app_topics, pops_one_per_partition, read_until
from tests.streams.test_two_workers import Feed

pytestmark = pytest.mark.slow  # about a minute: two workers, a rebalance, the windows read back

END_S = 240
"""Event seconds fed (a multiple of every window); the first BACKLOG_S wait in the topic."""
BACKLOG_S = 120
"""Event seconds produced before the workers start: the first worker fetches many messages
at once, so some are fetched but not processed when the second one joins."""
PACE = 12


def first_copy_totals(messages: list, t0: int, end_s: int) -> dict[tuple[str, int, int], list[int]]:
    """(pop, window_s, window_start) -> [flows, bytes] of the first copy of every row of the
    windows starting before ``end_s`` (a repeat of a closed window is at-least-once)."""
    rows: dict[tuple, tuple[int, int]] = {}
    for m in messages:
        for r in wire_agg.decode_aggregates(m.value()).to_pylist():
            start = int(r["window_start"].timestamp() * 1000)
            if start < t0 + end_s * 1000:
                key = (r["pop"], r["window_s"], start, r["link_id"], r["dst_prefix"], r["dst_as"])
                rows.setdefault(key, (r["flows"], r["bytes"]))
    out: dict[tuple[str, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for (pop, size, start, *_), (flows, nbytes) in rows.items():
        out[(pop, size, start)][0] += flows
        out[(pop, size, start)][1] += nbytes
    return dict(out)


def test_two_workers_started_together_in_a_new_group_lose_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    k = kafka_settings
    pops = pops_one_per_partition()
    t0 = (int(time.time()) // 3600) * 3_600_000 - 3_600_000  # an hour ago, on a minute boundary
    app = f"fg-{uuid.uuid4().hex[:6]}"
    feed = Feed(k, pops, t0, end_s=END_S, pace=PACE)
    for s in range(BACKLOG_S):
        feed.send_second(s, n=1)
    feed.next_s = BACKLOG_S
    feed.producer.flush(30)
    feed.started = time.monotonic() - BACKLOG_S / PACE
    a = b = None
    try:
        # no waiting between the two: the second joins in the first's first seconds
        a = StreamsWorker(k, tmp_path / "a", tmp_path / "a.log", app_id=app)
        b = StreamsWorker(k, tmp_path / "b", tmp_path / "b.log", app_id=app)
        while feed.step():
            pass
        feed.close_all()
        truth = dict(feed.truth)
        assert len(truth) == len(pops) * (END_S // 10 + END_S // 60)
        aggs = read_until(
            k, k.topic(catalog.FLOW_AGGREGATES), lambda ms: first_copy_totals(ms, t0, END_S) == truth, timeout=120
        )
        got = first_copy_totals(aggs, t0, END_S)
        wrong = sorted(key for key in truth if got.get(key) != truth[key])
        # flows missing per PoP, over its 60 s windows (each flow is in exactly one)
        missing = {
            pop: sum(truth[key][0] - got.get(key, [0, 0])[0] for key in wrong if key[:2] == (pop, 60)) for pop in pops
        }
        assert not wrong and set(got) == set(truth), (
            f"flows missing per PoP: {missing}; wrong windows (got, truth): "
            f"{[(key, got.get(key), truth[key]) for key in wrong[:6]]}"
        )
        # both took part (else the rebalance this is about did not happen)
        assert a.flows_by_pop() and b.flows_by_pop(), (a.log.read_text()[-1500:], b.log.read_text()[-1500:])
    finally:
        for w in (a, b):
            if w is not None:
                w.close()
        delete_app_topics(k, app)
