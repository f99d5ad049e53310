"""A fix to faust 0.15 (faust-streaming) + aiokafka 0.14, applied by :class:`streams.faust_producer.App`:
a partition with no committed offset yet lost the messages faust had fetched and dropped.

**Why messages get dropped.** faust fetches through aiokafka, which moves its position past
every record it hands over, and faust then throws some of them away: the records of
partitions it holds paused while it restores the tables after a rebalance (aiokafka returns
them all the same: ``Consumer.getmany`` drops them, hundreds a partition while a restore
runs), records fetched while the flow is stopped for a rebalance, and whatever sat in the
agents' queues when partitions were revoked. faust's remedy is ``perform_seek``: right before
it resumes the flow it seeks every partition back to its committed offset. But aiokafka's
``seek_to_committed`` seeks only to an offset *above 0*, so a partition with no commit yet (a
new consumer group's first seconds, before the first ``commit_interval``) stays where the
dropping had got to and the worker goes on from there; faust's bookkeeping does not notice
(with nothing committed it tracks no gap at the head), so its next commit covers the
skipped offsets for good. Two workers starting in a new group do it: the second one's join
makes the first restore the tables with its stream partitions paused.

**The fix** (:func:`seek_uncommitted_to_start`): ``seek_to_committed`` also seeks every stream
partition with no committed offset to its first offset when ``auto_offset_reset`` is
``earliest`` (where aiokafka had started it), and one committed at 0 to 0. With ``latest``
such a partition starts at the log end by design and is left as faust leaves it. Changelog
partitions are left alone: faust positions those itself, from the tables' own offsets.

**Why seeking alone was not enough.** The drops happen *during* the table restore, after the
assignment: a seek made when partitions are assigned (or anywhere before faust's last
``perform_seek``) is undone by them; only the seek in ``perform_seek`` comes after the last.
And that seek races the fetcher: faust resumes the stream partitions just before it, and a
fetch finishing on the consumer thread meanwhile hands over records from where the dropping
had got to (seen: offset 222 processed, then 0-221 after the seek). Re-read or not, such a
record does harm: it moves the window watermark on, so the earlier flows read after it are
counted as too late, and it sets faust's read offset, under which the records re-read from
the start are discarded as already seen. So ``getmany`` hands over no record of a stream
partition between its resume and the end of its seek (those dropped there are sought again,
back to the commit or the start), and none of a partition sought to its start before the
record at that start (a fetch that began before the seek; sought back again). A committed
partition, whose records faust drops the same way, gets the first of these two guards; the
second would wait forever if the record at the committed offset were missing (a
transaction marker), while a first offset always exists (or moved on, by retention: then
the new first one is the start).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.types import TP, ConsumerT, Message

from netpilot.obs.logging import get_logger

log = get_logger("netpilot.streams")


def seek_uncommitted_to_start(consumer: ConsumerT) -> None:
    """Make ``consumer.seek_to_committed()`` (faust's ``perform_seek``) also seek the stream
    partitions that have no committed offset, or offset 0, to their start, and make
    ``consumer.getmany`` hand over no record fetched before that seek."""
    c: Any = consumer  # faust's aiokafka Consumer: ``_thread``, ``_is_changelog_tp``
    original_resume = c.resume_partitions
    original_seek = c.seek_to_committed
    original_getmany = c.getmany
    earliest = c.app.conf.consumer_auto_offset_reset == "earliest"
    pending: set[TP] = set()
    """Stream partitions resumed whose seek has not been made yet: their records are dropped."""
    dropped: set[TP] = set()
    """Partitions of ``pending`` that had records dropped: sought again once the seek is made."""
    sought: dict[TP, int] = {}
    """Partition -> the start it was sought to, until the record there is handed over."""

    def resume_partitions(tps: Any) -> None:
        # faust resumes the stream partitions right before ``perform_seek`` (recovery's
        # ``on_recovery_completed`` and ``_resume_streams``): nothing fetched in between may
        # be handed over, it comes from where the dropping during the restore had got to
        pending.update(tp for tp in tps if not c._is_changelog_tp(tp))
        original_resume(tps)

    async def seek_to_committed() -> Mapping[Any, int | None]:
        pending.update(tp for tp in c.assignment() if not c._is_changelog_tp(tp))
        try:
            committed: Mapping[Any, int | None] = await original_seek()
            streams = [tp for tp in committed if not c._is_changelog_tp(tp)]
            starts = {tp: 0 for tp in streams if committed[tp] == 0}  # aiokafka seeks only above 0
            none = [tp for tp in streams if committed[tp] is None]
            if earliest and none:
                starts.update(await c.earliest_offsets(*none))
            sought.clear()  # every assigned partition is sought again (a revoked one is not ours)
            sought.update(starts)
            # a record dropped meanwhile may have been fetched after aiokafka's seek: seek
            # again (back, never forwards: nothing of these was handed over since the resume)
            targets = {tp: committed[tp] for tp in dropped if committed.get(tp)} | starts
            for tp, offset in targets.items():
                c._thread.seek(tp, offset)
            log.info(
                "stream partitions sought to their commits",
                committed={f"{tp.topic}/{tp.partition}": committed[tp] for tp in streams},
                to_start={f"{tp.topic}/{tp.partition}": offset for tp, offset in starts.items()},
                again=sorted(f"{tp.topic}/{tp.partition}" for tp in targets),
            )
            return committed
        finally:
            pending.clear()
            dropped.clear()

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        resought: set[TP] = set()  # sought back in this batch: drop its later records too
        async for tp, message in original_getmany(timeout):
            if tp in pending:
                dropped.add(tp)
                continue
            start = sought.get(tp)
            if start is not None and message.offset > start:
                # fetched before the seek: handed over, it would make faust skip to it
                if tp not in resought:
                    resought.add(tp)
                    try:
                        # if retention removed the record at ``start`` meanwhile, the
                        # partition's new first offset is where it starts now
                        first = (await c.earliest_offsets(tp)).get(tp, start)
                        if first > start:
                            sought[tp] = start = first
                        if message.offset > start:
                            # in case it was fetched after the seek: back to the start again
                            # (never forwards: the record there has not been handed over)
                            c._thread.seek(tp, start)
                    except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: its next assignment positions it
                        log.warning("seek back to the start failed", partition=str(tp), error=repr(exc))
                if message.offset > start:
                    continue
            sought.pop(tp, None)
            yield tp, message

    c.resume_partitions = resume_partitions
    c.seek_to_committed = seek_to_committed
    c.getmany = getmany
