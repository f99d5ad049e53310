"""Aggregation throughput: the pure window code alone, then a faust worker on a real broker.

    .venv/bin/python bench/bench_aggregate.py [--flows 1000000] [--batch 10000] [--prefixes 5000]
        [--bootstrap 127.0.0.1:19092] [--worker-flows 1000000] [--no-worker]

Stages (flows/s, median of 3 runs for the pure ones):

1. ``windows.aggregate_batch`` per batch (decode excluded): the vectorised group-by into
   10 s and 60 s windows;
2. ``WindowStore.add`` + close + merge on a dict store: stage 1 plus Arrow IPC encoding of
   each batch's partials (what the worker writes to its changelog table) and the merge of
   closed windows;
3. the worker: flows/1 messages pre-produced to a fresh topic prefix, then a
   ``StreamsService`` (faust, aiokafka, changelog tables) started in this process; the
   figure is flows / (time from start until every flow is counted). It includes faust
   start-up and the partition assignment, so short runs understate the steady rate; the
   steady rate (after the first batch was counted) is printed too.

Data: a few PoPs and links, ``--prefixes`` distinct /24 and /48 destinations (20 % IPv6),
event times advancing 1 s per batch, so windows close as they would in production.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa

from netpilot.wire import flows as F
from streams.aggregate import windows as w
from streams.aggregate.store import WindowStore


def make_batches(total: int, batch: int, prefixes: int, seed: int = 7) -> list[pa.Table]:
    rng = np.random.default_rng(seed)
    v4 = F.ipv4_to_addr((0xC6336400 + (np.arange(prefixes, dtype=np.uint32) << 8)) & 0xFFFFFF00)
    v6 = np.zeros((prefixes, 16), np.uint8)
    v6[:, :4] = [0x20, 0x01, 0x0D, 0xB8]
    v6[:, 4:6] = np.arange(prefixes, dtype=">u2").view(np.uint8).reshape(-1, 2)
    t0 = (int(time.time()) // 60) * 60_000 - 3_600_000
    out = []
    for i in range(total // batch):
        idx = rng.zipf(1.3, batch) % prefixes  # heavy-hitter destinations, like real egress
        is6 = rng.random(batch) < 0.2
        dst = np.where(is6[:, None], v6[idx], v4[idx])
        rate = np.full(batch, 1000, np.uint32)
        b = rng.integers(40, 1_500_000, batch, dtype=np.uint64)
        pop = int(rng.integers(0, 4))
        out.append(
            F.flow_table(
                {
                    "time_end": t0 + i * 1000 + rng.integers(-3000, 1000, batch),
                    "pop": f"pop{pop}",
                    "router": "r1",
                    "link_id": (rng.integers(0, 8, batch), [f"pop{pop}-l{j}" for j in range(8)]),
                    "dst_addr": dst,
                    "dst_prefix": dst,
                    "dst_prefix_len": np.where(is6, 48, 24).astype(np.uint8),
                    "dst_as": (64500 + idx % 500).astype(np.uint32),
                    "bytes": b,
                    "packets": np.maximum(1, b // 800),
                    "sampling_rate": rate,
                    "bytes_scaled": b * 1000,
                    "packets_scaled": np.maximum(1, b // 800) * 1000,
                },
                n=batch,
            )
        )
    return out


def _rate(fn, batches: list[pa.Table]) -> float:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        fn(batches)
        runs.append(time.perf_counter() - t)
    return sum(b.num_rows for b in batches) / statistics.median(runs)


def pure_only(batches: list[pa.Table], spec: w.WindowSpec) -> None:
    for b in batches:
        w.aggregate_batch(b, spec, {})


def with_store(batches: list[pa.Table], spec: w.WindowSpec) -> None:
    store = WindowStore(spec, {})
    for i, b in enumerate(batches):
        out = store.add(b, f"0.{i}")
        if out.pops:
            closed, keys = store.closable(out.pops)
            w.encode_partial(closed)  # what gets published
            store.discard(keys)


def worker(batches: list[pa.Table], bootstrap: str) -> None:
    from netpilot import catalog
    from netpilot.kafka.admin import TopicAdmin
    from netpilot.kafka.producer import KafkaProducer, ProducerOptions
    from netpilot.obs.metrics import sample_value
    from netpilot.settings import KafkaSettings
    from streams.metrics import StreamsMetrics
    from streams.service import StreamsService
    from streams.settings import StreamsSettings

    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    try:
        producer = KafkaProducer(kafka, ProducerOptions(compression="none"))
        for b in batches:
            pop = b.column("pop")[0].as_py()
            producer.produce(kafka.topic(catalog.FLOWS), F.encode_flows(b), key=pop, headers=F.headers())
        producer.flush(120)
        total = sum(b.num_rows for b in batches)
        metrics = StreamsMetrics.create()
        with tempfile.TemporaryDirectory() as data_dir:
            svc = StreamsService(StreamsSettings(kafka=kafka, data_dir=Path(data_dir)), metrics)
            t = time.perf_counter()
            svc.start()
            first = None

            def counted() -> float:
                return sum(
                    sample_value(metrics.registry, "netpilot_streams_flows_total", {"pop": f"pop{p}"}) for p in range(4)
                )

            deadline = time.time() + 600
            while counted() < total and time.time() < deadline:
                if first is None and counted() > 0:
                    first = (time.perf_counter(), counted())
                time.sleep(0.05)
            end = time.perf_counter()
            elapsed = end - t
            done = counted()
            svc.stop()
        print(f"worker: {done:,.0f}/{total:,} flows in {elapsed:.1f}s from start -> {done / elapsed:,.0f} flows/s")
        if first is not None:
            steady = (done - first[1]) / max(1e-9, end - first[0])
            print(f"worker steady (after the first counted batch): {steady:,.0f} flows/s")
        rows = sample_value(metrics.registry, "netpilot_streams_aggregate_rows_total")
        print(
            f"worker aggregates published: {rows:,.0f} rows "
            f"in {sample_value(metrics.registry, 'netpilot_streams_aggregate_messages_total'):,.0f} messages"
        )
    finally:
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--prefixes", type=int, default=5_000)
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--worker-flows", type=int, default=1_000_000)
    ap.add_argument("--no-worker", action="store_true")
    args = ap.parse_args()
    print(
        f"cpus={os.cpu_count()} POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'default')} "
        f"batch={args.batch} prefixes={args.prefixes}"
    )
    spec = w.WindowSpec()
    batches = make_batches(args.flows, args.batch, args.prefixes)
    groups = w.aggregate_batch(batches[0], spec, {}).partials.height
    print(f"one batch -> {groups} partial rows over windows {spec.sizes_s}")
    print(f"aggregate_batch alone:          {_rate(lambda bs: pure_only(bs, spec), batches):>12,.0f} flows/s")
    print(f"store add + close + merge:      {_rate(lambda bs: with_store(bs, spec), batches):>12,.0f} flows/s")
    if not args.no_worker:
        worker(make_batches(args.worker_flows, args.batch, args.prefixes, seed=8), args.bootstrap)


if __name__ == "__main__":
    main()
