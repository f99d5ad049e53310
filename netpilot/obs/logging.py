"""structlog setup: JSON lines when not on a terminal, readable console output on one.

Every log line, netpilot's (structlog) and third-party libraries' (stdlib logging, librdkafka
routed through it), passes one rate limit (``log.rate_limit_burst`` identical records per
``log.rate_limit_interval_s``; see :class:`RateLimiter`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

import structlog

from netpilot.settings import LogSettings

LIBRDKAFKA_LOGGER = "librdkafka"
"""The stdlib logger netpilot's confluent-kafka clients hand librdkafka's log lines to (by
default librdkafka writes them to stderr itself, out of reach of any rate limit)."""

SUMMARY_ATTR = "netpilot_suppressed_summary"
"""Marks the "suppressed N similar messages" records, which the rate limit lets through."""

_LEVELS = {"debug": 10, "info": 20, "msg": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40}
_STDLIB_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(
    settings: LogSettings = LogSettings(), component: str | None = None, clock: Callable[[], float] = time.monotonic
) -> None:
    level = getattr(logging, settings.level.upper())
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    limiter = (
        RateLimiter(settings.rate_limit_burst, settings.rate_limit_interval_s, clock)
        if settings.rate_limit_burst
        else None
    )
    processors: list[structlog.typing.Processor] = [
        *([StructlogRateLimit(limiter)] if limiter is not None else []),
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
    # The stdlib side: third-party libraries (aiokafka, faust, mode) and librdkafka through
    # LIBRDKAFKA_LOGGER. The limit sits on the handler, so it sees the records of every
    # logger below the root, whichever logger they were sent to.
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler(sys.stderr)
        root.addHandler(handler)
    handler.setStream(sys.stderr)
    handler.setFormatter(logging.Formatter(_STDLIB_FORMAT))
    for f in [f for f in handler.filters if isinstance(f, LogRateLimitFilter)]:
        handler.removeFilter(f)
    if limiter is not None:
        handler.addFilter(LogRateLimitFilter(limiter))
    if component:
        structlog.contextvars.bind_contextvars(component=component)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """netpilot's root handler (found again when logging is set up a second time)."""


def librdkafka_logger() -> logging.Logger:
    """The logger to pass as confluent-kafka's ``logger`` config (see LIBRDKAFKA_LOGGER)."""
    return logging.getLogger(LIBRDKAFKA_LOGGER)


Key = tuple[str, str, str]
"""(logger, level, message template) of a record."""


class RateLimiter:
    """Lets the first ``burst`` records of a key through per ``interval_s``, counts the rest.

    Why: one broker outage made aiokafka and librdkafka log 22k identical reconnect errors;
    the first few say everything, the count says the rest. Each key's interval starts at its
    first record; the count of what it suppressed is handed back (to be logged as one line)
    by the first :meth:`admit` after the interval, of that key or, at the next sweep, of any
    key, so a flood that stops is still reported. Thread-safe; memory bounded by ``max_keys``.
    """

    def __init__(
        self, burst: int, interval_s: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.burst, self.interval_s, self.max_keys = burst, interval_s, max_keys
        self._clock = clock
        self._windows: dict[Key, list[float]] = {}  # key -> [start, passed, suppressed]
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def admit(self, key: Key) -> tuple[bool, list[tuple[Key, int]]]:
        """(whether this record passes, [(key, records suppressed)] due for a summary)."""
        now = self._clock()
        due: list[tuple[Key, int]] = []
        with self._lock:
            if now - self._last_sweep >= self.interval_s or len(self._windows) > self.max_keys:
                self._last_sweep = now
                overfull = len(self._windows) > self.max_keys
                for k, w in list(self._windows.items()):
                    if overfull or now - w[0] >= self.interval_s:
                        if w[2]:
                            due.append((k, int(w[2])))
                        del self._windows[k]
            win = self._windows.get(key)
            if win is None or now - win[0] >= self.interval_s:
                if win is not None and win[2]:
                    due.append((key, int(win[2])))
                self._windows[key] = [now, 1, 0]
                return True, due
            if win[1] < self.burst:
                win[1] += 1
                return True, due
            win[2] += 1
            return False, due


def _template(record: logging.LogRecord) -> str:
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if record.name == LIBRDKAFKA_LOGGER and isinstance(record.args, tuple) and record.args:
        # confluent-kafka logs every librdkafka line as "%s [%s] %s" (facility, client,
        # text): the facility (FAIL, ERROR, REQTMOUT ...) tells the kinds apart
        template = f"{template} {record.args[0]}"
    return template


class LogRateLimitFilter(logging.Filter):
    """A handler filter: identical (logger, level, message template) records beyond the
    :class:`RateLimiter`'s burst are dropped and later summed up in one record
    ``suppressed N similar messages``, sent to the same logger at the same level."""

    def __init__(self, limiter: RateLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        ok, due = self.limiter.admit((record.name, record.levelname, _template(record)))
        for (name, level, template), n in due:
            # handlers run filters before taking their lock: logging from here is safe
            logging.getLogger(name).log(
                logging.getLevelName(level),
                "suppressed %d similar messages (at most %d per %.0f s): %s",
                n,
                self.limiter.burst,
                self.limiter.interval_s,
                template,
                extra={SUMMARY_ATTR: True},
            )
        return ok


class StructlogRateLimit:
    """The same limit for netpilot's own (structlog) events, keyed by level and event text
    (netpilot's events are templates: values go in key-value pairs)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def __call__(
        self, logger: object, method_name: str, event_dict: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        if event_dict.pop(SUMMARY_ATTR, False):
            return event_dict
        ok, due = self.limiter.admit(("structlog", method_name, str(event_dict.get("event"))))
        for (_, method, template), n in due:
            structlog.get_logger().log(
                _LEVELS.get(method, logging.INFO),
                "suppressed similar messages",
                suppressed=n,
                message=template,
                at_most=self.limiter.burst,
                per_s=self.limiter.interval_s,
                **{SUMMARY_ATTR: True},
            )
        if not ok:
            raise structlog.DropEvent
        return event_dict


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
