"""A fix to faust 0.15 (faust-streaming) + aiokafka 0.14, applied by :class:`streams.faust_producer.App`:
records aiokafka handed to faust that faust then threw away are fetched again.

**How records get lost.** faust's ``Consumer.getmany`` asks aiokafka for the records of the
partitions it fetches (its live set of active partitions), and aiokafka moves its position
past every record it returns. faust then drops some of them without a word: all of them when
the flow was stopped meanwhile (a rebalance began), the rest of the batch when the flow
stops or the generation changes while it hands them over, and those of a partition paused
since the fetch began. For stream partitions faust seeks back to the committed offset
before it resumes them (``perform_seek``; ``streams/faust_offsets.py`` covers the case with
no commit). Nothing seeks back a table's changelog partition: its records are simply gone,
and a table restore that needed them waits for ever for offsets it already went past.

That is what made a worker's restore stall under load (docs/recovery.md): the fetch call
faust hands to aiokafka's thread (``fetched_records``) waits up to a second for records and,
when the assignment changes, for the new assignment first. Two things make such a call
outlive a rebalance and drain what the new restore needs:

- faust passes its *live* set of active partitions, which a rebalance empties (every
  partition paused); aiokafka reads an empty set as "no filter" and returns the records of
  every assigned partition;
- the new restore seeks the changelog partitions to where its tables stand and resumes
  them, but the call started before the rebalance can return records fetched from there
  while the flow is still stopped: faust drops them, and the restore's partitions sit at
  their end with the records never applied.

**The fix** (:func:`refetch_dropped`): after each batch, for every partition of which faust
handed over less than aiokafka returned, the consumer seeks back to the first record not
handed over, unless the partition was positioned anew meanwhile (its position is no longer
where the batch left it: faust's own seek, or a new assignment, decides then). The seek
runs on the consumer's thread, in turn with faust's other seeks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.types import TP, ConsumerT, Message

from netpilot.obs.logging import get_logger

log = get_logger("netpilot.streams")


def aiokafka_position(consumer: Any, tp: Any) -> int | None:
    """aiokafka's position of ``tp`` in the current assignment, or None (not assigned, or
    waiting for an offset reset)."""
    subscription = consumer._thread._consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    state = assignment.state_value(tp) if assignment is not None else None
    if state is None or not state.has_valid_position:
        return None
    position: int = state.position
    return position


def refetch_dropped(consumer: ConsumerT) -> None:
    """Make ``consumer.getmany`` seek back every partition of which faust dropped records
    aiokafka had returned (see the module docstring)."""
    c: Any = consumer  # faust's aiokafka Consumer: ``_thread``, ``_wait_next_records``
    original_wait = c._wait_next_records
    original_getmany = c.getmany
    batch: dict[Any, tuple[list[Any], int | None]] = {}
    """This batch: partition -> (the records aiokafka returned, its position right after)."""

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        records, active = await original_wait(timeout)
        batch.clear()
        for tp, partition_records in (records or {}).items():
            if partition_records:
                batch[tp] = (partition_records, aiokafka_position(c, tp))
        return records, active

    async def seek_back(targets: Mapping[Any, tuple[int, int]]) -> None:
        # on the consumer's thread: in turn with faust's seek_wait and aiokafka's fetches
        sought = {}
        for tp, (first, left_at) in targets.items():
            if aiokafka_position(c, tp) == left_at:  # nobody positioned it anew since
                c._thread._consumer.seek(tp, first)
                sought[f"{tp.topic}/{tp.partition}"] = first
        if sought:
            log.info("records faust dropped fetched again", partitions=sought)

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        batch.clear()
        handed: dict[Any, int] = {}
        async for tp, message in original_getmany(timeout):
            handed[tp] = message.offset
            yield tp, message
        targets = {}
        for tp, (records, left_at) in batch.items():
            last = handed.get(tp)
            if last == records[-1].offset or left_at is None:  # all handed over, or repositioned
                continue
            first = next((r.offset for r in records if last is None or r.offset > last), None)
            if first is not None:
                targets[tp] = (first, left_at)
        batch.clear()
        if targets:
            try:
                await c._thread.call_thread(seek_back, targets)
            except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: its next assignment positions it
                log.warning("fetching dropped records again failed", error=repr(exc))

    c._wait_next_records = wait_next_records
    c.getmany = getmany
