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
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter

from netpilot.settings import KafkaSettings
from streams.restore_watch import RestoreWatchSpec, watch_restore

WORKER = Path(__file__).with_name("restore_stall_worker.py")


def changelog_of(kafka_settings: KafkaSettings, keys: int) -> str:
    """A new app id whose table changelog already holds ``keys`` keys."""
    bootstrap = kafka_settings.bootstrap_servers
    app_id = f"rw-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-t-changelog"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(changelog, 1, 1, config={"cleanup.policy": "compact"})]).values():
        fut.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(keys):
        # what faust writes to a changelog of str keys and values: JSON strings
        producer.produce(changelog, key=f'"k{i}"'.encode(), value=f'"v{i}"'.encode(), partition=0)
    assert producer.flush(30) == 0
    return app_id


def run_worker(kafka_settings: KafkaSettings, app_id: str, keys: int, *extra: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(WORKER), kafka_settings.bootstrap_servers, app_id, str(keys), "1", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return proc.stdout + proc.stderr


def test_a_restore_left_paused_is_reported_and_resumed(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    """A real faust worker whose restore leaves its changelog partition paused, so the events
    it waits for never come (without the watch it hangs with no key restored; checked by
    hand): after stall_s the watch logs the stall, naming the partition as not fetched,
    resumes it, and the table gets every key."""
    keys = 50
    app_id = changelog_of(kafka_settings, keys)
    out = run_worker(kafka_settings, app_id, keys, cwd=tmp_path)
    assert "DROPPED resume" in out, out[-3000:]  # the stall was provoked ...
    warning = re.search(r"table restore stalled .*", out)
    assert warning, out[-3000:]  # ... reported, with what the consumer is doing ...
    changelog = f"{app_id}-t-changelog"
    assert f"not_fetched=['{changelog}/0']" in warning.group(0), warning.group(0)
    assert f"remaining={{'{changelog}/0': {keys}}}" in warning.group(0)
    assert f"aiokafka={{'{changelog}/0': 'position=0 awaiting_reset=False paused=False" in warning.group(0)
    assert f"RESTORED {keys} STALLS 1" in out, out[-3000:]  # ... and undone
    assert "CRASHED" not in out


def test_a_restore_that_stays_stuck_fails_health(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    """The same, but the partition cannot be resumed: health fails after fail_s, so the
    orchestrator restarts the worker (a fresh start restores from scratch)."""
    keys = 50
    app_id = changelog_of(kafka_settings, keys)
    out = run_worker(kafka_settings, app_id, keys, "stuck", cwd=tmp_path)
    assert "table restore stalled" in out, out[-3000:]
    crash = r"CRASHED table-restore: no table restore progress for 1\ds: 1 partitions left STALLS 1"
    assert re.search(crash, out), out[-3000:]
    assert "RESTORED" not in out and "GAVE UP" not in out


def test_changelog_records_faust_dropped_are_fetched_again_and_the_restore_completes(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The stall seen under load (streams/faust_refetch.py): aiokafka returns the changelog's
    records and faust drops them (here: the partition is left out of the batch's active set,
    as a pause between fetch and hand-over does), so aiokafka's position is past records the
    restore never applied. Without the refetch the restore waits for ever (the watch reports
    it, then fails health); with it the consumer seeks back and every key is restored."""
    keys = 50
    app_id = changelog_of(kafka_settings, keys)
    out = run_worker(kafka_settings, app_id, keys, "drop-fetched", cwd=tmp_path)
    assert re.search(r"DROPPED fetched \d+ records \(0-", out), out[-3000:]  # the drop was provoked ...
    refetched = f"records faust dropped fetched again .*partitions={{'{app_id}-t-changelog/0': 0}}"
    assert re.search(refetched, out), out[-3000:]  # ... undone by a seek back to the first dropped record ...
    assert f"RESTORED {keys} STALLS 0" in out, out[-3000:]  # ... before the watch saw any stall
    assert "CRASHED" not in out


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
                resume_partitions=lambda tps: resumed.append(tps),
                _commit_fut=None,
            ),
            flow_control=SimpleNamespace(is_active=lambda: True),
            producer=SimpleNamespace(buffer=SimpleNamespace(size=0)),
        )
        now = [0.0]
        crashes: list[str] = []
        resumed: list[Any] = []

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
        assert resumed == ([] if moving else [{TP("changelog", 0)}])  # not fetched: resumed, once
        return crashes

    assert asyncio.run(run(moving=True)) == []
    crashes = asyncio.run(run(moving=False))
    assert len(crashes) == 1 and crashes[0].startswith("table-restore: no table restore progress for 2")
