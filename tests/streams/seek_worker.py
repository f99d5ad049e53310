"""A faust worker that seeks its partition back again and again while it reads
(tests/streams/test_faust_seeks.py).

Run as ``python seek_worker.py BOOTSTRAP APP_ID TOPIC RECORDS SEEKS [MODE]``: an agent reads
TOPIC (one partition, holding RECORDS records) with streams.faust_producer.App. Meanwhile the
app's loop seeks the partition back 50 records behind the last one handed over, SEEKS times,
as faust's ``Consumer.seek`` does (from the app's thread): at random moments (MODE
``random``, the default), or (``after-fetch``) right after a batch came back from the
consumer's thread and before faust hands it over, 50 records behind its first. Every record
the consumer hands over and every seek are logged in order; after a seek to X the next record
handed over must be X. Prints ``SEEKS <k> HANDED <n> LAST <offset> OUT_OF_ORDER <v>`` (and
the first records out of order, and ``ON_APP_THREAD <n>``: aiokafka seeks made on the app's
thread) once the last record was handed over after the last seek,
or ``GAVE UP`` after 60 s; a crash of faust's fetcher shows as its traceback and ``GAVE UP``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from faust.types import TP, ConsumerT

from streams.faust_producer import App

bootstrap, app_id, topic_name, records, seeks_wanted = sys.argv[1:6]
MODE = sys.argv[6] if len(sys.argv) > 6 else "random"
RECORDS, SEEKS = int(records), int(seeks_wanted)
seeks_after_fetch = 0
TP0 = TP(topic_name, 0)
log: list[tuple[str, int]] = []
"""("got", offset) for each record handed over, ("seek", offset) for each seek, in order."""
seeks_on_app_thread = 0
"""aiokafka seeks made on the app's (main) thread rather than the consumer's own."""
seek_to = Fetcher.seek_to


def seek_to_where_made(self: Any, tp: Any, offset: int) -> None:
    global seeks_on_app_thread
    if threading.current_thread() is threading.main_thread():
        seeks_on_app_thread += 1
    seek_to(self, tp, offset)


Fetcher.seek_to = seek_to_where_made


class LoggingApp(App):
    def _new_consumer(self) -> ConsumerT:
        consumer: Any = super()._new_consumer()
        getmany = consumer.getmany

        async def logged(timeout: float) -> AsyncIterator[Any]:
            async for tp, message in getmany(timeout):
                if tp == TP0:
                    log.append(("got", message.offset))
                yield tp, message

        consumer.getmany = logged
        if MODE == "after-fetch":
            fetch = consumer._thread.getmany
            rng = random.Random(11)

            async def fetch_then_seek(*args: Any, **kwargs: Any) -> Any:
                # the batch is back from the consumer's thread; nothing of it handed over yet
                global seeks_after_fetch
                records = await fetch(*args, **kwargs)
                batch = (records or {}).get(TP0)
                if batch and seeks_after_fetch < SEEKS and rng.random() < 0.5:
                    target = max(0, batch[0].offset - 50)
                    if target < batch[0].offset:
                        seeks_after_fetch += 1
                        log.append(("seek", target))
                        await consumer.seek(TP0, target)
                return records

            consumer._thread.getmany = fetch_then_seek
        return consumer


app = LoggingApp(
    app_id,
    broker=f"kafka://{bootstrap}",
    store="memory://",
    topic_partitions=1,
    web_enabled=False,
    topic_disable_leader=True,
    autodiscover=False,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    # batches smaller than the topic: aiokafka prefetches the next one from where there are
    # records (a prefetch waiting at the log's end holds a seek up for its 1.5 s long poll)
    broker_max_poll_records=200,
)
topic = app.topic(topic_name, partitions=1)


@app.agent(topic)
async def read(stream: Any) -> None:
    async for _ in stream:
        pass


def handed() -> list[int]:
    return [offset for kind, offset in log if kind == "got"]


async def seek_back_again_and_again(deadline: float) -> int:
    made = 0
    rng = random.Random(7)
    while made < SEEKS and time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        got = handed()
        if not got or (log[-1][0] == "seek"):
            continue  # nothing handed over since the last seek yet
        target = max(0, got[-1] - 50)
        log.append(("seek", target))
        await app.consumer.seek(TP0, target)
        made += 1
    return made


def out_of_order() -> list[str]:
    """Records handed over other than where the last seek said, or not in order."""
    bad = []
    expected: int | None = None
    for i, (kind, offset) in enumerate(log):
        if kind == "seek":
            expected = offset
        elif expected is not None and offset != expected:
            bad.append(f"#{i} got {offset} expected {expected}")
            expected = offset + 1
        else:
            expected = offset + 1
    return bad


async def main() -> None:
    asyncio.ensure_future(app.start())
    deadline = time.monotonic() + 60
    while not handed() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if MODE == "after-fetch":
        while seeks_after_fetch < SEEKS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        made = seeks_after_fetch
    else:
        made = await seek_back_again_and_again(deadline)
    while time.monotonic() < deadline and (not handed() or handed()[-1] < RECORDS - 1 or log[-1][0] == "seek"):
        await asyncio.sleep(0.1)
    got = handed()
    if got and got[-1] == RECORDS - 1:
        bad = out_of_order()
        print(
            f"SEEKS {made} HANDED {len(got)} LAST {got[-1]} OUT_OF_ORDER {len(bad)}"
            f" ON_APP_THREAD {seeks_on_app_thread}",
            flush=True,
        )
        for line in bad[:10]:
            print(f"  {line}", flush=True)
    else:
        print(f"GAVE UP: seeks {made}, last handed {got[-1] if got else None}", flush=True)
    await app.stop()


if __name__ == "__main__":
    asyncio.run(main())
