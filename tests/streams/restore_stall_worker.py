"""A faust worker whose table restore is made to stall (tests/streams/test_restore_watch.py).

Run as ``python restore_stall_worker.py BOOTSTRAP APP_ID KEYS WATCH``: one table of one
partition, whose changelog the test filled with KEYS keys beforehand. The first time faust
resumes the changelog partition for the restore, the resume is dropped (a partition left
paused: the restore waits for events that never come, as in the stall seen under load).
With WATCH=1 streams.restore_watch runs beside it (stall_s 3, fail_s 10) and the worker
stops when it reports the crash (``CRASHED ...``), as the lifecycle runner would; prints
``RESTORED <n> STALLS <k>`` once the table holds every key. With a fifth argument
``stuck`` every resume of the partition is dropped, not only the first. With
``drop-fetched`` the resume is left alone and instead the first batch of changelog records
aiokafka returns is dropped by faust, as faust drops records whose partition was paused
while they were fetched (streams/faust_refetch.py: the stall seen under load). Gives up
after 40 s (``GAVE UP``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from streams.faust_producer import App
from streams.restore_watch import RestoreWatchSpec, watch_restore

bootstrap, app_id, keys, watch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
mode = sys.argv[5] if len(sys.argv) > 5 else ""
stuck = mode == "stuck"

app = App(
    app_id,
    broker=f"kafka://{bootstrap}",
    store="memory://",
    topic_partitions=1,
    web_enabled=False,
    topic_disable_leader=True,
    autodiscover=False,
    key_serializer="raw",
    value_serializer="raw",
    broker_session_timeout=6,
    broker_heartbeat_interval=0.6,
)
table = app.Table("t", key_type=str, value_type=str, partitions=1)
stalls = PromCounter("restore_stalls", "test", registry=CollectorRegistry())


def drop_first_changelog_resume() -> None:
    """Patch the consumer class before the app makes its consumer (the first restore runs
    before any app task could patch the instance)."""
    resume = Consumer.resume_partitions
    dropped = False

    def resume_partitions(self: Any, tps: Any) -> None:
        nonlocal dropped
        tps = set(tps)
        changelog = {tp for tp in tps if tp.topic.endswith("-t-changelog")}
        if changelog and (not dropped or stuck):
            dropped = True
            print(f"DROPPED resume of {sorted(map(str, changelog))}", flush=True)
            tps -= changelog
        resume(self, tps)

    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]


def drop_first_changelog_batch() -> None:
    """Patch the consumer class so that faust's ``getmany`` drops the first batch of
    changelog records aiokafka returns: it hands over only records of the active partitions
    it is given, and this once they exclude the changelog partition (a pause between the
    fetch and the hand-over, as in a rebalance)."""
    wait_next_records = Consumer._wait_next_records
    dropped = False

    async def drop_changelog(self: Any, timeout: float) -> Any:
        nonlocal dropped
        records, active = await wait_next_records(self, timeout)
        changelog = {tp for tp in records or {} if tp.topic.endswith("-t-changelog")}
        if changelog and not dropped:
            dropped = True
            offsets = sorted(r.offset for tp in changelog for r in records[tp])
            print(f"DROPPED fetched {len(offsets)} records ({offsets[0]}-{offsets[-1]})", flush=True)
            active = {tp for tp in active if tp not in changelog}
        return records, active

    Consumer._wait_next_records = drop_changelog  # type: ignore[method-assign]


done = asyncio.Event()


def crashed(task: str, exc: BaseException) -> None:
    print(f"CRASHED {task}: {exc} STALLS {stalls._value.get():.0f}", flush=True)
    done.set()


async def main() -> None:
    """As streams.service runs a worker: the watch, then the app."""
    if watch:  # before start(): it returns only once the first restore is done
        spec = RestoreWatchSpec(stall_s=3.0, fail_s=10.0)
        asyncio.ensure_future(watch_restore(app, spec, stalls, crashed))
    asyncio.ensure_future(app.start())
    deadline = time.monotonic() + 40
    while not done.is_set() and len(table) < keys and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if len(table) >= keys:
        print(f"RESTORED {len(table)} STALLS {stalls._value.get():.0f}", flush=True)
    elif not done.is_set():
        print(f"GAVE UP with {len(table)} keys", flush=True)
    await app.stop()


if __name__ == "__main__":
    if mode == "drop-fetched":
        drop_first_changelog_batch()
    else:
        drop_first_changelog_resume()
    asyncio.run(main())
