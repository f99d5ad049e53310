"""The ClickHouse sink as a Service: inert constructor, start/stop/health."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer, ConsumerOptions
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.http import MetricsServer
from netpilot.obs.logging import get_logger
from sinks.clickhouse import schema
from sinks.clickhouse.client import ClickHouseClient, describe_dsn
from sinks.clickhouse.metrics import sink_metrics
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.query_http import QueryServer
from sinks.clickhouse.settings import ClickHouseSinkSettings
from sinks.clickhouse.sink import ClickHouseSink, Stopping

log = get_logger("netpilot.sink.clickhouse")


class ClickHouseSinkService:
    name = "sink-clickhouse"

    def __init__(self, settings: ClickHouseSinkSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._client: ClickHouseClient | None = None
        self._consumer: BatchConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._servers: list[MetricsServer | QueryServer] = []
        self.metrics_url: str | None = None
        self.query_url: str | None = None

    def start(self) -> None:
        s = self.settings
        dsn = s.dsn.get_secret_value()
        self._client = ClickHouseClient(dsn)
        if s.migrate_on_start:
            report = migrate(self._client, s.database, s.retention, s.dedup_window)
            log.info("migrations", applied=list(report.applied), clickhouse=describe_dsn(dsn))
        tables = schema.by_topic(s.retention)
        ids = [i for i in s.topics if i in tables]
        topic_ids = {s.kafka.topic(catalog.BY_ID[i]): i for i in ids}
        metrics = sink_metrics(self.registry)
        self._producer = KafkaProducer(s.kafka)
        sink_ref: list[ClickHouseSink] = []
        self._consumer = BatchConsumer(
            s.kafka,
            s.group_id,
            list(topic_ids),
            ConsumerOptions(group_instance_id=s.group_instance_id),
            on_revoke=lambda _c, parts: sink_ref[0].on_revoke(parts) if sink_ref else None,
        )
        sink = ClickHouseSink(
            s,
            self._consumer,
            self._client,
            self._producer,
            metrics,
            topic_ids,
            {i: f"{s.database}.{tables[i].name}" for i in ids},
            should_stop=self._stop.is_set,
        )
        sink_ref.append(sink)
        if s.metrics.enabled:
            ms = MetricsServer(self.registry, s.metrics.listen, self.health).start()
            self._servers.append(ms)
            self.metrics_url = ms.url
        if s.query_listen:
            qs = QueryServer(self._client, s.query_listen).start()
            self._servers.append(qs)
            self.query_url = qs.url
        self._thread = threading.Thread(target=self._run, args=(sink,), name="sink-clickhouse")
        self._thread.start()
        log.info("consuming", topics=sorted(topic_ids), metrics=self.metrics_url, query=self.query_url)

    def _run(self, sink: ClickHouseSink) -> None:
        try:
            while not self._stop.is_set():
                sink.step()
            sink.flush_all()  # graceful stop: what is buffered goes in now
        except Stopping:
            log.info("stopped while ClickHouse was unavailable; open batches replay on restart")
        except Exception as exc:  # noqa: BLE001 - recorded; health() stops the process
            self._failure = f"{type(exc).__name__}: {exc}"
            log.error("sink failed", error=self._failure)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        for srv in reversed(self._servers):
            srv.stop()
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.close(timeout=10)
        if self._client is not None:
            self._client.close()

    def health(self) -> tuple[bool, str]:
        if self._failure:
            return False, self._failure
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return False, "consumer thread ended"
        return True, "ok"
