"""Fixes to faust 0.15 (faust-streaming) that scale-out needs, applied by :class:`App`.

**A producer flush that waits.** faust writes table changes (the changelogs) through a
buffer of its producer, and flushes the producer before it commits source offsets and when
partitions are revoked: the offsets a worker commits must never run ahead of the changelog
writes their messages made. But ``ProducerBuffer.flush`` stops waiting as soon as no
message has left the buffer for 0.1 s, and returns with messages still in it. On a loaded
machine the buffer's sender often takes longer (faust logs "producer buffer full"), so a
commit can get ahead of the changelog (a crash then loses the partials of committed
messages), and a worker handing partitions over sends their last changelog writes after
the new owner has restored them. :func:`track_buffer` keeps the set of buffered messages
not yet acknowledged by Kafka, and ``flush`` awaits all that were there when it was called
(later ones do not hold it up, so a busy worker still commits). A message that failed
raises, so the commit does not go ahead.

**A seek for partitions with no commit yet** (``streams/faust_offsets.py``, docs/streams.md
"Two or more workers"): a partition whose committed offset was still none (or 0) lost the
messages faust had fetched and dropped in a rebalance (a new group's first seconds, a second
worker joining), because aiokafka's ``seek_to_committed`` leaves such a partition where
fetching had got to. The consumer seeks it to its start, and hands over no record fetched
before that seek.

**Records faust dropped are fetched again** (``streams/faust_refetch.py``): records aiokafka
returned and faust threw away around a rebalance were gone for good for a table's changelog
partition, and the table restore that needed them waited for ever.

**Seeks on the consumer's thread** (``streams/faust_seeks.py``): a seek made from the app's
thread raced aiokafka's fetcher on the consumer's thread (a ``KeyError`` that stopped the
worker, or the seek undone), and records fetched before a seek were still handed over after
it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import ConsumerT, ProducerT
from faust.types.tuples import FutureMessage

from streams.faust_offsets import seek_uncommitted_to_start
from streams.faust_refetch import refetch_dropped
from streams.faust_seeks import seek_on_consumer_thread


def track_buffer(producer: ProducerT) -> None:
    """Make ``producer.buffer.flush()`` wait until every message put before the call is
    acknowledged. Not for ``producer_threaded`` (its buffer is another queue)."""
    buffer: Any = producer.buffer
    unsent: set[FutureMessage] = set()
    put = buffer.put

    def tracked_put(fut: FutureMessage) -> None:
        unsent.add(fut)
        fut.add_done_callback(unsent.discard)
        put(fut)

    async def flush() -> None:
        if unsent:
            await asyncio.gather(*list(unsent))

    buffer.put = tracked_put
    buffer.flush = flush


class App(faust.App):
    """faust.App with a producer whose flush waits for every buffered message, and a consumer
    that seeks on its own thread (streams.faust_seeks), fetches again the records faust
    dropped (streams.faust_refetch) and seeks partitions with no committed offset to their
    start (streams.faust_offsets)."""

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        if not self.conf.producer_threaded:
            track_buffer(producer)
        return producer

    def _new_consumer(self) -> ConsumerT:
        consumer = super()._new_consumer()
        seek_on_consumer_thread(consumer)  # innermost: the others' seeks go through it
        refetch_dropped(consumer)  # beneath: faust_offsets' getmany wraps this one
        seek_uncommitted_to_start(consumer)
        return consumer
