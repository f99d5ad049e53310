"""Schedule every router's polls on its own asyncio task and publish link-stats.

Each router keeps a fixed grid (``start + k * interval``) so rates have steady intervals,
and is bounded by ``interval`` per poll, so one dead or slow agent delays nobody else.
A failing router is retried with exponential backoff (``backoff_initial_s`` doubling up to
``backoff_max_s``), counted by reason, logged at a bounded rate and shown in ``status()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.wire.links import LinkStats
from producers.linkstats.metrics import SnmpMetrics
from producers.linkstats.router import PollResult, RouterPoller
from producers.linkstats.snmp import AgentError

log = get_logger("netpilot.snmp")

Publish = Callable[[list[LinkStats]], None]


@dataclass
class RouterStatus:
    pop: str
    router: str
    up: bool = False
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success_ts: float | None = None
    polls: int = 0
    failures: int = 0


@dataclass(frozen=True)
class Schedule:
    interval_s: float
    backoff_initial_s: float
    backoff_max_s: float

    def backoff(self, failures: int) -> float:
        return min(self.backoff_initial_s * 2 ** max(failures - 1, 0), self.backoff_max_s)


class PollScheduler:
    def __init__(self, routers: list[RouterPoller], schedule: Schedule, publish: Publish, metrics: SnmpMetrics) -> None:
        self.routers = routers
        self.schedule = schedule
        self.publish = publish
        self.metrics = metrics
        self.status = {r.router: RouterStatus(r.pop, r.router) for r in routers}
        self._limited = RateLimitedLog(log, 30.0)
        for r in routers:
            metrics.init_router(r.router)

    async def run(self) -> None:
        """Poll until cancelled."""
        n = max(len(self.routers), 1)
        tasks = [
            asyncio.create_task(self._router_loop(r, i * self.schedule.interval_s / n), name=f"snmp-{r.router}")
            for i, r in enumerate(self.routers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _router_loop(self, poller: RouterPoller, offset: float) -> None:
        # Spread routers over the interval so a large inventory does not poll in one burst.
        loop = asyncio.get_running_loop()
        due = loop.time() + offset
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.metrics.poll_lateness.observe(max(0.0, -delay))
            ok = await self.poll_once(poller)
            now = loop.time()
            st = self.status[poller.router]
            if ok:
                due += self.schedule.interval_s
                if due <= now:  # we fell behind (or came back from backoff): realign, no burst
                    due = now + self.schedule.interval_s - (now - due) % self.schedule.interval_s
            else:
                due = now + self.schedule.backoff(st.consecutive_failures)

    async def poll_once(self, poller: RouterPoller) -> bool:
        """One bounded poll of one router, with accounting. True if it succeeded."""
        st = self.status[poller.router]
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(poller.poll(), timeout=self.schedule.interval_s)
        except (TimeoutError, AgentError) as exc:
            reason = exc.reason if isinstance(exc, AgentError) else "timeout"
            detail = str(exc) or f"poll took longer than {self.schedule.interval_s}s"
            self._failed(st, reason, detail)
            return False
        self.metrics.poll_duration.labels(poller.router).observe(time.monotonic() - started)
        try:
            self.publish(result.stats)
        except Exception as exc:  # noqa: BLE001 - Kafka trouble: count, report, keep polling
            self._failed(st, "publish", f"{type(exc).__name__}: {exc}")
            return False
        self._succeeded(st, poller, result)
        return True

    def _succeeded(self, st: RouterStatus, poller: RouterPoller, result: PollResult) -> None:
        if not st.up and st.consecutive_failures:
            log.info("agent back", router=st.router, after_failures=st.consecutive_failures)
        st.up, st.consecutive_failures, st.last_error = True, 0, None
        st.last_success_ts = time.time()
        st.polls += 1
        m = self.metrics
        m.polls.labels(st.router).inc()
        m.agent_up.labels(st.router).set(1)
        m.interfaces.labels(st.router).set(len(result.stats))
        m.stats_published.inc(len(result.stats))
        if result.resets:
            m.resets.labels(st.router).inc(result.resets)
        if result.wraps:
            m.wraps.labels(st.router).inc(result.wraps)
        if result.unresolved:
            m.failures.labels(st.router, "unknown-interface").inc(len(result.unresolved))
            self._limited.warning(
                f"unresolved:{st.router}",
                "links without an interface on the agent",
                router=st.router,
                links=result.unresolved,
            )

    def _failed(self, st: RouterStatus, reason: str, detail: str) -> None:
        st.up = False
        st.consecutive_failures += 1
        st.failures += 1
        st.last_error = f"{reason}: {detail}"
        self.metrics.failures.labels(st.router, reason).inc()
        self.metrics.agent_up.labels(st.router).set(0)
        self._limited.warning(
            f"fail:{st.router}",
            "poll failed; retrying with backoff",
            router=st.router,
            reason=reason,
            error=detail,
            consecutive=st.consecutive_failures,
            retry_in_s=self.schedule.backoff(st.consecutive_failures),
        )

    def down(self) -> list[RouterStatus]:
        return [s for s in self.status.values() if not s.up and s.consecutive_failures]
