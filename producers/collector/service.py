"""The running collector: receive -> decode -> enrich -> publish, one worker thread.

``__init__`` is inert; ``start()`` loads the inventory, creates the producer, loads
templates from Kafka, binds the UDP sockets and starts the worker. The worker takes
datagrams off the bounded queue in passes bounded by count and time, decodes each pass in
one go (templates grouped, numpy), enriches, publishes one message per PoP and updates
metrics once per pass.
"""

from __future__ import annotations

import queue
import threading
import time

from prometheus_client import CollectorRegistry

from netpilot.kafka.deadletters import DeadLetterPublisher
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.wire.flows import addr_to_str, str_to_addr
from netpilot.wire.intake import Intake
from netpilot.wire.links import LinkStats
from producers.collector import template_sync
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.result import DecodeResult, TemplateEvent
from producers.collector.enrich import Enricher
from producers.collector.inventory import load_inventory
from producers.collector.metrics import CollectorMetrics
from producers.collector.publish import Publisher
from producers.collector.receive import Datagram, UdpReceiver
from producers.collector.settings import CollectorSettings

log = get_logger("netpilot.collector")


class CollectorService:
    name = "collector"

    def __init__(self, settings: CollectorSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = CollectorMetrics.create(self.registry)
        self.receivers: list[UdpReceiver] = []
        self._queue: queue.Queue[Datagram] = queue.Queue(settings.queue_datagrams)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._error: str | None = None
        self._mute = RateLimitedLog(log)
        self.producer: KafkaProducer | None = None
        self._kernel_drops_seen: dict[int, int] = {}
        self.follower: template_sync.TemplateFollower | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        inventory = load_inventory(s.inventory_file, s.routes_file)
        self.enricher = Enricher(inventory, s.demand_prefix_len_v4, s.demand_prefix_len_v6)
        allowed = {r.exporter_addr for _, r in inventory.routers()}
        allowed |= {str_to_addr(a) for a in s.allowed_exporters}
        self.decoder = Decoder(
            DecoderOptions(
                default_sampling_rate=s.default_sampling_rate,
                sampling_rate_by_exporter=self.enricher.sampling_defaults,
                max_templates=s.max_templates,
                max_templates_per_domain=s.max_templates_per_domain,
                pending_age_ms=s.pending_age_ms,
                template_scope=s.template_scope,
                bounds=s.plausibility.bounds(),
            )
        )
        self.producer = KafkaProducer(s.kafka, ProducerOptions(compression="none"))
        self.publisher = Publisher(s.kafka, self.producer, s.max_flows_per_message)
        self._learned_at = template_sync.LearnedAt(2 * s.max_templates)
        if s.load_templates or s.follow_templates:
            self._start_templates()
        self.metrics.templates.set(self.decoder.template_count())
        accept_all = s.accept_unknown_exporters
        check = (lambda _e: True) if accept_all else allowed.__contains__
        ports = [s.netflow_port] + ([s.sflow_port] if s.sflow_port != s.netflow_port or s.sflow_port == 0 else [])
        for port in ports:
            r = UdpReceiver(s.listen_address, port, self._queue, s.receive_buffer_bytes, check, s.reuse_port)
            r.start()
            self.receivers.append(r)
            if r.rcvbuf < s.receive_buffer_bytes:
                log.warning(
                    "receive buffer capped",
                    port=r.port,
                    requested=s.receive_buffer_bytes,
                    got=r.rcvbuf,
                    fix="raise net.core.rmem_max or run with CAP_NET_ADMIN",
                )
        self._worker = threading.Thread(target=self._run, name="collector-worker", daemon=True)
        self._worker.start()
        log.info("collector listening", ports=[r.port for r in self.receivers], exporters=len(allowed))

    def _start_templates(self) -> None:
        """Read the templates topic to its end (installing what it holds when
        ``load_templates``), then keep following it when ``follow_templates``."""
        s = self.settings
        assert self.producer is not None
        follower = template_sync.TemplateFollower(
            s.kafka, Intake(s.wire), DeadLetterPublisher(self.producer, "collector")
        )
        latest = follower.load()
        loaded = 0
        if s.load_templates:
            for rec in latest.values():
                if rec.template is not None and template_sync.install(self.decoder, rec.template):
                    loaded += 1
                    self._learned_at.note(rec.key, rec.at)
            log.info("templates loaded", loaded=loaded, skipped=len(latest) - loaded + follower.skipped)
        if s.follow_templates:
            follower.follow()
            self.follower = follower
        else:
            follower.close()

    def _shared_templates(self) -> list[TemplateEvent]:
        """What other collectors learned since the last pass, newer than what we know."""
        if self.follower is None:
            return []
        events: list[TemplateEvent] = []
        counts = self.metrics.template_events
        for rec in self.follower.take():
            if not self._learned_at.newer(rec.key, rec.at):
                counts.labels("stale").inc()  # our own, or an older copy than we learned since
                continue
            try:
                events.extend(template_sync.as_events(rec))
            except ValueError as exc:
                counts.labels("invalid").inc()
                self._mute.warning("stored-template", "stored template refused", template=rec.key, error=str(exc))
                continue
            self._learned_at.note(rec.key, rec.at)
            counts.labels("shared").inc()
        return events

    def stop(self) -> None:
        for r in self.receivers:
            r.stop()
        self._stop.set()
        if self._worker is not None:
            self._worker.join(30)
        if self.follower is not None:
            self.follower.close()
        if self.producer is not None:
            self.producer.flush(30)

    def health(self) -> tuple[bool, str]:
        if self._error:
            return False, self._error
        for r in self.receivers:
            if r.error:
                return False, f"receiver: {r.error}"
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            return False, "worker thread died"
        if self.follower is not None and not self._stop.is_set():
            if self.follower.error:
                return False, f"template follower: {self.follower.error}"
            if not self.follower.alive():
                return False, "template follower thread died"
        return True, "ok"

    # -- the loop ------------------------------------------------------------------------
    def _take(self) -> list[Datagram]:
        s = self.settings
        batch: list[Datagram] = []
        deadline = time.monotonic() + s.batch_max_ms / 1000
        while len(batch) < s.batch_max_datagrams:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(left, 0.05)))
            except queue.Empty:
                if self._stop.is_set():
                    break
        return batch

    def _run(self) -> None:
        try:
            while not (self._stop.is_set() and self._queue.empty()):
                batch = self._take()
                self.process(batch)
            self._count(self.decoder.flush())  # data still waiting for a template is lost: count it
        except Exception as exc:  # noqa: BLE001 - reported through health(); lifecycle stops us
            self._error = f"{type(exc).__name__}: {exc}"
            log.error("collector worker failed", error=self._error)

    def process(self, batch: list[Datagram]) -> None:
        """One pass: decode, enrich, publish, count. Also runs with an empty batch (expiry)."""
        m = self.metrics
        t0 = time.perf_counter()
        now = time.time()
        result = self.decoder.decode(batch, now_ms=int(now * 1000), learned=self._shared_templates())
        if result.n:
            enriched = self.enricher.enrich(result.columns)
            table = result.table(enriched.columns)
            msgs, size = self.publisher.flows(table, enriched.pop_index, self.enricher.pops)
            m.messages_published.labels("flows").inc(msgs)
            m.bytes_published.labels("flows").inc(size)
            m.link_unknown.inc(enriched.link_unknown)
            m.prefix_unknown.inc(enriched.prefix_unknown)
        if self.settings.publish_raw_datagrams and batch:
            m.messages_published.labels("raw").inc(self.publisher.raw(batch))
        if result.template_events:
            template_sync.publish(self.producer, self.settings.kafka, result.template_events, now)  # type: ignore[arg-type]
            for e in result.template_events:
                self._learned_at.note(template_sync.event_key(e), now)
        if result.link_stats and self.settings.publish_link_stats:
            m.messages_published.labels("link_stats").inc(self.publisher.link_stats(self._stats(result)))
        m.decode_seconds.observe(time.perf_counter() - t0)
        self._count(result)

    def _stats(self, result: DecodeResult) -> list[LinkStats]:
        """sFlow counter samples get the PoP and router of their agent (the exporter)."""
        out = []
        for stats, exporter in zip(result.link_stats, result.link_stats_exporters):
            where = self.enricher.locate(exporter)
            if where is not None:
                out.append(stats.model_copy(update={"pop": where[0], "router": where[1]}))
        return out

    def _count(self, result: DecodeResult) -> None:
        m = self.metrics
        for (exporter, proto), n in result.datagrams.items():
            m.datagrams.labels(addr_to_str(exporter), proto).inc(n)
        for (exporter, proto), n in result.flows.items():
            m.flows.labels(addr_to_str(exporter), proto).inc(n)
        for reason, n in result.drops.items():
            m.drops.labels(reason).inc(n)
        for msg in result.errors[:3]:
            self._mute.warning("decode", "dropped bad input", error=msg)
        for reason, example in result.refused.items():
            self._mute.warning(
                f"refused:{reason}",
                "refused implausible flows",
                reason=reason,
                flows=result.drops[reason],
                first=example,
            )
        m.sampling_unknown.inc(result.sampling_unknown)
        for e in result.template_events:
            m.template_events.labels("withdrawn" if e.definition is None else "learned").inc()
        m.templates.set(self.decoder.template_count())
        for r in self.receivers:
            received, denied, dropped = r.take_counts()
            for exporter, n in received.items():
                m.received.labels(addr_to_str(exporter)).inc(n)
            m.denied.inc(denied)
            m.queue_dropped.inc(dropped)
            kernel = r.kernel_drops()
            seen = self._kernel_drops_seen.get(r.port, 0)
            if kernel > seen:
                m.socket_dropped.inc(kernel - seen)
                self._kernel_drops_seen[r.port] = kernel
        m.queue_depth.set(self._queue.qsize())
        if self.producer is not None:
            failed = self.producer.stats.failed
            if failed > self._failed_seen:
                m.delivery_errors.inc(failed - self._failed_seen)
                self._failed_seen = failed

    _failed_seen = 0

    @property
    def ports(self) -> list[int]:
        return [r.port for r in self.receivers]
