"""`netpilot demo --instances N`: who holds what, the kill of one instance of each scaled
component, how long the survivors took to take its share over, and whether the totals held.

What each instance holds is read where it is decided, not guessed:

* collectors share the UDP ports (SO_REUSEPORT) and the kernel hashes each exporter session
  to one socket: a collector holds the exporters whose datagrams it received in the last
  few seconds (its ``received_datagrams_total{exporter}``);
* streams workers, autopilot workers and ClickHouse sinks are consumer groups: an instance
  holds the PoPs whose partition the group coordinator assigned to it (the members are told
  apart by their Kafka client id, ``netpilot-<instance>``).

Taken over, per PoP or exporter of the dead instance, is measured twice: when the survivor
was *assigned* it (groups) and when it was seen *working* on it (collector: flows decoded
from the exporter; streams: flows of the PoP; autopilot: a cycle of the PoP; sink: the
group's committed offset on the PoP's flows partition moved). Times are seconds after the
SIGKILL, at the view's scrape period (about 1 s).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.table import Table

from netpilot import catalog
from netpilot.dev.pipeline import SCALED, Pipeline
from netpilot.errors import WireError
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.partitioning import partition_for
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.settings import KafkaSettings
from netpilot.wire import flows as F
from netpilot.wire.autopilot import CycleSummary

log = get_logger("netpilot.demo")
HELD_FOR_S = 3.0
"""A collector holds an exporter while datagrams from it arrived within this many seconds."""
_SAMPLE = re.compile(r"^(netpilot_[a-z_]+)\{([^}]*)\} ([0-9.e+-]+)$", re.M)
_LABEL = re.compile(r'([a-z_]+)="([^"]*)"')
_REPLAYS = re.compile(r"^netpilot_sink_clickhouse_intent_replays_total(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)
WORK_METRIC = {
    "collector": ("netpilot_collector_flows_total", "exporter"),
    "streams": ("netpilot_streams_flows_total", "pop"),
    "autopilot": ("netpilot_autopilot_cycles_total", "pop"),
}
"""Per component: the counter that grows when an instance works on a key, and the key label."""
GROUP_TOPIC = {"streams": catalog.FLOWS, "autopilot": catalog.FLOW_AGGREGATES, "sink-clickhouse": catalog.FLOWS}
"""The topic whose assigned partitions say which PoPs a group member holds."""


def by_label(metrics_text: str, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` summed per value of ``label``."""
    out: dict[str, float] = defaultdict(float)
    for metric, labels, value in _SAMPLE.findall(metrics_text):
        if metric == name:
            key = dict(_LABEL.findall(labels)).get(label)
            if key is not None:
                out[key] += float(value)
    return dict(out)


@dataclass
class Takeover:
    """One scaled component's kill and what its survivors did about it."""

    component: str
    victim: str
    killed_at: float
    held: frozenset[str]
    """What the victim held at the kill (PoPs; for collectors exporters' router names)."""
    assigned: dict[str, tuple[str, float]] = field(default_factory=dict)
    """key -> (survivor, seconds after the kill the group assigned it to the survivor)."""
    working: dict[str, tuple[str, float]] = field(default_factory=dict)
    """key -> (survivor, seconds after the kill the survivor was seen working on it)."""

    def done(self) -> bool:
        return set(self.working) >= self.held

    def describe(self) -> str:
        held = ", ".join(sorted(self.held)) or "nothing"
        text = f"{self.victim} (held {held})"
        if not self.held:
            return text + ": nothing to take over"
        parts = []
        if self.component != "collector":
            parts.append(_times("assigned", self.assigned, self.held))
        parts.append(_times("working", self.working, self.held))
        by = sorted({who for who, _ in self.working.values()} | {who for who, _ in self.assigned.values()})
        return f"{text} -> {', '.join(by) or 'no survivor yet'}: " + "; ".join(parts)


def _times(what: str, seen: dict[str, tuple[str, float]], held: frozenset[str]) -> str:
    if not seen:
        return f"{what}: not yet"
    done = max(t for _, t in seen.values())
    missing = sorted(held - set(seen))
    return f"{what} after {done:.1f} s" + (f" (not yet: {', '.join(missing)})" if missing else "")


class FlowCounter:
    """Counts the flows in the flows topic, per PoP: what the collectors published, whoever
    published it (a killed collector's own counters die with it)."""

    def __init__(self, kafka: KafkaSettings, group_id: str) -> None:
        self.topic = kafka.topic(catalog.FLOWS)
        self.consumer = BatchConsumer(kafka, group_id, [self.topic])
        self.per_pop: dict[str, int] = defaultdict(int)
        self.bad = 0
        self._mute = RateLimitedLog(log)

    @property
    def total(self) -> int:
        return sum(self.per_pop.values())

    def poll(self, timeout: float = 0.0) -> None:
        for m in self.consumer.poll_batch(1000, timeout):
            value = m.value()
            if value is None:
                continue
            try:
                self.per_pop[(m.key() or b"").decode(errors="replace")] += F.decode_flows(value).num_rows
            except (WireError, ValueError) as exc:  # counted and shown; a view never dies of it
                self.bad += 1
                self._mute.warning("bad", "undecodable flows message", error=str(exc)[:200])

    def catch_up(self, timeout: float) -> bool:
        """Read until the end of every flows partition as it is now; False at the deadline."""
        raw = self.consumer.raw
        deadline = time.monotonic() + timeout
        ends: dict[int, int] | None = None
        while time.monotonic() < deadline:
            self.poll(0.2)
            assigned = raw.assignment()
            if not assigned:
                continue
            if ends is None:
                ends = {tp.partition: raw.get_watermark_offsets(tp, timeout=10)[1] for tp in assigned}
            positions = {tp.partition: tp.offset for tp in raw.position(assigned)}
            if all(positions.get(p, -1) >= end or end == 0 for p, end in ends.items()):
                return True
        return False

    def close(self) -> None:
        self.consumer.close()


class InstanceTracker:
    """Scrapes the scaled components' instances, kills one of each, and follows the takeover."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        scenario = yaml.safe_load(Path(pipe.scenario).read_text())
        self.pops = [p["name"] for p in scenario["pops"]]
        self.router_of = {r["exporter"]: r["name"] for p in scenario["pops"] for r in p["routers"]}
        self.holds: dict[str, frozenset[str]] = {}
        self.partitions: dict[str, int] = {}
        """Instance -> partitions of every topic its group assigned it (sinks and faust workers)."""
        self.work: dict[str, dict[str, float]] = {}
        self._received_at: dict[tuple[str, str], float] = {}
        self._received: dict[tuple[str, str], float] = {}
        self.takeovers: list[Takeover] = []
        self._committed_at_kill: dict[int, int] = {}
        self._work_at_kill: dict[tuple[str, str], dict[str, float]] = {}
        self.replays: dict[str, float] = {}
        """Sink -> batches it replayed from a write-ahead intent (one a dead sink left)."""
        self._admin = AdminClient(pipe.kafka.client_config())  # type: ignore[arg-type]
        self._offsets = Consumer({**pipe.kafka.client_config(), "group.id": pipe.group_id("sink-clickhouse")})
        self._mute = RateLimitedLog(log)

    def names(self, component: str) -> list[str]:
        return self.pipe.names(component)

    def alive(self, name: str) -> bool:
        return name not in self.pipe.killed and self.pipe.children[name].alive()

    # -- reading --------------------------------------------------------------------------
    def update(self) -> None:
        now = time.monotonic()
        for component in SCALED:
            for name in self.names(component):
                text = self.pipe.children[name].metrics() if self.alive(name) else ""
                if not text:
                    continue
                if component in WORK_METRIC:
                    metric, label = WORK_METRIC[component]
                    work = by_label(text, metric, label)
                    if component == "collector":
                        work = {self.router_of.get(k, k): v for k, v in work.items()}
                    self.work[name] = work
                if component == "sink-clickhouse":
                    self.replays[name] = sum(float(v) for v in _REPLAYS.findall(text))
                if component == "collector":
                    received = by_label(text, "netpilot_collector_received_datagrams_total", "exporter")
                    for exporter, n in received.items():
                        key = (name, self.router_of.get(exporter, exporter))
                        if n > self._received.get(key, 0.0):
                            self._received_at[key] = now
                        self._received[key] = n
                    self.holds[name] = frozenset(
                        r for (who, r), at in self._received_at.items() if who == name and now - at <= HELD_FOR_S
                    )
        for component in ("streams", "autopilot", "sink-clickhouse"):
            self._read_group(component)
        self._follow(now)

    def _read_group(self, component: str) -> None:
        """Who holds which PoP: the group's assignment, member by client id."""
        group = self.pipe.group_id(component)
        topic = self.pipe.kafka.topic(GROUP_TOPIC[component])
        n_parts = GROUP_TOPIC[component].partitions
        try:
            (future,) = self._admin.describe_consumer_groups([group], request_timeout=5).values()
            description = future.result(10)
        except Exception as exc:  # noqa: BLE001 - a view: a failed read shows the last one
            self._mute.warning(f"describe:{group}", "could not describe the group", group=group, error=str(exc)[:200])
            return
        held: dict[str, set[str]] = {n: set() for n in self.names(component)}
        counts: dict[str, int] = {n: 0 for n in self.names(component)}
        for member in description.members:
            name = next((n for n in held if member.client_id.startswith(f"netpilot-{n}")), None)
            if name is None or member.assignment is None:
                continue
            for tp in member.assignment.topic_partitions:
                counts[name] += 1
                if tp.topic == topic:
                    held[name] |= {p for p in self.pops if partition_for(p, n_parts) == tp.partition}
        for name, pops in held.items():
            self.holds[name] = frozenset(pops)
            self.partitions[name] = counts[name]

    def _sink_committed(self) -> dict[int, int]:
        topic = self.pipe.kafka.topic(catalog.FLOWS)
        tps = [TopicPartition(topic, partition_for(p, catalog.FLOWS.partitions)) for p in self.pops]
        return {tp.partition: tp.offset for tp in self._offsets.committed(tps, timeout=10)}

    def _follow(self, now_mono: float) -> None:
        now = time.time()
        committed: dict[int, int] | None = None
        for t in self.takeovers:
            after = now - t.killed_at
            survivors = [n for n in self.names(t.component) if self.alive(n)]
            for who in survivors:
                for key in t.held & self.holds.get(who, frozenset()):
                    if t.component != "collector":
                        t.assigned.setdefault(key, (who, after))
                if t.component == "sink-clickhouse":
                    # storing: the group's commit on the PoP's flows partition moved on
                    committed = committed if committed is not None else self._sink_committed()
                    for key in t.held & self.holds.get(who, frozenset()):
                        p = partition_for(key, catalog.FLOWS.partitions)
                        if committed.get(p, -1) > self._committed_at_kill.get(p, -1):
                            t.working.setdefault(key, (who, after))
                else:
                    work = self.work.get(who, {})
                    before = self._work_at_kill.get((t.component, who), {})
                    for key in t.held:
                        if work.get(key, 0.0) > before.get(key, 0.0):
                            t.working.setdefault(key, (who, after))

    def taking_over(self, at_most_s: float) -> bool:
        """A takeover is still under way, and the kill was less than ``at_most_s`` ago."""
        now = time.time()
        return any(not t.done() and now - t.killed_at < at_most_s for t in self.takeovers)

    # -- the kill -------------------------------------------------------------------------
    def kill_one_each(self) -> list[Takeover]:
        """SIGKILL, of each scaled component, the instance holding the most (ties: the first),
        after a fresh reading of who holds what."""
        self.update()
        self._work_at_kill = {
            (component, n): dict(self.work.get(n, {})) for component in SCALED for n in self.names(component)
        }
        self._committed_at_kill = self._sink_committed()
        out = []
        for component in SCALED:
            names = [n for n in self.names(component) if self.alive(n)]
            if len(names) < 2:
                continue
            victim = max(names, key=lambda n: (len(self.holds.get(n, ())), -names.index(n)))
            held = self.holds.get(victim, frozenset())
            self.pipe.kill(victim)
            out.append(Takeover(component, victim, self.pipe.killed[victim], held))
        self.takeovers.extend(out)
        return out

    # -- showing --------------------------------------------------------------------------
    def table(self) -> Table:
        t = Table(title="instances (what each holds now)", expand=False)
        for col in ("component", "instance", "state", "holds"):
            t.add_column(col)
        for component in SCALED:
            for name in self.names(component):
                if name in self.pipe.killed:
                    state = f"[red]killed {time.strftime('%H:%M:%S', time.localtime(self.pipe.killed[name]))}[/]"
                else:
                    state = "[green]running[/]" if self.pipe.children[name].alive() else "[red]exited[/]"
                holds = ", ".join(sorted(self.holds.get(name, ()))) or "-"
                dead = next((t for t in self.takeovers if t.victim == name), None)
                if dead is not None:  # what it had when it died (the table shows the survivor now)
                    holds = "held " + (", ".join(sorted(dead.held)) or "nothing")
                elif name in self.partitions:
                    holds += f"  ({self.partitions[name]} partitions)"
                t.add_row(component, name, state, holds)
        return t

    def takeover_lines(self) -> list[str]:
        return [f"takeover: {t.component}: {t.describe()}" for t in self.takeovers]

    def close(self) -> None:
        self._offsets.close()


def cycling(summaries: Iterable[CycleSummary], pops: list[str], killed_at: float | None) -> list[str]:
    """Per PoP: cycles seen, how many after the kill, the longest gap between two."""
    times: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        times[s.pop].append(s.generated_at)
    out = []
    for pop in pops:
        ts = sorted(times.get(pop, []))
        gap = max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=0.0)
        after = sum(1 for t in ts if killed_at is not None and t > killed_at)
        out.append(f"{pop} {len(ts)} cycles, {after} after the kill, longest gap {gap:.1f} s")
    return out


def missing_windows(history: dict[tuple[str, str], list[tuple[float, float]]], window_s: float) -> dict[str, int]:
    """Per ``pop link``: windows absent between the link's first and last one."""
    out = {}
    for (pop, link), points in history.items():
        starts = sorted({t for t, _ in points})
        if not starts:
            continue
        expected = round((starts[-1] - starts[0]) / window_s) + 1
        out[f"{pop} {link}"] = expected - len(starts)
    return out
