"""The injector as a Service: Kafka -> desired overrides -> ExaBGP -> routers -> read-back.

One thread does everything in turn, so the state needs no locks: apply what Kafka brought,
reconcile (every ``reconcile_every_s``), read the routers back and publish what they hold
(every ``readback_every_s``). Like the Prometheus exporter it is a projection: it reads its
compacted inputs from the beginning under a fresh group and never commits, so a restart
rebuilds the same desired set and announces it once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.kafka.consumer import BatchConsumer, position
from netpilot.kafka.deadletters import DeadLetterPublisher, reason_for
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.http import MetricsServer
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.rib import RibReader, RibReadError, RibRoute, normal_prefix, rib_reader
from netpilot.wire.autopilot import Recommendation
from netpilot.wire.injector import AppliedOverride, InjectorControl
from netpilot.wire.intake import Intake
from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route
from sinks.bgp.desired import SKIPS, DesiredState, DesiredView, Network, Reconciler, Rules, desired_overrides
from sinks.bgp.metrics import injector_metrics
from sinks.bgp.settings import InjectorSettings
from sinks.bgp.speaker import ExaBGPSpeaker, Session, SpeakerError

log = get_logger("netpilot.injector")
TOPICS = (catalog.RECOMMENDATIONS, catalog.LINK_INVENTORY, catalog.ROUTES, catalog.INJECTOR_CONTROL)


def _watermarks(raw: object, tp: TopicPartition, timeout: float = 15.0) -> tuple[int, int]:
    """Watermarks, retried: right after a topic is created or a broker restarts, the
    partition's leader is not known yet (retriable); after ``timeout``, (0, 0): do not wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return raw.get_watermark_offsets(tp, timeout=5, cached=False)  # type: ignore[attr-defined]
        except KafkaException as exc:
            if time.monotonic() > deadline:
                log.warning(
                    "no watermarks; not waiting for this partition",
                    topic=tp.topic,
                    partition=tp.partition,
                    error=str(exc),
                )
                return 0, 0
            time.sleep(0.2)


@dataclass
class _Confirmed:
    msg: AppliedOverride
    published_at: float


class InjectorService:
    name = "injector"

    def __init__(self, settings: InjectorSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.state = DesiredState()
        self.net = Network()
        s = settings
        self.rules = Rules(
            max_prefix_len_v4=s.max_prefix_len_v4,
            max_prefix_len_v6=s.max_prefix_len_v6,
            allowed_prefixes=s.allowed_prefixes,
            deny_prefixes=s.deny_prefixes,
            max_active_per_pop=s.max_active_per_pop,
        )
        self.reconciler = Reconciler(s.max_announces_per_cycle, s.cycle_s)
        self.view: DesiredView | None = None
        self.caught_up = False
        self.url: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._server: MetricsServer | None = None
        self._consumer: BatchConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._speaker: ExaBGPSpeaker | None = None
        self._rec_msgs: dict[tuple[str, str], Message] = {}
        self._refused_ids: set[str] = set()
        self._logged_observe: set[tuple[str, str, str]] = set()
        self._confirmed: dict[tuple[str, str], _Confirmed] = {}
        self._ribs: dict[str, RibReader] = {r: rib_reader(c.rib.kind, c.rib.socket) for r, c in s.routers.items()}
        self._ends: dict[tuple[str, int], int] = {}
        self._started = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        self._metrics = injector_metrics(self.registry)
        self._ids = {s.kafka.topic(t): t.id for t in TOPICS}
        self._producer = KafkaProducer(s.kafka)
        self._dlq = DeadLetterPublisher(self._producer, "injector")
        self._intake = Intake(s.wire)
        self._rl = RateLimitedLog(log)
        self._applied_topic = s.kafka.topic(catalog.APPLIED_OVERRIDES)
        self._consumer = BatchConsumer(s.kafka, f"{s.group_id}-{uuid.uuid4().hex[:8]}", list(self._ids))
        self._ends = self._end_offsets()
        self._started = time.monotonic()
        if s.mode != "observe" and s.routers:
            sessions = {
                r: Session(r, c.neighbor, c.port, c.peer_as or s.local_as, c.local_address)
                for r, c in s.routers.items()
            }
            # started here, on the main thread: ExaBGP's PDEATHSIG follows the thread that forked it
            self._speaker = ExaBGPSpeaker(
                s.run_dir, sessions, s.local_as, s.router_id, s.hold_time_s, netns=s.exabgp_netns
            )
            self._speaker.start()
        self._server = MetricsServer(self.registry, s.metrics.listen, self.health).start()
        self.url = self._server.url
        self._thread = threading.Thread(target=self._run, name="injector", daemon=True)
        self._thread.start()
        log.info("injector running", mode=s.mode, routers=sorted(s.routers), url=f"{self.url}/metrics")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._speaker is not None:
            self._speaker.stop()  # the sessions close: the routers drop every injected route
        if self._server is not None:
            self._server.stop()
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.close(timeout=10)

    def health(self) -> tuple[bool, str]:
        if self._failure:
            return False, self._failure
        return True, "ok"

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        assert self._consumer is not None
        next_reconcile = next_readback = 0.0
        try:
            while not self._stop.is_set():
                for msg in self._consumer.poll_batch(1000, min(0.1, self.settings.reconcile_every_s)):
                    self._apply(msg)
                if not self.caught_up:
                    self.caught_up = self._check_caught_up()
                    if not self.caught_up:
                        continue
                now = time.monotonic()
                if now >= next_reconcile:
                    next_reconcile = now + self.settings.reconcile_every_s
                    self._reconcile()
                if now >= next_readback:
                    next_readback = now + self.settings.readback_every_s
                    self._readback()
        except Exception as exc:  # noqa: BLE001 - recorded; health() stops the process
            self._failure = f"{type(exc).__name__}: {exc}"
            log.error("injector failed", error=self._failure)

    def _end_offsets(self) -> dict[tuple[str, int], int]:
        """Where each input partition ended at start: reconciling before reaching it could
        withdraw an override whose recommendation just was not read yet."""
        assert self._consumer is not None
        raw = self._consumer.raw
        ends: dict[tuple[str, int], int] = {}
        for topic in self._ids:
            md = raw.list_topics(topic, timeout=10).topics.get(topic)
            for p in md.partitions if md is not None and md.error is None else {}:
                lo, hi = _watermarks(raw, TopicPartition(topic, p))
                if hi > lo:
                    ends[(topic, p)] = hi
        return ends

    def _check_caught_up(self) -> bool:
        assert self._consumer is not None
        if not self._ends:
            return True
        assigned = self._consumer.assignment()
        if assigned:
            for tp in self._consumer.raw.position(assigned):
                if tp.offset >= 0 and tp.offset >= self._ends.get((tp.topic, tp.partition), 0):
                    self._ends.pop((tp.topic, tp.partition), None)
        if not self._ends:
            log.info(
                "inputs read",
                seconds=round(time.monotonic() - self._started, 2),
                recommendations=len(self.state.recs),
                links=len(self.net.links),
            )
            return True
        if time.monotonic() - self._started > self.settings.catch_up_timeout_s:
            log.warning(
                "inputs not fully read in time; reconciling with what is known",
                unread=sorted(f"{t}[{p}]" for t, p in self._ends),
            )
            return True
        return False

    def _apply(self, msg: Message) -> None:
        topic_id = self._ids[position(msg)[0]]
        key = (msg.key() or b"").decode(errors="replace")
        value, headers = msg.value(), msg.headers()
        model = self._intake.model  # decode + schema header + timestamps (netpilot.wire.intake)
        try:
            if topic_id == catalog.RECOMMENDATIONS.id:
                rec = None if value is None else model(Recommendation, value, headers)
                self.state.apply_recommendation(key, rec)
                if rec is not None:
                    self._rec_msgs[(rec.pop, rec.prefix)] = msg
            elif topic_id == catalog.LINK_INVENTORY.id:
                self.net.apply_inventory(key, None if value is None else model(LinkInventory, value, headers))
            elif topic_id == catalog.ROUTES.id:
                self.net.apply_route(key, None if value is None else model(Route, value, headers))
            else:
                self.state.apply_control(None if value is None else model(InjectorControl, value, headers), key)
        except WireError as exc:
            self._dead_letter(msg, exc, reason_for(exc))
            return
        self._metrics.messages.labels(topic_id).inc()

    def _dead_letter(self, msg: Message, exc: BaseException | str, reason: str) -> None:
        self._dlq.send(msg, exc, reason)
        self._metrics.dead_letters.labels(reason).inc()
        self._rl.warning(
            reason, "message sent to dead letters", topic=msg.topic(), offset=msg.offset(), error=str(exc)[:300]
        )

    # -- reconcile ------------------------------------------------------------------------
    def _routers_of(self) -> dict[str, list[str]]:
        """Per PoP, its inventory routers that have a session (a router without one is logged)."""
        out: dict[str, list[str]] = {}
        for pop in {p for p, _ in self.net.links}:
            routers = self.net.routers(pop)
            out[pop] = [r for r in routers if r in self.settings.routers]
        return out

    def _reconcile(self) -> None:
        t0 = time.perf_counter()
        now = time.time()
        s = self.settings
        view = desired_overrides(self.state, self.net, self.rules, s.mode, now, self.reconciler.announced_keys())
        self.view = view
        for rec, why in view.refused:
            if rec.id in self._refused_ids:
                continue
            self._refused_ids.add(rec.id)
            self._metrics.refused.labels(why.reason).inc()
            msg = self._rec_msgs.get((rec.pop, rec.prefix))
            if msg is not None:
                self._dead_letter(msg, f"refused: {why.detail}", why.reason)
            log.warning(
                "recommendation refused",
                reason=why.reason,
                detail=why.detail,
                pop=rec.pop,
                prefix=rec.prefix,
                id=rec.id,
            )
        pops = {p for p, _ in self.net.links} | set(view.overrides)
        skipped: Counter[tuple[str, str]] = view.skipped
        for pop in pops:
            self._metrics.desired.labels(pop).set(len(view.overrides.get(pop, {})))
        if s.mode == "observe" or self._speaker is None:
            for pop, ovs in view.overrides.items():
                for ov in ovs.values():
                    k = (pop, ov.prefix, ov.next_hop)
                    if k not in self._logged_observe:
                        self._logged_observe.add(k)
                        log.info(
                            "observe: would announce", pop=pop, prefix=ov.prefix, link=ov.link_id, next_hop=ov.next_hop
                        )
            self._set_skips(pops, skipped, Counter())
            return
        if not self._speaker.alive():
            self._metrics.speaker_restarts.inc()
            log.warning("exabgp died; restarting it and announcing the desired set again")
            self._speaker.stop()
            try:
                self._speaker.start()
            except SpeakerError as exc:
                self._rl.warning("speaker", "exabgp restart failed; retrying", error=str(exc))
                return
            self.reconciler.forget()
        step = self.reconciler.plan(view.overrides, self._routers_of(), now)
        lines = [self._speaker.withdraw_line(r, prefix) for r, _pop, prefix in step.withdraw]
        lines += [
            self._speaker.announce_line(r, ov.prefix, ov.next_hop, s.local_pref, s.communities())
            for r, ov in step.announce
        ]
        try:
            self._speaker.send(lines)
        except SpeakerError as exc:
            self._rl.warning("speaker", "exabgp unreachable; will restart", error=str(exc))
            return
        self.reconciler.done(step)
        for r, pop, prefix in step.withdraw:
            self._metrics.withdraws.labels(pop).inc()
            log.info("withdrawn", router=r, pop=pop, prefix=prefix)
        for r, ov in step.announce:
            self._metrics.announces.labels(ov.pop).inc()
            log.info(
                "announced",
                router=r,
                pop=ov.pop,
                prefix=ov.prefix,
                link=ov.link_id,
                next_hop=ov.next_hop,
                rec=ov.rec_id,
            )
        announced: Counter[str] = Counter(pop for pop, _ in self.reconciler.announced_keys())
        for pop in pops:
            self._metrics.announced.labels(pop).set(announced.get(pop, 0))
        for router in s.routers:
            self._metrics.session_up.labels(router).set(int(self._speaker.session_up(router)))
        self._set_skips(pops, skipped, step.deferred)
        self._metrics.reconcile_seconds.observe(time.perf_counter() - t0)

    def _set_skips(self, pops: set[str], skipped: Counter[tuple[str, str]], deferred: Counter[str]) -> None:
        for pop in pops:
            for why in SKIPS:
                n = deferred.get(pop, 0) if why == "rate-limited" else skipped.get((pop, why), 0)
                self._metrics.skipped.labels(pop, why).set(n)

    # -- read-back ------------------------------------------------------------------------
    def _readback(self) -> None:
        """Ask each router what it holds with our community; publish the difference."""
        assert self._producer is not None
        now = time.time()
        seen: dict[tuple[str, str], tuple[RibRoute, list[str]]] = {}
        failed_pops: set[str] = set()
        routers_of = self._routers_of()
        pop_of = {r: p for p, rs in routers_of.items() for r in rs}
        for router, reader in self._ribs.items():
            pop = pop_of.get(router)
            if pop is None:
                continue
            try:
                routes = reader.routes(self.settings.community)
            except RibReadError as exc:
                failed_pops.add(pop)  # unknown is not absent: keep what was confirmed
                self._metrics.readback_errors.labels(router).inc()
                self._rl.warning(f"rib-{router}", "router read-back failed", router=router, error=str(exc))
                continue
            for rt in routes:
                if not rt.best or rt.next_hop is None:
                    continue
                k = (pop, normal_prefix(rt.prefix))
                if k in seen:
                    seen[k][1].append(router)
                else:
                    seen[k] = (rt, [router])
        confirmed: Counter[str] = Counter()
        for (pop, prefix), (rt, routers) in seen.items():
            confirmed[pop] += 1
            prev = self._confirmed.get((pop, prefix))
            rec = self.state.recs.get((pop, prefix))
            msg = AppliedOverride(
                pop=pop,
                prefix=prefix,
                link_id=self.net.link_for_next_hop(pop, rt.next_hop),
                next_hop=rt.next_hop or "",
                routers=tuple(sorted(routers)),
                local_pref=rt.local_pref,
                communities=rt.communities,
                recommendation_id=rec.id if rec else None,
                since=prev.msg.since if prev and prev.msg.next_hop == rt.next_hop else now,
                confirmed_at=now,
            )
            changed = (
                prev is None
                or prev.msg.next_hop != msg.next_hop
                or prev.msg.routers != msg.routers
                or prev.msg.recommendation_id != msg.recommendation_id
            )
            if changed and rec is not None and (prev is None or prev.msg.next_hop != msg.next_hop):
                self._metrics.confirm_seconds.observe(max(0.0, now - rec.generated_at))
            if changed or now - prev.published_at >= self.settings.confirm_refresh_s:  # type: ignore[union-attr]
                self._producer.produce(
                    self._applied_topic,
                    msg.encode(),
                    key=msg.key(),
                    headers=AppliedOverride.headers(),
                    partition_key=pop,
                )
                self._confirmed[(pop, prefix)] = _Confirmed(msg, now)
                if changed:
                    log.info(
                        "confirmed by router",
                        pop=pop,
                        prefix=prefix,
                        next_hop=msg.next_hop,
                        link=msg.link_id,
                        routers=list(msg.routers),
                    )
            else:
                self._confirmed[(pop, prefix)] = _Confirmed(
                    prev.msg.model_copy(update={"confirmed_at": now}),  # type: ignore[union-attr]
                    prev.published_at,  # type: ignore[union-attr]
                )
        for pop, prefix in list(self._confirmed):
            if (pop, prefix) not in seen and pop not in failed_pops:
                self._producer.produce(self._applied_topic, None, key=f"{pop}|{prefix}", partition_key=pop)
                del self._confirmed[(pop, prefix)]
                log.info("gone from the routers", pop=pop, prefix=prefix)
        for pop in {p for p, _ in self.net.links}:
            self._metrics.confirmed.labels(pop).set(confirmed.get(pop, 0))
        self._producer.poll(0)

    # -- for the CLI and tests ------------------------------------------------------------
    def confirmed(self) -> dict[tuple[str, str], AppliedOverride]:
        return {k: c.msg for k, c in self._confirmed.items()}
