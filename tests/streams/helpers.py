"""Builders of flows batches with exactly known totals, and a topic reader, for streams tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.partitioning import partition_for
from netpilot.settings import KafkaSettings
from netpilot.wire import flows as F

V4_PREFIXES = ("198.51.100.0", "203.0.113.0")
V6_PREFIXES = ("2001:db8:1::", "2001:db8:2::")


def prefix_addr(text: str) -> bytes:
    return F.str_to_addr(text)


def flows_at(
    pop: str,
    link_id: str,
    times_ms: np.ndarray,
    prefix: str,
    dst_as: int = 64500,
    bytes_each: int = 1000,
    rate: int = 100,
    span_ms: int = 0,
) -> pa.Table:
    """Flows all to one prefix/link: ``bytes_scaled = bytes_each * rate`` each, each lasting
    ``span_ms`` up to its time in ``times_ms`` (0: all in one window)."""
    n = len(times_ms)
    v6 = ":" in prefix
    addr = np.frombuffer(prefix_addr(prefix) * n, np.uint8).reshape(n, 16)
    return F.flow_table(
        {
            "time_end": np.asarray(times_ms, np.int64),
            "time_start": np.asarray(times_ms, np.int64) - span_ms,
            "time_received": np.asarray(times_ms, np.int64) + 500,
            "pop": pop,
            "link_id": link_id,
            "router": "r1",
            "dst_addr": addr,
            "dst_prefix": addr,
            "dst_prefix_len": np.full(n, 48 if v6 else 24, np.uint8),
            "dst_as": np.full(n, dst_as, np.uint32),
            "bytes": np.full(n, bytes_each, np.uint64),
            "packets": np.full(n, 2, np.uint64),
            "sampling_rate": np.full(n, rate, np.uint32),
            "bytes_scaled": np.full(n, bytes_each * rate, np.uint64),
            "packets_scaled": np.full(n, 2 * rate, np.uint64),
        },
        n=n,
    )


def concat(*tables: pa.Table) -> pa.Table:
    return pa.concat_tables(tables).combine_chunks()


def read_until(kafka: KafkaSettings, topic: str, done, timeout: float = 60.0) -> list:
    """Read ``topic`` from the start until ``done(messages)`` is true or the timeout."""
    consumer = BatchConsumer(kafka, f"test-{time.monotonic_ns()}", [topic])
    got: list = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            got.extend(consumer.poll_batch(500, timeout=0.5))
            if done(got):
                break
    finally:
        consumer.close()
    return got


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - 127.0.0.1 only
        return resp.read().decode()


def pops_one_per_partition() -> list[str]:
    """One PoP per partition of the PoP-keyed topics, so two workers of a group both get some."""
    n = catalog.FLOWS.partitions
    by_part: dict[int, str] = {}
    for i in range(200):
        by_part.setdefault(partition_for(f"pop{i}", n), f"pop{i}")
    assert len(by_part) == n
    return [by_part[p] for p in sorted(by_part)]


def wait_for_metrics_url(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    """The ``http://host:port`` a netpilot child logged it serves /metrics on."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = re.search(r"metrics on (http://\S+)/metrics", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"the worker never said where its metrics are: {log.read_text()[-2000:]}")


class StreamsWorker:
    """One `netpilot streams run` process; stderr goes to a file (an unread pipe would block it).

    ``app_id`` puts several workers in one consumer group; ``env`` adds settings."""

    def __init__(
        self, k: KafkaSettings, data_dir: Path, log: Path, app_id: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        full = dict(
            os.environ,
            NETPILOT_KAFKA__BOOTSTRAP_SERVERS=k.bootstrap_servers,
            NETPILOT_KAFKA__TOPIC_PREFIX=k.topic_prefix,
            NETPILOT_STREAMS__DATA_DIR=str(data_dir),
            NETPILOT_STREAMS__SESSION_TIMEOUT_S="6",
            NETPILOT_LOG__FORMAT="json",
            # flows here are minutes old: a slow start must not find the PoP idle
            NETPILOT_STREAMS__IDLE_AFTER_S="600",
            **({"NETPILOT_STREAMS__APP_ID": app_id} if app_id else {}),
            **(env or {}),
        )
        exe = Path(sys.executable).with_name("netpilot")
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen([str(exe), "streams", "run"], env=full, stderr=err)
        self.url = wait_for_metrics_url(self.proc, log, 60)

    def metrics(self) -> str:
        return scrape(f"{self.url}/metrics")

    def wait_for(self, sample: str, timeout: float = 60) -> str:
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = self.metrics()
            if sample in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{sample!r} not in metrics:\n{text[-3000:]}")

    def flows_by_pop(self) -> dict[str, float]:
        """``netpilot_streams_flows_total`` per PoP: the PoPs this worker has processed."""
        pattern = r'^netpilot_streams_flows_total\{pop="([^"]+)"\} ([0-9.e+]+)'
        return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, self.metrics(), re.M)}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def delete_app_topics(k: KafkaSettings, app_id: str) -> None:
    """Delete the internal topics faust created for ``app_id`` (changelogs, idle ticks): the
    catalog fixture removes only the catalog's topics."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": k.bootstrap_servers})
    prefix = f"{k.topic_prefix}{app_id}-"
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for fut in (admin.delete_topics(names) if names else {}).values():
        fut.result(30)
