"""Builders of flows batches with exactly known totals, and a topic reader, for streams tests."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from netpilot.kafka.consumer import BatchConsumer
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
