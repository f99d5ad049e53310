"""streams.restore_watch: a table restore that stops moving is sought again, and one that
never moves again fails health."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter

from netpilot.settings import KafkaSettings
from streams.restore_watch import RestoreWatchSpec, watch_restore

WORKER = Path(__file__).with_name("restore_stall_worker.py")


def test_a_restore_that_receives_nothing_is_reported_and_fails_health(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A real faust worker whose changelog partition the restore leaves paused (so the
    events it waits for never come, the stall seen under load): without the watch it hangs
    without a word; with it, the stall is logged with what the consumer is doing after
    stall_s, and health fails after fail_s."""
    bootstrap = kafka_settings.bootstrap_servers
    app_id = f"rw-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-t-changelog"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(changelog, 1, 1, config={"cleanup.policy": "compact"})]).values():
        fut.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    keys = 50
    for i in range(keys):
        # what faust writes to a changelog of str keys and values: JSON strings
        producer.produce(changelog, key=f'"k{i}"'.encode(), value=f'"v{i}"'.encode(), partition=0)
    assert producer.flush(30) == 0
    proc = subprocess.run(
        [sys.executable, str(WORKER), bootstrap, app_id, str(keys), "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert "DROPPED resume" in out, out[-3000:]  # the stall was provoked ...
    warning = re.search(r"table restore stalled .*", out)
    assert warning, out[-3000:]  # ... reported, with what the consumer is doing ...
    assert f"not_fetched=['{changelog}/0']" in warning.group(
        0
    ) and f"remaining={{'{changelog}/0': {keys}}}" in warning.group(0)
    assert re.search(r"CRASHED table-restore: no table restore progress for 1\ds: 1 partitions left STALLS 1", out), (
        out[-3000:]
    )
    assert "RESTORED" not in out and "GAVE UP" not in out  # ... and health failed in time


class Recovery:
    def __init__(self, left: dict[TP, int]) -> None:
        self.in_recovery = True
        self.left = left
        self.active_offsets: dict[TP, int] = {tp: 0 for tp in left}

    def active_remaining(self) -> dict[TP, int]:
        return self.left


def test_a_restore_that_never_moves_again_fails_health_and_one_that_moves_does_not() -> None:
    async def run(moving: bool) -> list[str]:
        recovery = Recovery({TP("changelog", 0): 5})
        app = SimpleNamespace(
            tables=SimpleNamespace(recovery=recovery, changelog_queue=asyncio.Queue()),
            consumer=SimpleNamespace(
                _active_partitions=set(),
                _paused_partitions=set(),
                _buffered_partitions=set(),
                flow_active=True,
                _commit_fut=None,
            ),
            flow_control=SimpleNamespace(is_active=lambda: True),
            producer=SimpleNamespace(buffer=SimpleNamespace(size=0)),
            _fetcher=SimpleNamespace(),
        )
        now = [0.0]
        crashes: list[str] = []

        def crashed(task: str, exc: BaseException) -> None:
            crashes.append(f"{task}: {exc}")

        stalls = Counter("s", "s", registry=CollectorRegistry())
        spec = RestoreWatchSpec(stall_s=5, fail_s=20, every_s=0)
        task = asyncio.ensure_future(watch_restore(app, spec, stalls, crashed, clock=lambda: now[0]))
        for _ in range(30):
            now[0] += 1
            if moving:
                recovery.left = {tp: n + 1 for tp, n in recovery.left.items()}  # e.g. the changelog grows as it is read
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        task.cancel()
        assert stalls._value.get() == (0 if moving else 1)
        return crashes

    assert asyncio.run(run(moving=True)) == []
    crashes = asyncio.run(run(moving=False))
    assert len(crashes) == 1 and crashes[0].startswith("table-restore: no table restore progress for 2")
