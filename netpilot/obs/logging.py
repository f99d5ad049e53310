"""structlog setup: JSON lines when not on a terminal, readable console output on one."""

from __future__ import annotations

import logging
import sys

import structlog

from netpilot.settings import LogSettings


def setup_logging(settings: LogSettings = LogSettings(), component: str | None = None) -> None:
    level = getattr(logging, settings.level.upper())
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if component:
        structlog.contextvars.bind_contextvars(component=component)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


class RateLimitedLog:
    """Logs an event at most once per ``interval`` seconds per key, counting what it muted.

    For errors that can repeat per datagram or per message: they are *counted* by metrics
    every time and *logged* at a bounded rate (goflow2's utils/mute.go does the same).
    """

    def __init__(self, logger: object, interval: float = 10.0) -> None:
        import time

        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._muted: dict[str, int] = {}
        self._now = time.monotonic

    def warning(self, key: str, event: str, **kw: object) -> None:
        now = self._now()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._muted[key] = self._muted.get(key, 0) + 1
            return
        muted = self._muted.pop(key, 0)
        self._last[key] = now
        self._log.warning(event, muted_since_last=muted, **kw)  # type: ignore[attr-defined]
