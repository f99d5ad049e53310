"""Static group membership (``group_instance_id``) of a faust worker: two live workers with
one id are an error, reported as one.

With static membership the broker keeps a member under its instance id, not under the
connection: a worker that restarts with the same id takes the old member's place (and its
partitions) at once, without a rebalance. A *second live* worker with the same id does the
same to the first; the first's next heartbeat is answered "unknown member id", it re-joins
and so takes the place back, and the two fence each other every few seconds for ever, each
re-joining, restoring its tables and replaying uncommitted input (measured with two
autopilot workers: about 30 re-joins each in 90 s, cycles run many times over), while
``/healthz`` says OK. aiokafka 0.14 has no error of its own for it (it sends requests
without the instance id, so the broker answers UNKNOWN_MEMBER_ID, not FENCED_INSTANCE_ID)
and only logs a warning before re-joining.

:class:`FencingWatch` counts those warnings: one now and then is a member whose session
expired (a stalled process) and re-joining is right; ``FENCES`` of them within ``window``
can only be another live worker with this id, and it reports :class:`DuplicateInstanceId`
(the worker's health fails, the process stops with an error saying which id). A broker
restart does not fence a static member (measured, SIGTERM and SIGKILL: the group and its
members come back from ``__consumer_offsets``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
UNKNOWN_MEMBER = "member_id was not recognized"
"""In aiokafka's heartbeat warning when the broker no longer knows this member id."""
FENCES = 3
"""Fences within the window that mean a duplicate id (a session expiry is one)."""


GroupInstanceId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9._-]*$",
        description=(
            "static group membership: this worker's own stable id in the consumer group (the chart "
            "passes the pod name), so a worker restarted with it gets its partitions back at once "
            "instead of after session_timeout_s; each live worker needs its own; empty: dynamic membership"
        ),
    ),
]
"""A faust worker's ``group_instance_id`` setting (streams and the autopilot)."""


class DuplicateInstanceId(RuntimeError):
    """Another live worker of the group uses this worker's ``group_instance_id``."""


class FencingWatch(logging.Handler):
    """Watches aiokafka's coordinator log for this process's member being fenced."""

    def __init__(
        self,
        instance_id: str,
        on_duplicate: Callable[[DuplicateInstanceId], None],
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logging.WARNING)
        self.instance_id = instance_id
        self.window_s = window_s
        self._on_duplicate = on_duplicate
        self._clock = clock
        self._fences: deque[float] = deque()
        self.reported = False

    def emit(self, record: logging.LogRecord) -> None:
        if UNKNOWN_MEMBER not in record.getMessage():
            return
        now = self._clock()
        self._fences.append(now)
        while self._fences and self._fences[0] < now - self.window_s:
            self._fences.popleft()
        if len(self._fences) >= FENCES and not self.reported:
            self.reported = True
            self._on_duplicate(
                DuplicateInstanceId(
                    f"group_instance_id {self.instance_id!r} is used by another live worker of the "
                    f"group: this member was fenced {len(self._fences)} times within {self.window_s:.0f} s; "
                    "give each worker its own id (the chart uses the pod name)"
                )
            )

    def install(self) -> FencingWatch:
        logger = logging.getLogger(COORDINATOR_LOGGER)
        # the watch needs the warning created even when the log level is above it
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
        logger.addHandler(self)
        return self

    def uninstall(self) -> None:
        logging.getLogger(COORDINATOR_LOGGER).removeHandler(self)


def watch_fencing(
    instance_id: str, session_timeout_s: float, on_duplicate: Callable[[DuplicateInstanceId], None]
) -> FencingWatch | None:
    """Install a :class:`FencingWatch` for a static member (None for dynamic membership).

    The window is six session timeouts: two workers fence each other about once per
    heartbeat-and-rejoin (a few seconds), a lone member at most once per session expiry."""
    if not instance_id:
        return None
    return FencingWatch(instance_id, on_duplicate, window_s=6 * session_timeout_s).install()
