"""Crashes of our long-running faust tasks (agents, timers): counted, logged, and fatal to
health.

faust restarts a crashed agent by itself and logs it, and nothing else notices: an agent
that raised on every event crash-looped for minutes while ``/healthz`` said OK. Every agent
and timer of ours is therefore wrapped in :meth:`TaskHealth.guard`, which counts the crash
(``netpilot_<component>_task_crashes_total{task}``), logs it, remembers it and re-raises it
(so faust still does what it does). From the first crash on, :meth:`TaskHealth.health` is
not OK, the lifecycle runner stops the process, and the orchestrator restarts it: a clean
restart, not a limp.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter

from netpilot.obs.logging import get_logger

log = get_logger("netpilot.streams")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class TaskHealth:
    def __init__(self, crashes: Counter) -> None:
        self._crashes = crashes
        self.first: str | None = None
        """The first crash, as ``task: Error: message`` (what health() reports)."""

    def crashed(self, task: str, exc: BaseException) -> None:
        self._crashes.labels(task).inc()
        what = f"{task}: {type(exc).__name__}: {exc}"
        if self.first is None:
            self.first = what
        log.error("task crashed", task=task, error=f"{type(exc).__name__}: {exc}")

    def guard(self, task: str) -> Callable[[F], F]:
        """Decorate an agent or timer coroutine function: its crash is counted and kept."""

        def wrap(fun: F) -> F:
            @functools.wraps(fun)
            async def run(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fun(*args, **kwargs)
                except Exception as exc:  # CancelledError is not an Exception: stopping is no crash
                    self.crashed(task, exc)
                    raise

            return run  # type: ignore[return-value]

        return wrap

    def health(self) -> tuple[bool, str]:
        if self.first is not None:
            return False, f"task crashed: {self.first}"
        return True, "ok"
