"""A fix to faust 0.15 (faust-streaming) + aiokafka 0.14, applied by :class:`streams.faust_producer.App`:
seeks run on the consumer's thread, and no record fetched before its partition's last seek is
handed over.

**The race.** faust runs aiokafka on a thread of its own and fetches there, but its
``Consumer.seek`` (and ``streams/faust_offsets.py``'s seeks, which go the same way) calls
aiokafka's ``seek`` from the app's thread. aiokafka's fetcher is not made for that: a seek
deletes the partition's buffered records while the consumer thread's ``fetched_records``
walks the same dict, and the walk then fails on a key gone under it (``KeyError`` at ``del
self._records[tp]``; faust's fetcher crashes and the worker stops: seen in a CI run), or
hands the buffered records over and moves the position past them, undoing the seek. So a
seek made on the app's thread runs on the consumer's thread, and the app's thread waits for
it (a few milliseconds: that thread only awaits).

Why wait, and not ``await`` it like faust's other thread calls: the seeks in
``faust_offsets`` must take effect before their caller goes on (it stops dropping records
right after its seek); an ``await`` lets the app's loop hand records over in between, and
that lost flows in a CI run.

**Records fetched before a seek.** faust hands over a batch record by record, with the app's
loop running other work between them, and a seek can come in the middle of it. The records
of the sought partition still in the batch were fetched from before the seek: handed over,
they are read out of order and move faust's read offset past what the seek meant to read
again. aiokafka counts every seek of a partition here (on its thread), each batch carries
the counts at the time it was fetched, and a record whose partition was sought since is not
handed over: the partition reads it again from where it was sought, if that is before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from faust.types import TP, ConsumerT, Message

SEEK_TIMEOUT_S = 10.0
"""How long the app's thread waits for a seek on the consumer's thread. That thread only
awaits, so it takes milliseconds; a seek not made in time raises (a worker whose consumer
thread is stuck is stopped, which fails health, rather than read on from the wrong place)."""


class SeekStamped(dict[Any, Any]):
    """A batch of records (partition -> records) with, for each partition, its seek count
    and aiokafka's position right after the fetch, both read on the consumer's thread in
    the same step as the fetch (so no seek can fall between the fetch and the reading)."""

    seeks: dict[Any, int]
    positions: dict[Any, int | None]


def seek_count(consumer: ConsumerT, tp: Any) -> int:
    """How many times ``tp`` was sought so far (0 without :func:`seek_on_consumer_thread`).
    Read it on the consumer's thread to compare with a :class:`SeekStamped` batch's."""
    counts: dict[Any, int] = getattr(consumer, "_netpilot_seeks", {})
    return counts.get(tp, 0)


def aiokafka_position(consumer: Any, tp: Any) -> int | None:
    """aiokafka's position of ``tp`` in the current assignment, or None (not assigned, or
    waiting for an offset reset). Exact only on the consumer's thread."""
    subscription = consumer._thread._consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    state = assignment.state_value(tp) if assignment is not None else None
    if state is None or not state.has_valid_position:
        return None
    position: int = state.position
    return position


def seek_on_consumer_thread(consumer: ConsumerT) -> None:
    """Make the seeks of ``consumer`` run on its aiokafka thread, and its ``getmany`` hand
    over no record fetched before its partition's last seek (see the module docstring)."""
    c: Any = consumer  # faust's aiokafka Consumer: ``_thread`` (mode ServiceThread)
    thread = c._thread
    seeks: dict[Any, int] = {}
    """Partition -> how many times it was sought (written on the consumer's thread only)."""
    c._netpilot_seeks = seeks
    batch_seeks: dict[Any, int] = {}
    """The counts the batch being handed over was fetched at."""

    def count_seeks(fetcher: Any) -> None:
        # marked on the fetcher itself (a new one per consumer start): an id could be reused
        if getattr(fetcher, "_netpilot_seeks_counted", False):
            return
        fetcher._netpilot_seeks_counted = True
        seek_to, request_offset_reset = fetcher.seek_to, fetcher.request_offset_reset

        def counted_seek_to(tp: Any, offset: int) -> None:
            seeks[tp] = seeks.get(tp, 0) + 1
            seek_to(tp, offset)

        def counted_reset(tps: Any, strategy: Any) -> Any:
            tps = list(tps)
            for tp in tps:
                seeks[tp] = seeks.get(tp, 0) + 1
            return request_offset_reset(tps, strategy)

        fetcher.seek_to, fetcher.request_offset_reset = counted_seek_to, counted_reset

    original_fetch = thread._fetch_records

    async def fetch_records(aiokafka_consumer: Any, *args: Any, **kwargs: Any) -> Any:
        # on the consumer's thread, like every seek now: the counts read here are exact
        count_seeks(aiokafka_consumer._fetcher)
        records = await original_fetch(aiokafka_consumer, *args, **kwargs)
        stamped = SeekStamped(records or {})
        stamped.seeks = {tp: seeks.get(tp, 0) for tp in stamped}
        stamped.positions = {tp: aiokafka_position(c, tp) for tp in stamped}
        return stamped

    original_seek = thread.seek

    def seek(tp: Any, offset: int) -> None:
        loop = thread.thread_loop
        try:
            on_thread = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_thread = False
        if on_thread or not loop.is_running():
            original_seek(tp, offset)
            return

        async def seek_there() -> None:
            original_seek(tp, offset)

        asyncio.run_coroutine_threadsafe(seek_there(), loop).result(timeout=SEEK_TIMEOUT_S)

    original_wait = c._wait_next_records

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        records, active = await original_wait(timeout)
        batch_seeks.clear()
        batch_seeks.update(getattr(records, "seeks", {}))
        return records, active

    original_getmany = c.getmany

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        async for tp, message in original_getmany(timeout):
            fetched_at = batch_seeks.get(tp)
            if fetched_at is not None and seeks.get(tp, 0) != fetched_at:
                continue  # sought since this batch was fetched: read again from there
            yield tp, message

    thread._fetch_records = fetch_records
    thread.seek = seek
    c._wait_next_records = wait_next_records
    c.getmany = getmany
