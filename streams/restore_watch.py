"""A watch on faust's table restore, so that it cannot hang silently.

After a rebalance faust restores each newly active table partition from its changelog
before any agent runs. On a loaded 2-core machine (about one takeover in ten with the
machine's cores busy elsewhere) the restore of a worker taking over a dead one's PoPs
resumed its changelog partitions and then received no event from any of them, for minutes,
although Kafka had them: the worker neither worked nor failed, and its PoPs were neither
aggregated nor cycled. This watch's log line found the cause (faust had dropped records
aiokafka had already returned, fixed by ``streams/faust_refetch.py``; docs/recovery.md, "A
table restore that stalled"). It stays as a net for a stall of any other cause, once a
second:

1. after ``stall_s`` with partitions still to read and none of them moving, logs what
   faust's consumer, its queues and the event loops' tasks are doing (where the cause must
   be found), counts ``restore_stalls_total``, and resumes those of the partitions the
   consumer does not fetch (a restore that left one paused would wait for ever);
2. after ``fail_s`` without progress, fails health (``task_crashes_total{task="table-restore"}``):
   the lifecycle runner stops the worker and the orchestrator starts it again, and a fresh
   start restores from scratch. A restore that reads slowly but reads is left alone.

A partition left unfetched is undone by step 1; anything else is turned into a restart by
step 2.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faust.types import TP
from prometheus_client import Counter

from netpilot.obs.logging import get_logger

log = get_logger("netpilot.streams")

TASK = "table-restore"


@dataclass(frozen=True)
class RestoreWatchSpec:
    stall_s: float = 20.0
    fail_s: float = 90.0
    every_s: float = 1.0


def remaining(app: Any) -> dict[Any, int]:
    """Changelog partitions the restore still has to read, and how many offsets each."""
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        return {}
    return {tp: n for tp, n in recovery.active_remaining().items() if n > 0}


def awaiting(coro: Any, depth: int = 12) -> list[str]:
    """Where a suspended coroutine waits: its frame, then what it awaits, and so on down."""
    where: list[str] = []
    while coro is not None and len(where) < depth:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return where


def task_stacks(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """One line per task of ``loop``: the chain of awaits it is suspended in."""
    if loop is None:
        return []
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # another thread changed the set while we copied it: try once more
        tasks = list(asyncio.all_tasks(loop))
    return sorted(f"{task.get_name()}: {' > '.join(awaiting(task.get_coro()))}" for task in tasks)


def name(tp: Any) -> str:
    return f"{tp.topic}/{tp.partition}"


def unfetched(app: Any, left: dict[Any, int]) -> set[TP]:
    """Partitions the restore waits for that faust's consumer does not fetch (as faust's own
    ``TP``: its consumer asserts that type in its fetch set)."""
    return {TP(tp.topic, tp.partition) for tp in left} - (app.consumer._active_partitions or set())


def diagnose(app: Any, left: dict[Any, int], not_fetched: set[TP]) -> dict[str, object]:
    """What the consumer, the queues and the tasks are doing (for the log)."""
    consumer = app.consumer
    thread = getattr(consumer, "_thread", None)
    return {
        "remaining": {name(tp): n for tp, n in sorted(left.items())},
        "offsets": {name(tp): app.tables.recovery.active_offsets[tp] for tp in sorted(left)},
        "not_fetched": sorted(map(name, not_fetched)),
        "paused": len(consumer._paused_partitions),
        "buffered": sorted(map(name, consumer._buffered_partitions)),
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "changelog_queue": app.tables.changelog_queue.qsize(),
        "producer_buffer": app.producer.buffer.size,
        "commit_pending": consumer._commit_fut is not None,
        "aiokafka": safely(aiokafka_state, app, left),
        "tasks": task_stacks(asyncio.get_running_loop()),
        "consumer_thread_tasks": task_stacks(getattr(thread, "thread_loop", None)),
    }


def safely(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or what it raised: one missing detail must not lose the others."""
    try:
        return read(*args)
    except Exception as exc:  # noqa: BLE001 - private attributes of faust and aiokafka
        return f"{type(exc).__name__}: {exc}"


def aiokafka_state(app: Any, left: dict[Any, int]) -> dict[str, str]:
    """Per partition, what aiokafka's fetcher holds: its position, whether it waits for an
    offset reset or is paused, and whether a fetched result waits to be consumed. A position
    past the restore's offsets with nothing pending means records were fetched and dropped
    (what streams/faust_refetch.py undoes)."""
    ak = app.consumer._thread._consumer
    fetcher = ak._fetcher
    assignment = fetcher._subscriptions.subscription.assignment
    out = {}
    for tp in sorted(left):
        state = assignment.state_value(tp) if assignment is not None else None
        if state is None:
            out[name(tp)] = "not assigned in aiokafka"
            continue
        position = state.position if state.has_valid_position else None
        out[name(tp)] = (
            f"position={position} awaiting_reset={state.awaiting_reset} paused={state.paused} "
            f"pending_result={tp in fetcher._records}"
        )
    return out


async def watch_restore(
    app: Any,
    spec: RestoreWatchSpec,
    stalls: Counter,
    crashed: Callable[[str, BaseException], None],
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run until cancelled, on the app's loop (see the module docstring)."""
    last: dict[Any, int] | None = None
    since = clock()
    warned = False
    while True:
        await asyncio.sleep(spec.every_s)
        try:
            left = remaining(app)
        except Exception as exc:  # noqa: BLE001 - a watch must not die of faust's internals
            log.warning("table restore watch could not read faust's recovery", error=f"{type(exc).__name__}: {exc}")
            continue
        now = clock()
        if not left or left != last:  # done, or moving: nothing to do
            last, since, warned = (left or None), now, False
            continue
        stalled_s = now - since
        if stalled_s >= spec.fail_s:
            crashed(TASK, RuntimeError(f"no table restore progress for {stalled_s:.0f}s: {len(left)} partitions left"))
            return
        if stalled_s >= spec.stall_s and not warned:
            warned = True
            stalls.inc()
            try:
                resume = unfetched(app, left)
                details = diagnose(app, left, resume)
            except Exception as exc:  # noqa: BLE001 - faust internals moved: still warn
                resume, details = set(), {"diagnose_error": f"{type(exc).__name__}: {exc}"}
            log.warning("table restore stalled", stalled_s=round(stalled_s), fail_after_s=spec.fail_s, **details)
            # what the restore does when it starts; a restore that left one paused waits for ever
            if resume:
                log.warning("table restore: resuming partitions not fetched", partitions=sorted(map(name, resume)))
                app.consumer.resume_partitions(resume)
