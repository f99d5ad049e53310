"""The Prometheus exporter as a Service: Kafka -> ExporterState -> LinkCollector on /metrics.

It is a projection, not a sink with offsets: each instance reads its topics from the
beginning under its own consumer group and never commits, so every replica (and every
restart) rebuilds the full picture from the compacted inventory/recommendation/applied
topics and the retained utilisation and cycle topics.
"""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.kafka.consumer import BatchConsumer, position
from netpilot.kafka.deadletters import DeadLetterPublisher, reason_for
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.http import MetricsServer
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.intake import Intake
from netpilot.wire.links import LinkInventory, LinkUtilisation
from sinks.lag import EVERY_S as LAG_EVERY_S
from sinks.lag import local_lag
from sinks.prometheus.collector import LinkCollector
from sinks.prometheus.metrics import exporter_metrics
from sinks.prometheus.settings import PrometheusSinkSettings
from sinks.prometheus.state import ExporterState

log = get_logger("netpilot.sink.prometheus")
TOPICS = (
    catalog.LINK_UTILISATION,
    catalog.LINK_INVENTORY,
    catalog.RECOMMENDATIONS,
    catalog.CYCLE_SUMMARIES,
    catalog.APPLIED_OVERRIDES,
)


class PrometheusSinkService:
    name = "sink-prometheus"

    def __init__(self, settings: PrometheusSinkSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.state = ExporterState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._server: MetricsServer | None = None
        self._consumer: BatchConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.url: str | None = None

    def start(self) -> None:
        s = self.settings
        self._metrics = exporter_metrics(self.registry)
        self.registry.register(LinkCollector(self.state, s.stale_after_s))
        self._ids = {s.kafka.topic(t): t.id for t in TOPICS}
        self._producer = KafkaProducer(s.kafka)
        self._dlq = DeadLetterPublisher(self._producer, "sink-prometheus")
        self._intake = Intake(s.wire)
        self._rl = RateLimitedLog(log)
        self._consumer = BatchConsumer(s.kafka, f"{s.group_id}-{uuid.uuid4().hex[:8]}", list(self._ids))
        self._server = MetricsServer(self.registry, s.metrics.listen, self.health).start()
        self.url = self._server.url
        self._thread = threading.Thread(target=self._run, name="sink-prometheus", daemon=True)
        self._thread.start()
        log.info("exporting", url=f"{self.url}/metrics", topics=sorted(self._ids))

    def _run(self) -> None:
        assert self._consumer is not None
        try:
            last_lag = 0.0
            while not self._stop.is_set():
                msgs = self._consumer.poll_batch(self.settings.poll_max_messages, 0.5)
                if time.monotonic() - last_lag > LAG_EVERY_S:
                    last_lag = time.monotonic()
                    for tid, n in local_lag(self._consumer, self._ids).items():
                        self._metrics.consumer_lag.labels(tid).set(n)
                if not msgs:
                    continue
                t0 = time.perf_counter()
                for msg in msgs:
                    self._apply(msg)
                self._metrics.batch_seconds.observe(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - recorded; health() stops the process
            self._failure = f"{type(exc).__name__}: {exc}"
            log.error("exporter failed", error=self._failure)

    def _apply(self, msg: Message) -> None:
        topic_id = self._ids[position(msg)[0]]
        key = (msg.key() or b"").decode(errors="replace")
        value, headers = msg.value(), msg.headers()
        model = self._intake.model  # decode + schema header + timestamps (netpilot.wire.intake)
        try:
            if topic_id == catalog.LINK_UTILISATION.id:
                self.state.apply_utilisation(model(LinkUtilisation, value, headers), time.time())
            elif topic_id == catalog.LINK_INVENTORY.id:
                self.state.apply_inventory(key, None if value is None else model(LinkInventory, value, headers))
            elif topic_id == catalog.RECOMMENDATIONS.id:
                self.state.apply_recommendation(key, None if value is None else model(Recommendation, value, headers))
            elif topic_id == catalog.APPLIED_OVERRIDES.id:
                self.state.apply_applied(key, None if value is None else model(AppliedOverride, value, headers))
            else:
                self.state.apply_cycle(model(CycleSummary, value, headers))
        except WireError as exc:
            reason = reason_for(exc)
            self._dlq.send(msg, exc, reason)
            self._metrics.errors.labels(reason).inc()
            self._metrics.dead_letters.labels(reason).inc()
            self._rl.warning(
                reason, "message sent to dead letters", topic=msg.topic(), offset=msg.offset(), error=str(exc)[:300]
            )
            return
        self._metrics.messages.labels(topic_id).inc()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
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
