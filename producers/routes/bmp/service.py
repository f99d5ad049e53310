"""The BMP collector as a Service: routers' BMP in, route/1 records (and tombstones) out.

``start`` loads the inventory, reads the routes topic's current state (so a restart diffs
against what is published instead of re-announcing or withdrawing it), then runs the
listener on its own event-loop thread. A failed delivery to Kafka fails ``health()``: the
in-memory view of the topic would be wrong, so the process must restart and re-read it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.errors import ConfigError
from netpilot.kafka.compacted import read_compacted
from netpilot.kafka.partitioning import partition_for
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs.logging import get_logger
from netpilot.wire.routes import Route
from producers.inventory.load import Inventory, load_inventory
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.metrics import BmpMetrics
from producers.routes.bmp.rib import Change, RibState
from producers.routes.bmp.server import BmpCollector, Publish
from producers.routes.bmp.settings import BmpSettings

log = get_logger("netpilot.bmp")


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class BmpCollectorService:
    name = "bmp-collector"

    def __init__(
        self,
        settings: BmpSettings,
        registry: CollectorRegistry | None = None,
        inventory: Inventory | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = BmpMetrics.create(self.registry)
        self.state = RibState(settings.settle_s, settings.sync_max_s, settings.hold_s)
        self.collector: BmpCollector | None = None
        self._inventory = inventory
        self._publish_override = publish
        self._producer: KafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._crash: str | None = None
        self._reload_error: str | None = None

    @property
    def port(self) -> int | None:
        return self.collector.port if self.collector else None

    def start(self) -> None:
        inventory = self._inventory or load_inventory(self.settings.inventory)
        linkmap = LinkMap.build(inventory.links, self.settings.routers)
        publish = self._publish_override
        if publish is None:
            k = self.settings.kafka
            self._producer = KafkaProducer(k, ProducerOptions(linger_ms=20))
            records = read_compacted(k, k.topic(catalog.ROUTES), timeout=self.settings.startup_timeout_s)
            n = self.state.load_published(records.items())
            log.info("routes topic read", records=n, keys=len(records))
            publish = self._publish
        self.collector = BmpCollector(self.settings, self.state, linkmap, self.metrics, publish)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._crash:
            raise RuntimeError(f"BMP listener did not start: {self._crash or 'timeout'}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self._main())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - surfaced through health()
            self._crash = f"{type(exc).__name__}: {exc}"
            log.error("BMP collector loop died", error=self._crash)
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        assert self.collector is not None
        watcher = asyncio.create_task(self._watch_inventory())
        try:
            await self.collector.serve(ready=lambda _port: self._ready.set())
        finally:
            watcher.cancel()
            await self.collector.close()

    async def _watch_inventory(self) -> None:
        """Take a changed, valid inventory into use; a broken edit keeps the previous one."""
        path = self.settings.inventory
        digest = _digest(path) if self._inventory is None else None
        while self._inventory is None:
            await asyncio.sleep(self.settings.inventory_check_s)
            current = _digest(path)
            if current is None or current == digest:
                continue
            digest = current
            try:
                inventory = load_inventory(path)
            except ConfigError as exc:
                self.metrics.inventory_errors.inc()
                self._reload_error = str(exc)
                log.warning("inventory change rejected; keeping the previous one", error=str(exc).splitlines()[:3])
                continue
            self._reload_error = None
            assert self.collector is not None
            reset = self.collector.set_linkmap(LinkMap.build(inventory.links, self.settings.routers))
            self.metrics.inventory_reloads.inc()
            log.info("inventory changed", links=len(inventory.links), sessions_reset=reset)

    def _publish(self, changes: list[Change]) -> None:
        assert self._producer is not None
        topic = self.settings.kafka.topic(catalog.ROUTES)
        headers = Route.headers()
        partitions = self._partitions
        for c in changes:
            pop = c.link.pop
            p = partitions.get(pop)
            if p is None:
                p = partitions[pop] = partition_for(pop, self._producer.partition_count(topic))
            self._producer.produce(topic, c.value, key=c.key, headers=headers, partition=p)
        self._producer.poll(0)
        self.metrics.publish_failures.set(self._producer.stats.failed)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._producer is not None:
            self._producer.close()

    def health(self) -> tuple[bool, str]:
        if self._crash:
            return False, self._crash
        if self._thread is not None and not self._thread.is_alive():
            return False, "BMP listener stopped"
        if self._producer is not None and self._producer.stats.failed:
            return False, f"routes not delivered to Kafka: {self._producer.stats.last_error}"
        notes = []
        sessions = list(self.state.sessions.items())  # one C call: safe against the loop thread
        syncing = [k for k, s in sessions if s.state == "syncing"]
        down = [k for k, s in sessions if s.state == "down"]
        if syncing:
            notes.append("syncing: " + ", ".join(sorted(syncing)))
        if down:
            notes.append("held (BMP session lost): " + ", ".join(sorted(down)))
        if self._reload_error:
            notes.append(f"inventory change rejected: {self._reload_error.splitlines()[0]}")
        return True, "; ".join(notes) or "ok"
