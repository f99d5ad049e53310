"""The BMP collector as a Service: routers' BMP in, route/1 records (and tombstones) out.

``start`` loads the inventory, reads the routes topic's current state (so a restart diffs
against what is published instead of re-announcing or withdrawing it), then runs the
listener on its own event-loop thread. A failed delivery to Kafka fails ``health()``: the
in-memory view of the topic would be wrong, so the process must restart and re-read it.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.compacted import read_compacted
from netpilot.kafka.partitioning import partition_for
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.loopthread import LoopThread
from netpilot.obs.logging import get_logger
from netpilot.wire.routes import Route
from producers.inventory.load import Inventory, load_inventory
from producers.inventory.watch import InventoryWatcher, file_digest
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.metrics import BmpMetrics
from producers.routes.bmp.rib import Change, RibState
from producers.routes.bmp.server import BmpCollector, Publish
from producers.routes.bmp.settings import BmpSettings

log = get_logger("netpilot.bmp")


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
        # ready once the listener is bound (serve's callback), not merely when the loop runs
        self._thread = LoopThread("BMP listener", self._main, ready_when_running=False)
        self._watcher = InventoryWatcher(settings.inventory, settings.inventory_check_s, self.metrics.inventory_errors)

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
        self._thread.start()

    async def _main(self) -> None:
        assert self.collector is not None
        watcher = asyncio.create_task(self._watch_inventory())
        try:
            await self.collector.serve(ready=lambda _port: self._thread.ready.set())
        finally:
            watcher.cancel()
            await self.collector.close()

    async def _watch_inventory(self) -> None:
        """Take a changed, valid inventory into use; a broken edit keeps the previous one."""
        if self._inventory is not None:
            return  # given, not read from a file: nothing to watch
        digest = file_digest(self.settings.inventory)
        while True:
            inventory, digest = await self._watcher.next(digest)
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
        self._thread.stop()
        if self._producer is not None:
            self._producer.close()

    def health(self) -> tuple[bool, str]:
        if self._thread.crash:
            return False, self._thread.crash
        if self._thread.ended:
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
        if self._watcher.rejected:
            notes.append(f"inventory change rejected: {self._watcher.rejected.splitlines()[0]}")
        return True, "; ".join(notes) or "ok"
