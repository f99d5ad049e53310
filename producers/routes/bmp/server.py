"""The BMP listener: one asyncio task per router connection, a tick for the timers.

Routers connect to us (``bmp connect`` on FRR, ``station-address`` on Junos, ``bmp server``
on IOS XR) and only ever send. Each connection feeds a :class:`BmpSession`; after every
read the state's changes are published at once, so a route is in Kafka a read after it
arrived. Everything runs on one event loop thread, so the shared state needs no lock; a
slow Kafka blocks ``publish`` and, through TCP, slows the routers down instead of losing
data.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from netpilot.obs.logging import RateLimitedLog, get_logger
from producers.routes.bmp.framing import FramingError
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.metrics import BmpMetrics
from producers.routes.bmp.rib import Change, RibState
from producers.routes.bmp.session import BmpSession
from producers.routes.bmp.settings import BmpSettings

log = get_logger("netpilot.bmp")

Publish = Callable[[list[Change]], None]


class BmpCollector:
    def __init__(
        self,
        settings: BmpSettings,
        state: RibState,
        linkmap: LinkMap,
        metrics: BmpMetrics,
        publish: Publish,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.state = state
        self.linkmap = linkmap
        self.metrics = metrics
        self.publish = publish
        self.clock = clock
        self.port: int | None = None
        self.sessions: dict[BmpSession, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[BmpSession, str] = {}
        """sessions the collector closed itself -> why (counted when their task ends)"""
        self._rl = RateLimitedLog(log)

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        host, _, port = self.settings.listen.rpartition(":")
        server = await asyncio.start_server(self._handle, host.strip("[]") or None, int(port), reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        log.info("BMP listener up", listen=f"{host}:{self.port}", policy=self.settings.policy)
        if ready is not None:
            ready(self.port)
        tick_s = min(1.0, self.settings.settle_s / 4)
        async with server:
            while True:
                await asyncio.sleep(tick_s)
                self.tick()

    # -- connections ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        source = str(peer[0])
        if len(self.sessions) >= self.settings.max_sessions:
            self.metrics.resets.labels("too-many-sessions").inc()
            self._rl.warning("too-many", "BMP connection refused: max_sessions reached", source=source)
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a router that vanished without a FIN is noticed, then held
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s = self.settings
        session = BmpSession(
            source, self.state, self.linkmap, s.policy, s.strip_local_as, s.max_message_bytes, self._rl
        )
        self.sessions[session] = writer
        reason = None
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                session.feed(data, self.clock())
                self._after(session)
        except FramingError as exc:
            reason = exc.reason
            if exc.reason != "replaced":
                self.metrics.malformed.labels(exc.reason).inc()
            log.warning("BMP session reset", router=session.key or source, reason=exc.reason, error=exc.detail)
        except (ConnectionError, OSError) as exc:
            log.info("BMP connection lost", router=session.key or source, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one router's odd message must not stop the others
            reason = "error"
            log.error("BMP session failed", router=session.key or source, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.sessions.pop(session, None)
            reason = reason or self._closing.pop(session, None)
            if reason is not None:
                self.metrics.resets.labels(reason).inc()
            session.close(self.clock())
            self._after(session)
            writer.close()
            if task is not None:
                self._tasks.discard(task)
            log.info("BMP session closed", router=session.key or source, peers=session.peers_up)

    async def close(self) -> None:
        """End every connection (the routers reconnect to the next collector). Closing the
        transports lets each handler finish through its normal path; a cancelled handler
        would make asyncio's stream protocol log a spurious error."""
        for writer in self.sessions.values():
            writer.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in self._tasks:
            task.cancel()

    def _after(self, session: BmpSession) -> None:
        """Count what the batch did and publish what changed."""
        t = session.take_tally()
        m = self.metrics
        for name, n in t.messages.items():
            m.messages.labels(name).inc(n)
        for reason, n in t.malformed.items():
            m.malformed.labels(reason).inc(n)
        for reason, n in t.ignored.items():
            m.ignored.labels(reason).inc(n)
        for reason, n in t.peer_downs.items():
            m.peer_downs.labels(reason).inc(n)
        if t.announced:
            m.routes.labels("announce").inc(t.announced)
        if t.withdrawn:
            m.routes.labels("withdraw").inc(t.withdrawn)
        if session.key is not None:
            self._replace_older(session)
        self._publish(self.state.changes())

    def _replace_older(self, session: BmpSession) -> None:
        """A router reconnected before its old connection was seen to end: close the old one."""
        for other, writer in list(self.sessions.items()):
            if other is not session and other.key == session.key and not other.owns_state():
                self._closing[other] = "replaced"
                writer.close()

    def _publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        self.publish(changes)
        tombstones = sum(1 for c in changes if c.value is None)
        self.metrics.published.labels("route").inc(len(changes) - tombstones)
        self.metrics.published.labels("tombstone").inc(tombstones)

    # -- timers -----------------------------------------------------------------------------
    def tick(self) -> None:
        for ev in self.state.tick(self.clock()):
            self.metrics.syncs.labels(ev.how).inc()
            if ev.state == "live":
                self.metrics.sync_seconds.observe(ev.seconds)
            log.info("BMP session " + ("synced" if ev.state == "live" else "expired"), router=ev.key, how=ev.how)
        self._publish(self.state.changes())
        states = {"syncing": 0, "live": 0, "down": 0}
        for rs in self.state.sessions.values():
            states[rs.state] += 1
        for name, n in states.items():
            self.metrics.sessions.labels(name).set(n)
        self.metrics.peers_up.set(sum(s.peers_up for s in self.sessions))
        self.metrics.rib_routes.set(self.state.routes())
        self.metrics.deferred.set(self.state.deferred)

    # -- inventory --------------------------------------------------------------------------
    def set_linkmap(self, linkmap: LinkMap) -> int:
        """Use a new inventory. Sessions whose router or peers map differently are reset: the
        router reconnects and resends its RIB, which the sync turns into exact changes.
        Returns how many were reset."""
        old, self.linkmap = self.linkmap, linkmap
        reset = 0
        for session, writer in list(self.sessions.items()):
            router = linkmap.identify(session.source, session.sys_name)
            same = (
                router == session.router
                and linkmap.links_of(router) == old.links_of(session.router)
                and all(linkmap.link(router, p) == old.link(session.router, p) for p in session.peer_addresses)
            )
            if not same:
                reset += 1
                self._closing[session] = "inventory-change"
                writer.close()
        return reset
