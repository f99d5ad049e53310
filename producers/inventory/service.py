"""``inventory publish --watch``: re-publish whenever the file changes.

An invalid edit is counted and logged (rate-limited) and the topic keeps the last valid
inventory: a typo must never tombstone every link.
"""

from __future__ import annotations

import hashlib
import threading

from prometheus_client import CollectorRegistry

from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs.logging import RateLimitedLog, get_logger
from producers.inventory.load import InventoryError, load_inventory
from producers.inventory.metrics import InventoryMetrics
from producers.inventory.publish import publish_inventory
from producers.inventory.settings import InventorySettings

log = get_logger("netpilot.inventory")


class InventoryWatcher:
    name = "inventory-watcher"

    def __init__(self, settings: InventorySettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = InventoryMetrics.create(self.registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: KafkaProducer | None = None
        self._last_digest: bytes | None = None
        self._error: str | None = None
        self._limited = RateLimitedLog(log, 60.0)
        self.publishes = 0

    def start(self) -> None:
        self._producer = KafkaProducer(self.settings.kafka, ProducerOptions(linger_ms=5))
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._producer is not None:
            self._producer.close()

    def health(self) -> tuple[bool, str]:
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return False, f"watch loop died: {self._error}"
        return True, self._error or "ok"

    def check_once(self) -> bool:
        """Publish if the file changed since the last successful publish; True if it did."""
        try:
            digest = hashlib.sha256(self.settings.file.read_bytes()).digest()
        except OSError as exc:
            self._error = f"cannot read {self.settings.file}: {exc.strerror}"
            self._limited.warning("unreadable", "inventory file unreadable", error=self._error)
            return False
        if digest == self._last_digest:
            return False
        try:
            inventory = load_inventory(self.settings.file)
        except InventoryError as exc:
            self.metrics.invalid_files.inc()
            self._error = str(exc)
            self._limited.warning(
                "invalid",
                "inventory invalid; keeping the last published one",
                problems=len(exc.issues),
                first=exc.issues[0].describe(),
            )
            self._last_digest = digest  # do not re-count the same broken file every poll
            return False
        assert self._producer is not None
        report = publish_inventory(inventory, self.settings.kafka, self._producer, self.metrics)
        self._last_digest = digest
        self._error = None
        self.publishes += 1
        log.info(
            "inventory published",
            links=len(inventory.links),
            upserted=len(report.upserted),
            tombstoned=len(report.tombstoned),
            unchanged=report.unchanged,
        )
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception as exc:  # noqa: BLE001 - Kafka trouble: report and retry next tick
                self._error = f"{type(exc).__name__}: {exc}"
                self._limited.warning("publish", "inventory publish failed; will retry", error=self._error)
                self._last_digest = None
            self._stop.wait(self.settings.watch_interval_s)
