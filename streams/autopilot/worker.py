"""The autopilot worker: faust wiring around the pure planner (``netpilot autopilot run``).

Inputs (all keyed or partitioned by PoP, so one worker owns a PoP's whole state):
link-inventory, routes, link-stats and flow-aggregates. Every input update is written to a
changelog-backed table *and* to an in-memory :class:`PopInputs`; a restarted worker rebuilds
the in-memory view from the tables before its first cycle, and the planner state (active
overrides, cooldowns, hold and TTL) is a table too — so a restart continues the same
overrides instead of starting over.

Cycles: faust tables can only be written while processing an event, so the cycle timer does
not plan itself; it sends one *tick* per assigned partition to the app's internal
``<app id>-cycle-ticks`` topic, and the tick agent plans every PoP of that partition, writes
the new state and publishes recommendations (compacted, key ``pop|prefix``) and one cycle
summary per PoP.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import polars as pl
from faust.types import TableT

from netpilot import catalog
from netpilot.kafka.partitioning import partition_for
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.intake import Headers, Intake
from netpilot.wire.links import LinkInventory, LinkStats
from netpilot.wire.routes import Route
from streams.app import catalog_topic, new_faust_app
from streams.autopilot import explain
from streams.autopilot.inputs import PopInputs
from streams.autopilot.metrics import AutopilotMetrics
from streams.autopilot.planner import plan
from streams.autopilot.settings import AutopilotSettings
from streams.autopilot.state import PlannerState
from streams.deadletters import send_dead_letter
from streams.supervision import TaskHealth

log = get_logger("netpilot.autopilot")
COMPONENT = "autopilot"
TABLES = ("ap-inventory", "ap-routes", "ap-counters", "ap-demand", "ap-state")


def app_id(settings: AutopilotSettings) -> str:
    return f"{settings.kafka.topic_prefix}{settings.app_id}"


@dataclass
class AutopilotApp:
    app: faust.App
    inventory: faust.TopicT
    routes: faust.TopicT
    link_stats: faust.TopicT
    aggregates: faust.TopicT
    ticks: faust.TopicT
    recommendations: faust.TopicT
    summaries: faust.TopicT
    dead_letters: faust.TopicT
    tables: dict[str, TableT[Any, Any]]


def create_app(settings: AutopilotSettings) -> AutopilotApp:
    kafka = settings.kafka
    app = new_faust_app(
        app_id(settings),
        kafka,
        client="autopilot",
        store=settings.store,
        data_dir=settings.data_dir,
        changelog_replication=settings.changelog_replication,
        session_timeout_s=settings.session_timeout_s,
        group_instance_id=settings.group_instance_id,
    )

    def topic(t: catalog.Topic) -> faust.TopicT:
        return catalog_topic(app, kafka, t)

    # key_type/value_type without a Schema: the app's raw serializers apply (a Schema here
    # silently falls back to JSON and breaks changelog recovery of binary values).
    tables = {
        name: app.Table(
            name,
            key_type=str,
            value_type=bytes,
            partitions=catalog.FLOWS.partitions,
            extra_topic_configs={"max.message.bytes": str(8 * 1024 * 1024)},
        )
        for name in TABLES
    }
    ticks = app.topic(
        f"{app_id(settings)}-cycle-ticks",
        key_type=bytes,
        value_type=bytes,
        partitions=catalog.FLOWS.partitions,
        internal=True,
        retention=3600.0,
    )
    return AutopilotApp(
        app,
        topic(catalog.LINK_INVENTORY),
        topic(catalog.ROUTES),
        topic(catalog.LINK_STATS),
        topic(catalog.FLOW_AGGREGATES),
        ticks,
        topic(catalog.RECOMMENDATIONS),
        topic(catalog.CYCLE_SUMMARIES),
        topic(catalog.DEAD_LETTERS),
        tables,
    )


@dataclass
class Pilot:
    """What the agents share: per-PoP inputs, the tables behind them, metrics."""

    aa: AutopilotApp
    settings: AutopilotSettings
    metrics: AutopilotMetrics
    clock: Callable[[], float] = time.time
    pops: dict[str, PopInputs] = field(default_factory=dict)
    loaded: bool = False

    def __post_init__(self) -> None:
        self.rlog = RateLimitedLog(log)
        self.monotonic: Callable[[], float] = time.monotonic
        self.failed: dict[str, int] = {}
        """PoP -> cycles failed in a row (absent or 0 after a good one)."""
        self.last_error: dict[str, str] = {}
        self.ticks_pending_since: float | None = None
        """Monotonic time ticks were sent with no cycle run since (None: none pending)."""
        self.intake = Intake(self.settings.wire, self.clock)
        """Decodes every input: ``schema`` header and timestamps checked (netpilot.wire.intake)."""

    def inputs(self, pop: str) -> PopInputs:
        p = self.pops.get(pop)
        if p is None:
            p = self.pops[pop] = PopInputs(pop)
        return p

    # -- restore -------------------------------------------------------------------------
    def load_from_tables(self) -> None:
        """Rebuild the in-memory view from the (recovered) tables: after start, and after every
        rebalance (:func:`register` clears ``loaded``), since the PoPs of partitions taken over
        from another worker reach this one through the changelog, not through its agents."""
        t = self.aa.tables
        before, self.pops = self.pops, {}
        for value in t["ap-inventory"].values():
            link = LinkInventory.decode(value)
            self.inputs(link.pop).set_link(link.link_id, link)
        for value in t["ap-routes"].values():
            r = Route.decode(value)
            self.inputs(r.pop).set_route(r.link_id, r.prefix, r)
        for value in t["ap-counters"].values():
            s = LinkStats.decode(value)
            self.inputs(s.pop).add_stats(s)
        for pop, value in t["ap-demand"].items():
            p = self.inputs(pop)
            p.demand = pl.read_ipc(io.BytesIO(value))
            if p.demand.height:
                end = (p.demand["window_start_ms"] + p.demand["window_s"].cast(pl.Int64) * 1000).max()
                p.newest["flows"] = float(end) / 1000  # type: ignore[arg-type]
        for pop, p in self.pops.items():  # input times the tables do not keep (the RIB's)
            if pop in before:
                p.newest = {**before[pop].newest, **p.newest}
        self.loaded = True
        log.info(
            "autopilot state restored",
            pops=len(self.pops),
            overrides=sum(len(PlannerState.from_dict(_json(v)).overrides) for v in t["ap-state"].values()),
        )

    # -- input events --------------------------------------------------------------------
    def on_inventory(self, key: str, value: bytes | None, headers: Headers = None) -> None:
        pop, _, link_id = key.partition("|")
        if value is None:
            self.aa.tables["ap-inventory"].pop(key, None)
            self.inputs(pop).set_link(link_id, None)
        else:
            link = self.intake.model(LinkInventory, value, headers)
            self.aa.tables["ap-inventory"][key] = value
            self.inputs(link.pop).set_link(link.link_id, link)

    def on_route(self, key: str, value: bytes | None, headers: Headers = None) -> None:
        pop, link_id, prefix = (key.split("|", 2) + ["", ""])[:3]
        if value is None:
            self.aa.tables["ap-routes"].pop(key, None)
            self.inputs(pop).set_route(link_id, prefix, None, self.clock())
        else:
            r = self.intake.model(Route, value, headers)
            self.aa.tables["ap-routes"][key] = value
            self.inputs(r.pop).set_route(r.link_id, r.prefix, r, self.clock())

    def on_stats(self, value: bytes, headers: Headers = None) -> None:
        s = self.intake.model(LinkStats, value, headers)
        if s.link_id is None:
            return
        self.inputs(s.pop).add_stats(s)
        self.aa.tables["ap-counters"][f"{s.pop}|{s.link_id}"] = value

    def on_aggregates(self, value: bytes, headers: Headers = None) -> None:
        table = self.intake.aggregates(value, headers)
        pops = {str(p) for p in table.column("pop").unique().to_pylist()}
        for pop in pops:
            p = self.inputs(pop)
            n = p.add_aggregates(table, self.settings.demand_granularity_s, self.settings.demand_window_s * 2)
            if n:
                buf = io.BytesIO()
                p.demand.write_ipc(buf, compression="lz4")
                self.aa.tables["ap-demand"][pop] = buf.getvalue()
                self.metrics.aggregate_rows.inc(n)

    # -- cycles ----------------------------------------------------------------------------
    async def cycle(self, partition: int) -> None:
        if not self.loaded:
            self.load_from_tables()
        now = self.clock()
        n = catalog.FLOWS.partitions
        for pop in sorted(self.pops):
            if partition_for(pop, n) != partition:
                continue
            # one PoP's bad input or bug must not stop the others' cycles; it is counted,
            # and health fails once it has failed unhealthy_after_cycles times in a row
            try:
                await self.plan_pop(pop, now)
            except Exception as exc:  # noqa: BLE001 - counted, logged, reported by health()
                self.cycle_failed(pop, exc)
            else:
                if self.failed.pop(pop, 0):
                    self.metrics.failed_cycles.labels(pop).set(0)
                    log.info("pop cycles recovered", pop=pop)
        self.ticks_pending_since = None

    def cycle_failed(self, pop: str, exc: Exception) -> None:
        n = self.failed[pop] = self.failed.get(pop, 0) + 1
        self.last_error[pop] = error = f"{type(exc).__name__}: {exc}"
        self.metrics.cycle_errors.labels(pop).inc()
        self.metrics.failed_cycles.labels(pop).set(n)
        self.rlog.warning(f"cycle:{pop}", "cycle failed", pop=pop, failed_in_a_row=n, error=error)

    def ticks_sent(self) -> None:
        if self.ticks_pending_since is None:
            self.ticks_pending_since = self.monotonic()

    def health(self) -> tuple[bool, str]:
        """Not OK when a PoP's cycle failed ``unhealthy_after_cycles`` times in a row, or when
        ticks were sent and no cycle ran for that many periods (at least 60 s, so that a
        consumer-group rebalance, which pauses consumption, is not taken for a dead cycle)."""
        limit = self.settings.unhealthy_after_cycles
        for pop, n in sorted(dict(self.failed).items()):
            if n >= limit:
                return False, f"pop {pop}: {n} cycles failed in a row, last: {self.last_error.get(pop)}"
        since = self.ticks_pending_since
        if since is not None:
            waited = self.monotonic() - since
            if waited > max(60.0, limit * self.settings.policy.cycle_s):
                return False, f"no cycle ran for {waited:.0f} s although ticks were sent"
        return True, "ok"

    async def plan_pop(self, pop: str, now: float) -> None:
        p = self.pops[pop]
        if not p.links:
            return
        policy = self.settings.policy
        started = time.perf_counter()
        snapshot = p.snapshot(self.settings.demand_window_s)
        state = PlannerState.from_dict(_json(self.aa.tables["ap-state"].get(pop)))
        result = plan(snapshot, state, policy, now)
        recs = explain.recommendations(result, snapshot, policy)
        part = partition_for(pop, catalog.RECOMMENDATIONS.partitions)
        for rec in recs:
            await self.aa.recommendations.send(
                key=rec.key().encode(), value=rec.encode(), headers=Recommendation.headers(), partition=part
            )
            self.metrics.recommendations.labels(pop, rec.action).inc()
        summary = explain.summary(result)
        await self.aa.summaries.send(key=pop.encode(), value=summary.encode(), headers=CycleSummary.headers())
        # only after the sends were accepted: a crash before this replays the cycle
        self.aa.tables["ap-state"][pop] = _dumps(result.state.to_dict())
        self.metrics.cycles.labels(pop, "fail-static" if result.report.fail_static else "ok").inc()
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.metrics.active_overrides.labels(pop).set(result.report.active_overrides)
        bad = result.report.misprojected
        self.metrics.misprojected_links.labels(pop).set(len(bad))
        if bad:
            errors = {link: result.report.projection_error.get(link) for link in bad}
            self.rlog.warning(
                f"misprojected:{pop}",
                "projection does not match the counters",
                pop=pop,
                links=list(bad),
                error=errors,
                mode=policy.mode,
            )

    async def dead_letter(self, event: Any, exc: BaseException) -> None:
        await send_dead_letter(self.aa.dead_letters, event, exc, COMPONENT, self.metrics.dead_letters, self.rlog)


def register(aa: AutopilotApp, pilot: Pilot, cycle_s: float, tasks: TaskHealth) -> None:
    """Attach the input agents, the tick agent and the cycle timer; a crash of any fails ``tasks``."""

    def agent(topic: faust.TopicT, name: str, handle: Callable[[Any], None]) -> None:
        @aa.app.agent(topic, name=name)
        @tasks.guard(name)
        async def _agent(stream: Any) -> None:
            async for event in stream.events():
                try:
                    handle(event)
                except Exception as exc:  # noqa: BLE001 - poison or bug: dead-letter, keep going
                    await pilot.dead_letter(event, exc)

    agent(aa.inventory, "ap-inventory", lambda e: pilot.on_inventory((e.key or b"").decode(), e.value, e.headers))
    agent(aa.routes, "ap-routes", lambda e: pilot.on_route((e.key or b"").decode(), e.value, e.headers))
    agent(aa.link_stats, "ap-link-stats", lambda e: pilot.on_stats(e.value, e.headers))
    agent(aa.aggregates, "ap-aggregates", lambda e: pilot.on_aggregates(e.value, e.headers))

    @aa.app.agent(aa.ticks, name="ap-cycle")
    @tasks.guard("ap-cycle")
    async def cycle(stream: Any) -> None:
        async for event in stream.events():
            await pilot.cycle(event.message.partition)

    ticking: set[int] = set()  # partitions of the ticks topic this worker had before a rebalance

    @aa.app.on_partitions_assigned.connect
    async def _assigned(_sender: Any, /, *args: Any, signal: Any, **_kwargs: Any) -> None:
        # The next cycle (ticks wait for the tables' recovery) rebuilds the inputs. The PoPs
        # taken over from a dead worker get a tick now rather than at the next timer, so
        # they miss at most one cycle (the session timeout is shorter than a period).
        pilot.loaded = False
        name = aa.ticks.get_topic_name()
        assigned = args[0] if args else ()  # faust sends the set of assigned TopicPartitions
        now = {tp.partition for tp in assigned if tp.topic == name}
        for partition in sorted(now - ticking):
            await aa.ticks.send(key=b"tick", value=str(pilot.clock()).encode(), partition=partition)
        ticking.clear()
        ticking.update(now)

    @aa.app.timer(interval=cycle_s)
    @tasks.guard("ap-tick")
    async def tick() -> None:
        for tp in aa.app.assignor.assigned_actives():
            if tp.topic == aa.ticks.get_topic_name():
                await aa.ticks.send(key=b"tick", value=str(pilot.clock()).encode(), partition=tp.partition)
                pilot.ticks_sent()


def _json(value: bytes | None) -> dict[str, Any] | None:
    import json

    return None if value is None else json.loads(value)


def _dumps(obj: object) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":")).encode()
