"""Scale-out: two sink processes in one consumer group split the partitions; one is
SIGKILLed mid-stream and the other takes its partitions over, losing and adding nothing.

Every message is tagged (its router column names it), so the test counts each message's rows.
A sink writes to one ClickHouse. With a server DSN (``NETPILOT_TEST_CLICKHOUSE=testcontainers``)
both sinks share it and the totals must be exact: a batch the killed sink inserted but did not
commit is replayed by the survivor with the same deduplication token, which the server drops.
chDB is embedded (one process per data path), so by default each sink has its own path; a
replayed batch then lands in the survivor's store too, and the test allows that duplicate only
for messages inside the batches the survivor says it replayed from the killed sink's intents.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

from netpilot.settings import KafkaSettings
from tests.sinks.clickhouse.helpers import SinkProcess, make_flows, produce, query_stopped, wait_group_members

PER_MESSAGE = "SELECT router, count(), sum(bytes) FROM netpilot.flows_raw GROUP BY router"
ROWS = "netpilot_sink_clickhouse_rows_total"


def _hour_ago_ms() -> int:
    return (int(time.time()) // 3600 - 1) * 3_600_000


def _counts(rows: list[list]) -> Counter[str]:
    return Counter({r[0]: int(r[1]) for r in rows})


def _replayed_messages(log: Path) -> int:
    """How many Kafka messages the batches replayed from an intent span (from the sink's log)."""
    n = 0
    for line in log.read_text(errors="replace").splitlines():
        if "replaying batch from intent" in line:
            ev = json.loads(line)
            n += int(ev["end"]) - int(ev["start"]) + 1
    return n


def test_two_sinks_one_killed_survivor_takes_over_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    per = 1000
    data = make_flows(n_messages=120, rows_per_message=per, seed=5, base_ms=_hour_ago_ms(), tag_messages=True)
    first, second = data.messages[:60], data.messages[60:]
    shared = not clickhouse_dsn.startswith("chdb:")
    dsn_b = clickhouse_dsn if shared else f"chdb://{tmp_path / 'ch-b'}"
    group = f"sink-pair-{uuid.uuid4().hex[:8]}"
    env = {
        # dynamic membership (the default), small batches so some are in flight at the kill
        "NETPILOT_KAFKA__LIBRDKAFKA": "{}",
        "NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID": "",
        "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_ROWS": "3000",
        "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "0.3",
    }
    a = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "a.log", env, instance=0)
    b = SinkProcess(kafka_settings, dsn_b, group, tmp_path / "b.log", env, instance=1)
    a.start()
    b.start()
    try:
        wait_group_members(kafka_settings, group, 2)
        produce(kafka_settings, first)
        # both own partitions: each inserts rows of the first half
        a.wait_metric(ROWS, per, timeout=120)
        b.wait_metric(ROWS, per, timeout=120)
        produce(kafka_settings, second)
        a.wait_metric(ROWS, a.metric(ROWS) + 3 * per, timeout=60)
        a.kill()  # mid-stream: batches of the second half are open or in flight

        # The survivor gets the killed sink's partitions once its session expires and ends
        # with every message stored once, across the two stores.
        stored_a = Counter[str]() if shared else _counts(query_stopped(clickhouse_dsn, PER_MESSAGE))
        want = {f"{key}-m{i}" for i, (key, _) in enumerate(data.messages)}
        deadline = time.monotonic() + 120
        stored_b: Counter[str] = Counter()
        while time.monotonic() < deadline:
            try:
                stored_b = _counts(b.query(PER_MESSAGE))
            except OSError:
                pass
            if all(stored_a[m] + stored_b[m] >= per for m in want):
                break
            time.sleep(0.3)
        assert b.stop() == 0, b.tail()
    finally:
        for s in (a, b):
            if s.proc is not None and s.proc.poll() is None:
                s.kill()

    stored_b = _counts(query_stopped(dsn_b, PER_MESSAGE))
    if shared:
        stored_a = Counter()
    both = stored_a + stored_b
    assert set(both) == want, f"missing {sorted(want - set(both))[:5]}, unknown {sorted(set(both) - want)[:5]}"
    assert all(n in (0, per) for n in stored_a.values()) and all(n in (0, per) for n in stored_b.values())
    twice = sorted(m for m, n in both.items() if n == 2 * per)
    assert all(both[m] in (per, 2 * per) for m in want)
    if shared:
        assert not twice, f"duplicated on a shared ClickHouse: {twice[:5]}"
        totals = query_stopped(dsn_b, "SELECT count(), sum(bytes) FROM netpilot.flows_raw")
        assert totals == [[data.rows, data.bytes]]
    else:
        # a message in both stores is one the killed sink inserted but did not commit, which
        # the survivor replayed from the intent (with the same token a shared server drops)
        assert len(twice) <= _replayed_messages(tmp_path / "b.log"), (twice, b.tail())
        assert sum(both.values()) == data.rows + len(twice) * per

        # the takeover: the group was stable before the first message, so a PoP (a
        # partition) in both stores is one the killed sink was consuming and the survivor
        # went on with
        def pops(stored: Counter[str]) -> set[str]:
            return {m.split("-")[0] for m in stored}

        assert pops(stored_a) & pops(stored_b), (sorted(stored_a), sorted(stored_b))
