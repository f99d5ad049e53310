"""Chaos: the end-to-end pipeline while its parts are killed and fed garbage.

One real-time run of tests/e2e/chaos.yaml (150 s; the ams1 PNI surges from 15 s, so the
autopilot holds overrides) through simulator -> collector -> Kafka -> streams -> autopilot,
the ClickHouse sink (chDB) and the Prometheus exporter, on a broker of the test's own (the
test restarts it; the session's shared broker is left alone). During the traffic, in order
(seconds into the simulation, see ``FAULTS``):

- poison messages on every topic a running component consumes, flows with timestamps an
  hour ahead and ten days back, and mutated datagrams from ams1-r1's own address
  (implausible records, a truncated datagram, an unknown version): twice, before the
  first fault and after the last;
- a SIGKILL of the collector, streams, the autopilot and the ClickHouse sink, each
  restarted at once (as a supervisor would);
- a broker SIGTERM restart, then a broker SIGKILL restart.

Then, with everything drained and stopped:

- exact totals: ClickHouse raw rows, bytes and scaled bytes = what the collector published
  to the flows topic (counted on the topic); the rollups = raw; the streams aggregates =
  raw for every window they closed; and for ams1-r1 (unsampled), the simulator's ground
  truth per step = ClickHouse, except for the steps the collector was down;
- the collector's refusals = the implausible records sent (by reason);
- every poison message dead-lettered by each running consumer of its topic;
- no process exited that was not killed (each ran once more per kill), all stop cleanly;
- no WITHDRAW(TTL) followed by an ADD of the same prefix;
- the autopilot cycles again after each fault within a deadline; the times are printed
  (``-s``) and recorded in docs/recovery.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from netpilot import catalog
from netpilot.dev.pipeline import Pipeline, PipelineOptions
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire import flows
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.links import LinkStats
from producers.simulator.encode import FlowRecords, TemplateExporter
from tests.conftest import ClusterView, broker_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # a private broker, not the kafka_broker fixture

SCENARIO = Path(__file__).with_name("chaos.yaml")
CYCLE_S = 5.0
EXPORTER = "127.0.0.11"  # ams1-r1, IPFIX, unsampled
UNSAMPLED_LINKS = ("ams1-r1:pni-1", "ams1-r1:transit-1")
RUNNING = {"streams", "autopilot", "sink-clickhouse", "sink-prometheus"}
"""The catalog's consumer components this pipeline runs as streaming consumers (the
collector reads its inventory and routes from files here, and the templates topic once,
when it starts)."""
COMPONENTS = ("collector", "streams", "autopilot", "sink-clickhouse", "sink-prometheus")
RECOVERY_DEADLINE_S = 10.0 + CYCLE_S
"""The autopilot's first cycle after a fault must come within this: issue 13's target, 10 s
plus one cycle. A killed autopilot comes back as the same static group member
(``group_instance_id``, see docs/recovery.md), so it no longer waits out its old member's
10 s session first (7-8 s here under load, against 10-12.6 s before); after a broker
restart the next cycle follows at once (the ticks queued meanwhile)."""
IDLE_AFTER_S = 10.0
"""streams' idle_after_s (default 30 s): the broker SIGTERM outage is held longer than this,
so PoPs go without flows for longer than the idle time while nothing can be received."""
IMPLAUSIBLE = {"time_future": 7, "time_past": 5, "bytes_per_packet": 3}
"""Mutated records per refusal reason, sent in each garbage round."""
BAD_DATAGRAMS = {"truncated": 1, "unknown_version": 1}
"""Mutated datagrams per decode-drop reason, sent in each garbage round."""


# -- what the test records while it runs ------------------------------------------------
@dataclass
class Sampler:
    """Polls the autopilot's cycle counter and the sink's flows inserts every 0.25 s, per
    process (a restarted process counts from 0 again), so the first cycle and the first
    insert after each fault can be read back."""

    pipe: Pipeline
    events: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _last: dict[tuple[str, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    WATCH = (
        ("autopilot", "netpilot_autopilot_cycles_total", {}),
        ("sink-clickhouse", "netpilot_sink_clickhouse_batches_total", {"table": "netpilot.flows_raw"}),
    )

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for name, metric, labels in self.WATCH:
                child = self.pipe.children[name]
                pid = child.proc.pid
                v = child.sample(metric, **labels)
                if v is None:
                    continue
                if v > self._last.get((name, pid), 0.0):
                    self.events[name].append(time.monotonic())
                self._last[(name, pid)] = v

    def first_after(self, name: str, t: float) -> float | None:
        return next((e - t for e in self.events[name] if e > t), None)

    def longest_pause(self, name: str, start: float, end: float) -> float:
        """The longest time between two events of ``name`` around [start, end]: from the
        last before ``start`` to the first after ``end``."""
        ev = self.events[name]
        before = [e for e in ev if e <= start][-1:]
        after = [e for e in ev if e >= end][:1]
        around = [*before, *(e for e in ev if start < e < end), *after]
        return max((b - a for a, b in zip(around, around[1:])), default=float("inf"))


@dataclass
class Fault:
    at_s: float
    name: str
    act: Callable[[], None]
    started: float = 0.0
    over: float = 0.0


# -- garbage ------------------------------------------------------------------------------
def poison_round(kafka: KafkaSettings, tag: str, templates: bool) -> dict[str, tuple[str, set[str]]]:
    """Poison on every topic a running component consumes, plus flows and link-stats with
    timestamps far ahead and far back; with ``templates``, on the templates topic too, which
    the collector reads when it starts (so only a round before its restart is read).
    Returns {poison id: (topic, consumers expected to dead-letter it)}; each message carries
    its id in a ``chaos`` header."""
    p = KafkaProducer(kafka, ProducerOptions(compression="none", linger_ms=5))
    sent: dict[str, tuple[str, set[str]]] = {}

    def readers(topic: catalog.Topic) -> set[str]:
        if topic is catalog.EXPORTER_TEMPLATES:
            return {"collector"} if templates else set()
        return {c.value for c in topic.consumers} & RUNNING

    def send(topic: catalog.Topic, kind: str, value: bytes, headers: list[tuple[str, bytes]], key: str) -> None:
        pid = f"{tag}:{topic.id}:{kind}"
        p.produce(kafka.topic(topic), value, key=key, headers=[*headers, ("chaos", pid.encode())])
        sent[pid] = (kafka.topic(topic), readers(topic))

    for topic in catalog.ALL_TOPICS:
        if not readers(topic):
            continue
        schema = topic.value_schema.encode()
        # a key of the topic's shape that names nothing real (compacted topics keep the
        # last value per key: a real key would replace a real record)
        key = "|".join(["chaos"] * (topic.key.count("|") + 1))
        send(topic, "garbage", b"\xffchaos: not a " + schema, [("schema", schema)], key)
        send(topic, "version", b"{}", [("schema", topic.value_schema.split("/")[0].encode() + b"/99")], key)

    now_ms = int(time.time() * 1000)
    for kind, t_ms in (("future", now_ms + 3_600_000), ("past", now_ms - 10 * 86_400_000)):
        t = np.full(3, t_ms, np.int64)
        table = flows.flow_table(
            {
                "time_received": t,
                "time_start": t - 1000,
                "time_end": t,
                "pop": "ams1",
                "router": "ams1-r1",
                "link_id": "ams1-r1:pni-1",
                "bytes": np.full(3, 1500, np.uint64),
                "packets": np.ones(3, np.uint64),
                "bytes_scaled": np.full(3, 1500, np.uint64),
                "packets_scaled": np.ones(3, np.uint64),
                "sampling_rate": np.ones(3, np.uint32),
            }
        )
        send(catalog.FLOWS, kind, flows.encode_flows(table), flows.headers(), "ams1")
        stats = LinkStats(pop="ams1", router="ams1-r1", link_id="ams1-r1:pni-1", if_index=10, ts=t_ms / 1000)
        send(catalog.LINK_STATS, kind, stats.encode(), LinkStats.headers(), "ams1")
    p.flush(30)  # raises DeliveryError if any was not delivered
    return sent


def mutated_datagrams(netflow_port: int) -> None:
    """From ams1-r1's own address: IPFIX records no exporter sends (``IMPLAUSIBLE``), one
    real datagram cut short and one of an unknown version."""
    now_ms = int(time.time() * 1000)
    n = sum(IMPLAUSIBLE.values())
    end = np.full(n, now_ms, np.int64)
    nbytes = np.full(n, 1500, np.uint64)
    packets = np.full(n, 2, np.uint64)
    i = 0
    for reason, k in IMPLAUSIBLE.items():
        if reason == "time_future":
            end[i : i + k] = now_ms + 3_600_000
        elif reason == "time_past":
            end[i : i + k] = now_ms - 3 * 3_600_000
        else:
            nbytes[i : i + k], packets[i : i + k] = 10_000_000, 1
        i += k
    addr = np.zeros((n, 16), np.uint8)
    addr[:, 10:12] = 0xFF
    addr[:, 12:16] = (198, 51, 100, 7)
    records = FlowRecords(
        src=addr,
        dst=addr.copy(),
        is_v4=np.ones(n, bool),
        src_port=np.full(n, 443, np.uint16),
        dst_port=np.full(n, 50000, np.uint16),
        ip_proto=np.full(n, 6, np.uint8),
        tcp_flags=np.zeros(n, np.uint8),
        in_if=np.ones(n, np.uint32),
        out_if=np.full(n, 10, np.uint32),
        bytes=nbytes,
        packets=packets,
        src_as=np.zeros(n, np.uint32),
        dst_as=np.full(n, 64500, np.uint32),
        next_hop=addr.copy(),
        start_ms=end - 1000,
        end_ms=end,
    )
    datagrams = TemplateExporter(10, 0, 1, 0).encode(records, now_ms)
    datagrams += [datagrams[0][: len(datagrams[0]) // 2], b"\x00\x63" + bytes(30)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((EXPORTER, 0))
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", netflow_port))


# -- reading topics -----------------------------------------------------------------------
def read_topic(kafka: KafkaSettings, topic: str) -> Iterator[tuple[bytes | None, list[tuple[str, bytes]]]]:
    """Every message of ``topic`` up to its current end: (value, headers)."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "chaos-read", "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + 120
        while ends:
            assert time.monotonic() < deadline, f"{topic}: not read to its end: {ends}"
            for m in c.consume(500, timeout=1):
                if m.error():
                    continue
                yield m.value(), list(m.headers() or [])
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
    finally:
        c.close()


def is_chaos(headers: list[tuple[str, bytes]]) -> bool:
    return any(k == "chaos" for k, _ in headers)


# -- the run --------------------------------------------------------------------------------
@dataclass
class Run:
    pipe: Pipeline
    kafka: KafkaSettings
    faults: list[Fault]
    sampler: Sampler
    poison: dict[str, tuple[str, set[str]]]
    refused: dict[str, float]
    sim_out: dict
    collector_down: tuple[float, float]
    """(kill, ready) of the collector, Unix time."""
    sim_start: float
    codes: dict[str, int | None]
    deaths: list[str]
    brokers: int


@pytest.fixture(scope="module", params=[1, 3], ids=["one-broker", "three-brokers"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The scenario on one broker, with the component kills and whole-broker restarts; and on
    three (replication 3, ``min.insync.replicas`` 2, as strimzi/render.py configures a
    cluster), where the broker faults are those of a production cluster instead: the node
    leading a flows partition SIGKILLed (its leaders move once the controller fences it)
    and restarted, then a rolling restart of all three nodes (each SIGTERMed once the others
    are in sync: a Strimzi upgrade). The pipeline must not notice more than leader moves."""
    from netpilot.dev.kafka import LocalKafka, LocalKafkaCluster
    from tests.conftest import _wait_until_visible as wait_until_visible

    brokers: int = request.param
    root = tmp_path_factory.mktemp("chaos")
    broker = LocalKafka(root / "kafka", port=broker_ports()) if brokers == 1 else None
    cluster = LocalKafkaCluster(root / "kafka", broker_ports(2 * brokers), brokers) if brokers > 1 else None
    pipe: Pipeline | None = None
    sampler: Sampler | None = None
    try:
        bootstrap = broker.up().bootstrap if broker else cluster.up()  # type: ignore[union-attr]
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="chaos.")
        admin = TopicAdmin(kafka, min_replicas=brokers)
        admin.sync(catalog.ALL_TOPICS)  # a private broker: the topics go with its folder
        wait_until_visible(admin, [kafka.topic(t) for t in catalog.ALL_TOPICS])
        view = ClusterView(bootstrap)  # the test's metadata reads, through node kills
        changelogs: dict[str, object] = {"changelog_replication": brokers}  # faust's own topics
        pipe = Pipeline(
            root,
            kafka,
            SCENARIO,
            PipelineOptions(
                cycle_s=CYCLE_S,
                hold_s=60.0,
                idle_after_s=IDLE_AFTER_S,
                # each record whole in the window of its end, so a window's sums are a function
                # of the raw rows alone and can be compared exactly; spreading a record over
                # its windows depends on arrival order too (tests/streams/aggregate/test_windows.py)
                extra={"streams": {"spread_flows": False, **changelogs}, "autopilot": changelogs},
            ),
        )
        pipe.publish_network()
        pipe.start()
        sampler = Sampler(pipe).start()
        poison: dict[str, tuple[str, set[str]]] = {}
        refused_before: dict[str, float] = {}
        collector_down = [0.0, 0.0]
        deaths: list[str] = []

        def kill(name: str) -> Callable[[], None]:
            def act() -> None:
                child = pipe.children[name]
                assert child.alive(), f"{name} died before its kill:\n{child.tail()}"
                if name == "collector":
                    collector_down[0] = time.time()
                child.kill()
                child.restart()

            return act

        def broker_restart(sig: signal.Signals) -> Callable[[], None]:
            assert broker is not None

            def act() -> None:
                if sig == signal.SIGTERM:
                    down = time.monotonic()
                    broker.down()
                    # the outage outlasts streams' idle time: no PoP may count as idle for it
                    time.sleep(max(0.0, down + IDLE_AFTER_S + 2 - time.monotonic()))
                else:
                    pid = broker.pid()
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)
                broker.up(timeout=180)
                if sig == signal.SIGKILL:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)  # the broker was started by this process

            return act

        def kill_flows_leader() -> None:
            assert cluster is not None
            topic = kafka.topic(catalog.FLOWS)
            leader = partition_leaders(view, topic)[0]
            node = cluster.node(leader)
            pid = node.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            # a crashed node is noticed when its heartbeats stop (broker.session.timeout.ms,
            # 9 s): until then its partitions have no leader and producers hold their batches
            deadline = time.monotonic() + 60
            while partition_leaders(view, topic)[0] == leader:
                assert time.monotonic() < deadline, f"partition 0 of {topic} still led by killed node {leader}"
                time.sleep(0.2)
            node.up(timeout=180)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # started by this process

        def rolling_restart() -> None:
            assert cluster is not None
            for node in cluster.nodes:
                wait_in_sync(view, timeout=180)  # as Strimzi does: never two replicas out at once
                node.down()  # SIGTERM: a controlled shutdown hands its leaders over first
                node.up(timeout=180)
            wait_in_sync(view, timeout=180)

        def garbage(tag: str, templates: bool) -> Callable[[], None]:
            def act() -> None:
                poison.update(poison_round(kafka, tag, templates))
                mutated_datagrams(pipe.netflow_port)

            return act

        def read_refused() -> None:
            c = pipe.children["collector"]
            for r in (*IMPLAUSIBLE, *BAD_DATAGRAMS):
                refused_before[r] = c.sample("netpilot_collector_flows_dropped_total", reason=r) or 0.0

        if broker is not None:
            faults = [
                Fault(8, "garbage a", garbage("a", templates=True)),  # before the collector restarts
                Fault(15, "kill collector", kill("collector")),
                Fault(30, "kill streams", kill("streams")),
                Fault(45, "kill autopilot", kill("autopilot")),
                Fault(60, "kill sink-clickhouse", kill("sink-clickhouse")),
                Fault(70, "broker SIGTERM", broker_restart(signal.SIGTERM)),
                Fault(105, "broker SIGKILL", broker_restart(signal.SIGKILL)),
                Fault(124, "collector counters", read_refused),
                Fault(125, "garbage b", garbage("b", templates=False)),
            ]
        else:
            faults = [
                Fault(8, "garbage a", garbage("a", templates=True)),
                Fault(20, "SIGKILL flows leader", kill_flows_leader),
                Fault(55, "rolling restart", rolling_restart),
                Fault(124, "collector counters", read_refused),
                Fault(125, "garbage b", garbage("b", templates=False)),
            ]
        sim = pipe.simulate()
        sim_start = time.monotonic()
        for f in faults:
            while time.monotonic() < sim_start + f.at_s:
                time.sleep(0.1)
            killed = f.name.removeprefix("kill ") if f.name.startswith("kill ") else None
            deaths += [n for n in pipe.failed() if n != killed]
            f.started = time.monotonic()
            f.act()
            f.over = time.monotonic()
            if f.name == "kill collector":
                pipe.wait_healthy(120)
                collector_down[1] = time.time()
        out, _ = sim.communicate(timeout=300)
        assert sim.returncode == 0, (root / "logs" / "simulator.log").read_text()[-3000:]
        deaths += pipe.failed()
        wait_drained(pipe, kafka, timeout=240)
        collector = pipe.children["collector"]
        refused = {
            r: (collector.sample("netpilot_collector_flows_dropped_total", reason=r) or 0.0) - refused_before[r]
            for r in (*IMPLAUSIBLE, *BAD_DATAGRAMS)
        }
        deaths += pipe.failed()
        sampler.stop()
        codes = pipe.stop()
        yield Run(
            pipe,
            kafka,
            faults,
            sampler,
            poison,
            refused,
            json.loads(out.strip().splitlines()[-1]),
            (collector_down[0], collector_down[1]),
            sim_start,
            codes,
            deaths,
            brokers,
        )
    finally:
        if sampler is not None:
            sampler.stop()
        if pipe is not None:
            pipe.stop()
        if broker is not None:
            broker.down()
        if cluster is not None:
            cluster.down()


def partition_leaders(view: ClusterView, topic: str) -> dict[int, int]:
    """Partition -> the node leading it (-1: none)."""
    md = view.metadata(topic)
    return {p: m.leader for p, m in md.topics[topic].partitions.items()}


def wait_in_sync(view: ClusterView, timeout: float) -> None:
    """Until every partition of every topic has all its replicas in sync."""
    deadline = time.monotonic() + timeout
    while True:
        md = view.metadata()
        behind = sorted(
            f"{name}/{p}"
            for name, t in md.topics.items()
            for p, m in t.partitions.items()
            if set(m.isrs) != set(m.replicas)
        )
        if not behind:
            return
        assert time.monotonic() < deadline, f"replicas out of sync after {timeout} s: {behind[:10]}"
        time.sleep(0.5)


def wait_drained(pipe: Pipeline, kafka: KafkaSettings, timeout: float) -> None:
    """Until the collector has published all it will (the flows topic's end stands still
    for 3 s) and the ClickHouse sink lags on no topic and buffers nothing."""
    admin = TopicAdmin(kafka)
    sink = pipe.children["sink-clickhouse"]
    deadline = time.monotonic() + timeout
    topic = kafka.topic(catalog.FLOWS)
    c = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "chaos-ends"})
    del admin
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        last, since, state = None, time.monotonic(), None
        while time.monotonic() < deadline:
            assert not pipe.failed(), {n: pipe.children[n].tail() for n in pipe.failed()}
            ends = tuple(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
            if ends != last:
                last, since = ends, time.monotonic()
            pending = sink.sample("netpilot_sink_clickhouse_pending_rows")
            lag = sink.sample("netpilot_sink_clickhouse_consumer_lag_messages")
            consumed = sink.sample("netpilot_sink_clickhouse_messages_total", topic="flows")
            state = (ends, pending, lag, consumed)
            if time.monotonic() - since > 3 and pending == 0 and lag == 0 and consumed:
                return
            time.sleep(0.5)
        raise AssertionError(f"not drained within {timeout} s: (flows ends, pending, lag, consumed) = {state}")
    finally:
        c.close()


# -- assertions ---------------------------------------------------------------------------
def scalar_rows(pipe: Pipeline, sql: str) -> list[list[str]]:
    return pipe.query(sql)


def test_recovery_times(run: Run) -> None:
    """The autopilot cycles, and the sink inserts, again after every fault; printed for docs.
    On three brokers no fault stops the whole pipeline: the autopilot never goes longer
    than the recovery target without a cycle, even while a fault lasts."""
    lines, late, stalled = [], [], []
    for f in run.faults:
        cycle = run.sampler.first_after("autopilot", f.over)
        insert = run.sampler.first_after("sink-clickhouse", f.over)
        pause = run.sampler.longest_pause("autopilot", f.started, f.over)
        lines.append(
            f"{f.name:22s} at {f.started - run.sim_start:6.1f} s, took {f.over - f.started:5.1f} s; "
            f"first cycle +{cycle if cycle is None else round(cycle, 1)} s, "
            f"first flows insert +{insert if insert is None else round(insert, 1)} s, "
            f"longest time without a cycle {pause:.1f} s"
        )
        if cycle is None or cycle > RECOVERY_DEADLINE_S:
            late.append(f.name)
        if run.brokers > 1 and pause > RECOVERY_DEADLINE_S:
            stalled.append(f.name)
    print(f"\nchaos recovery times, {run.brokers} broker(s) (from the end of each fault):\n" + "\n".join(lines))
    assert not late and not stalled, "\n".join(lines)


def test_every_topic_has_a_replica_on_each_broker(run: Run) -> None:
    """The catalog's topics (``topics sync`` with ``min_replicas``), faust's changelogs
    (``changelog_replication``) and Kafka's own: one replica per broker."""
    md = TopicAdmin(run.kafka).client.list_topics(timeout=10)
    replicas = {name: {len(p.replicas) for p in t.partitions.values()} for name, t in md.topics.items()}
    assert any(n.endswith("-changelog") for n in replicas) and "__consumer_offsets" in replicas, sorted(replicas)
    wrong = {n: r for n, r in replicas.items() if r != {run.brokers}}
    assert not wrong, wrong


def test_no_unintended_exit(run: Run) -> None:
    assert not run.deaths, run.deaths
    killed = Counter(f.name.removeprefix("kill ") for f in run.faults if f.name.startswith("kill "))
    starts = {n: run.pipe.children[n].starts for n in COMPONENTS}
    assert starts == {n: 1 + killed[n] for n in COMPONENTS}, starts
    # a child SIGKILLed at the end (-9) did not stop within its grace: its log ends with its
    # threads' stacks (netpilot.proc dump_stacks), i.e. what its stop waited for
    tails = {n: run.pipe.children[n].tail(60) for n, c in run.codes.items() if c != 0}
    assert all(c == 0 for c in run.codes.values()), (run.codes, tails)


def test_raw_rows_are_exactly_what_the_collector_published(run: Run) -> None:
    rows = bytes_ = scaled = messages = 0
    for value, headers in read_topic(run.kafka, run.kafka.topic(catalog.FLOWS)):
        if is_chaos(headers):
            continue
        t = flows.decode_flows(value or b"")
        messages += 1
        rows += t.num_rows
        bytes_ += int(t["bytes"].to_numpy().sum())
        scaled += int(t["bytes_scaled"].to_numpy().sum())
    got = [int(x) for x in run.pipe.query("SELECT count(), sum(bytes), sum(bytes_scaled) FROM netpilot.flows_raw")[0]]
    assert got == [rows, bytes_, scaled], (got, [rows, bytes_, scaled], messages)


def test_rollups_equal_raw(run: Run) -> None:
    raw = run.pipe.query("SELECT count(), sum(bytes_scaled), sum(packets_scaled) FROM netpilot.flows_raw")[0]
    for table in ("flows_1m", "flows_5m", "flows_1h"):
        got = run.pipe.query(f"SELECT sum(samples), sum(bytes), sum(packets) FROM netpilot.{table}")[0]
        assert got == raw, (table, got, raw)


def test_aggregates_equal_raw_for_every_closed_window(run: Run) -> None:
    # FINAL: streams is killed mid-run, and a window it published just before may come
    # again (docs/streams.md, "Guarantees and their limits"); the table keeps the larger copy
    agg = run.pipe.query(
        "SELECT pop, link_id, toUnixTimestamp64Milli(window_start), sum(flows), sum(bytes) "
        "FROM netpilot.flow_aggregates FINAL WHERE window_s = 10 GROUP BY 1, 2, 3"
    )
    raw = run.pipe.query(
        "SELECT pop, link_id, toUnixTimestamp(toStartOfInterval(time_end, INTERVAL 10 SECOND)) * 1000 AS w, "
        "count(), sum(bytes_scaled) FROM netpilot.flows_raw GROUP BY 1, 2, 3"
    )
    rawd = {tuple(r[:3]): (int(r[3]), int(r[4])) for r in raw}
    assert agg, "no aggregates at all"
    bad = {tuple(r[:3]): ((int(r[3]), int(r[4])), rawd.get(tuple(r[:3]))) for r in agg}
    bad = {k: v for k, v in bad.items() if v[0] != v[1]}
    assert not bad, f"{len(bad)} of {len(agg)} windows differ (aggregates, raw): {sorted(bad.items())[:10]}"


def test_unsampled_exporter_matches_the_ground_truth_except_while_the_collector_was_down(run: Run) -> None:
    truth = pl.read_csv(run.pipe.net_dir / "truth_links.csv").filter(pl.col("link_id").is_in(UNSAMPLED_LINKS))
    # the simulator's clock: its first counter reading (before any traffic) is at its start;
    # step t's records end in the last 200 ms before start + (t + 1) s
    start_ms = int(run.pipe.query("SELECT min(toUnixTimestamp64Milli(ts)) FROM netpilot.link_stats")[0][0])
    got = run.pipe.query(
        f"SELECT link_id, intDiv(toUnixTimestamp64Milli(time_end) - {start_ms} + 999, 1000) - 1 AS t, "
        f"sum(bytes_scaled) FROM netpilot.flows_raw WHERE link_id IN {UNSAMPLED_LINKS} GROUP BY 1, 2"
    )
    stored = {(r[0], int(r[1])): int(r[2]) for r in got}
    # the wall-clock steps the collector missed: from one before its kill to its restart
    kill, ready = run.collector_down
    down = range(int(kill - start_ms / 1000) - 1, int(ready - start_ms / 1000) + 2)
    missed, wrong = [], []
    for r in truth.iter_rows(named=True):
        if r["bytes"] == 0:
            continue
        have = stored.get((r["link_id"], int(r["t"])))
        if have == r["bytes"]:
            continue
        (missed if int(r["t"]) in down else wrong).append((r["t"], r["link_id"], r["bytes"], have))
    assert not wrong, f"steps outside the collector's downtime {down} differ (t, link, truth, stored): {wrong[:10]}"
    # the simulator's records, all exporters: what the collector published plus what it
    # missed while it was down (at most the records sent meanwhile); nothing else is missing
    published = int(run.pipe.query("SELECT count() FROM netpilot.flows_raw")[0][0])
    lost = run.sim_out["records"] - published
    per_s = run.sim_out["records"] / run.sim_out["steps"]
    window_s = ready - kill + 2  # plus a step either side
    assert 0 <= lost <= per_s * window_s, (run.sim_out["records"], published, per_s, window_s)


def test_implausible_records_are_refused_and_counted(run: Run) -> None:
    assert run.refused == {r: float(n) for r, n in (IMPLAUSIBLE | BAD_DATAGRAMS).items()}, run.refused


def test_every_poison_message_is_dead_lettered_by_each_consumer(run: Run) -> None:
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for value, headers in read_topic(run.kafka, run.kafka.topic(catalog.DEAD_LETTERS)):
        dl = DeadLetter.from_headers(None, value, headers)
        pid = dict(dl.original_headers).get("chaos")
        if pid is not None:
            seen[pid.decode()][dl.component] += 1
    missing = {pid: sorted(want - set(seen[pid])) for pid, (_, want) in run.poison.items() if want - set(seen[pid])}
    assert not missing, f"not dead-lettered (poison id: components): {missing}"


def test_no_ttl_withdraw_followed_by_an_add_of_the_same_prefix(run: Run) -> None:
    rows = run.pipe.query(
        "SELECT pop, prefix, action, reason, toUnixTimestamp64Milli(generated_at) FROM netpilot.recommendations "
        "ORDER BY generated_at"
    )
    assert any(r[2] == "ADD" for r in rows), "no ADD at all: the surge was not seen"
    ttl: dict[tuple[str, str], int] = {}
    flaps = []
    for pop, prefix, action, reason, at in rows:
        if action == "WITHDRAW" and reason == "TTL":
            ttl[(pop, prefix)] = int(at)
        elif action == "ADD" and (pop, prefix) in ttl:
            flaps.append((pop, prefix, ttl[(pop, prefix)], int(at)))
    assert not flaps, flaps
