"""The streams worker as a netpilot Service: the faust app on its own thread and loop.

faust (mode) wants to own an asyncio loop; netpilot's lifecycle runner owns the main
thread and the signals. So ``start()`` builds the app on a dedicated thread, waits until
it is started, and ``stop()`` asks that loop to stop the app (which flushes the producer
and commits offsets) and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading

from netpilot.obs.logging import get_logger
from streams.aggregate import agents
from streams.aggregate.store import WindowStore
from streams.aggregate.windows import WindowSpec
from streams.app import StreamsApp, create_app
from streams.internal_topics import ensure_internal_topics
from streams.membership import FencingWatch, watch_fencing
from streams.metrics import StreamsMetrics
from streams.restore_watch import RestoreWatchSpec, watch_restore
from streams.settings import StreamsSettings
from streams.supervision import TaskHealth
from streams.utilisation import UtilisationSpec, UtilisationTracker

log = get_logger("netpilot.streams")


class StreamsService:
    name = "streams"

    def __init__(self, settings: StreamsSettings, metrics: StreamsMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sa: StreamsApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopped = False
        self.tasks = TaskHealth(metrics.task_crashes)
        self._fencing: FencingWatch | None = None
        """Crashes of our agents and timers (a crash fails health, see streams/supervision.py)."""

    def _build(self) -> StreamsApp:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        sa = create_app(s)
        spec = WindowSpec(
            sizes_s=s.window_sizes_s,
            allowed_lateness_s=s.allowed_lateness_s,
            max_future_s=s.max_future_s,
            event_time=s.event_time,
            spread=s.spread_flows,
        )
        uspec = UtilisationSpec(
            max_counter_wait_s=s.max_counter_wait_s,
            min_counter_overlap=s.min_counter_overlap,
            counter_history_s=s.counter_history_s,
            unknown_link_wait_s=s.unknown_link_wait_s,
        )
        t = sa.tables
        tracker = UtilisationTracker(uspec, t["link-inventory"], t["link-counters"], t["utilisation-pending"])
        idle = agents.IdleSpec(after_s=s.idle_after_s, check_s=s.idle_check_s)
        agents.register(
            sa,
            agents.Pipeline(sa, WindowStore(spec, t["window-partials"]), tracker, self.metrics, idle=idle, wire=s.wire),
            self.tasks,
        )
        sa.app.finalize()
        ensure_internal_topics(sa.app, s.kafka, s.changelog_replication, extra=[sa.idle_ticks])
        return sa

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        self.sa = self._build()
        # a second live worker with our group_instance_id: a clear error, not endless fencing
        self._fencing = watch_fencing(
            self.settings.group_instance_id,
            self.settings.session_timeout_s,
            lambda exc: self.tasks.crashed("group-membership", exc),
        )
        # faust's table restore can hang after a rebalance: seen, cause unknown (restore_watch).
        # Started first: app.start() returns only once the first restore is done.
        watch = asyncio.ensure_future(
            watch_restore(self.sa.app, RestoreWatchSpec(), self.metrics.restore_stalls, self.tasks.crashed)
        )
        await self.sa.app.start()
        self._started.set()
        # Stop on request or when faust stops by itself (a crash); either way stop() runs
        # here, on the app's loop, before the loop closes.
        waiters = [
            asyncio.ensure_future(self._stop_requested.wait()),
            asyncio.ensure_future(self.sa.app.wait_until_stopped()),
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for fut in [*waiters, watch]:
            fut.cancel()
        await self.sa.app.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported through health()
            self._error = exc
            log.error("streams worker died", error=f"{type(exc).__name__}: {exc}")
        finally:
            if self._fencing is not None:
                self._fencing.uninstall()
            self._started.set()
            self._stopped = True
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 60.0) -> None:
        self._thread = threading.Thread(target=self._run, name="streams-faust", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"streams worker did not start within {timeout:.0f}s")
        if self._error is not None:
            raise RuntimeError(f"streams worker failed to start: {self._error}") from self._error

    def stop(self, timeout: float = 60.0) -> None:
        """Stop faust (it commits offsets and flushes its producer), then join the thread."""
        loop, event = self._loop, self._stop_requested
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("streams worker did not stop in time", timeout_s=timeout)

    def health(self) -> tuple[bool, str]:
        if self._error is not None:
            return False, f"worker died: {self._error}"
        ok, why = self.tasks.health()
        if not ok:
            return ok, why
        app = self.sa.app if self.sa else None
        if app is None or self._stopped or self._thread is None or not self._thread.is_alive():
            return False, "worker not running"
        if app.crash_reason is not None:
            return False, f"worker crashed: {app.crash_reason}"
        return True, "ok"
