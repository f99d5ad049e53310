"""faust agents: short adapters from Kafka events to the pure window and utilisation code.

Each agent decodes one event (a whole Kafka message), calls the pure code and publishes
what it returns. A message that cannot be decoded (bad bytes, unknown wire version) or
whose processing raises goes to the dead-letter topic with the reason and is counted; the
agent then continues with the next message, so one poison message never stops a PoP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from netpilot.errors import WireError
from netpilot.kafka.partitioning import partition_for
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.settings import WireSettings
from netpilot.wire import aggregates as wire_aggregates
from netpilot.wire.intake import Intake
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from streams.aggregate import windows as w
from streams.aggregate.store import AddOutcome, WindowStore
from streams.app import StreamsApp
from streams.deadletters import send_dead_letter
from streams.metrics import StreamsMetrics
from streams.supervision import TaskHealth
from streams.utilisation import UtilisationTracker

log = get_logger("netpilot.streams")
COMPONENT = "streams"
MESSAGE_ROWS = 100_000
"""Aggregate rows per message: ~3-4 MB of Arrow IPC at most, under the 8 MiB topic limit."""


@dataclass(frozen=True)
class IdleSpec:
    """When a PoP counts as idle: no flows of it *received* for ``after_s`` (wall clock,
    so a replay of old flows is never idle), checked every ``check_s``."""

    after_s: float = 30.0
    check_s: float = 5.0


IDLE_SKIP_REASONS = ("stale-tick", "backlog")


def idle_blocked(tick_sent_s: float | None, now_s: float, check_s: float, backlog: int | None) -> str | None:
    """Why an idle tick must not close any window (None: it may). "No flows received for
    ``after_s``" is evidence of an idle PoP only while flows *could* be received:

    - ``stale-tick``: the tick took more than a check period to come back through Kafka (a
      broker outage, or this worker far behind): the flows of that time are as delayed as
      the tick, so their absence says nothing (and the idle clocks restart: see
      :meth:`Pipeline.restart_idle_clocks`). A broker restart that outlasted ``after_s``
      used to close every PoP's windows right after it, just before the flows the
      collector had held meanwhile arrived, and drop them all as too late;
    - ``backlog``: the PoP's flows partition has messages this worker has not processed.
    """
    if tick_sent_s is not None and now_s - tick_sent_s > check_s:
        return "stale-tick"
    if backlog is not None and backlog > 0:
        return "backlog"
    return None


def tick_time(value: bytes | None) -> float | None:
    """The send time an idle tick carries (None when it carries none)."""
    try:
        return float(value or b"")
    except ValueError:
        return None


class Pipeline:
    """What the agents share: the stores, metrics and the publishing steps."""

    def __init__(
        self,
        sa: StreamsApp,
        windows: WindowStore,
        tracker: UtilisationTracker,
        metrics: StreamsMetrics,
        clock: Callable[[], float] = time.time,
        idle: IdleSpec = IdleSpec(),
        monotonic: Callable[[], float] = time.monotonic,
        wire: WireSettings | None = None,
    ) -> None:
        self.sa, self.windows, self.tracker, self.metrics, self.clock = sa, windows, tracker, metrics, clock
        self.idle, self.monotonic = idle, monotonic
        self.intake = Intake(wire, clock)
        """Decodes every input: ``schema`` header and timestamps checked (netpilot.wire.intake)."""
        self.rlog = RateLimitedLog(log)
        self.last_flows: dict[str, float] = {}
        """PoP -> monotonic time its last flows were received (this process only)."""
        self.idle_pops: set[str] = set()
        self.flows_read: dict[int, int] = {}
        """flows partition -> offset of the last message the flows agent processed."""

    def flows_backlog(self, partition: int) -> int | None:
        """Messages of flows partition ``partition`` not processed yet: the consumer's last
        known high watermark minus what the flows agent processed (None: not known yet)."""
        read = self.flows_read.get(partition)
        if read is None:
            return None
        try:
            tp = TP(self.sa.flows.get_topic_name(), partition)
            highwater = self.sa.app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - no consumer (yet), or not assigned: unknown
            return None
        if highwater is None or highwater < 0:
            return None
        return int(highwater) - (read + 1)

    def saw_flows(self, pops: tuple[str, ...]) -> None:
        now = self.monotonic()
        for pop in pops:
            self.last_flows[pop] = now
            if pop in self.idle_pops:
                self.idle_pops.discard(pop)
                self.metrics.idle_pops.set(len(self.idle_pops))
                log.info("pop flows resumed", pop=pop)

    def pops_of(self, partition: int, partitions: int) -> list[str]:
        """The PoPs this worker knows whose flows go to ``partition``."""
        known = set(self.windows.pops()) | set(self.tracker.pops())
        return sorted(pop for pop in known if partition_for(pop, partitions) == partition)

    def restart_idle_clocks(self, partition: int, partitions: int) -> None:
        """A tick came back late: the path from Kafka to this worker was broken (or far
        behind) until now, and so, most likely, the producers' path to Kafka. The idle time
        of the partition's PoPs counts again from now, so that the flows the producers held
        meanwhile (a collector retries its deliveries after a broker restart) arrive in time."""
        now = self.monotonic()
        for pop in self.pops_of(partition, partitions):
            self.last_flows[pop] = max(self.last_flows.get(pop, now), now)

    async def close_idle(self, partition: int, partitions: int) -> list[str]:
        """Advance the watermark of every idle PoP of ``partition`` to
        ``now - idle.after_s - allowed_lateness`` (as if its last flow had come then),
        publish the windows that closes and register the links' windows without flows,
        so their utilisation comes from counters alone. Returns the PoPs advanced."""
        mono, now_ms = self.monotonic(), int(self.clock() * 1000)
        spec = self.windows.spec
        advanced = []
        for pop in self.pops_of(partition, partitions):
            # a PoP not seen by this process counts from now (it may just be starting)
            if mono - self.last_flows.setdefault(pop, mono) < self.idle.after_s:
                continue
            target = now_ms - int(self.idle.after_s * 1000) - spec.lateness_ms
            before = self.windows.advance_idle(pop, target)
            if before is None:
                continue
            if pop not in self.idle_pops:
                self.idle_pops.add(pop)
                self.metrics.idle_pops.set(len(self.idle_pops))
                log.warning(
                    "pop idle: no flows, closing its windows on the wall clock", pop=pop, idle_after_s=self.idle.after_s
                )
            self.metrics.idle_advances.labels(pop).inc()
            # zero-flow entries first: closing the windows that did get flows then overwrites
            # theirs with the bytes (registered afterwards, they would be published twice)
            self.tracker.add_idle_windows(pop, before, target, spec.sizes_s)
            await self.publish_closed((pop,))
            advanced.append(pop)
        return advanced

    async def dead_letter(self, event: Any, exc: BaseException) -> None:
        await send_dead_letter(self.sa.dead_letters, event, exc, COMPONENT, self.metrics.dead_letters, self.rlog)

    def count(self, outcome: AddOutcome) -> None:
        b = outcome.batch
        self.metrics.batches.inc()
        for reason, frame in (("too-late", b.too_late), ("future", b.future)):
            for pop, size, n, _bytes in frame.iter_rows():
                self.metrics.flows_dropped.labels(pop, reason, str(size)).inc(n)
                self.rlog.warning(
                    f"{reason}:{pop}", "flows dropped", pop=pop, reason=reason, window_s=size, flows=n, bytes=_bytes
                )
        for pop, n in b.flows_in.items():
            self.metrics.flows.labels(pop).inc(n)

    async def publish_closed(self, pops: tuple[str, ...]) -> None:
        closed, keys = self.windows.closable(pops)
        for pop, frame in w.split_by_pop(closed).items():
            for chunk in frame.iter_slices(MESSAGE_ROWS):
                await self.sa.aggregates.send(
                    key=pop.encode(), value=w.encode_partial(chunk), headers=wire_aggregates.headers()
                )
                self.metrics.aggregate_messages.inc()
                self.metrics.aggregate_rows.inc(chunk.height)
        for size, n in closed.select("window_s", "window_start").unique().group_by("window_s").len().iter_rows():
            self.metrics.windows_closed.labels(str(size)).inc(n)
        self.windows.discard(keys)  # only after the sends were accepted
        self.tracker.add_closed(closed)
        self.metrics.open_partials.set(self.windows.open_keys())
        for pop in pops:
            await self.publish_utilisation(pop)

    async def publish_utilisation(self, pop: str) -> None:
        wm = self.windows.watermark(pop)
        self.metrics.watermark_lag.labels(pop).set(max(0.0, self.clock() - wm / 1000))
        dropped = self.tracker.unknown_link_windows
        ready = self.tracker.ready(pop, wm)
        self.metrics.utilisation_dropped.inc(self.tracker.unknown_link_windows - dropped)
        for util in ready:
            await self.sa.utilisation.send(key=pop.encode(), value=util.encode(), headers=LinkUtilisation.headers())
            self.metrics.utilisation_messages.inc()


def register(sa: StreamsApp, pipe: Pipeline, tasks: TaskHealth) -> None:
    """Attach the agents and the idle timer to the app; a crash of any fails ``tasks``."""

    @sa.app.agent(sa.flows, name="aggregate-flows")
    @tasks.guard("aggregate-flows")
    async def aggregate_flows(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            last = pipe.flows_read.get(msg.partition)
            if last is None or msg.offset != last + 1:
                # where each partition is read from after a start or a rebalance, and any
                # replay or gap: what a lost or doubled window is traced back with
                log.info("flows read from", partition=msg.partition, offset=msg.offset, after=last)
            pipe.flows_read[msg.partition] = msg.offset
            try:
                table = pipe.intake.flows(event.value or b"", event.headers)
                outcome = pipe.windows.add(table, f"{msg.partition}.{msg.offset}", now_ms=int(pipe.clock() * 1000))
                pipe.count(outcome)
                pipe.saw_flows(outcome.seen)
                if outcome.pops:
                    await pipe.publish_closed(outcome.pops)
            except Exception as exc:  # noqa: BLE001 - poison or bug: dead-letter, keep going
                await pipe.dead_letter(event, exc)

    @sa.app.agent(sa.link_stats, name="link-stats")
    @tasks.guard("link-stats")
    async def link_stats(stream: Any) -> None:
        async for event in stream.events():
            try:
                stats = pipe.intake.model(LinkStats, event.value, event.headers)
                matched = pipe.tracker.add_stats(stats)
                pipe.metrics.link_stats.labels("used" if matched else "unknown-link").inc()
                if matched:
                    await pipe.publish_utilisation(stats.pop)
            except (WireError, ValueError) as exc:
                await pipe.dead_letter(event, exc)

    @sa.app.agent(sa.link_inventory, name="link-inventory")
    @tasks.guard("link-inventory")
    async def link_inventory(stream: Any) -> None:
        async for event in stream.events():
            try:
                key = (event.key or b"").decode()
                link = None if event.value is None else pipe.intake.model(LinkInventory, event.value, event.headers)
                pipe.tracker.set_link(key, link)
                pipe.metrics.inventory_updates.inc()
                if link is not None:  # windows may have been waiting for this link
                    await pipe.publish_utilisation(link.pop)
            except (WireError, ValueError) as exc:
                await pipe.dead_letter(event, exc)

    # faust tables can only be written while processing an event, so the idle timer does
    # not close windows itself: it sends one tick per assigned partition to the app's
    # internal idle-ticks topic, and this agent handles the PoPs of that partition.
    @sa.app.agent(sa.idle_ticks, name="idle-ticks")
    @tasks.guard("idle-ticks")
    async def idle_ticks(stream: Any) -> None:
        async for event in stream.events():
            try:
                partition = event.message.partition
                why = idle_blocked(
                    tick_time(event.value), pipe.clock(), pipe.idle.check_s, pipe.flows_backlog(partition)
                )
                if why is not None:
                    pipe.metrics.idle_skips.labels(why).inc()
                    if why == "stale-tick":
                        pipe.restart_idle_clocks(partition, sa.flows.partitions or 1)
                    continue
                await pipe.close_idle(partition, sa.flows.partitions or 1)
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the worker
                pipe.rlog.warning("idle", "closing idle PoPs failed", error=f"{type(exc).__name__}: {exc}")

    @sa.app.timer(interval=pipe.idle.check_s)
    @tasks.guard("idle-timer")
    async def idle_timer() -> None:
        for tp in sa.app.assignor.assigned_actives():
            if tp.topic == sa.idle_ticks.get_topic_name():
                await sa.idle_ticks.send(key=b"tick", value=str(pipe.clock()).encode(), partition=tp.partition)
