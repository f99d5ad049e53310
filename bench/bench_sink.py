"""End-to-end sink rate: flows/1 messages already in Kafka -> ``ClickHouseSinkService`` -> chDB.

    .venv/bin/python bench/bench_sink.py --bootstrap 127.0.0.1:19092 [--rows 1000000]

Needs a running broker (``netpilot dev kafka up``, or the test broker on 19092). Produces
``--rows`` synthetic flows (bench_clickhouse.synthetic_flows) as 10k-flow messages to fresh
topics, then starts the sink in this process and times until every row is acknowledged
(``rows_total``). Includes Kafka fetch, Arrow IPC decode, concatenation, the dedup-token
insert into flows_raw with its three rollup views, and the two offset commits per batch.
Prints figures; asserts nothing. Deletes its topics afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clickhouse import synthetic_flows

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, MetricsSettings
from netpilot.wire import flows
from sinks.clickhouse.service import ClickHouseSinkService
from sinks.clickhouse.settings import ClickHouseSinkSettings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-message", type=int, default=10_000)
    ap.add_argument("--batch-rows", type=int, default=100_000, help="sink batch_max_rows")
    args = ap.parse_args()
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    path = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    try:
        start_ms = (int(time.time()) // 3600 - 1) * 3_600_000
        producer = KafkaProducer(kafka, ProducerOptions(compression="none"))
        n_msgs = args.rows // args.per_message
        for i in range(n_msgs):
            t = synthetic_flows(args.per_message, start_ms + i * args.per_message // 100, seed=i)
            producer.produce(
                kafka.topic(catalog.FLOWS), flows.encode_flows(t), key=f"pop{i % 6}", headers=flows.headers()
            )
        producer.flush(60)
        print("load average before: {:.1f} {:.1f} {:.1f} (2 cores)".format(*os.getloadavg()))
        settings = ClickHouseSinkSettings(
            kafka=kafka,
            dsn=f"chdb://{path}/ch",
            group_id=f"bench-{uuid.uuid4().hex[:6]}",
            batch_max_rows=args.batch_rows,
            metrics=MetricsSettings(enabled=False),
        )
        svc = ClickHouseSinkService(settings)
        t0 = time.perf_counter()
        svc.start()
        t_started = time.perf_counter()
        total = 0.0
        while total < n_msgs * args.per_message and time.perf_counter() - t0 < 600:
            time.sleep(0.05)
            total = sample_value(svc.registry, "netpilot_sink_clickhouse_rows_total", {"table": "netpilot.flows_raw"})
        elapsed = time.perf_counter() - t_started
        batches = sample_value(svc.registry, "netpilot_sink_clickhouse_batches_total", {"table": "netpilot.flows_raw"})
        insert_s = sample_value(
            svc.registry, "netpilot_sink_clickhouse_insert_duration_seconds_sum", {"table": "netpilot.flows_raw"}
        )
        svc.stop()
        print(f"time inside acknowledged inserts: {insert_s:.1f}s of {elapsed:.1f}s")
        print(
            f"sink: {int(total):,} rows in {elapsed:.1f}s after start-up "
            f"= {total / elapsed:,.0f} rows/s ({int(batches)} inserts; start-up with "
            f"migrations {t_started - t0:.1f}s)"
        )
    finally:
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
