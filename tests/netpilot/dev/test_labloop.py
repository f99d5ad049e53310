"""The loop closed in the routing lab: a surge overloads the lab's PNI, the autopilot (on
flows from softflowd and counters from snmpd, through the real collector, SNMP poller and
streams) moves prefixes, the injector announces them to FRR through ExaBGP, the kernel
forwards them by another peer, and after the surge they come back.

One run of :func:`netpilot.dev.labloop.run_story` (it fails on any step's deadline), then
checks on what it saw live (SNMP link-stats from Kafka, the kernel's counters) and on what
the ClickHouse sink (chDB) stored: every flow record of a moved prefix that started after
the kernel moved it and ended before its WITHDRAW left by the alternate link, and the
records that started after it was back left by the PNI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from netpilot.dev.lab import LAB_POP, PEERS, host
from netpilot.dev.labloop import PNI, PNI_TRIGGER, LabLoop, Story, StoryOptions, run_story
from netpilot.settings import KafkaSettings

pytestmark = [pytest.mark.netns, pytest.mark.slow]
OPTIONS = StoryOptions()
MARGIN_S = 2 * OPTIONS.snmp_interval_s  # an SNMP reading spans one interval; one more for the poll's timing


@pytest.fixture(scope="module")
def loop_kafka(kafka_broker: str) -> Iterator[KafkaSettings]:
    from tests.conftest import catalog_topics

    yield from catalog_topics(kafka_broker, f"lab{uuid.uuid4().hex[:8]}.")


@pytest.fixture(scope="module")
def run(loop_kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabLoop, Story]]:
    root = tmp_path_factory.mktemp("labloop")
    loop = LabLoop(root, loop_kafka, OPTIONS)
    try:
        loop.up()
        story = run_story(loop)
        loop.pipe.wait_flows_stored(timeout=120)
        assert not loop.pipe.failed(), {n: loop.pipe.children[n].tail() for n in loop.pipe.failed()}
    finally:
        codes = loop.close()
        assert not loop.lab.namespaces(), "lab namespaces left behind"
    assert all(c == 0 for c in codes.values()), codes
    yield loop, story


def _flows(loop: LabLoop) -> list[tuple[str, str, float, float, int]]:
    """(link_id, dst prefix, time_start, time_end, bytes) of every stored flow of the lab."""
    rows = loop.pipe.query(
        "SELECT link_id, replaceOne(IPv6NumToString(dst_prefix), '::ffff:', ''), dst_prefix_len, "
        "toUnixTimestamp64Milli(time_start), toUnixTimestamp64Milli(time_end), bytes "
        f"FROM netpilot.flows_raw WHERE pop = '{LAB_POP}'"
    )
    return [(link, f"{net}/{plen}", int(t0) / 1000, int(t1) / 1000, int(b)) for link, net, plen, t0, t1, b in rows]


def test_snmp_counters_show_the_overload_then_the_pni_under_trigger_until_the_surge_ends(run) -> None:
    _, story = run
    s = story.steps
    before = [u for ts, u in story.pni_util if s["surge"] + MARGIN_S <= ts <= s["add"]]
    assert before and max(before) > PNI_TRIGGER, f"no overload by SNMP before the ADD: {before}"
    during = [u for ts, u in story.pni_util if s["kernel"] + MARGIN_S <= ts <= s["surge_end"]]
    assert during and max(during) < PNI_TRIGGER, f"the PNI over its trigger after the move: {during}"
    assert story.relief_s() < 60, story.steps


def _kernel_moves(story: Story, prefix: str) -> tuple[float, float]:
    """When the kernel was first seen forwarding ``prefix`` off the PNI, and first seen
    forwarding it by the PNI again after that (sampled every second)."""
    dst = host(prefix)
    off = next(ts for ts, _, eg in story.kernel if eg[dst] != PNI.pop_if)
    back = next(ts for ts, _, eg in story.kernel if ts > off and eg[dst] == PNI.pop_if)
    return off, back


def test_the_kernel_sent_the_moved_prefixes_by_the_alternate_and_then_the_pni(run) -> None:
    _, story = run
    veth = {p.link_id: p.pop_if for p in PEERS}
    for prefix, alternate in story.moved.items():
        off, back = _kernel_moves(story, prefix)
        withdrawn = min(ts for ts, p in story.withdraws if p == prefix)
        assert back > withdrawn, f"{prefix} back on the PNI before its WITHDRAW"
        moved = [eg[host(prefix)] for ts, _, eg in story.kernel if off <= ts < back]
        assert moved and set(moved) == {veth[alternate]}, (prefix, set(moved))
        assert {eg[host(prefix)] for ts, _, eg in story.kernel if ts >= back} == {PNI.pop_if}
        # and the bytes followed: the alternate's veth transmitted while the prefix was on it
        tx = [b[veth[alternate]] for ts, b, _ in story.kernel if off <= ts < back]
        assert tx[-1] - tx[0] > 0, (prefix, alternate)


def test_clickhouse_flows_show_the_moved_traffic_on_the_alternate_then_back_on_the_pni(run) -> None:
    loop, story = run
    flows = _flows(loop)
    assert flows, "no flows stored"
    for prefix, alternate in story.moved.items():
        off, back = _kernel_moves(story, prefix)  # sampled: the move was before ``off``, the return after back - 1.2 s
        inside = [(link, b) for link, p, t0, t1, b in flows if p == prefix and t0 >= off and t1 <= back - 1.5]
        assert sum(b for link, b in inside if link == alternate) > 0, (prefix, alternate, inside)
        assert {link for link, _ in inside} == {alternate}, (prefix, inside)
        later = [(link, b) for link, p, t0, _, b in flows if p == prefix and t0 >= back]
        assert sum(b for link, b in later if link == PNI.link_id) > 0, (prefix, later)
        assert {link for link, _ in later} == {PNI.link_id}, (prefix, later)


def test_clickhouse_holds_the_recommendations_and_the_counters(run) -> None:
    loop, story = run
    recs = loop.pipe.query(
        f"SELECT action, prefix FROM netpilot.recommendations WHERE pop = '{LAB_POP}' ORDER BY generated_at"
    )
    assert {p for a, p in recs if a == "ADD"} >= set(story.moved)
    assert {p for a, p in recs if a == "WITHDRAW"} >= set(story.moved)
    rows = loop.pipe.query(
        "SELECT link_id, toUnixTimestamp64Milli(ts) / 1000, out_bps FROM netpilot.link_stats "
        f"WHERE pop = '{LAB_POP}' AND out_bps IS NOT NULL"
    )
    cap = {p.link_id: p.capacity_mbit * 1e6 for p in PEERS}
    s = story.steps
    for alternate in set(story.moved.values()):
        used = [
            float(bps) / cap[link]
            for link, ts, bps in rows
            if link == alternate and s["kernel"] + MARGIN_S <= float(ts) <= s["surge_end"]
        ]
        assert used and max(used) > 0.01, (alternate, used)
