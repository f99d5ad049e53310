"""The SNMP poller as a Service: inventory + credentials in, link-stats/1 out (keyed by PoP)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.errors import ConfigError
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.loopthread import LoopThread
from netpilot.obs.logging import get_logger
from netpilot.wire.links import LinkStats
from producers.inventory.load import Inventory, RouterTarget, load_inventory
from producers.inventory.model import split_host_port
from producers.inventory.watch import InventoryWatcher, file_digest
from producers.linkstats.metrics import SnmpMetrics
from producers.linkstats.poller import PollScheduler, Schedule
from producers.linkstats.router import RouterPoller
from producers.linkstats.settings import SnmpPollerSettings
from producers.linkstats.snmp import Credentials, SnmpClient

log = get_logger("netpilot.snmp")


def credentials_for(settings: SnmpPollerSettings, name: str, version: str, router: str) -> Credentials:
    # env variables cannot spell '-' and are lowercased: `lab-ro` may arrive as `lab_ro`
    cred = settings.credentials.get(name) or settings.credentials.get(name.lower().replace("-", "_"))
    if cred is None:
        known = ", ".join(sorted(settings.credentials)) or "none configured"
        raise ConfigError(
            f"router {router!r}: snmp credentials {name!r} are not in the poller's "
            f"settings (snmp.credentials; known: {known})"
        )
    if version == "2c":
        if cred.community is None:
            raise ConfigError(f"router {router!r}: credentials {name!r} have no community for SNMPv2c")
        return Credentials("2c", community=cred.community.get_secret_value())
    if cred.user is None or cred.auth_key is None or cred.priv_key is None:
        raise ConfigError(
            f"router {router!r}: credentials {name!r} need user, auth_key and priv_key for SNMPv3 authPriv"
        )
    return Credentials(
        "3",
        user=cred.user,
        auth_protocol=cred.auth_protocol,
        auth_key=cred.auth_key.get_secret_value(),
        priv_protocol=cred.priv_protocol,
        priv_key=cred.priv_key.get_secret_value(),
    )


def build_pollers(settings: SnmpPollerSettings, inventory: Inventory) -> list[RouterPoller]:
    """One RouterPoller per router with an SNMP target; bad credential references raise."""
    out = []
    for r in inventory.routers:
        host, port = split_host_port(r.snmp.target, 161)
        creds = credentials_for(settings, r.snmp.credentials, r.snmp.version, r.router)
        client = SnmpClient(host, port, creds, settings.timeout_s, settings.max_oids_per_request)
        out.append(RouterPoller(r.pop, r.router, r.links, client, settings.rate_slack))
    return out


class SnmpPollerService:
    name = "snmp-poller"

    def __init__(
        self,
        settings: SnmpPollerSettings,
        registry: CollectorRegistry | None = None,
        inventory: Inventory | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = SnmpMetrics.create(self.registry)
        self._inventory = inventory
        self._producer: KafkaProducer | None = None
        self.scheduler: PollScheduler | None = None
        self._pollers: dict[str, RouterPoller] = {}
        self._targets: dict[str, RouterTarget] = {}
        self._thread = LoopThread(self.name, self._main, before_close=self._close_clients)
        self._watcher = InventoryWatcher(
            settings.inventory,
            settings.inventory_check_s,
            self.metrics.inventory_errors,
            validate=self._check_credentials,
            keeping="still polling the previous one",
        )

    def start(self) -> None:
        inventory = self._inventory or load_inventory(self.settings.inventory)
        self._check_credentials(inventory)  # every reference, before touching the network
        self._producer = KafkaProducer(self.settings.kafka, ProducerOptions(linger_ms=20))
        self._inventory = inventory
        self._thread.start()

    def _check_credentials(self, inventory: Inventory) -> None:
        for r in inventory.routers:
            credentials_for(self.settings, r.snmp.credentials, r.snmp.version, r.router)

    def _close_clients(self) -> None:
        for p in self._pollers.values():
            p.client.close()  # cancels pysnmp's timer tasks before the loop goes

    async def _main(self) -> None:
        """Poll the current inventory; when its file changes (and is valid), switch over."""
        assert self._inventory is not None
        inventory, digest = self._inventory, file_digest(self.settings.inventory)
        schedule = Schedule(self.settings.interval_s, self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            self._reconcile(inventory)
            self.scheduler = PollScheduler(list(self._pollers.values()), schedule, self._publish, self.metrics)
            polling = asyncio.create_task(self.scheduler.run())
            watching = asyncio.create_task(self._watcher.next(digest))
            try:
                await asyncio.wait({polling, watching}, return_when=asyncio.FIRST_COMPLETED)
                if polling.done():
                    polling.result()  # re-raise what killed it
                    raise RuntimeError("poll scheduler stopped")
                inventory, digest = watching.result()
            finally:
                for t in (polling, watching):
                    t.cancel()
                await asyncio.gather(polling, watching, return_exceptions=True)
            self.metrics.inventory_reloads.inc()
            log.info("inventory changed; polling the new one", routers=len(inventory.routers))

    def _reconcile(self, inventory: Inventory) -> None:
        """Keep pollers (and their last readings) of routers whose target and links did not
        change, so a reload costs no rate interval for them."""
        wanted = {r.router: r for r in inventory.routers}
        for name in list(self._pollers):
            if self._targets.get(name) != wanted.get(name):
                self._pollers.pop(name).client.close()
                self._targets.pop(name, None)
                if name not in wanted:
                    for gauge in (self.metrics.agent_up, self.metrics.interfaces):
                        try:
                            gauge.remove(name)
                        except KeyError:
                            pass
        new = [r for name, r in wanted.items() if name not in self._pollers]
        for target, poller in zip(new, build_pollers(self.settings, Inventory(inventory.source, (), tuple(new)))):
            self._pollers[target.router] = poller
            self._targets[target.router] = target

    def _publish(self, stats: list[LinkStats]) -> None:
        assert self._producer is not None
        topic = self.settings.kafka.topic(catalog.LINK_STATS)
        headers = LinkStats.headers()
        for s in stats:
            self._producer.produce(topic, s.encode(), key=s.pop, headers=headers)
        self._producer.poll(0)

    def stop(self) -> None:
        self._thread.stop()
        if self._producer is not None:
            self._producer.close()

    def health(self) -> tuple[bool, str]:
        if self._thread.crash:
            return False, self._thread.crash
        if self._thread.ended:
            return False, "poll loop stopped"
        notes = []
        down = self.scheduler.down() if self.scheduler else []
        if down:
            notes.append("agents down: " + ", ".join(f"{d.router} ({d.last_error})" for d in down))
        if self._watcher.rejected:
            notes.append(f"inventory change rejected: {self._watcher.rejected.splitlines()[0]}")
        return True, "; ".join(notes) or "ok"
