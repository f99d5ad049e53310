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
handed over, unless the partition was positioned anew since the fetch (sought, or its
position is no longer where the fetch left it: a new assignment). faust's own seek decides
then. The seek runs on the consumer's thread, in turn with faust's other seeks.

**Positioned anew: read where the fetch ran.** The seek count and the position the check
compares with are stamped on the batch by ``streams/faust_seeks.py`` on the consumer's
thread, in the same step as the fetch. The position used to be read on the app's thread
once the batch had arrived there: a seek made in between (faust's seek to the committed
offsets after a rebalance) was taken for where the batch had left the partition, and the
seek back undid it, forwards, to the first record of the batch (fetched from where the
restore's drops had got to). The worker read on from there, 50-100 messages past its
commit; read again later (after a takeover), those flows came after newer ones had moved
the PoP's window watermark on and counted as too late: whole windows lost, in about one run
in six of ``tests/streams/test_two_workers.py`` under load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.types import TP, ConsumerT, Message

from netpilot.obs.logging import get_logger
from streams.faust_seeks import aiokafka_position, seek_count

Stamp = tuple[int, int | None]
"""A partition's seek count and aiokafka position right after its batch was fetched."""

log = get_logger("netpilot.streams")


def refetch_dropped(consumer: ConsumerT) -> None:
    """Make ``consumer.getmany`` seek back every partition of which faust dropped records
    aiokafka had returned (see the module docstring)."""
    c: Any = consumer  # faust's aiokafka Consumer: ``_thread``, ``_wait_next_records``
    original_wait = c._wait_next_records
    original_getmany = c.getmany
    batch: dict[Any, tuple[list[Any], Stamp]] = {}
    """This batch: partition -> (the records aiokafka returned, its stamp)."""

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        records, active = await original_wait(timeout)
        batch.clear()
        # stamped on the consumer's thread with the fetch (streams/faust_seeks.py): read
        # here, on the app's thread, a seek made meanwhile would pass for the batch's own
        # position, and the seek back below would undo it (that lost flows under load)
        seeks, positions = getattr(records, "seeks", {}), getattr(records, "positions", {})
        for tp, partition_records in (records or {}).items():
            if partition_records and tp in seeks and tp in positions:
                batch[tp] = (partition_records, (seeks[tp], positions[tp]))
        return records, active

    async def seek_back(targets: Mapping[Any, tuple[int, Stamp]]) -> None:
        # on the consumer's thread: in turn with faust's seeks and aiokafka's fetches
        sought = {}
        for tp, (first, (seeks, left_at)) in targets.items():
            # nobody positioned it anew since the fetch: no seek, and the same assignment
            if seek_count(c, tp) == seeks and aiokafka_position(c, tp) == left_at:
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
        for tp, (records, stamp) in batch.items():
            last = handed.get(tp)
            if last == records[-1].offset or stamp[1] is None:  # all handed over, or repositioned
                continue
            first = next((r.offset for r in records if last is None or r.offset > last), None)
            if first is not None:
                targets[tp] = (first, stamp)
        batch.clear()
        if targets:
            try:
                await c._thread.call_thread(seek_back, targets)
            except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: its next assignment positions it
                log.warning("fetching dropped records again failed", error=repr(exc))

    c._wait_next_records = wait_next_records
    c.getmany = getmany
